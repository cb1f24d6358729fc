"""`approve`, `reject` and `approvals`: the approval gate from a terminal (the UI records decisions the same way)."""

from __future__ import annotations

import argparse
import os
import pwd
from datetime import UTC, datetime

from coderemote_pipeline.cli.release_commands import one_line, person
from coderemote_pipeline.rules.env_names import ENV_HELP

APPROVE, REJECT = "approve", "reject"
PAST = {APPROVE: "approved", REJECT: "rejected"}


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _decide(args: argparse.Namespace, settings_from, decision: str) -> int:
    from coderemote_pipeline.ledger.approvals import approval_reason, latest_hold
    from coderemote_pipeline.ledger.gate import gate_refusal
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.rules.environments import policy_for
    from coderemote_pipeline.rules.release_keys import parse_release_key
    from coderemote_pipeline.usecases.approve import held_deploy, record_decision

    settings = settings_from(args)
    release = parse_release_key(args.release)
    by = identity(args.env, args.by, settings.infra_dir)
    instance = open_instance(settings.state_dir)
    recorded = record_decision(settings, instance, args.env, release, by=by, decision=decision,
                               reason=args.reason or "")  # fmt: skip
    label = f"{recorded.env}|{recorded.release}"
    print(f"{PAST[recorded.decision]} {label} (commit {recorded.commit[:12]}) by {recorded.by}, recorded")
    if decision != APPROVE:
        return 0
    policy = policy_for(args.env, settings.infra_dir)
    hold = latest_hold(instance, args.env, release.key) if recorded.hold_id is not None else None
    # The gate too, with the override a held deploy carries: approved but not yet verified where it must be first,
    # it waits (held, the sensor launches it once the gate opens; else a deploy would be refused).
    still = approval_reason(instance, policy, release.key, recorded.commit)
    gated = None if still else gate_refusal(instance, policy, recorded.commit, hold.override_tags if hold else None)
    if still or gated:
        waits = "; approved_release_sensor launches it once the gate opens" if gated and hold else ""
        print(f"not deployable yet: {still or gated}{waits}")
    elif recorded.hold_id is None:
        print(f"nothing was holding it; deploy it with `coderemote-pipeline deploy {args.env} {release.key}`")
    elif (run := held_deploy(instance, recorded)) is not None:
        print(f"its held deploy was already launched (run {run.run_id}): nothing more to do")
    else:
        print(f"approved_release_sensor launches the held deploy of {label} on its next tick (or now: "
              f"`coderemote-pipeline deploy {args.env} {release.key}`)")  # fmt: skip
    return 0


def identity(env: str, by: str | None, infra_dir) -> str:
    """Who decides from a terminal: the operating-system account running the command (not an environment
    variable). Where the env names its approvers, `--by` may only repeat it; elsewhere it may name anyone, as
    before approvers were configured."""
    from coderemote_pipeline.ledger.approvals import ApprovalError
    from coderemote_pipeline.rules.environments import policy_for

    account = pwd.getpwuid(os.geteuid()).pw_name
    if by is None:
        return account
    if policy_for(env, infra_dir).approval_rule.approvers and by.strip() != account:
        raise ApprovalError(f"--by {by!r}: {env}'s approvers decide as the account they run this command as, and "
                            f"this one is {account!r}. Run it as the approver (or leave out --by)")  # fmt: skip
    return by


def cmd_approve(args: argparse.Namespace, settings_from) -> int:
    return _decide(args, settings_from, APPROVE)


def cmd_reject(args: argparse.Namespace, settings_from) -> int:
    return _decide(args, settings_from, REJECT)


def cmd_approvals(args: argparse.Namespace, settings_from) -> int:
    from coderemote_pipeline.ledger.approvals import GATED, approve_command
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.usecases.approval_view import approval_view

    settings = settings_from(args)
    waiting, decisions = approval_view(settings, open_instance(settings.state_dir), lapses=not args.pending)
    if not waiting and (args.pending or not decisions):
        print("nothing waits for approval" if args.pending else "no approvals recorded yet")
        return 0
    print(f"{'env':<8} {'release':<22} {'commit':<12}  {'status':<9} detail")
    for entry in waiting:
        hold = entry.hold
        if hold.status == GATED:
            status, detail = "approved", hold.waiting_for
        else:
            # Partly approved: who approved and who may still; else since when it waits.
            since = entry.approvals or f"held since {_when(hold.timestamp)} ({hold.trigger})"
            detail = f"{since}: {approve_command(hold.env, hold.release)}"
            status = "pending"
        print(f"{hold.env:<8} {hold.release:<22} {hold.commit[:12]:<12}  {status:<9} {detail}")
        if entry.notes is not None and hold.status != GATED:
            for line in entry.notes.lines():
                print(f"{'':<8} {line}")
        elif entry.gate and hold.status != GATED:
            print(f"{'':<55} promotion gate: {entry.gate}")
    if args.pending:
        return 0
    for d, lapsed in decisions:
        detail = f"by {d.by} at {_when(d.timestamp)}" + (f": {d.reason}" if d.reason else "")
        detail += f" (no longer stands for a new deploy: {lapsed})" if lapsed else ""
        print(f"{d.env:<8} {d.release:<22} {d.commit[:12]:<12}  {PAST.get(d.decision, d.decision):<9} {detail}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    for name, func, verb in (("approve", cmd_approve, "approve"), ("reject", cmd_reject, "reject")):
        cmd = sub.add_parser(name, help=f"{verb} deploying RELEASE to ENV (an env whose policy asks for approval)")
        cmd.add_argument("env", help=ENV_HELP)
        cmd.add_argument("release", help="release key, e.g. v1.2.3")
        cmd.add_argument("--by", type=person, help="who decides (default: the account running this command; where "
                         "the env lists approvers, only that account)")
        cmd.add_argument("--reason", type=one_line, default="", help="why (shown with the decision)")
        cmd.add_argument("--remote", help="app git remote URL (default: CODEREMOTE_APP_REMOTE or the demo's)")
        cmd.set_defaults(func=func)
    listing = sub.add_parser("approvals", help="what waits for approval or for the promotion gate, and decisions")
    listing.add_argument("--pending", action="store_true", help="only what waits")
    listing.set_defaults(func=cmd_approvals)

"""`coderemote-pipeline approve | reject | approvals`: the approval gate from a terminal.

A decision is recorded the way the UI records it: a run of `approval_job` (materializing `release_approval` for
ENV|RELEASE with config by/decision/reason) in the persistent instance, so both show up in the same place.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import dagster as dg

from coderemote_pipeline.ledger.approvals import (
    APPROVAL_ASSET,
    APPROVE,
    REJECT,
    ApprovalError,
    Decision,
    Hold,
    approval_board,
    approve_command,
    decision_refusal,
    held_run_key,
    latest_decision,
)
from coderemote_pipeline.ledger.gate import gate_status
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.rules.environments import policy_for
from coderemote_pipeline.rules.partitions import RELEASE_DIMENSION, check_env, deployment_key
from coderemote_pipeline.rules.release_keys import Release, ReleaseKind, parse_release_key
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.sensors.approved_release import RUN_KEY_TAG
from coderemote_pipeline.usecases.deploy import QUIET, failure_text, open_instance

PAST = {APPROVE: "approved", REJECT: "rejected"}


def ensure_registered(instance: dg.DagsterInstance, settings: Settings, release: Release) -> None:
    """A decision needs the release partition; a version tag on the remote that no sensor saw yet is registered."""
    if instance.has_dynamic_partition(RELEASE_DIMENSION, release.key):
        return
    remote = AppSource(**settings.app_source_fields()).remote()
    if release.kind is not ReleaseKind.COMMIT and f"refs/tags/{release.key}" in remote.ls_remote():
        instance.add_dynamic_partitions(RELEASE_DIMENSION, [release.key])
        return
    raise ApprovalError(
        f"release {release.key!r} is not registered in this Dagster instance and is not a tag on the app remote "
        f"{remote.url!r}: push the tag first (version_tag_sensor registers it), or check the name with "
        "`coderemote-pipeline approvals`"
    )


def record_decision(
    settings: Settings, instance: dg.DagsterInstance, env: str, release: Release, *, by: str, decision: str, reason: str
) -> Decision:
    """Run approval_job for ENV|RELEASE in this instance; returns the decision as recorded."""
    from coderemote_pipeline.definitions import build_defs

    refusal = decision_refusal(policy_for(check_env(env)), release)
    if refusal:
        raise ApprovalError(refusal)
    if not by.strip():
        raise ApprovalError("say who decides: --by NAME must not be empty")
    ensure_registered(instance, settings, release)
    config = {"by": by, "decision": decision, "reason": reason}
    result = (
        build_defs(settings)
        .resolve_job_def("approval_job")
        .execute_in_process(
            run_config={**QUIET, "ops": {APPROVAL_ASSET: {"config": config}}},
            instance=instance,
            partition_key=str(deployment_key(env, release.key)),
            tags={"coderemote/decided_by": by},
            raise_on_error=False,
        )
    )
    if not result.success:
        errors = [e.step_failure_data.error for e in result.get_step_failure_events()]
        raise ApprovalError("; ".join(failure_text(e) for e in errors) or "the approval run failed")
    recorded = latest_decision(instance, env, release.key)
    assert recorded is not None
    return recorded


def _decide(args: argparse.Namespace, decision: str) -> int:
    from coderemote_pipeline.cli.main import _settings

    settings = _settings(args)
    release = parse_release_key(args.release)
    instance = open_instance(settings)
    recorded = record_decision(
        settings, instance, args.env, release, by=args.by, decision=decision, reason=args.reason or ""
    )
    partition = f"{recorded.env}|{recorded.release}"
    what = f"{PAST[recorded.decision]} {partition} (commit {recorded.commit[:12]}) by {recorded.by}"
    print(f"{what}, recorded in {APPROVAL_ASSET}")
    if decision != APPROVE:
        return 0
    if recorded.hold_id is None:
        print(f"no sensor was holding it; deploy it with `coderemote-pipeline deploy {args.env} {release.key}`")
        return 0
    run_key = held_run_key(recorded.env, recorded.release, recorded.hold_id)
    launched = instance.get_run_records(dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1)
    if launched:
        print(f"its held deploy was already launched (run {launched[0].dagster_run.run_id}): nothing more to do")
    else:
        print(f"approved_release_sensor launches the held deploy of {partition} on its next tick")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, APPROVE)


def cmd_reject(args: argparse.Namespace) -> int:
    return _decide(args, REJECT)


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def cmd_approvals(args: argparse.Namespace) -> int:
    from coderemote_pipeline.cli.main import _settings

    instance = open_instance(_settings(args))
    board = approval_board(instance)
    if args.pending:
        board = [entry for entry in board if isinstance(entry, Hold)]
    if not board:
        print("nothing waits for approval" if args.pending else "no approvals recorded yet")
        return 0
    print(f"{'env':<8} {'release':<22} {'commit':<12}  {'status':<9} detail")
    for entry in board:
        if isinstance(entry, Hold):
            status = "pending"
            detail = (
                f"held since {_when(entry.timestamp)} ({entry.trigger}): {approve_command(entry.env, entry.release)}"
            )
        else:
            status = PAST.get(entry.decision, entry.decision)
            detail = f"by {entry.by} at {_when(entry.timestamp)}" + (f": {entry.reason}" if entry.reason else "")
        print(f"{entry.env:<8} {entry.release:<22} {entry.commit[:12]:<12}  {status:<9} {detail}")
        if isinstance(entry, Hold) and (gate := gate_status(instance, policy_for(entry.env), entry.commit)):
            print(f"{'':<46} promotion gate: {gate}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    for name, func, verb in (("approve", cmd_approve, "approve"), ("reject", cmd_reject, "reject")):
        cmd = sub.add_parser(name, help=f"{verb} deploying RELEASE to ENV (an env whose policy asks for approval)")
        cmd.add_argument("env")
        cmd.add_argument("release", help="release key, e.g. v1.2.3")
        cmd.add_argument("--by", required=True, help="who decides (recorded with the decision)")
        cmd.add_argument("--reason", default="", help="why (shown with the decision)")
        cmd.add_argument("--remote", help="app git remote URL (default: CODEREMOTE_APP_REMOTE or the demo's)")
        cmd.set_defaults(func=func)
    listing = sub.add_parser("approvals", help="releases waiting for approval, and the latest decisions")
    listing.add_argument("--pending", action="store_true", help="only what waits for a decision")
    listing.set_defaults(func=cmd_approvals)

"""`status [ENV]`: what each environment serves, beside what the ledger recorded as live, and the fix where they
differ. Exit 3 when an environment is not on its recorded release as a whole (drift, a release the pipeline left
there unverified, or a deploy mid-way), 2 when a typo in the environment policy would stop the next deploy."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from coderemote_pipeline.rules.env_names import ENV_HELP


def when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _policy_problem(settings) -> str | None:
    """A typo in infra/environments.yaml (or, for the aws target, stack files in two regions) stops every deploy and
    sensor tick: said here, before the next one fails."""
    from coderemote_pipeline.rules.environments import PolicyError, load_policies
    from coderemote_pipeline.rules.settings import SettingsError, aws_region

    try:
        load_policies(settings.infra_dir)
        if settings.target == "aws":
            aws_region(settings)
    except (PolicyError, SettingsError) as exc:
        return f"{str(exc).strip()} (every deploy, promote and sensor tick stops until it is fixed)"
    return None


def _print(found) -> None:
    """One environment: a headline of what answers, then why it differs from the record, and the fix."""
    live, state, left = found.recorded, found.state, found.unverified
    api = "API ok" if state.api and state.api.ok else "API DOWN" if state.api_down else "API ?"
    # A release other than the recorded one is named beside its version: the headline never mixes two unsaid.
    other = f" ({state.release})" if left is None and state.release and state.release != live.release else ""
    serving = f"version {state.version}{other}  image {state.serving.digest[:19]}  site {state.frontend_release}  {api}"
    if left is not None:
        print(f"{found.env:<8} {state.release:<16} since {when(left.started)}  run {left.run_id[:8]}  {serving}  "
              f"{'IN PROGRESS' if left.in_progress else 'UNVERIFIED'}")  # fmt: skip
        print(f"         {_left_by(found.env, state.release, left, live.release)}")
    else:
        print(f"{found.env:<8} {live.release:<16} since {when(live.since)}  run {live.run_id[:8]}  {serving}  "
              f"{'DRIFT' if found.problems else 'ok'}")  # fmt: skip
        print(f"         {live.reason}")
    for problem in found.unexplained:
        print(f"         drift: {problem}")
    if left is not None and left.in_progress:
        return  # its checks are still to come: no fix for what may be about to pass
    if left is not None and left.rollback:
        print(f"         fix: `coderemote-pipeline retry {left.run_id[:8]}` finishes the rollback; or deploy the "
              "release you want")  # fmt: skip
    elif left is not None or state.release != live.release or state.frontend_release != live.frontend_release:
        print(f"         fix: `coderemote-pipeline rollback {found.env} --to {live.release}` puts {live.release} "
              "back whole; or deploy the release you want")  # fmt: skip


def _left_by(env: str, release: str, left, recorded: str) -> str:
    """Which run put `release` in front of users without its checks passing, and where that leaves the record."""
    what = f"{'rollback to' if left.rollback else 'deploy of'} {release}"
    if left.in_progress:
        return f"{what} in progress (run {left.run_id[:8]}): {env} serves it, its checks still to come"
    said = f"{what} ({left.outcome}{': ' + left.failure if left.failure else ''}) left {env} serving it whole"
    if left.rollback:  # a release that passed here before: it is this time's checks that did not
        return f"{said}, without its checks passing this time; the recorded live release is still {recorded}"
    return f"{said}, never verified there; the last release that passed is {recorded}"


def cmd_status(args: argparse.Namespace, settings_from) -> int:
    from coderemote_pipeline.ledger.instance import open_instance, queue_note
    from coderemote_pipeline.usecases.status import status

    settings = settings_from(args)
    drifted, instance = False, open_instance(settings.state_dir)
    for found in status(settings, instance, args.env):
        if found.recorded is not None and found.state is None:
            drifted = True
            print(f"{found.env:<8} {found.recorded.release:<16} MISSING: {found.problems[0]}")
            continue
        if found.recorded is None or found.state is None:
            print(f"{found.env:<8} nothing deployed")
            continue
        drifted |= bool(found.problems)
        _print(found)
    if note := queue_note(instance):
        print(note)
    if broken := _policy_problem(settings):
        print(f"error: {broken}", file=sys.stderr)
        return 2
    return 3 if drifted else 0


def add_parser(sub) -> None:
    status = sub.add_parser("status", help="what is live per environment, checked against what answers (drift)")
    status.add_argument("env", nargs="?", help=f"{ENV_HELP}; default: every one")
    status.set_defaults(func=cmd_status)

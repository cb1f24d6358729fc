"""`deploy`, `promote`, `rollback`, `retry`, `status` and `history`: shipping, going back, and what is live."""

from __future__ import annotations

import argparse
import contextlib
import os

from coderemote_pipeline.cli import status_command
from coderemote_pipeline.cli.outlive import outlive_the_terminal
from coderemote_pipeline.cli.status_command import when
from coderemote_pipeline.rules.env_names import ENV_HELP, check_env
from coderemote_pipeline.rules.errors import has_controls

EXECUTOR_HELP = (
    "auto (default): redeploy_job, one process, the frontend's build and checks beside the image build, the "
    "fastest on every app measured; serial: the same process, one branch after the other; parallel: deploy_job, a "
    "process per step"
)


# Recorded on runs and approvals and listed one per line: a name, a sentence, not a document.
MAX_PERSON = 128  # "Ada Lovelace <ada.lovelace@analytical-engines.example.org>" fits
MAX_REASON = 500


def person(text: str) -> str:
    """A `--by` value: who, without the spaces around it; empty is nobody, refused rather than recorded."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} names nobody: give who you are, or leave --by out for $USER")
    if has_controls(text.strip()):
        raise argparse.ArgumentTypeError("has a control character (a newline, an escape): give a plain name")
    if len(text.strip()) > MAX_PERSON:
        raise argparse.ArgumentTypeError(f"is {len(text.strip())} characters: give a name of at most {MAX_PERSON}")
    return text.strip()


def one_line(text: str) -> str:
    """A `--reason`: one line of text, as it is listed."""
    if has_controls(text):
        raise argparse.ArgumentTypeError("has a control character (a newline, an escape): write it on one line")
    if len(text) > MAX_REASON:
        raise argparse.ArgumentTypeError(f"is {len(text)} characters: say it in at most {MAX_REASON} (it is listed "
                                         "on one line)")  # fmt: skip
    return text


def day_count(text: str) -> float:
    """A `--days` value: float()'s forms (the window's check in history.py says which are too big or small), except
    the digit separators it also takes: `1_0` would be 10 days, unsaid."""
    if "_" not in text:
        with contextlib.suppress(ValueError):
            return float(text)
    raise argparse.ArgumentTypeError(f"{_shown(text)} is not a number of days: write it in digits (e.g. --days 30)")


def default_person() -> str:
    """$USER, for `--by` left out: a plain name only (argparse checks a default as if it were typed, and blaming
    `--by` for a $USER nobody typed would mislead)."""
    user = os.environ.get("USER", "").strip()
    return user if user and not has_controls(user) and len(user) <= MAX_PERSON else "unknown"


def preflight(settings):
    """What a deploy checks before its run exists, for every command that makes a run: a stack part that is down
    would fail that run at its first step, a failed change in the ledger's figures that nobody made."""

    def check() -> None:
        if settings.target == "local":
            from coderemote_pipeline.local_stack import check_parts, load_stack_info

            check_parts(load_stack_info(settings.state_dir))

    return check


def _shown(text: str) -> str:
    """An argument echoed before it is checked: as typed, unless control characters or its length would garble the
    terminal (the check that follows refuses it)."""
    return repr(text[:80]) if has_controls(text) or len(text) > 80 else text


def _override(args: argparse.Namespace):
    from coderemote_pipeline.usecases.deploy import DeployRefused, Override

    with_ = "--force or --skip-checks" if hasattr(args, "skip_checks") else "--force"
    overriding = args.force or getattr(args, "skip_checks", False)
    if args.reason and not overriding:
        raise DeployRefused(f"--reason goes with {with_} (the reason for overriding)")
    if args.by is not None and not overriding:
        # Only an override records who made it: a --by of a plain deploy would be dropped without a word.
        raise DeployRefused(f"--by goes with {with_} (who overrides, recorded with the reason): add one, or leave "
                            "--by out")  # fmt: skip
    return Override(reason=args.reason or "", by=args.by or default_person()) if args.force else None


def _skip_checks(args: argparse.Namespace):
    from coderemote_pipeline.usecases.deploy import SkipChecks

    return SkipChecks(reason=args.reason or "", by=args.by or default_person()) if args.skip_checks else None


def _finish(outcome) -> int:
    from coderemote_pipeline.cli.summary import render

    print(render(outcome))
    return 0 if outcome.success else 130 if outcome.interrupted else 1


def cmd_deploy(args: argparse.Namespace, settings_from) -> int:
    outlive_the_terminal()
    check_env(args.env)  # a mistyped env, --remote or variable is one line, not a progress line and then the error
    settings = settings_from(args)
    if settings.missing_demo:
        from coderemote_pipeline.rules.settings import SettingsError

        raise SettingsError("no app remote is set, and the demo app it defaults to is not made: give --remote URL or "
                            "set CODEREMOTE_APP_REMOTE, or run ./scripts/demo.sh for the demo")  # fmt: skip
    # Said before the second of imports and git below, so the user sees at once that it started.
    print(f"deploying {_shown(args.ref)} to {args.env}: resolving the release on the remote…", flush=True)
    from coderemote_pipeline.usecases.deploy import run_deployment

    return _finish(run_deployment(args.env, args.ref, settings=settings, preflight=preflight(settings),
                                  executor=args.executor, override=_override(args),
                                  skip_checks=_skip_checks(args)))  # fmt: skip


def cmd_promote(args: argparse.Namespace, settings_from) -> int:
    outlive_the_terminal()
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.usecases.promote import promote

    settings = settings_from(args)
    return _finish(promote(args.from_env, args.to_env, settings=settings, instance=open_instance(settings.state_dir),
                           override=_override(args), preflight=preflight(settings)))  # fmt: skip


def cmd_rollback(args: argparse.Namespace, settings_from) -> int:
    outlive_the_terminal()
    check_env(args.env)
    print(f"rollback of {args.env}: finding the release to go back to…", flush=True)  # before Dagster loads
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.usecases.rollback import AlreadyLive, rollback

    settings = settings_from(args)
    try:
        outcome = rollback(args.env, args.to, settings=settings, instance=open_instance(settings.state_dir),
                           preflight=preflight(settings))  # fmt: skip
    except AlreadyLive as exc:
        # As `deploy` of the live release succeeds changing nothing: the env is where it was asked to be.
        print(exc)
        return 0
    return _finish(outcome)


def cmd_retry(args: argparse.Namespace, settings_from) -> int:
    outlive_the_terminal()
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.usecases.retry import retry_from_failure

    settings = settings_from(args)
    return _finish(retry_from_failure(args.run_id, settings=settings, instance=open_instance(settings.state_dir),
                                      mark_failed=args.mark_failed, preflight=preflight(settings)))  # fmt: skip


def cmd_history(args: argparse.Namespace, settings_from) -> int:
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.usecases.history import history

    settings = settings_from(args)
    deploys, figures = history(open_instance(settings.state_dir), args.env, args.days)
    print(f"{'started':<20} {'release':<16} {'commit':<12} {'trigger':<14} {'outcome':<12} {'seconds':>8}  "
          f"{'run':<8}  note")  # the run id is what `retry` takes
    for d in deploys:
        seconds = f"{d.seconds:.1f}" if d.seconds is not None else "-"
        note = "; ".join(n for n in (f"approved by {d.approved_by}" if d.approved_by else "",
                                     f"override: {d.override}" if d.override else "",
                                     f"checks skipped: {d.skipped_checks}" if d.skipped_checks else "",
                                     d.failure) if n)  # fmt: skip
        print(f"{when(d.started):<20} {d.release:<16} {d.commit[:12]:<12} {d.how:<14} {d.outcome:<12} "
              f"{seconds:>8}  {d.run_id[:8]:<8}  {note}")  # fmt: skip
    # A figure with nothing to measure is n/a, not a zero that reads as measured.
    counted, failed = figures["deploys"], figures["failed_deploys"]
    lead = f"{figures['lead_time_s']:.0f}s (median)" if figures.get("lead_times_known", counted - failed) else "n/a"
    recovery = f"{figures['recovery_time_s']:.0f}s (mean)" if failed else "n/a (no failures)"
    fail_rate, rework = (f"{figures[k]:.0%}" if counted else "n/a" for k in ("change_failure_rate", "rework_rate"))
    print(
        f"\nlast {args.days:g} days in {args.env}: {figures['deploy_frequency_per_day']} deploys/day, "
        f"lead time {lead}, change fail rate {fail_rate}, recovery time {recovery}, rework rate {rework}"
        + (f"; {figures['stopped_before_release']:.0f} stopped before release (not counted: {args.env} kept its "
           "release)" if figures["stopped_before_release"] else "")
    )  # fmt: skip
    return 0


def _force_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--force", action="store_true", help="deploy past the promotion gate (needs --reason)")
    cmd.add_argument("--reason", type=one_line, help="why the gate is overridden; recorded on the run and in history")
    cmd.add_argument("--by", type=person, help="who overrides, with --force or --skip-checks (default: $USER)")


def add_parsers(sub) -> None:
    deploy = sub.add_parser("deploy", help="deploy REF (branch, tag or commit of the app remote) to ENV")
    deploy.add_argument("env", help=ENV_HELP)
    deploy.add_argument("ref", help="a branch, version tag (v1.2.3) or commit of the app remote")
    deploy.add_argument("--remote", help="app git remote URL (default: CODEREMOTE_APP_REMOTE or the demo's)")
    deploy.add_argument("--app-config", help="YAML file with the app's layout: where its backend, frontend and "
                        "checks are (README, Configuration)")
    deploy.add_argument("--executor", choices=["auto", "parallel", "serial"], default="auto", help=EXECUTOR_HELP)
    deploy.add_argument("--skip-checks", action="store_true", help="deploy without the app's checks (needs --reason)")
    _force_options(deploy)
    deploy.set_defaults(func=cmd_deploy)
    promote = sub.add_parser("promote", help="deploy to TO_ENV exactly what is live in FROM_ENV (same bytes)")
    promote.add_argument("from_env", help="the environment whose live release goes")
    promote.add_argument("to_env", help="the environment it goes to")
    _force_options(promote)
    promote.set_defaults(func=cmd_promote)
    rollback = sub.add_parser("rollback", help="put ENV back on a release it ran before, rebuilding nothing")
    rollback.add_argument("env", help=ENV_HELP)
    rollback.add_argument("--to", help="release key (default: the newest earlier release that passed smoke in ENV)")
    rollback.set_defaults(func=cmd_rollback)
    retry = sub.add_parser("retry", help="re-execute a failed deploy or rollback run from its failure")
    retry.add_argument("run_id", help="the failed run's id (or its first characters), or an environment: its last run")
    retry.add_argument("--mark-failed", action="store_true", help="the run's process is gone: mark it failed first")
    retry.set_defaults(func=cmd_retry)
    status_command.add_parser(sub)
    history = sub.add_parser("history", help="deploys and rollbacks of ENV, and its five delivery figures")
    history.add_argument("env", help=ENV_HELP)
    history.add_argument("--days", type=day_count, default=30.0, help="the window, in days (default: 30)")
    history.set_defaults(func=cmd_history)

"""`rollback`, `status` and `history`: what is live, what was, and going back."""

import argparse
import datetime as dt
import os
import time

from coderemote_pipeline.actions.git_remote import GitError
from coderemote_pipeline.cli.summary import render
from coderemote_pipeline.ledger.history import delivery_figures, deploys, record_figures
from coderemote_pipeline.ledger.live import (
    drift,
    env_outputs,
    passed_releases,
    recorded_live,
    target_state,
)
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.targets import resources_for
from coderemote_pipeline.rules.partitions import ENVIRONMENTS, RELEASE_DIMENSION, check_env
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.deploy import (
    DeployRefused,
    Override,
    check_deployable,
    choose_job,
    launch,
    open_instance,
)

ROLLBACK_STAGES = ["api_image", "lambda_version", "frontend_bundle", "cloudfront_invalidation", "smoke_result"]


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def rollback_target(instance, env: str, to: str | None) -> tuple[str, str]:
    """The release to go back to: `to`, or the newest release that passed smoke in env and is not live now."""
    passed = passed_releases(instance, env)
    if to:
        match = next((p for p in passed if p.release == to), None)
        if match is None:
            raise DeployRefused(
                f"{to} never passed smoke in {env}: nothing verified to roll back to. "
                f"Deploy it instead: coderemote-pipeline deploy {env} {to}"
            )
        return match.release, match.commit
    live = (recorded_live(instance, env) or {}).get("release")
    for p in passed:
        if p.release != live:
            return p.release, p.commit
    raise DeployRefused(f"{env} has no earlier release that passed smoke (live: {live or 'nothing'})")


def cmd_rollback(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    env = check_env(args.env)
    instance = open_instance(settings)
    release, commit = rollback_target(instance, env, args.to)
    print(f"rolling {env} back to {release} (commit {commit[:12]}): reusing its image, version and site snapshot")
    outcome = launch(env, release, commit, settings=settings, instance=instance, job_name="redeploy_job",
                     trigger="rollback", stages=ROLLBACK_STAGES)  # fmt: skip
    print(render(outcome))
    return 0 if outcome.success else 1


def cmd_promote(args: argparse.Namespace) -> int:
    """Deploy to TO exactly what is live in FROM: the same release, so the same image digest and bundle bytes."""
    settings = Settings.from_env()
    source, target = check_env(args.from_env), check_env(args.to_env)
    if source == target:
        raise DeployRefused(f"promote needs two different environments, got {source} twice")
    instance = open_instance(settings)
    live = recorded_live(instance, source)
    if live is None:
        raise DeployRefused(f"nothing is live in {source}: deploy it first (coderemote-pipeline deploy {source} REF)")
    release, commit = str(live["release"]), str(live["commit"])
    override = Override(reason=args.reason or "", by=args.by) if args.force else None
    extra_tags = check_deployable(instance, target, release, commit, override)
    instance.add_dynamic_partitions(RELEASE_DIMENSION, [release])
    print(f"promoting {release} (commit {commit[:12]}) from {source} to {target}")
    outcome = launch(
        target,
        release,
        commit,
        settings=settings,
        instance=instance,
        job_name=choose_job(instance, commit),
        trigger=f"promote:{source}",
        extra_tags=extra_tags,
    )
    print(render(outcome))
    return 0 if outcome.success else 1


def cmd_status(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    instance = open_instance(settings)
    resources = resources_for(settings)
    aws, runtime = resources["aws"], resources["api_runtime"]
    drifted = False
    for env in [check_env(args.env)] if args.env else ENVIRONMENTS:
        recorded, outputs = recorded_live(instance, env), env_outputs(instance, env)
        if recorded is None or outputs is None:
            print(f"{env:<8} nothing deployed")
            continue
        target = target_state(aws.client("lambda"), aws.client("s3"), outputs, runtime.current(env))
        problems = drift(recorded, target)
        drifted |= bool(problems)
        print(
            f"{env:<8} {recorded['release']:<16} since {_when(recorded.get('since'))}  run {recorded['run_id'][:8]}  "
            f"version {target.version}  image {target.digest[:19]}  site {target.frontend_release}  "
            f"{'DRIFT' if problems else 'ok'}"
        )
        print(f"         {recorded.get('reason', '')}")
        for problem in problems:
            print(f"         drift: {problem}")
    return 3 if drifted else 0


def cmd_history(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    env = check_env(args.env)
    instance = open_instance(settings)
    window_s = args.days * 86400.0
    history = deploys(instance, env, since=time.time() - window_s)
    remote = AppSource(**settings.app_source_fields()).remote()

    def commit_time(commit: str) -> float | None:
        try:
            return dt.datetime.fromisoformat(remote.describe_commit(commit)["date"]).timestamp()
        except GitError:
            return None

    print(f"{'started':<20} {'release':<16} {'commit':<12} {'trigger':<12} {'outcome':<12} {'seconds':>8}")
    for d in history:
        seconds = f"{d.seconds:.1f}" if d.seconds is not None else "-"
        print(
            f"{_when(d.started):<20} {d.release:<16} {d.commit[:12]:<12} {d.trigger:<12} {d.outcome:<12} {seconds:>8}"
        )
    figures = delivery_figures(history, window_s, commit_time)
    record_figures(instance, env, figures)
    print(
        f"\nlast {args.days} days in {env}: {figures['deploy_frequency_per_day']} deploys/day, "
        f"lead time {figures['lead_time_s']:.0f}s (median), change failure rate {figures['change_failure_rate']:.0%}, "
        f"time to restore {figures['time_to_restore_s']:.0f}s (mean)"
    )
    return 0


def add_parsers(sub) -> None:
    rollback = sub.add_parser("rollback", help="put ENV back on a release it ran before, rebuilding nothing")
    rollback.add_argument("env")
    rollback.add_argument("--to", help="release key (default: the newest release that passed smoke in ENV)")
    rollback.set_defaults(func=cmd_rollback)
    promote = sub.add_parser("promote", help="deploy to TO_ENV exactly what is live in FROM_ENV (same bytes)")
    promote.add_argument("from_env")
    promote.add_argument("to_env")
    promote.add_argument("--force", action="store_true", help="past the promotion gate (needs --reason)")
    promote.add_argument("--reason")
    promote.add_argument("--by", default=os.environ.get("USER", "unknown"))
    promote.set_defaults(func=cmd_promote)
    status = sub.add_parser("status", help="what is live per environment, checked against the target (drift)")
    status.add_argument("env", nargs="?")
    status.set_defaults(func=cmd_status)
    history = sub.add_parser("history", help="deploys and rollbacks of ENV, and the four delivery figures")
    history.add_argument("env")
    history.add_argument("--days", type=float, default=30.0)
    history.set_defaults(func=cmd_history)

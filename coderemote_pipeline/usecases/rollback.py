"""Going back: put an environment on a release that passed smoke there before, rebuilding and publishing nothing.

The release is deployed again through the stages (its image reused by digest, its version already published, its
site restored from the snapshot), with the remote and layout it was built with, as its live record keeps them.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.ledger.records import LiveRecord
from coderemote_pipeline.ledger.releases import passed, rollback_candidates
from coderemote_pipeline.resources.aws import warm_clients
from coderemote_pipeline.resources.targets import resources_for
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.app_layout import AppLayout
from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.rules.partitions import check_env
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.deploy import DeployRefused
from coderemote_pipeline.usecases.launch import DeployOutcome, launch


def rollback_target(instance: dg.DagsterInstance, env: str, to: str | None) -> tuple[str, str, dict[str, str]]:
    """(release, commit, how it was built): `to`, or the newest release that was live in env and is not now."""
    if to:
        proof = passed(instance, env, to)
        if proof is None:
            raise DeployRefused(
                f"{to} never passed smoke in {env}: nothing verified to roll back to. "
                f"Deploy it instead: coderemote-pipeline deploy {env} {to}"
            )
        run = instance.get_run_by_id(proof.run_id) if proof.run_id else None
        return to, proof.commit, dict(run.tags) if run else {}
    live = recorded_live(instance, env)
    record = next(rollback_candidates(instance, env), None)
    if record is None:
        now = live.release if live else "nothing"
        raise DeployRefused(f"{env} has no earlier release that passed smoke (live: {now})")
    return record.release, record.commit, built_with(record)


def built_with(record: LiveRecord) -> dict[str, str]:
    return {names.APP_REMOTE_TAG: record.app_remote, names.APP_LAYOUT_TAG: record.app_layout}


def settings_of(settings: Settings, built: dict[str, str]) -> Settings:
    """The caller's settings with the remote and layout the release was built with, where they were recorded."""
    remote = built.get(names.APP_REMOTE_TAG)
    if not remote:
        return settings
    recorded = built.get(names.APP_LAYOUT_TAG)
    return settings.for_app(remote, AppLayout.from_json(recorded) if recorded else settings.app_layout)


def rollback(
    env: str, to: str | None, *, settings: Settings, instance: dg.DagsterInstance, echo: Callable[[str], None] = print
) -> DeployOutcome:
    check_env(env)
    # The stages' clients load their service models beside the ledger queries and the run's set-up, as a deploy's
    # do: in the steps they cost 0.2-0.8 s each, several times the rollback's own work.
    warm_clients(resources_for(settings)["aws"])
    release, commit, built = rollback_target(instance, env, to)
    deploy = Deployment.of(env, release, load_policies(settings.infra_dir), commit)
    echo(f"rolling {env} back to {release} (commit {commit[:12]}): reusing its image, version and site snapshot")
    return launch(deploy, settings=settings_of(settings, built), instance=instance, job_name=names.ROLLBACK_JOB,
                  trigger=names.TRIGGER_ROLLBACK, echo=echo)  # fmt: skip

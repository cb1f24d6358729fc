"""Promotion: deploy to one environment exactly what is live in another, the same release, so the same image digest
and bundle bytes, built the same way (the source's recorded remote and layout)."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from coderemote_pipeline.ledger.job_choice import choose_job
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.ledger.releases import register_release
from coderemote_pipeline.resources.aws import warm_clients
from coderemote_pipeline.resources.targets import resources_for
from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.env_names import check_env
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.deploy import (
    DeployRefused,
    Override,
    app_source,
    check_deployable,
    check_signed_and_open,
)
from coderemote_pipeline.usecases.launch import DeployOutcome, launch
from coderemote_pipeline.usecases.rollback import built_with, settings_of


def promote(
    source: str,
    target: str,
    *,
    settings: Settings,
    instance: dg.DagsterInstance,
    override: Override | None = None,
    echo: Callable[[str], None] = print,
    preflight: Callable[[], None] | None = None,
) -> DeployOutcome:
    """`preflight`: raises, before any run exists, when the target cannot take one (as a deploy's does)."""
    source, target = check_env(source), check_env(target)
    if source == target:
        raise DeployRefused(f"promote needs two different environments, got {source} twice")
    warm_clients(resources_for(settings)["aws"])  # beside the ledger queries and the run's set-up, as in deploy
    live = recorded_live(instance, source)
    if live is None:
        raise DeployRefused(f"nothing is live in {source}: deploy it first (coderemote-pipeline deploy {source} REF)")
    deploy = Deployment.of(target, live.release, load_policies(settings.infra_dir), live.commit)
    built = settings_of(settings, built_with(live))
    check_signed_and_open(app_source(built), deploy, override)  # a deny window holds a promotion as a deploy
    extra_tags = check_deployable(instance, deploy, override)
    if preflight is not None:
        preflight()
    register_release(instance, live.release)
    echo(f"promoting {live.release} (commit {live.commit[:12]}) from {source} to {target}")
    return launch(deploy, settings=built, instance=instance,
                  job_name=choose_job(), trigger=f"promote:{source}", echo=echo,
                  extra_tags=extra_tags)  # fmt: skip

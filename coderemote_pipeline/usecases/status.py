"""What is live in each environment, checked against the target: the records, the alias and site as the target
reports them, and what really answers (the API's health, the site's HTML). Also: bringing the API back."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
from botocore.exceptions import ClientError

from coderemote_pipeline.actions.serving import TargetMissing
from coderemote_pipeline.actions.switch import switch_api
from coderemote_pipeline.actions.target_state import TargetState, drift, read_target
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.ledger.records import LiveRecord
from coderemote_pipeline.resources.targets import resources_for
from coderemote_pipeline.rules.app_layout import AppLayout
from coderemote_pipeline.rules.partitions import ENVIRONMENTS, check_env
from coderemote_pipeline.rules.settings import Settings


@dataclass(frozen=True)
class EnvStatus:
    env: str
    recorded: LiveRecord | None
    state: TargetState | None
    problems: list[str]


def _target(settings: Settings, resources: dict, env: str, live: LiveRecord):
    layout = AppLayout.from_json(live.app_layout) if live.app_layout else settings.app_layout
    return resources["targets"].target(env, live.stack_outputs, layout)


def status(settings: Settings, instance: dg.DagsterInstance, env: str | None = None) -> list[EnvStatus]:
    resources = resources_for(settings)
    found = []
    for name in [check_env(env)] if env else list(ENVIRONMENTS):
        live = recorded_live(instance, name)
        if live is None or not live.stack_outputs:
            found.append(EnvStatus(name, None, None, []))
            continue
        try:
            state = read_target(_target(settings, resources, name, live))
        except TargetMissing as exc:
            found.append(EnvStatus(name, live, None, [str(exc)]))
            continue
        found.append(EnvStatus(name, live, state, drift(live, state)))
    return found


def revive_apis(settings: Settings, instance: dg.DagsterInstance) -> list[str]:
    """Start the API of what each environment serves where nothing answers (after the engine restarted)."""
    resources = resources_for(settings)
    revived = []
    for env in ENVIRONMENTS:
        live = recorded_live(instance, env)
        if live is None or not live.stack_outputs:
            continue
        target = _target(settings, resources, env, live)
        if target.runtime.current(env) is not None:
            continue
        try:
            activation = switch_api(target, str(live.version))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            revived.append(f"{env}: NOT revived, {live.release} (version {live.version}) is not in the target any "
                           f"more: deploy it again (coderemote-pipeline deploy {env} {live.release})")  # fmt: skip
            continue
        revived.append(f"{env}: {live.release} (version {live.version}) {activation.detail}")
    return revived

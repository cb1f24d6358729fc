"""What is live in each environment, checked against the target: the records, the alias and site as the target
reports them, and what really answers (the API's health, the site's HTML). Also: bringing the API back.

The records come first and alone: an installation with nothing deployed answers from the ledger without loading
the target's clients (boto3, the Docker SDK). The environments' targets are then asked side by side, so a target
that does not answer costs its probe's budget once, not once per environment.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coderemote_pipeline.ledger.history import deploys, switched_in
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.ledger.records import LiveRecord
from coderemote_pipeline.rules.app_layout import AppLayout
from coderemote_pipeline.rules.delivery import Deploy
from coderemote_pipeline.rules.env_names import ENVIRONMENTS, check_env
from coderemote_pipeline.rules.settings import Settings

if TYPE_CHECKING:
    import dagster as dg

    from coderemote_pipeline.actions.serving import EnvTarget
    from coderemote_pipeline.actions.target_state import TargetState


@dataclass(frozen=True)
class EnvStatus:
    env: str
    recorded: LiveRecord | None
    state: TargetState | None
    problems: list[str]
    # The pipeline's own run that left the env serving, whole, a release that never passed here (a failed smoke or
    # a stop after its switch where auto_rollback is off): the difference is explained, not drift from outside.
    unverified: Deploy | None = None

    @property
    def unexplained(self) -> list[str]:
        """The problems `unverified` does not explain (the alias and site on its release, not the recorded one)."""
        if self.unverified is None:
            return self.problems
        return [p for p in self.problems if not p.startswith(("alias points to version", "site serves "))]


def _target(settings: Settings, resources: dict, env: str, live: LiveRecord):
    layout = AppLayout.from_json(live.app_layout) if live.app_layout else settings.app_layout
    return resources["targets"].target(env, live.stack_outputs, layout)


def _deployed(instance: dg.DagsterInstance, envs: list[str]) -> dict[str, LiveRecord]:
    """The live record of each env that has one with its stack's outputs (what there is to check)."""
    found = {env: recorded_live(instance, env) for env in envs}
    return {env: live for env, live in found.items() if live is not None and live.stack_outputs}


def _check(env: str, live: LiveRecord, target: EnvTarget) -> EnvStatus:
    from coderemote_pipeline.actions.serving import TargetMissing
    from coderemote_pipeline.actions.target_state import drift, read_target

    try:
        state = read_target(target)
    except TargetMissing as exc:
        return EnvStatus(env, live, None, [str(exc)])
    return EnvStatus(env, live, state, drift(live, state))


def _explained(instance: dg.DagsterInstance, found: EnvStatus) -> EnvStatus:
    """`found`, with the run that left its env serving another release than the record, whole, where one did."""
    from coderemote_pipeline.actions.target_state import drift, split_parts

    live, state = found.recorded, found.state
    if found.problems and live is not None and state is not None:
        fresh = recorded_live(instance, found.env)
        if fresh is not None and fresh.run_id != live.run_id:
            # A deploy went live between the record's read and the target's: judged against its record, not the old.
            live, found = fresh, dataclasses.replace(found, recorded=fresh, problems=drift(fresh, state))
    if not found.problems or live is None or state is None or state.release == live.release or split_parts(state):
        return found
    # That run changed the env after the record was written: only runs since then are read (a minute for clocks).
    newest = next((d for d in deploys(instance, found.env, since=live.since - 60) if d.release == state.release), None)
    if newest is None or newest.status == "SUCCESS":
        return found
    # One that ended is the cause only if its switch went through (not one that failed before it, a queued retry).
    if not newest.in_progress and not switched_in(instance, newest.run_id):
        return found
    return dataclasses.replace(found, unverified=newest)


def status(settings: Settings, instance: dg.DagsterInstance, env: str | None = None) -> list[EnvStatus]:
    envs = [check_env(env)] if env is not None else list(ENVIRONMENTS)  # `status ''` is a mistake, not all
    deployed = _deployed(instance, envs)
    if not deployed:
        return [EnvStatus(name, None, None, []) for name in envs]
    from coderemote_pipeline.resources.targets import resources_for

    resources = resources_for(settings)
    # Made here, in env order and one thread: the first env whose target cannot be reached names the error, and the
    # AWS clients (shared, cached) are created before any thread uses them.
    targets = {name: _target(settings, resources, name, live) for name, live in deployed.items()}
    with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="status") as pool:
        checks = {name: pool.submit(_check, name, deployed[name], target) for name, target in targets.items()}
        # In env order: an error (not a missing target) is raised for the first env it happened in, as one by one.
        found = [checks[name].result() if name in checks else EnvStatus(name, None, None, []) for name in envs]
    return [_explained(instance, each) for each in found]  # the ledger read here, in one thread


def revive_apis(settings: Settings, instance: dg.DagsterInstance) -> list[str]:
    """Start the API of what each environment serves where nothing answers (after the engine restarted)."""
    from coderemote_pipeline.actions.serving import TargetMissing
    from coderemote_pipeline.actions.switch import switch_api
    from coderemote_pipeline.actions.target_state import present
    from coderemote_pipeline.resources.targets import resources_for

    resources = resources_for(settings)
    revived = []
    for env, live in _deployed(instance, list(ENVIRONMENTS)).items():
        target = _target(settings, resources, env, live)
        if target.runtime.current(env) is not None:
            continue
        try:
            with present(target):
                activation = switch_api(target, str(live.version))
        except TargetMissing as exc:
            revived.append(f"{env}: NOT revived, {live.release} (version {live.version}): {exc}")
            continue
        revived.append(f"{env}: {live.release} (version {live.version}) {activation.detail}")
    return revived

"""Going back: put an environment on a release that passed smoke there before, rebuilding and publishing nothing.

The release is deployed again through the stages (its image reused by digest, its version already published, its
site restored from the snapshot), with the remote and layout it was built with, as its live record keeps them.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

import dagster as dg

from coderemote_pipeline.actions.serving import TargetMissing
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.ledger.records import LiveRecord
from coderemote_pipeline.ledger.releases import last_smoke_failed, passed, rollback_candidates
from coderemote_pipeline.resources.aws import warm_clients
from coderemote_pipeline.resources.targets import resources_for
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.app_layout import AppLayout
from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.env_names import check_env
from coderemote_pipeline.rules.environments import Accepts, EnvironmentPolicy, load_policies
from coderemote_pipeline.rules.errors import UserError
from coderemote_pipeline.rules.release_keys import Release, ReleaseKind, parse_release_key
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.deploy import DeployRefused
from coderemote_pipeline.usecases.launch import DeployOutcome, launch


class AlreadyLive(UserError):
    """`--to` names what the environment serves now: there is nothing to do, and nothing is wrong."""


def check_to(to: str | None) -> Release | None:
    """`--to` as a release key; None when it was not given. An empty one is a mistake, not "the default"."""
    if to is None:
        return None
    if not to.strip():
        raise DeployRefused("--to is empty: give the release key to go back to (v1.2.3 or main-3f9c2ab), or leave "
                            "--to out for the newest earlier release that passed smoke")  # fmt: skip
    return parse_release_key(to)


def _deploy_command(env: str, ref: str) -> str:
    return f"coderemote-pipeline deploy {shlex.quote(env)} {shlex.quote(ref)}"


def _ref(release: Release) -> str:
    """What `deploy` takes for `release`: a commit key is no ref of the remote; its commit is."""
    return release.commit_prefix if release.kind is ReleaseKind.COMMIT and release.commit_prefix else release.key


def _never_passed(env: str, release: Release, policy: EnvironmentPolicy, failed_in: str | None = None) -> str:
    """The refusal of a rollback to a release that never passed smoke in env (or whose latest smoke there, in run
    `failed_in`, failed), with a deploy env would take."""
    said = f"{release.key} never passed smoke in {env}: nothing verified to roll back to"
    if failed_in is not None:
        run = f" (run {failed_in[:8]})" if failed_in else ""
        said = f"{release.key}'s latest smoke in {env} failed{run}: not a verified release to roll back to"
    if refusal := policy.refusal(release):
        return f"{said}, and it cannot be deployed there either: {refusal}"
    return f"{said}. Deploy it instead: {_deploy_command(env, _ref(release))}"


def _nothing_earlier(env: str, live: LiveRecord | None, policy: EnvironmentPolicy, rolled_away: list[str]) -> str:
    # A placeholder where the env takes version tags only: `main` would be refused there.
    ref = "vMAJOR.MINOR.PATCH" if policy.accepts is Accepts.STABLE_TAGS else "main"
    said = f"{env} has no earlier release that passed smoke"
    if rolled_away:
        back = f"coderemote-pipeline rollback {env} --to {rolled_away[0]}"
        return (f"{said} and was not rolled back from (live: {live.release if live else 'nothing'}; rolled back "
                f"from: {', '.join(rolled_away)}). To go back to {rolled_away[0]} anyway: {back}; or deploy a fix "
                f"forward: {_deploy_command(env, ref)}")  # fmt: skip
    if live is None:
        return f"{said} (live: nothing): deploy one first: {_deploy_command(env, ref)}"
    return (f"{said} (live: {live.release}, the only one): nothing to roll back to. Deploy a fix forward instead: "
            f"{_deploy_command(env, ref)}")  # fmt: skip


def rollback_target(
    instance: dg.DagsterInstance, env: str, to: str | None, policy: EnvironmentPolicy | None = None
) -> tuple[str, str, dict[str, str]]:
    """(release, commit, how it was built): `to`, or the newest release that was live in env and is not now, passing
    by any a rollback took env away from or went past (rolling back twice never brings back what the first fled)."""
    wanted = check_to(to)
    live = recorded_live(instance, env)
    if wanted is not None:
        if live is not None and live.release == wanted.key:
            raise AlreadyLive(f"{wanted.key} is already live in {env}: nothing to roll back to")
        proof = passed(instance, env, wanted.key)
        if proof is None:
            failed_in = last_smoke_failed(instance, env, wanted.key)
            raise DeployRefused(_never_passed(env, wanted, policy or load_policies()[env], failed_in))
        run = instance.get_run_by_id(proof.run_id) if proof.run_id else None
        return wanted.key, proof.commit, dict(run.tags) if run else {}
    passed_by: list[str] = []
    for candidate in rollback_candidates(instance, env):
        if not candidate.rolled_away:
            return candidate.record.release, candidate.record.commit, built_with(candidate.record)
        passed_by.append(candidate.record.release)
    raise DeployRefused(_nothing_earlier(env, live, policy or load_policies()[env], passed_by))


def _recorded_target(settings: Settings, env: str, live: LiveRecord):
    from coderemote_pipeline.resources.targets import target_for

    layout = AppLayout.from_json(live.app_layout) if live.app_layout else None
    return target_for(resources_for(settings), layout)(env, live.stack_outputs)


def _provisions_nothing(missing: TargetMissing, env: str, release: str) -> DeployRefused:
    return DeployRefused(f"{missing.missing}. A rollback provisions nothing: deploy {release} instead, which "
                         f"provisions it again: {_deploy_command(env, _ref(parse_release_key(release)))}")  # fmt: skip


def check_provisioned(settings: Settings, instance: dg.DagsterInstance, env: str, release: str) -> None:
    """Refuse, before a run exists, a rollback of an env whose function is gone (rollback_job has no infra stage:
    its run would fail on the missing repository and bucket). One alias read; anything else is the run's to meet."""
    from coderemote_pipeline.actions.failure_report import UNREADABLE
    from coderemote_pipeline.actions.lambda_versions import alias_version
    from coderemote_pipeline.actions.target_state import present

    live = recorded_live(instance, env)
    if live is None or not live.stack_outputs:
        return
    target = _recorded_target(settings, env, live)
    try:
        with present(target):
            alias_version(target.lam, target.outputs)
    except TargetMissing as missing:
        raise _provisions_nothing(missing, env, release) from None
    except UNREADABLE:
        return  # not known gone: the preflight or the run names what does not answer, as before this check


def off_record(settings: Settings, instance: dg.DagsterInstance, env: str) -> list[str]:
    """How what `env` serves differs from its live record, read from the target (empty: it serves it whole, or it
    cannot be read now, and the record is all there is to go by: `status` says why). Refused where it is gone."""
    from coderemote_pipeline.actions.failure_report import UNREADABLE
    from coderemote_pipeline.actions.target_state import drift, read_target, split_parts

    live = recorded_live(instance, env)
    if live is None or not live.stack_outputs:
        return []
    try:
        state = read_target(_recorded_target(settings, env, live), probe=False)
    except TargetMissing as missing:
        raise _provisions_nothing(missing, env, live.release) from None
    except UNREADABLE:
        return []
    return split_parts(state) or drift(live, state)


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
    env: str,
    to: str | None,
    *,
    settings: Settings,
    instance: dg.DagsterInstance,
    echo: Callable[[str], None] = print,
    preflight: Callable[[], None] | None = None,
) -> DeployOutcome:
    """`preflight`: raises, before any run exists, when the target cannot take one (as a deploy's does)."""
    check_env(env)
    # The stages' clients load their service models beside the ledger queries and the run's set-up, as a deploy's
    # do: in the steps they cost 0.2-0.8 s each, several times the rollback's own work.
    warm_clients(resources_for(settings)["aws"])
    policies = load_policies(settings.infra_dir)
    try:
        release, commit, built = rollback_target(instance, env, to, policies[env])
    except AlreadyLive:
        # The repair a failure message prints (`rollback ENV --to <recorded>`): the record names it, the env does
        # not serve it whole, so it is put back through the stages like any other rollback.
        if not (off := off_record(settings, instance, env)):
            raise
        live = recorded_live(instance, env)
        release, commit, built = live.release, live.commit, built_with(live)
        echo(f"{env} does not serve its recorded release {release} whole ({'; '.join(off)}): putting it back")
    else:
        check_provisioned(settings, instance, env, release)
    if preflight is not None:
        preflight()
    deploy = Deployment.of(env, release, policies, commit)
    echo(f"rolling {env} back to {release} (commit {commit[:12]}): reusing its image, version and site snapshot")
    return launch(deploy, settings=settings_of(settings, built), instance=instance, job_name=names.ROLLBACK_JOB,
                  trigger=names.TRIGGER_ROLLBACK, echo=echo)  # fmt: skip

"""One deployment, from a REF of the app remote: resolve it, check what the environment's policy, approval and
promotion gate allow, register the release, choose the job, run the stages."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from threading import Thread

import dagster as dg

from coderemote_pipeline.actions.notify import announce
from coderemote_pipeline.actions.release_tags import off_main_refusal, signature_refusal
from coderemote_pipeline.ledger.approvals import PENDING, approval_reason, approve_command, hold_event
from coderemote_pipeline.ledger.gate import gate_refusal
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.job_choice import choose_job, executor_tags
from coderemote_pipeline.ledger.live import built_with_layout
from coderemote_pipeline.ledger.releases import register_release
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.aws import warm_clients
from coderemote_pipeline.resources.targets import resources_for
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules import notify_config as nc
from coderemote_pipeline.rules.app_layout import AppLayout
from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.env_names import check_env
from coderemote_pipeline.rules.environments import Accepts, EnvironmentPolicy, load_policies
from coderemote_pipeline.rules.errors import DeployRefused
from coderemote_pipeline.rules.release_keys import ReleaseKeyError
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.launch import DeployOutcome, launch


@dataclass(frozen=True)
class Override:
    """`--force --reason`: deploy past the promotion gate; who and why stay on the run, so in its history."""

    reason: str
    by: str

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise DeployRefused("--force needs --reason TEXT: say why the promotion gate is overridden")

    def tags(self) -> dict[str, str]:
        return {names.OVERRIDE_TAG: self.reason.strip(), names.OVERRIDE_BY_TAG: self.by}


@dataclass(frozen=True)
class SkipChecks:
    """`--skip-checks --reason`: deploy without running the app's checks (the hotfix path), on the record."""

    reason: str
    by: str

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise DeployRefused("--skip-checks needs --reason TEXT: say why the app's checks are skipped")

    def tags(self) -> dict[str, str]:
        return {names.SKIP_CHECKS_TAG: self.reason.strip(), names.SKIP_CHECKS_BY_TAG: self.by}


def app_source(settings: Settings) -> AppSource:
    return AppSource(**settings.app_source_fields())


def check_deployable(instance: dg.DagsterInstance, deploy: Deployment, override: Override | None = None):
    """The tags that carry an override onto the run; refuses, with the reason and the fix, what ENV may not run.

    A release that lacks its approval is held (as a sensor would hold it), so that approving it launches it: the
    message says what to run, and a `--force --reason` given now travels with the hold to its deploy.
    """
    extra = override.tags() if override else {}
    refusal = deploy.refusal()
    if refusal:
        raise DeployRefused(refusal)
    if reason := approval_reason(instance, deploy.policy, deploy.release.key, deploy.commit):
        held = {"override": override.reason, "override_by": override.by} if override else {}
        instance.report_runless_asset_event(hold_event(deploy.env, deploy.release.key, deploy.commit, status=PENDING,
                                                       trigger=names.TRIGGER_CLI, **held))  # fmt: skip
        carried = " (with the gate override, which its deploy carries)" if override else ""
        announce(instance, deploy, nc.HELD, detail=f"approve with `{approve_command(deploy.env, deploy.release.key)}`")
        raise DeployRefused(
            f"{deploy.label} (commit {deploy.commit[:12]}) is held for approval{carried}: {reason}. "
            f"Approve it with `{approve_command(deploy.env, deploy.release.key)}`; approved_release_sensor then "
            f"deploys it, or run this deploy again"
        )
    gate = gate_refusal(instance, deploy.policy, deploy.commit, extra)
    if gate:
        raise DeployRefused(gate)
    return extra


def check_signed_and_open(app: AppSource, deploy: Deployment, override: Override | None) -> None:
    """A version tag an env requires signed must verify; a deploy window that allows none now refuses (a
    `--force --reason` deploys anyway, recorded like the gate override); so does a tag off main, for an env that
    takes only stable tags. Rollbacks never come here."""
    # Resolving the ref fetched the remote's branches: main is as fresh as the tag.
    if override is None and (off_main := off_main_refusal(app.remote(), deploy)) is not None:
        raise DeployRefused(off_main)
    if deploy.policy.allowed_signers is not None:
        refusal = signature_refusal(app.remote(), deploy.release, deploy.policy.allowed_signers)
        if refusal:
            raise DeployRefused(f"{deploy.label}: {refusal}")
    closed = deploy.policy.windows.closed(datetime.now(UTC))
    if closed is not None and override is None:
        raise DeployRefused(f"{closed.describe(deploy.env)}. Deploy it then (the sensors do by themselves), or now "
                            "with --force --reason TEXT, recorded in history")  # fmt: skip


def _opening(settings: Settings) -> Future[dg.DagsterInstance]:
    """The instance, opened in a thread: most of its cost is importing Dagster's storage (about 1 s), which runs
    while this thread waits on git for the ref. A daemon thread: a refused deploy ends without waiting for it."""
    opened: Future[dg.DagsterInstance] = Future()

    def open_it() -> None:
        try:
            opened.set_result(open_instance(settings.state_dir))
        except BaseException as exc:  # handed to the caller, who raises it where it opened the instance before
            opened.set_exception(exc)

    Thread(target=open_it, name="open-instance", daemon=True).start()
    return opened


def _refuse_by_name(env: str, ref: str, policies: dict[str, EnvironmentPolicy]) -> None:
    """A version tag's name alone says whether the env's policy takes it (prod refuses a pre-release): said before
    the remote is asked, whether or not the tag exists there yet."""
    lower = f"v{ref[1:]}"
    if ref[:1] == "V" and ref[1:2].isdigit() and policies[env].accepts is Accepts.STABLE_TAGS:
        # Git would resolve it as a commit, and the refusal would name a commit key nobody typed.
        raise DeployRefused(f"{ref!r} is not a version tag: version tags start with a lowercase v ({lower!r}), and "
                            f"{env} deploys only those. Tag it: `git tag {lower} {ref} && git push origin {lower}`")
    try:
        deploy = Deployment.of(env, ref, policies)
    except ReleaseKeyError:
        return  # a branch or commit name, or a malformed tag: resolving it says what it is, or what is wrong
    if deploy.release.version is not None and (refusal := deploy.refusal()):
        raise DeployRefused(refusal)


def _refuse_another_layout(instance: dg.DagsterInstance, deploy: Deployment, layout: AppLayout) -> None:
    """A release deployed once keeps the layout it was built with: its image and bundle are reused as recorded, so a
    run with another layout would record one that nothing was built with (a later promotion would build it then).
    Its checks may change: they run again per check."""
    recorded = built_with_layout(instance, deploy.env, deploy.release.key)
    if not recorded:
        return
    before, now = json.loads(recorded), layout.model_dump(mode="json")
    changed = [f"{key} {before.get(key)!r} → {value!r}" for key, value in now.items()
               if key != "checks" and key in before and before[key] != value]  # fmt: skip
    if changed:
        raise DeployRefused(
            f"{deploy.label} was built and deployed with another app layout ({'; '.join(changed)}): a release is "
            "built once. Commit the change to the app for a new release, or deploy this one with the app config it "
            "was built with"
        )


def run_deployment(
    env: str,
    ref: str,
    *,
    settings: Settings,
    trigger: str = names.TRIGGER_CLI,
    echo: Callable[[str], None] = print,
    preflight: Callable[[], None] | None = None,
    instance: dg.DagsterInstance | None = None,
    executor: str = "auto",
    override: Override | None = None,
    skip_checks: SkipChecks | None = None,
) -> DeployOutcome:
    """Deploy a REF of the app remote (branch, tag or commit) to ENV."""
    policies = load_policies(settings.infra_dir)
    check_env(env)  # the environment's name, before anything touches git
    _refuse_by_name(env, ref, policies)
    warm_clients(resources_for(settings)["aws"])  # beside the git and instance work below
    opening = _opening(settings) if instance is None else None
    try:
        app = app_source(settings)
        resolved = app.remote().resolve(ref)
        app.check_paths(resolved.commit)
        deploy = Deployment.of(env, resolved.release_key, policies, resolved.commit)
    except BaseException:
        if opening is not None:
            # A first open creates the instance's tables: a refusal waits for it rather than cut it half-way.
            with contextlib.suppress(BaseException):
                opening.result(timeout=60)
        raise
    instance = instance or opening.result()  # type: ignore[union-attr]
    check_signed_and_open(app, deploy, override)
    _refuse_another_layout(instance, deploy, settings.app_layout)
    extra_tags = {**check_deployable(instance, deploy, override), **(skip_checks.tags() if skip_checks else {})}
    if preflight is not None:
        preflight()
    register_release(instance, deploy.release.key)
    job_name = choose_job(executor)
    extra_tags.update(executor_tags(executor))
    echo(f"deploying {ref} → {deploy.label} (commit {deploy.commit[:12]}) with {job_name}")
    return launch(deploy, settings=settings, instance=instance, job_name=job_name, trigger=trigger, echo=echo,
                  extra_tags=extra_tags)  # fmt: skip

"""The app's own checks as blocking asset checks of the build stages: its tests and linters gate every release.

Backend checks belong to `api_image` (they run in the built image), frontend checks to `frontend_bundle`; both sit
upstream of `traffic_shift`, so a failing check stops the release before anything users get changes. The specs
come from the app layout (`checks:` in the app config), so the UI's Checks tab lists the app's own checks with
each result, its duration and the tail of its output. A check that passed for the same commit and build inputs in
any environment is not run again: its result is reused, naming the run it came from.
"""

# No `from __future__ import annotations`: Dagster reads the check functions' annotations to find resources.
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import dagster as dg

from coderemote_pipeline.actions import checks_ahead
from coderemote_pipeline.actions.app_checks import CheckRun, check_key, run_in_image, run_on_host
from coderemote_pipeline.actions.scratch import scratch_dir
from coderemote_pipeline.assets.api_image import api_image
from coderemote_pipeline.assets.frontend_bundle import frontend_bundle
from coderemote_pipeline.assets.stage import lease_held
from coderemote_pipeline.ledger.checks import passed_before
from coderemote_pipeline.ledger.records import BundleRecord, ImageRecord
from coderemote_pipeline.ledger.stages import latest
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.resources.docker_engine import DockerEngine
from coderemote_pipeline.resources.image_registry import ImageRegistry
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.app_layout import AppLayout, CheckSpec, Side

Runner = Callable[[Path, CheckSpec, str], CheckRun]


def _result(asset: dg.AssetKey, run: CheckRun) -> dg.AssetCheckResult:
    output = dg.MetadataValue.md(f"```\n{run.output_tail}\n```") if run.output_tail else ""
    return dg.AssetCheckResult(
        check_name=run.name, asset_key=asset, passed=run.passed, severity=dg.AssetCheckSeverity.ERROR,
        description=run.detail, metadata={**run.metadata(), "output": output},
    )  # fmt: skip


def _skipped(context, asset: dg.AssetKey, specs: Sequence[CheckSpec]) -> Iterator[dg.AssetCheckResult]:
    reason, by = context.run.tags[names.SKIP_CHECKS_TAG], context.run.tags.get(names.SKIP_CHECKS_BY_TAG, "?")
    context.log.warning(f"checks skipped by {by}: {reason}")
    for spec in specs:
        yield dg.AssetCheckResult(check_name=spec.name, asset_key=asset, passed=True,
                                  severity=dg.AssetCheckSeverity.WARN, description=f"skipped by {by}: {reason}",
                                  metadata={"skipped": reason, "skipped_by": by, "ran": False})  # fmt: skip


def evaluate(context, asset: dg.AssetKey, specs: Sequence[CheckSpec], commit: str, tree: str, artifact: str,
             export: Callable[[Path], Path], runner: Runner, scratch: Path, *, side_by_side: bool = False,
             ahead: Callable[[CheckSpec, str], CheckRun | None] = lambda *_: None,
             ) -> Iterator[dg.AssetCheckResult]:  # fmt: skip
    """Each check's result (reused, run ahead by this run, or run once on the exported tree); a failure then fails
    the step, quoting it.

    With `side_by_side` (a runner that gives each check its own container and its own copy of the tree), the checks
    that must run start together, as a CI system's parallel jobs do: the side then waits for its longest check,
    not for their sum. Results are reported in the layout's order either way."""
    runs: list[CheckRun] = []
    keys = {spec.name: check_key(spec, tree, artifact) for spec in specs}
    reused = {spec.name: passed_before(context.instance, commit, spec.name, keys[spec.name]) for spec in specs}
    early = {spec.name: ahead(spec, keys[spec.name]) for spec in specs if not reused[spec.name]}
    to_run = [spec for spec in specs if not reused[spec.name] and not early.get(spec.name)]
    together = side_by_side and len(to_run) > 1
    with (
        scratch_dir(scratch, "checks") as tmp,
        ThreadPoolExecutor(max_workers=len(to_run) if together else 1, thread_name_prefix="check") as pool,
    ):
        exported = export(tmp / "tree") if to_run else None
        started = {spec.name: pool.submit(runner, exported, spec, keys[spec.name]) for spec in to_run}
        for spec in specs:
            if source := reused[spec.name]:
                run = CheckRun(spec.name, keys[spec.name], True, 0, 0.0, "", f"reused from run {source[:8]}", source)
            elif found := early.get(spec.name):
                run = found
            else:
                run = replace(started[spec.name].result(), side_by_side=together)
            context.log.info(run.detail)
            runs.append(run)
            yield _result(asset, run)
    failed = [r for r in runs if not r.passed]
    if failed:
        quoted = "\n".join(f"{r.detail}:\n{r.output_tail}" for r in failed)
        raise dg.Failure(description=f"{len(failed)} check(s) failed, nothing went live: {quoted}",
                         allow_retries=False)  # fmt: skip


def _specs(asset, specs: Sequence[CheckSpec], where: str) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(s.name, asset=asset, blocking=True, description=f"`{s.command}` {where}")
            for s in specs]  # fmt: skip


def backend_checks_def(specs: Sequence[CheckSpec]) -> dg.AssetChecksDefinition:
    @dg.multi_asset_check(specs=_specs(api_image, specs, "in the built image, no network"),
                          name=names.BACKEND_CHECKS)  # fmt: skip
    def backend_checks(
        context: dg.AssetCheckExecutionContext, app_source: AppSource, docker: DockerEngine, registry: ImageRegistry
    ):
        if context.run.tags.get(names.SKIP_CHECKS_TAG):
            yield from _skipped(context, api_image.key, specs)
            return
        image = latest(context.instance, ImageRecord, context.run.tags[names.PARTITION_TAG]).record
        tree = app_source.remote().tree_id(image.commit, app_source.backend_context)

        def runner(path: Path, spec: CheckSpec, key: str) -> CheckRun:
            return run_in_image(docker.client(), registry.run_reference(image.ref()), path, spec, key,
                                docker.owner_labels())

        def ahead(spec: CheckSpec, key: str) -> CheckRun | None:
            # Started by api_image on the image it had just built, before its digest was known (its push).
            return checks_ahead.collect(context.run.run_id, check_key(spec, tree), beside="the image push",
                                        known_as=key)  # fmt: skip

        with lease_held(context, context.run.tags[names.PARTITION_TAG]):
            yield from evaluate(context, api_image.key, specs, image.commit, tree, image.digest,
                                lambda dest: app_source.export_backend(image.commit, dest), runner,
                                app_source.scratch_root(), side_by_side=True, ahead=ahead)  # fmt: skip

    return backend_checks


def frontend_checks_def(specs: Sequence[CheckSpec]) -> dg.AssetChecksDefinition:
    @dg.multi_asset_check(specs=_specs(frontend_bundle, specs, "on the exported frontend tree"),
                          name=names.FRONTEND_CHECKS)  # fmt: skip
    def frontend_checks(context: dg.AssetCheckExecutionContext, app_source: AppSource):
        if context.run.tags.get(names.SKIP_CHECKS_TAG):
            yield from _skipped(context, frontend_bundle.key, specs)
            return
        bundle = latest(context.instance, BundleRecord, context.run.tags[names.PARTITION_TAG]).record
        remote = app_source.remote()
        tree = remote.tree_id(bundle.commit, app_source.frontend_dir)
        with lease_held(context, context.run.tags[names.PARTITION_TAG]):
            yield from evaluate(context, frontend_bundle.key, specs, bundle.commit, tree, "",
                                lambda dest: remote.export(bundle.commit, app_source.frontend_dir, dest),
                                run_on_host, app_source.scratch_root(),
                                ahead=lambda _, key: checks_ahead.collect(context.run.run_id, key))  # fmt: skip

    return frontend_checks


def app_check_defs(layout: AppLayout) -> list[dg.AssetChecksDefinition]:
    """The blocking checks of this app layout: backend ones on api_image, frontend ones on frontend_bundle."""
    found = []
    if backend := layout.checks_of(Side.BACKEND):
        found.append(backend_checks_def(backend))
    if frontend := layout.checks_of(Side.FRONTEND):
        found.append(frontend_checks_def(frontend))
    return found

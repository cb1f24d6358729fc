"""The table a deploy prints: what each stage did, how long it took, and where the release is live."""

from __future__ import annotations

from coderemote_pipeline.rules import names
from coderemote_pipeline.usecases.launch import CHECK_PREFIX, DeployOutcome


def _seconds(meta: dict) -> float:
    for key in ("total_s", "seconds"):
        if key in meta:
            return float(meta[key])
    return 0.0


def _what(stage: str, meta: dict) -> str:
    if stage == "infra_stack":
        return f"{meta.get('change_count', 0)} change(s)"
    if stage == "api_image":
        return f"{meta.get('outcome')} {str(meta.get('digest', ''))[:19]}"
    if stage == "lambda_version":
        return f"version {meta.get('version')} {'reused' if meta.get('version_reused') else 'published'}"
    if stage == "frontend_bundle":
        return f"{meta.get('outcome')}, {meta.get('files_uploaded')}/{meta.get('files')} files uploaded"
    if stage == "traffic_shift":
        moved = f"{meta.get('previous_version')} → {meta.get('version')}" if meta.get("alias_moved") else "unchanged"
        return f"live {moved}, site {meta.get('previous_site') or 'none'} → {meta.get('site_release')}"
    if stage == "cloudfront_invalidation":
        return f"{meta.get('path_count', 0)} path(s) {meta.get('status', 'skipped') if meta.get('path_count') else ''}"
    if stage == "smoke_result":
        return "passed" if meta.get("passed") else "failed"
    return ""


def render(outcome: DeployOutcome) -> str:
    lines = [
        f"{'stage':<24} {'seconds':>8}  result",
        f"{'-' * 24} {'-' * 8}  {'-' * 40}",
    ]
    for stage in names.STAGES:
        meta = outcome.stages.get(stage)
        if meta is None:
            lines.append(f"{stage:<24} {'-':>8}  not materialized")
        else:
            lines.append(f"{stage:<24} {_seconds(meta):>8.2f}  {_what(stage, meta)}")
    for name, meta in sorted(outcome.stages.items()):
        if name.startswith(CHECK_PREFIX):
            how = "reused" if meta.get("reused_from_run") else "skipped" if meta.get("skipped") else "ran"
            verdict = "passed" if meta.get("passed") else f"FAILED (exit {meta.get('exit_code')})"
            lines.append(f"{name:<24} {float(meta.get('seconds', 0.0)):>8.2f}  {verdict}, {how}")
    lines.append(f"{'total (wall)':<24} {outcome.seconds:>8.2f}")
    infra = outcome.stages.get("infra_stack", {})
    outputs = infra.get("stack_outputs", {}) or {}
    state = "LIVE" if outcome.success else "FAILED"
    lines += [
        "",
        f"{state}: {outcome.env}|{outcome.release} (commit {outcome.commit[:12]}), run {outcome.run_id}",
    ]
    if outputs:
        lines.append(f"  API:      {outputs.get('api_url')}")
        lines.append(f"  frontend: {outputs.get('frontend_url')}/index.html")
    if outcome.failure:
        lines.append(f"  failure:  {outcome.failure}")
    return "\n".join(lines)

"""What one sensor tick decides, and how it is reported: one `SensorResult`, every decision logged with its reason.

The tick's log is what the UI shows under each tick, so every release seen, deployed, held, skipped or refused gets
a line there; when nothing is launched the same lines become the tick's skip reason, visible in the tick list.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from coderemote_pipeline.actions.notify import announce
from coderemote_pipeline.ledger.approvals import PENDING, approval_refusal, approve_command, hold_event
from coderemote_pipeline.ledger.gate import gate_refusal, gate_status
from coderemote_pipeline.ledger.job_choice import choose_job
from coderemote_pipeline.ledger.live import already_live
from coderemote_pipeline.resources.app_source import AppSource
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules import notify_config as nc
from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.partitions import release_partitions_def
from coderemote_pipeline.sensors.abandoned import reap_abandoned

TAG_PREFIX = "refs/tags/"
# deploy_or_hold's answer for a release a deploy window holds: the sensor keeps it and asks again next tick.
WINDOW = "window"
GATED = "gated"


def load_cursor(raw: str | None) -> dict[str, Any]:
    """The cursor as JSON; anything unreadable counts as no cursor (the sensors then start from what they see)."""
    try:
        value = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def dump_cursor(cursor: dict[str, Any]) -> str:
    return json.dumps(cursor, sort_keys=True)


class Tick:
    def __init__(self, context: dg.SensorEvaluationContext, app_source: AppSource):
        self._context = context
        # Each run records how its release is built, as the CLI's do: `retry` and a later deploy of the release
        # build it from that remote and layout, whoever runs them and with whichever settings.
        self._built = (app_source.remote_url, app_source.layout.to_json())
        self._reaped: set[str] = set()
        self.messages: list[str] = []
        self.run_requests: list[dg.RunRequest] = []
        self.releases: list[str] = []
        self.events: list[dg.AssetObservation] = []

    @property
    def instance(self) -> dg.DagsterInstance:
        return self._context.instance

    def note(self, message: str) -> None:
        self.messages.append(message)
        self._context.log.info(message)

    def warn(self, message: str) -> None:
        self.messages.append(message)
        self._context.log.warning(message)

    def register(self, release: str) -> None:
        if release not in self.releases:
            self.releases.append(release)

    def reaped(self, env: str) -> list[str]:
        """Mark failed the runs of `env` whose process is gone (sensors/abandoned.py), once per tick: why, for each."""
        if env in self._reaped:
            return []
        self._reaped.add(env)
        return reap_abandoned(self._context.instance, env)

    @staticmethod
    def closed_window(deploy: Deployment, extra_tags: dict[str, str] | None = None):
        """The deploy window of deploy's env that holds it now, if one does (an override passes every window)."""
        if (extra_tags or {}).get(names.OVERRIDE_TAG):
            return None
        return deploy.policy.windows.closed(datetime.now(UTC))

    def deploy_or_hold(
        self,
        deploy: Deployment,
        *,
        trigger: str,
        run_key: str,
        ref: str,
        commit_time: Callable[[], float | None] = lambda: None,
        approved: bool = False,
        extra_tags: dict[str, str] | None = None,
        notes: Callable[[], str] = lambda: "",
    ) -> str:
        """Request the deploy of `deploy` (at its commit), hold it for approval where the env's policy says so, or
        say why not. Returns what was done: "requested", "held", "gated" (the promotion gate holds it), "live".
        `commit_time` and `notes` are asked only when a run is requested or a hold is written: a release a window
        or the gate holds is decided again every tick, and each is a git read."""
        instance, label, commit = self._context.instance, deploy.label, deploy.commit
        if (closed := self.closed_window(deploy, extra_tags)) is not None:
            self.note(f"holding {label} (commit {commit[:12]}): {closed.describe(deploy.env)}; it deploys then")
            return WINDOW
        if not approved and approval_refusal(instance, deploy.policy, deploy.release.key, commit):
            shown = {"release_notes": dg.MetadataValue.md(text)} if (text := notes()) else {}
            gate = gate_status(instance, deploy.policy, commit)
            self.events.append(hold_event(deploy.env, deploy.release.key, commit, status=PENDING, trigger=trigger,
                                          ref=ref, approve=approve_command(deploy.env, deploy.release.key),
                                          promotion_gate=gate, **shown))  # fmt: skip
            how = f"approve with `{approve_command(deploy.env, deploy.release.key)}`"
            announce(instance, deploy, nc.HELD, detail=how, log=self.warn)
            self.note(
                f"holding {label} (commit {commit[:12]}) for approval: {deploy.env} requires it. "
                f"Approve with `{approve_command(deploy.env, deploy.release.key)}` or materialize release_approval "
                "in the UI"
            )
            return "held"
        gate = gate_refusal(instance, deploy.policy, commit, extra_tags)
        if gate:
            self.warn(f"not deploying {label} (commit {commit[:12]}) yet: {gate}")
            return GATED
        if already_live(instance, deploy):
            self.note(f"{label} (commit {commit[:12]}) is already live in {deploy.env} and its last deploy succeeded")
            return "live"
        for why in self.reaped(deploy.env):
            self.note(f"marked failed: {why} (the run queue would hold {label} behind it forever)")
        job_name = choose_job()
        tags = {**deploy.built_tags(trigger, *self._built, commit_time()), **(extra_tags or {})}
        self.run_requests.append(
            dg.RunRequest(
                run_key=run_key,
                job_name=job_name,
                partition_key=deploy.partition,
                # Dagster derives its own partition tags from partition_key; passing them too is deprecated.
                tags={k: v for k, v in tags.items() if not k.startswith("dagster/")},
            )
        )
        self.note(f"deploying {label} (commit {commit[:12]}) with {job_name}, run key {run_key}")
        return "requested"

    def result(self, cursor: dict[str, Any], idle: str) -> dg.SensorResult:
        """The tick's SensorResult; `idle` is the skip reason when the tick decided nothing at all."""
        skip = None if self.run_requests else "; ".join(self.messages) or idle
        return dg.SensorResult(
            run_requests=self.run_requests,
            skip_reason=skip,
            cursor=dump_cursor(cursor),
            dynamic_partitions_requests=[release_partitions_def.build_add_request(self.releases)]
            if self.releases
            else None,
            asset_events=self.events,
        )

"""What one sensor tick decides, and how it is reported: one `SensorResult`, every decision logged with its reason.

The tick's log is what the UI shows under each tick, so every release seen, deployed, held, skipped or refused gets
a line there; when nothing is launched the same lines become the tick's skip reason, visible in the tick list.
"""

from __future__ import annotations

import json
from typing import Any

import dagster as dg

from coderemote_pipeline.ledger.approvals import APPROVAL_KEY, PENDING, approve_command, latest_decision
from coderemote_pipeline.ledger.gate import gate_refusal, gate_status
from coderemote_pipeline.rules.environments import EnvironmentPolicy
from coderemote_pipeline.rules.partitions import deployment_key, release_partitions_def
from coderemote_pipeline.usecases.deploy import choose_job, deployment_tags

MAIN_REF = "refs/heads/main"
TAG_PREFIX = "refs/tags/"


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
    def __init__(self, context: dg.SensorEvaluationContext):
        self._context = context
        self.messages: list[str] = []
        self.run_requests: list[dg.RunRequest] = []
        self.releases: list[str] = []
        self.events: list[dg.AssetObservation] = []

    def note(self, message: str) -> None:
        self.messages.append(message)
        self._context.log.info(message)

    def warn(self, message: str) -> None:
        self.messages.append(message)
        self._context.log.warning(message)

    def register(self, release: str) -> None:
        if release not in self.releases:
            self.releases.append(release)

    def deploy_or_hold(
        self, policy: EnvironmentPolicy, release: str, commit: str, *, trigger: str, run_key: str, ref: str
    ) -> None:
        """Request the deploy of ENV|RELEASE at `commit`, or hold it for approval where the env's policy says so."""
        env, partition = policy.name, str(deployment_key(policy.name, release))
        if policy.approval_required:
            decided = latest_decision(self._context.instance, env, release)
            if not (decided and decided.approved and decided.commit == commit):
                self.events.append(
                    dg.AssetObservation(
                        asset_key=APPROVAL_KEY,
                        partition=partition,
                        metadata={
                            "status": PENDING,
                            "commit": commit,
                            "ref": ref,
                            "trigger": trigger,
                            "approve": approve_command(env, release),
                            "promotion_gate": gate_status(self._context.instance, policy, commit),
                        },
                    )
                )
                self.note(
                    f"holding {partition} (commit {commit[:12]}) for approval: {env} requires it. "
                    f"Approve with `{approve_command(env, release)}` or materialize release_approval in the UI"
                )
                return
        # The promotion gate (policy `verified_in`) is enforced by the stages too; checking it here logs why instead
        # of launching a run bound to fail. An approved hold stays launchable: approve again once it passes.
        gate = gate_refusal(self._context.instance, policy, commit)
        if gate:
            self.warn(f"not deploying {partition} (commit {commit[:12]}): {gate}")
            return
        job_name = choose_job(self._context.instance, commit)
        self.run_requests.append(
            dg.RunRequest(
                run_key=run_key,
                job_name=job_name,
                partition_key=partition,
                # Dagster derives its own partition tags from partition_key; passing them too is deprecated.
                tags={k: v for k, v in deployment_tags(env, release, commit, trigger).items() if "dagster/" not in k},
            )
        )
        self.note(f"deploying {partition} (commit {commit[:12]}) with {job_name}, run key {run_key}")

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

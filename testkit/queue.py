"""Deploys through the team's run queue: submitted to the webserver's GraphQL API, queued by the instance's run
coordinator (one run per `coderemote/env` value in progress), launched by the daemon's run launcher.

This is the path of every run a shared service starts (UI, sensors, GraphQL clients); `coderemote-pipeline deploy`
executes in its own process instead, see deploy/README.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dagster as dg
from dagster_graphql import DagsterGraphQLClient

from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.rules.partitions import deployment_partitions_def, partition_key
from coderemote_pipeline.usecases.progress import QUIET
from testkit.services import LOCATION, graphql

REPOSITORY = "__repository__"  # the repository name Dagster gives a code location's single Definitions
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
IN_FLIGHT = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}


def client(port: int) -> DagsterGraphQLClient:
    return DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)


def submit_deploy(
    gql: DagsterGraphQLClient,
    env: str,
    release: str,
    commit: str,
    *,
    job_name: str = "deploy_job",
    trigger: str = "graphql",
    extra_tags: dict[str, str] | None = None,
) -> str:
    """Queue a deploy of ENV|RELEASE (the release partition must be registered); returns the run id."""
    tags = {**Deployment.of(env, release, load_policies(), commit).tags(trigger), **(extra_tags or {})}
    return gql.submit_job_execution(
        job_name, repository_location_name=LOCATION, repository_name=REPOSITORY, run_config=QUIET, tags=tags
    )


def submit_as_ui(gql: DagsterGraphQLClient, env: str, release: str, *, job_name: str = "redeploy_job",
                 assets: Sequence[str] | None = None) -> str:  # fmt: skip
    """Queue a deploy the way the UI does: the partition's tags and nothing of ours. A job's Launchpad names the
    job; the asset graph's Materialize button names Dagster's implicit asset job and the `assets` selected."""
    tags = dict(deployment_partitions_def.get_tags_for_partition_key(partition_key(env, release)))
    return gql.submit_job_execution(job_name, repository_location_name=LOCATION, repository_name=REPOSITORY,
                                    run_config=QUIET, tags=tags, asset_selection=assets)  # fmt: skip


SENSORS_QUERY = """
query ($selector: RepositorySelector!) {
  sensorsOrError(repositorySelector: $selector) {
    ... on Sensors { results { name sensorState { id status } } }
  }
}"""
STOP_SENSOR = "mutation ($id: String!) { stopSensor(id: $id) { __typename } }"


def stop_sensors(port: int, keep: tuple[str, ...] = ()) -> list[str]:
    """Stop the running sensors of the code location but `keep` (they are RUNNING by default): a queue test or
    benchmark decides itself what runs. Returns their names."""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
    sensors = graphql(port, SENSORS_QUERY, {"selector": selector})["sensorsOrError"]["results"]
    stopped = []
    for sensor in sensors:
        if sensor["sensorState"]["status"] == "RUNNING" and sensor["name"] not in keep:
            graphql(port, STOP_SENSOR, {"id": sensor["sensorState"]["id"]})
            stopped.append(sensor["name"])
    return stopped


@dataclass(frozen=True)
class RunWindow:
    run_id: str
    env: str
    status: dg.DagsterRunStatus
    start: float | None
    end: float | None


def run_windows(instance: dg.DagsterInstance, run_ids: Iterable[str]) -> list[RunWindow]:
    """When each run was in progress (from the run storage's start and end times)."""
    records = instance.get_run_records(dg.RunsFilter(run_ids=list(run_ids)))
    return [
        RunWindow(
            r.dagster_run.run_id,
            r.dagster_run.tags.get("coderemote/env", ""),
            r.dagster_run.status,
            r.start_time,
            r.end_time,
        )
        for r in records
    ]


def max_in_progress_per_env(windows: Iterable[RunWindow]) -> dict[str, int]:
    """The largest number of runs of one environment ever in progress at the same moment."""
    events: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for w in windows:
        if w.start is None:
            continue
        # An end sorts before a start at the same instant: back-to-back runs do not count as overlapping.
        events[w.env] += [(w.start, 1), (w.end if w.end is not None else float("inf"), -1)]
    peaks: dict[str, int] = {}
    for env, points in events.items():
        current = peak = 0
        for _, delta in sorted(points):
            current += delta
            peak = max(peak, current)
        peaks[env] = peak
    return peaks


def overlap(a: RunWindow, b: RunWindow) -> float:
    """Seconds during which both runs were in progress."""
    if None in (a.start, a.end, b.start, b.end):
        return 0.0
    return max(0.0, min(a.end, b.end) - max(a.start, b.start))  # type: ignore[arg-type, type-var]


def all_finished(instance: dg.DagsterInstance, run_ids: Iterable[str]) -> bool:
    ids = list(run_ids)
    runs = instance.get_runs(dg.RunsFilter(run_ids=ids))
    return len(runs) == len(ids) and all(r.status in TERMINAL for r in runs)

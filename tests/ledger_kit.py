"""Seeding the ledger with the events real deploys write, without running them (runless events and run records):
what the ledger tests and the sensors' tests start from."""

from __future__ import annotations

import time

import dagster as dg

from coderemote_pipeline.ledger.records import ROLLED_BACK_TO, LiveRecord, SmokeRecord
from coderemote_pipeline.ledger.releases import fled_by_rollback_to
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.partitions import env_tags, partition_key

DATA_VERSION_TAG = "dagster/data_version"


def record_smoke(
    instance: dg.DagsterInstance, env: str, release: str, commit: str, *, passed: bool = True, run_id: str = ""
) -> None:
    """A smoke_result of ENV|RELEASE as a deploy records it (the data version the ledger indexes included)."""
    record = SmokeRecord(passed, release, commit)
    instance.add_dynamic_partitions("release", [release])
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            names.key(names.SMOKE_RESULT),
            partition=partition_key(env, release),
            metadata={**record.to_metadata(), "run_id": run_id},
            tags={**env_tags(env, release), DATA_VERSION_TAG: SmokeRecord.data_version(passed, commit).value},
        )
    )


# Rollback records name what they fled, as smoke_result writes them; a test of records written before they did
# turns this off (monkeypatch).
ROLLBACKS_NAME_WHAT_THEY_FLED = True


def record_live(instance: dg.DagsterInstance, env: str, release: str, commit: str, **fields) -> LiveRecord:
    if str(fields.get("reason", "")).startswith(ROLLED_BACK_TO) and ROLLBACKS_NAME_WHAT_THEY_FLED:
        fields.setdefault("fled", fled_by_rollback_to(instance, env, release))
    live = LiveRecord(**{"release": release, "commit": commit, "version": 1, "digest": "sha256:" + "0" * 64,
                         "frontend_release": release, "reason": f"deployed {release}", "run_id": "",
                         "since": time.time(), **fields})  # fmt: skip
    instance.report_runless_asset_event(
        dg.AssetMaterialization(names.key(names.LIVE_RELEASE), partition=env, metadata=live.to_metadata())
    )
    return live

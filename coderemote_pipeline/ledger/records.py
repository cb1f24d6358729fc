"""What each stage hands the stages after it, as small typed records, written and read in this one place.

A record is the metadata of its asset's materialization: `to_metadata()` when the stage returns, `read(...)` when
a later stage (or a question of the ledger) needs it. Numbers stay numbers (the UI plots them), times are
timestamp metadata, URLs are links, lists and mappings are JSON. A stage may add more metadata for the reader in
the UI (sub-step seconds); records read only their own fields.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import dagster as dg

from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.images import ImageRef

URL, TIMESTAMP, JSON = "url", "timestamp", "json"


def _kind(f: dataclasses.Field) -> str:
    return f.metadata.get("kind", "")


def url(default: Any = dataclasses.MISSING) -> Any:
    return field(default=default, metadata={"kind": URL})


def timestamp(default: Any = dataclasses.MISSING) -> Any:
    return field(default=default, metadata={"kind": TIMESTAMP})


def json_field() -> Any:
    return field(default_factory=dict, metadata={"kind": JSON})


def json_list() -> Any:
    return field(default_factory=list, metadata={"kind": JSON})


class Record:
    """A frozen dataclass that is the metadata of one asset's materialization."""

    ASSET: ClassVar[str]

    def to_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            kind = _kind(f)
            if kind == URL:
                metadata[f.name] = dg.MetadataValue.url(value) if value else ""
            elif kind == TIMESTAMP:
                metadata[f.name] = dg.MetadataValue.timestamp(float(value))
            elif kind == JSON:
                metadata[f.name] = dg.MetadataValue.json(value)
            else:
                metadata[f.name] = value
        return metadata

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Self:
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in metadata:
                continue
            raw = metadata[f.name]
            value = getattr(raw, "value", raw)
            values[f.name] = _coerce(value, hints[f.name])
        return cls(**values)

    @classmethod
    def key(cls) -> dg.AssetKey:
        return names.key(cls.ASSET)


def _coerce(value: Any, hint: Any) -> Any:
    if hint is int and not isinstance(value, bool):
        return int(value)
    if hint is float:
        return float(value)
    if hint is str:
        return "" if value is None else str(value)
    return value


@dataclass(frozen=True)
class StackRecord(Record):
    ASSET = names.INFRA_STACK
    stack_outputs: dict[str, str] = json_field()
    changes: list[str] = json_list()
    change_count: int = 0
    region: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class ImageRecord(Record):
    ASSET = names.API_IMAGE
    outcome: str
    image_uri: str
    digest: str
    repository: str
    repository_uri: str
    size_bytes: int
    commit: str
    build_key: str = ""
    built: bool = False
    promoted: bool = False
    tags: list[str] = json_list()

    def ref(self) -> ImageRef:
        return ImageRef(self.repository, self.digest, self.repository_uri, self.size_bytes)


@dataclass(frozen=True)
class VersionRecord(Record):
    """A published Lambda version of the release's image; not yet live (traffic_shift moves users to it)."""

    ASSET = names.LAMBDA_VERSION
    function: str
    version: int
    alias: str
    image_digest: str
    release: str
    commit: str
    version_reused: bool = False


@dataclass(frozen=True)
class BundleRecord(Record):
    """The release's frontend files, stored as a snapshot beside the live site; not yet live."""

    ASSET = names.FRONTEND_BUNDLE
    outcome: str
    build_mode: str
    build_key: str
    content_hash: str
    index_sha256: str
    release: str
    commit: str
    bucket: str
    files: int = 0
    files_uploaded: int = 0
    bytes_uploaded: int = 0
    bundle_bytes: int = 0
    frontend_url: str = url("")


@dataclass(frozen=True)
class ShiftRecord(Record):
    """Users moved to the release: the alias, the API runtime, then the site's HTML and config, in that order."""

    ASSET = names.TRAFFIC_SHIFT
    strategy: str
    version: int
    previous_version: int
    previous_release: str
    previous_site: str
    site_release: str
    alias_moved: bool
    api_url: str = url("")
    changed_paths: list[str] = json_list()
    cold_start_s: float = 0.0
    runtime: str = ""
    switched_at: float = timestamp(0.0)
    # The figures of each analysis interval of the weighted steps (empty: all at once), and the bake to come.
    steps: list[dict[str, Any]] = json_list()
    bake_s: float = 0.0


@dataclass(frozen=True)
class InvalidationRecord(Record):
    ASSET = names.CLOUDFRONT_INVALIDATION
    invalidation_id: str = ""
    distribution_id: str = ""
    paths: list[str] = json_list()
    path_count: int = 0
    status: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class SmokeRecord(Record):
    ASSET = names.SMOKE_RESULT
    passed: bool
    release: str
    commit: str
    checks: list[dict[str, Any]] = json_list()
    rolled_back: bool = False
    rolled_back_to: str = ""
    after_failure: str = ""
    seconds: float = 0.0

    @staticmethod
    def data_version(passed: bool, commit: str) -> dg.DataVersion:
        """Indexed by the instance: "did commit C pass in env E" is one tag lookup, not a scan."""
        return dg.DataVersion(f"{'passed' if passed else 'failed'}:{commit}")


ROLLED_BACK_TO = "rolled back to"


@dataclass(frozen=True)
class LiveRecord(Record):
    """What an environment serves, recorded each time that changes (deploy, rollback, automatic rollback)."""

    ASSET = names.LIVE_RELEASE
    release: str
    commit: str
    version: int
    digest: str
    frontend_release: str
    reason: str
    run_id: str
    since: float = timestamp(0.0)
    # How to reach the environment and how the release was built, so a rollback needs nothing else.
    stack_outputs: dict[str, str] = json_field()
    app_remote: str = ""
    app_layout: str = ""
    # How users moved to it and how it was judged ("canary 10% for 300 s, then bake 900 s: baked 900 s, passed").
    delivery: str = ""
    # A rollback's: the releases it took the env away from or went past, newest first (ledger/releases.py).
    fled: list[str] = json_list()

    @property
    def automatic(self) -> bool:
        return self.reason.startswith("automatic rollback")

    @property
    def by_rollback(self) -> bool:
        """Made live by a rollback run (`rollback`, or rollback_job from the UI), not by a deploy or a settle."""
        return self.reason.startswith(ROLLED_BACK_TO)


RECORD_TYPES: tuple[type[Record], ...] = (
    StackRecord,
    ImageRecord,
    VersionRecord,
    BundleRecord,
    ShiftRecord,
    InvalidationRecord,
    SmokeRecord,
    LiveRecord,
)

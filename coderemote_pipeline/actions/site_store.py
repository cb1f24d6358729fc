"""The env's bucket as a store of releases: one snapshot per release under `_releases/<release>/`, and one pointer,
`_edge/LIVE`, that names the live release. The edge (varnish locally, CloudFront on AWS) serves the pointer's
release: going live, rolling back and an automatic rollback are one pointer flip each — atomic, no object copied,
no moment where the site mixes two releases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from coderemote_pipeline.rules import frontend_files as ff

POINTER = "_edge/LIVE"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SiteSwitch:
    changed_paths: list[str]  # paths whose bytes differ between the previous release and this one
    previous_release: str | None


def snapshot_key(release: str, path: str) -> str:
    return f"{ff.RELEASES_PREFIX}{release}/{path}"


def etags(s3: Any, bucket: str, prefix: str) -> dict[str, str]:
    """key (relative to prefix) → MD5, for one snapshot."""
    found: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"][len(prefix) :]] = obj["ETag"].strip('"')
    return found


def read_json(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def read_manifest(s3: Any, bucket: str, release: str) -> dict[str, Any] | None:
    """The release's manifest, only if every file it lists is still in the snapshot with the same bytes."""
    manifest = read_json(s3, bucket, snapshot_key(release, MANIFEST))
    if manifest is None:
        return None
    present = etags(s3, bucket, snapshot_key(release, ""))
    if any(present.get(f["path"]) != f["md5"] for f in manifest["files"]):
        return None
    return manifest


def store_snapshot(
    s3: Any, bucket: str, release: str, files: list[ff.BundleFile], extra: dict[str, Any], acl: str | None = None
) -> tuple[dict[str, Any], list[ff.BundleFile]]:
    """Write the release's snapshot: only bytes the snapshot lacks are uploaded (a re-run uploads nothing)."""
    prefix = snapshot_key(release, "")
    existing = etags(s3, bucket, prefix)
    acl_args = {"ACL": acl} if acl else {}
    uploaded = []
    for f in files:
        if existing.get(f.path) == f.md5:
            continue
        s3.put_object(Bucket=bucket, Key=prefix + f.path, Body=f.data, ContentType=ff.content_type(f.path),
                      CacheControl=ff.cache_control(f.path), **acl_args)  # fmt: skip
        uploaded.append(f)
    manifest = {
        "release": release,
        "files": [{"path": f.path, "md5": f.md5, "sha256": f.sha256, "size": len(f.data)} for f in files],
        **extra,
    }
    # A snapshot already whole is left as it is, manifest included: a re-run or a rollback writes no object.
    if uploaded or read_json(s3, bucket, prefix + MANIFEST) != manifest:
        s3.put_object(Bucket=bucket, Key=prefix + MANIFEST, Body=json.dumps(manifest).encode(),
                      ContentType="application/json", **acl_args)  # fmt: skip
    return manifest, uploaded


def pointer(s3: Any, bucket: str) -> dict[str, str]:
    """The pointer's metadata (release, previous, commit, content_hash), or {} when nothing is live."""
    try:
        return dict(s3.head_object(Bucket=bucket, Key=POINTER).get("Metadata", {}))
    except s3.exceptions.ClientError:
        return {}


def live_release(s3: Any, bucket: str) -> str | None:
    return pointer(s3, bucket).get("release") or None


def changed_between(s3: Any, bucket: str, previous: str | None, manifest: dict[str, Any]) -> list[str]:
    """The paths of `manifest`'s release whose bytes differ from `previous`'s snapshot (all of them: none)."""
    old = read_json(s3, bucket, snapshot_key(previous, MANIFEST)) if previous else None
    old_files = {f["path"]: f["md5"] for f in (old or {}).get("files", [])}
    return sorted(f["path"] for f in manifest["files"] if old_files.get(f["path"]) != f["md5"])


def changed_since(s3: Any, bucket: str, previous: str | None, release: str) -> list[str]:
    """changed_between for `release`'s snapshot; none when it is gone (its switch says so)."""
    manifest = read_manifest(s3, bucket, release)
    return changed_between(s3, bucket, previous, manifest) if manifest else []


def flip(s3: Any, bucket: str, manifest: dict[str, Any], acl: str | None) -> SiteSwitch:
    """Make the manifest's release the live one: one write of the pointer. The paths that changed are for the CDN
    to forget (CloudFront keys its cache by path; the local edge keys it by release and needs none)."""
    before = pointer(s3, bucket)
    previous = before.get("release") or None
    release = manifest["release"]
    changed = changed_between(s3, bucket, previous, manifest)
    if previous != release:
        metadata = {"release": release, "previous": previous or release, "commit": str(manifest.get("commit", "")),
                    "content_hash": str(manifest.get("content_hash", ""))}  # fmt: skip
        s3.put_object(Bucket=bucket, Key=POINTER, Body=b"", ContentType="application/octet-stream",
                      CacheControl="no-cache", Metadata=metadata, **({"ACL": acl} if acl else {}))  # fmt: skip
    return SiteSwitch(changed if previous != release else [], previous)

"""The env's bucket as a store of releases: one snapshot per release under `_releases/<release>/`, and the live
site at the root, made equal to one snapshot by server-side copies.

Keeping every deployed release's files beside the live site is what makes a frontend rollback a handful of
server-side copies instead of a rebuild, and what lets an automatic rollback restore the previous release exactly.
"""

import json
from dataclasses import dataclass
from typing import Any

from coderemote_pipeline.rules import frontend_files as ff

LIVE_MARKER = f"{ff.RELEASES_PREFIX}LIVE.json"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SiteSwitch:
    changed_paths: list[str]
    previous_release: str | None


def snapshot_key(release: str, path: str) -> str:
    return f"{ff.RELEASES_PREFIX}{release}/{path}"


def etags(s3: Any, bucket: str, prefix: str = "") -> dict[str, str]:
    """key (relative to prefix) → MD5, for the live site (prefix "") or one snapshot."""
    found: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"][len(prefix) :]
            if prefix or not obj["Key"].startswith(ff.RELEASES_PREFIX):
                found[key] = obj["ETag"].strip('"')
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
    s3: Any, bucket: str, release: str, files: list[ff.BundleFile], extra: dict[str, Any]
) -> tuple[dict[str, Any], list[ff.BundleFile]]:
    """Write the release's snapshot; bytes already live are copied server-side, only new bytes are uploaded."""
    prefix = snapshot_key(release, "")
    existing, live = etags(s3, bucket, prefix), etags(s3, bucket)
    uploaded = []
    for f in files:
        if existing.get(f.path) == f.md5:
            continue
        headers = {"ContentType": ff.content_type(f.path), "CacheControl": ff.cache_control(f.path)}
        if live.get(f.path) == f.md5:
            s3.copy_object(
                Bucket=bucket,
                Key=prefix + f.path,
                CopySource={"Bucket": bucket, "Key": f.path},
                MetadataDirective="REPLACE",
                **headers,
            )
        else:
            s3.put_object(Bucket=bucket, Key=prefix + f.path, Body=f.data, **headers)
            uploaded.append(f)
    manifest = {
        "release": release,
        "files": [{"path": f.path, "md5": f.md5, "sha256": f.sha256, "size": len(f.data)} for f in files],
        **extra,
    }
    s3.put_object(
        Bucket=bucket, Key=prefix + MANIFEST, Body=json.dumps(manifest).encode(), ContentType="application/json"
    )
    return manifest, uploaded


def activate(s3: Any, bucket: str, manifest: dict[str, Any], acl: str | None) -> SiteSwitch:
    """Make the live site serve the manifest's release: copy what differs, HTML last, then move the marker."""
    release = manifest["release"]
    live = etags(s3, bucket)
    differing = [f for f in manifest["files"] if live.get(f["path"]) != f["md5"]]
    differing.sort(key=lambda f: (f["path"].endswith(".html"), f["path"]))
    extra = {"ACL": acl} if acl else {}
    for f in differing:
        s3.copy_object(
            Bucket=bucket,
            Key=f["path"],
            CopySource={"Bucket": bucket, "Key": snapshot_key(release, f["path"])},
            MetadataDirective="REPLACE",
            ContentType=ff.content_type(f["path"]),
            CacheControl=ff.cache_control(f["path"]),
            **extra,
        )
    previous = read_json(s3, bucket, LIVE_MARKER)
    marker = {"release": release, "content_hash": manifest.get("content_hash"), "commit": manifest.get("commit")}
    if previous != marker:
        s3.put_object(Bucket=bucket, Key=LIVE_MARKER, Body=json.dumps(marker).encode(), ContentType="application/json")
    return SiteSwitch([f["path"] for f in differing], (previous or {}).get("release"))


def live_release(s3: Any, bucket: str) -> str | None:
    return (read_json(s3, bucket, LIVE_MARKER) or {}).get("release")

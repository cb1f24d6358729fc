"""An exported image into a registry over its HTTP API (v2): the blobs it lacks, then one manifest.

The registry names blobs by their compressed digest, the engine names layers by their uncompressed one (diff id):
`LayerBlobs` keeps which blob holds which layer, so a layer the registry has (the base image's) is neither
compressed nor sent again; a record the registry contradicts (its storage wiped) is dropped and the layer pushed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from coderemote_pipeline.actions.image_export import ExportedImage, ExportedLayer

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# The record keeps the layers used last (each push puts all of its own): a few hundred deploys' worth. A layer
# forgotten is only compressed again, not lost; the registry still holds its blob.
KEPT_LAYERS = 512

# (method, path, headers, body) -> the response, or None for a 404; any other refusal raises.
Request = Callable[..., Any]


class UploadRefused(RuntimeError):
    pass


class LayerMissing(RuntimeError):
    """A layer left uncompressed as held by the registry turned out not to be there: export it again, whole."""


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    repository: str  # where it was pushed: the source of a cross-repository mount
    tar_bytes: int = 0  # the layer's uncompressed size, 0 when not known


class LayerBlobs:
    """The diff id -> blob record of one registry, as JSON (the registry resource keeps it beside its storage)."""

    def __init__(self, text: str = "") -> None:
        try:
            self._blobs = {key: Blob(**value) for key, value in json.loads(text).items()}
        except (ValueError, TypeError, AttributeError):
            self._blobs = {}  # no record yet, or an unreadable one: every layer is compressed and checked

    def get(self, diff_id: str) -> Blob | None:
        return self._blobs.get(diff_id)

    def sizes(self, diff_ids: list[str]) -> set[int]:
        """The uncompressed sizes of those of `diff_ids` the record holds: what an export need not compress. Only
        the image's own layers count: another layer of the same size (a file edited in place) is not the same."""
        return {blob.tar_bytes for d in diff_ids if (blob := self._blobs.get(d)) is not None and blob.tar_bytes}

    def put(self, diff_id: str, blob: Blob) -> None:
        self._blobs.pop(diff_id, None)  # newest last: what `to_json` keeps when the record is full
        self._blobs[diff_id] = blob

    def drop(self, diff_id: str) -> None:
        self._blobs.pop(diff_id, None)

    def to_json(self) -> str:
        kept = list(self._blobs.items())[-KEPT_LAYERS:]
        return json.dumps({key: asdict(blob) for key, blob in kept}, indent=1)


def _has(request: Request, repository: str, digest: str) -> bool:
    response = request("HEAD", f"/v2/{repository}/blobs/{digest}")
    if response is not None:
        response.close()
    return response is not None


def _mount(request: Request, repository: str, blob: Blob) -> bool:
    response = request("POST", f"/v2/{repository}/blobs/uploads/?mount={blob.digest}&from={blob.repository}")
    if response is None:
        return False
    with response:
        return response.status == 201  # 202: the registry opened an upload instead (it lacks the blob)


def _upload(request: Request, repository: str, digest: str, body: Any, size: int) -> None:
    response = request("POST", f"/v2/{repository}/blobs/uploads/")
    if response is None:
        raise UploadRefused(f"the registry would not open an upload in {repository} for {digest}")
    with response:
        location = response.headers["Location"]
    path = location.split("/", 3)[3] if location.startswith("http") else location.lstrip("/")
    joiner = "&" if "?" in path else "?"
    done = request("PUT", f"/{path}{joiner}digest={digest}", headers={"Content-Length": str(size),
                   "Content-Type": "application/octet-stream"}, body=body)  # fmt: skip
    if done is None:
        raise UploadRefused(f"the registry lost the upload of {digest} to {repository} before it ended")
    done.close()


def _layer_blob(request: Request, repository: str, layer: ExportedLayer, blobs: LayerBlobs) -> Blob:
    if layer.blob is None:  # left uncompressed: the registry is said to hold it
        held = blobs.get(layer.diff_id)
        if held is not None and (_has(request, repository, held.digest) or _mount(request, repository, held)):
            return Blob(held.digest, held.size, held.repository, layer.tar_bytes)
        blobs.drop(layer.diff_id)
        raise LayerMissing(layer.diff_id)
    blob = Blob(layer.blob.digest, layer.blob.size, repository, layer.tar_bytes)
    if not _has(request, repository, blob.digest) and layer.path is not None:
        with layer.path.open("rb") as body:
            _upload(request, repository, blob.digest, body, blob.size)
    return blob


def push_exported(request: Request, image: ExportedImage, repository: str, blobs: LayerBlobs) -> tuple[bytes, str]:
    """Upload the blobs `repository` lacks; returns the manifest (bytes, digest) for the caller to put by tag."""
    layers = []
    for layer in image.layers:
        blob = _layer_blob(request, repository, layer, blobs)
        blobs.put(layer.diff_id, blob)
        layers.append({"mediaType": LAYER_TYPE, "size": blob.size, "digest": blob.digest})
    config_digest = f"sha256:{hashlib.sha256(image.config).hexdigest()}"
    if not _has(request, repository, config_digest):
        _upload(request, repository, config_digest, image.config, len(image.config))
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
         "config": {"mediaType": CONFIG_TYPE, "size": len(image.config), "digest": config_digest},
         "layers": layers},
        indent=3,
    ).encode()  # fmt: skip
    return manifest, f"sha256:{hashlib.sha256(manifest).hexdigest()}"

"""An image out of the Docker engine as a registry wants it: the config bytes and each layer gzipped, by diff id.

`docker save` streams the whole image as one tar (the legacy layout, `<id>/layer.tar` + `<config>.json`, or the OCI
one, `blobs/sha256/<hex>`; `manifest.json`, often last, names the parts either way). Each layer is hashed (its diff
id, checked against the config) and compressed as it streams by (actions/parallel_gzip.py), except a layer of the
size of one the registry holds already (the base image's, mostly): that one is only hashed, and used compressed as
the registry has it when the hash agrees. Nothing uncompressed is written to disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coderemote_pipeline.actions.parallel_gzip import Compressed, GzipWriter, compression_pool

CHUNK_BYTES = 1024 * 1024
# Members up to this size (configs, manifests, a layer holding one directory) are kept in memory; the rest on disk.
IN_MEMORY_BYTES = 1024 * 1024


class ImageExportError(RuntimeError):
    pass


@dataclass(frozen=True)
class ExportedLayer:
    diff_id: str
    tar_bytes: int
    blob: Compressed | None  # None: not compressed, its size being that of a layer the registry holds
    path: Path | None  # the gzipped layer, when compressed


@dataclass(frozen=True)
class ExportedImage:
    config: bytes
    layers: list[ExportedLayer]  # bottom first, as the config's rootfs lists them


class _Stream:
    """The engine's chunks as the file object tarfile's streaming mode reads."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = b""
        self._at = 0

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            if self._at >= len(self._chunk):
                self._chunk, self._at = next(self._chunks, b""), 0
                if not self._chunk:
                    break
            # Slices of the current chunk, never of a growing buffer: tarfile reads a few KiB at a time.
            end = len(self._chunk) if size < 0 else self._at + size - len(out)
            out += self._chunk[self._at : end]
            self._at = min(end, len(self._chunk))
        return bytes(out)


def _layer(source: Any, dest: Path, gzip: tuple[Any, int] | None) -> tuple[str, Compressed | None]:
    """Hash a member as it streams by and, with a pool, gzip it into `dest`: (its diff id, the compressed blob)."""
    sha = hashlib.sha256()
    writer = GzipWriter(dest, *gzip) if gzip else None
    while chunk := source.read(CHUNK_BYTES):
        sha.update(chunk)
        if writer:
            writer.write(chunk)
    return f"sha256:{sha.hexdigest()}", writer.close() if writer else None


def export_image(client: Any, image_id: str, dest: Path, held_sizes: Collection[int] = ()) -> ExportedImage:
    """Save `image_id` from the engine into `dest`, gzipping every layer but those of a size in `held_sizes`;
    raises ImageExportError when the parts do not add up."""
    small: dict[str, bytes] = {}
    large: dict[str, tuple[int, str, Compressed | None, Path]] = {}
    links: dict[str, str] = {}
    pool, workers = compression_pool()
    stream = _Stream(client.api.get_image(image_id, chunk_size=CHUNK_BYTES))
    with pool, tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            if member.issym():
                # The legacy layout writes a layer met twice once, and links the second name to the first.
                links[member.name] = posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))
            elif member.isfile() and (source := archive.extractfile(member)) is not None:
                if member.size <= IN_MEMORY_BYTES:
                    small[member.name] = source.read()
                    continue
                path = dest / f"layer-{len(large)}.tar.gz"
                compress = None if member.size in held_sizes else (pool, workers)
                large[member.name] = (member.size, *_layer(source, path, compress), path)
        if "manifest.json" not in small:
            raise ImageExportError(f"the engine's export of {image_id} has no manifest.json")
        manifest = json.loads(small["manifest.json"])[0]
        layers = []
        for index, name in enumerate(manifest["Layers"]):
            name = links.get(name, name)
            if name not in large and name not in small:
                raise ImageExportError(f"the engine's export of {image_id} lacks its layer {name}")
            if name not in large:
                path = dest / f"small-{index}.tar.gz"
                large[name] = (len(small[name]), *_layer(io.BytesIO(small[name]), path, (pool, workers)), path)
            tar_bytes, diff_id, blob, path = large[name]
            layers.append(ExportedLayer(diff_id, tar_bytes, blob, path if blob else None))
    config = small.get(manifest["Config"])
    if config is None:
        raise ImageExportError(f"the engine's export of {image_id} has no config {manifest['Config']}")
    if [layer.diff_id for layer in layers] != json.loads(config)["rootfs"]["diff_ids"]:
        raise ImageExportError(f"the engine's export of {image_id} does not match its config's layers")
    return ExportedImage(config, layers)

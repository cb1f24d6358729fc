"""One gzip member written by several cores at once, the way pigz does it: what an image layer is pushed as.

The Docker engine pushes a layer through one gzip stream at the default level. Measured on this 2-core machine
(2026-12-04) over the realistic app's largest layer (316 MB): `gzip -6` 8.1 s, `gzip -1` 3.4 s (14 % larger);
zlib's level 1 deflates ~110 MB/s per core, ISA-L's (the `isal` package) ~650 MB/s at the same ratio. Here the
input is cut into blocks, each block is deflated by a thread of its own (ISA-L lets go of the GIL) with the 32 KiB
before it as its dictionary, and the blocks are joined with byte-aligned sync flushes: one ordinary gzip member
that any gunzip, Go's included, reads. The same bytes in give the same bytes out, whatever the number of threads
and however they are written, so a layer pushed twice has one digest and the registry keeps one blob.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from isal import isal_zlib

BLOCK_BYTES = 1024 * 1024
WINDOW_BYTES = 32 * 1024
# ISA-L's level 2: as small as zlib's level 1 (38.6 % against 38.3 % of a layer of wheels and bytecode), 6x faster.
LEVEL = 2
# A gzip header without a name and with no modification time (0): nothing of the host or the hour in the bytes.
HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


@dataclass(frozen=True)
class Compressed:
    digest: str  # sha256 of the gzip bytes: the blob's name in a registry
    size: int


def _deflate(block: bytes, dictionary: bytes, last: bool) -> bytes:
    engine = isal_zlib.compressobj(LEVEL, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS, 9, 0, zdict=dictionary)
    return engine.compress(block) + engine.flush(isal_zlib.Z_FINISH if last else isal_zlib.Z_SYNC_FLUSH)


class GzipWriter:
    """Bytes written in any pieces, compressed in blocks of BLOCK_BYTES on `pool`, into `dest`; `close` ends the
    member (an input ending on a block boundary gets an empty final block) and returns the digest and size."""

    def __init__(self, dest: Path, pool: ThreadPoolExecutor, workers: int) -> None:
        self._out = dest.open("wb")
        self._pool = pool
        self._window = 2 * workers  # blocks in flight: memory stays a few MiB whatever the layer's size
        self._pending: deque[Future[bytes]] = deque()
        self._block = bytearray()
        self._previous = b""
        self._crc = self._length = 0
        self._sha = hashlib.sha256()
        self._size = 0
        self._emit(HEADER)

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        self._sha.update(data)
        self._size += len(data)

    def _submit(self, block: bytes, last: bool) -> None:
        self._pending.append(self._pool.submit(_deflate, block, self._previous[-WINDOW_BYTES:], last))
        self._previous = block
        while len(self._pending) > self._window or (last and self._pending):
            self._emit(self._pending.popleft().result())

    def write(self, data: bytes) -> None:
        self._crc, self._length = zlib.crc32(data, self._crc), self._length + len(data)
        self._block += data
        while len(self._block) >= BLOCK_BYTES:
            self._submit(bytes(self._block[:BLOCK_BYTES]), last=False)
            del self._block[:BLOCK_BYTES]

    def close(self) -> Compressed:
        try:
            self._submit(bytes(self._block), last=True)
            self._emit(struct.pack("<II", self._crc & 0xFFFFFFFF, self._length & 0xFFFFFFFF))
        finally:
            self._out.close()
        return Compressed(f"sha256:{self._sha.hexdigest()}", self._size)


def compression_pool() -> tuple[ThreadPoolExecutor, int]:
    """A thread per core, shared by the layers of one push."""
    workers = os.cpu_count() or 1
    return ThreadPoolExecutor(workers, thread_name_prefix="gzip"), workers

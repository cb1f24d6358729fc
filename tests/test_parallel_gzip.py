"""The layer compressor (actions/parallel_gzip.py): one standard gzip member, the same bytes whatever the threads."""

import gzip
import hashlib
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from coderemote_pipeline.actions.parallel_gzip import BLOCK_BYTES, GzipWriter


def compress(tmp_path, data: bytes, workers: int, piece: int, name: str):
    dest = tmp_path / name
    with ThreadPoolExecutor(workers) as pool:
        writer = GzipWriter(dest, pool, workers)
        for at in range(0, len(data), piece):
            writer.write(data[at : at + piece])
        blob = writer.close()
    return dest, blob


def sample(size: int) -> bytes:
    # Text that compresses like source files do, with enough variety that every block differs.
    rng = random.Random(size)
    words = [b"layer", b"import", b"def", b"return", b"self", b"{", b"}", b"0x%x" % rng.getrandbits(16)]
    return b" ".join(rng.choice(words) + str(rng.randrange(999)).encode() for _ in range(size // 6))[:size]


@pytest.mark.parametrize("size", [0, 1, BLOCK_BYTES - 1, BLOCK_BYTES, BLOCK_BYTES + 1, 3 * BLOCK_BYTES + 12345])
def test_any_gunzip_reads_it_back_and_threads_change_no_byte(tmp_path, size):
    data = sample(size)
    one, blob = compress(tmp_path, data, workers=1, piece=BLOCK_BYTES, name="one.gz")
    many, blob_many = compress(tmp_path, data, workers=4, piece=7919, name="many.gz")
    assert one.read_bytes() == many.read_bytes() and blob == blob_many
    assert gzip.decompress(one.read_bytes()) == data
    assert blob.digest == f"sha256:{hashlib.sha256(one.read_bytes()).hexdigest()}"
    assert blob.size == one.stat().st_size
    # Debian's gzip too: one member with a valid CRC and length, not only Python's reader.
    assert subprocess.run(["gzip", "-t", str(one)], capture_output=True).returncode == 0
    assert one.read_bytes()[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, no time: no host in it


def test_it_compresses(tmp_path):
    data = sample(4 * BLOCK_BYTES)
    _, blob = compress(tmp_path, data, workers=2, piece=65536, name="layer.gz")
    assert blob.size < len(data) / 2


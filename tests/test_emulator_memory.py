"""The emulator's memory across a clean stop, on the real process: what it held comes back with the same ids after
SIGTERM and a new start, the file is owner-only and read once, and a damaged file starts it empty, not never."""

import os
import signal
import stat
import sys

import boto3
import pytest

from coderemote_pipeline.local_stack.moto_server import DUMMY_CREDENTIALS, REGION, moto_answers, moto_endpoint
from coderemote_pipeline.local_stack.processes import free_port, spawn, stop_pid, wait_until

MODULE = "coderemote_pipeline.local_stack.emulator"


@pytest.fixture
def emulator(tmp_path):
    port, memory, pids = free_port(), tmp_path / "memory.pickle", []

    def start() -> int:
        pid = spawn([sys.executable, "-m", MODULE, "-p", str(port), "--memory", str(memory)],
                    log_path=tmp_path / "emulator.log", env={**os.environ, **DUMMY_CREDENTIALS})  # fmt: skip
        pids.append(pid)
        wait_until(lambda: moto_answers(moto_endpoint(port), timeout=1.0), timeout=30, what="emulator",
                   log_path=tmp_path / "emulator.log", pid=pid)  # fmt: skip
        return pid

    yield start, memory, port
    for pid in pids:
        stop_pid(pid, expect=MODULE)


def _client(service: str, port: int):
    return boto3.client(service, endpoint_url=moto_endpoint(port), region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


def test_a_clean_stop_keeps_what_it_held_with_the_same_ids(emulator):
    start, memory, port = emulator
    pid = start()
    s3, secrets = _client("s3", port), _client("secretsmanager", port)
    s3.create_bucket(Bucket="kept-bucket")
    s3.put_object(Bucket="kept-bucket", Key="index.html", Body=b"<h1>kept</h1>")
    arn = secrets.create_secret(Name="kept/secret", SecretString="s3cr3t")["ARN"]
    assert stop_pid(pid, expect=MODULE, stop_signal=signal.SIGTERM)
    assert stat.S_IMODE(memory.stat().st_mode) == 0o600
    start()
    assert not memory.exists()  # read once: a kill from here on forgets
    assert s3.get_object(Bucket="kept-bucket", Key="index.html")["Body"].read() == b"<h1>kept</h1>"
    assert secrets.describe_secret(SecretId="kept/secret")["ARN"] == arn


def test_a_damaged_memory_starts_it_empty(emulator):
    start, memory, port = emulator
    memory.write_bytes(b"not a pickle")
    start()
    assert not memory.exists()
    assert _client("s3", port).list_buckets()["Buckets"] == []

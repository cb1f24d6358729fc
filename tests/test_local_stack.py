"""The local stack against real processes: moto, docker-registry and a Docker engine, no mocks.

One stack per module (starting it is the expensive part); the fixture always brings it down. The first run on
a machine builds the base image's root filesystem with mmdebstrap (~35 s), later runs import the cached one.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from coderemote_pipeline.local_stack import (
    DUMMY_CREDENTIALS,
    ENVIRONMENTS,
    STACK_LABEL,
    DockerEngineDown,
    EmulatorDown,
    LocalStack,
    LocalStackNotRunning,
    RegistryDown,
    StackInfo,
    check_parts,
    docker_client,
    load_stack_info,
)
from coderemote_pipeline.local_stack.dockerd import engine_paths, stop_dockerd
from coderemote_pipeline.local_stack.processes import free_port, pid_alive, wait_gone
from coderemote_pipeline.resources.aws import EmulatorAws
from coderemote_pipeline.resources.local_stack import LocalStackResource

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("dockerd", "docker-registry", "mmdebstrap")),
        reason="needs Debian's docker.io, docker-registry and mmdebstrap",
    ),
]

UP_HINT = "coderemote-pipeline local up"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local_stack = LocalStack(tmp_path_factory.mktemp("stack"))
    try:
        yield local_stack
    finally:
        local_stack.down()


@pytest.fixture
def info(stack: LocalStack) -> StackInfo:
    return stack.up()


def test_up_brings_every_part_up(info: StackInfo) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=info.moto_endpoint,
        region_name=info.region,
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket="code-remote-test-frontend")
    assert "code-remote-test-frontend" in [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]

    with urllib.request.urlopen(f"http://{info.registry_host}/v2/", timeout=5) as response:
        assert response.status == 200

    client = docker_client(info.docker_host)
    try:
        assert client.ping()
        assert client.images.get(info.base_image).id == info.base_image_id
        argv = ["python3", "-c", "print(1)"]
        output = client.containers.run(info.base_image, argv, network_mode="host", remove=True)
        assert output.strip() == b"1"
    finally:
        client.close()

    assert info.moto_endpoint.startswith("http://127.0.0.1:")
    assert info.registry_host.startswith("127.0.0.1:")
    assert set(info.api_ports) == set(ENVIRONMENTS)
    servers = [info.registry_host, info.moto_endpoint]
    ports = [*info.api_ports.values(), *(int(address.rsplit(":", 1)[1]) for address in servers)]
    assert len(set(ports)) == len(ports)


def test_up_twice_is_harmless(stack: LocalStack, info: StackInfo) -> None:
    again = stack.up()
    assert again == info
    assert load_stack_info(stack.state_dir) == info


def test_status_reports_running(stack: LocalStack, info: StackInfo) -> None:
    status = stack.status()
    assert status["moto"] == {
        "state": "running",
        "pid": info.moto_pid,
        "endpoint": info.moto_endpoint,
        "answering": True,
    }
    assert status["registry"]["state"] == "running"
    assert status["registry"]["pid"] == info.registry_pid
    assert status["registry"]["answering"] is True
    assert status["docker"]["state"] == "running"
    assert status["docker"]["answering"] is True
    assert status["docker"]["managed"] == info.dockerd_managed


def test_check_names_the_part_that_is_down(info: StackInfo) -> None:
    check_parts(info)
    unused = f"127.0.0.1:{free_port()}"
    with pytest.raises(RegistryDown, match=f"Image registry at {unused} is not answering.*{UP_HINT}"):
        check_parts(dataclasses.replace(info, registry_host=unused))
    nowhere = "unix:///nonexistent/docker.sock"
    with pytest.raises(DockerEngineDown, match=f"No Docker engine reachable at {nowhere}"):
        check_parts(dataclasses.replace(info, docker_host=nowhere))


def test_killed_emulator_is_reported_then_restarted_on_its_port(stack: LocalStack, info: StackInfo) -> None:
    lam = EmulatorAws(stack=LocalStackResource(state_dir=str(stack.state_dir))).client("lambda")
    lam.list_functions()  # the emulator answered: this process no longer checks it before each client
    os.kill(info.moto_pid, signal.SIGKILL)
    assert wait_gone(info.moto_pid, 10.0)
    # A stage's call after the emulator died names it and the fix, not botocore's "Could not connect".
    with pytest.raises(EmulatorDown, match=f"AWS emulator \\(moto\\) at {info.moto_endpoint} .*{UP_HINT}"):
        lam.list_functions()

    with pytest.raises(EmulatorDown) as raised:
        check_parts(info)
    message = str(raised.value)
    assert f"AWS emulator (moto) at {info.moto_endpoint} is not answering" in message
    assert UP_HINT in message
    assert stack.status()["moto"]["state"] == "stopped"

    restarted = stack.up()
    assert restarted.moto_pid != info.moto_pid
    assert restarted.moto_endpoint == info.moto_endpoint
    assert dataclasses.replace(restarted, moto_pid=info.moto_pid) == info
    check_parts(restarted)


def test_a_hung_emulator_is_named_with_its_fix(stack: LocalStack, info: StackInfo, monkeypatch) -> None:
    """An emulator that accepts connections and never answers (stopped, wedged) held each call for 60 s, tried again
    by botocore and then by the stage: a deploy silent for many minutes. A short read timeout (1 s here instead of
    the emulator's 15 s) and the same check as for a dead one name it."""
    monkeypatch.setattr(EmulatorAws, "read_timeout", lambda self: 1.0)
    lam = EmulatorAws(stack=LocalStackResource(state_dir=str(stack.state_dir))).client("lambda")
    lam.list_functions()
    os.kill(info.moto_pid, signal.SIGSTOP)
    try:
        with pytest.raises(EmulatorDown, match=f"AWS emulator \\(moto\\) at {info.moto_endpoint} .*{UP_HINT}"):
            lam.list_functions()
    finally:
        os.kill(info.moto_pid, signal.SIGCONT)
    lam.list_functions()  # resumed, it answers again: nothing was taken down


def test_a_stack_on_someone_elses_engine_leaves_that_engine_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, info: StackInfo
) -> None:
    monkeypatch.setenv("DOCKER_HOST", info.docker_host)
    guest = LocalStack(tmp_path / "guest")
    client = docker_client(info.docker_host)
    try:
        guest_info = guest.up()
        assert guest_info.docker_host == info.docker_host
        assert not guest_info.dockerd_managed
        assert guest_info.dockerd_pid is None
        assert guest_info.stack_id != info.stack_id
        sleeper = ["python3", "-c", "import time; time.sleep(600)"]
        for stack_id in (guest_info.stack_id, info.stack_id):
            client.containers.run(
                info.base_image, sleeper, network_mode="host", labels={STACK_LABEL: stack_id}, detach=True
            )
    finally:
        guest.down()
    try:
        assert client.ping()
        containers = client.containers.list(all=True, filters={"label": STACK_LABEL})
        labelled = {container.labels[STACK_LABEL] for container in containers}
        assert guest_info.stack_id not in labelled
        assert info.stack_id in labelled  # removed by the host stack's own `down`, below
    finally:
        client.close()
    assert not pid_alive(guest_info.moto_pid)
    check_parts(info)


def test_down_stops_everything_and_up_keeps_the_addresses(stack: LocalStack, info: StackInfo) -> None:
    client = docker_client(info.docker_host)
    try:
        container = client.containers.run(
            info.base_image,
            ["python3", "-c", "import time; time.sleep(600)"],
            network_mode="host",
            labels={STACK_LABEL: info.stack_id},
            detach=True,
        )
        container.reload()
        container_pid = int(container.attrs["State"]["Pid"])
    finally:
        client.close()
    assert pid_alive(container_pid)

    stack.down()

    for pid in (info.moto_pid, info.registry_pid, info.dockerd_pid, container_pid):
        assert pid is None or wait_gone(pid, 2.0), f"process {pid} survived down()"
    # Nothing of the stack stays in /tmp: the engine's short run dir and the edge's admin socket go with it.
    if stack.engine.run_dir != stack.paths.engine_dir:
        assert not stack.engine.run_dir.exists()
    assert not stack.edges.admin_socket.exists()
    if not info.dockerd_managed:
        client = docker_client(info.docker_host)
        try:
            assert client.containers.list(all=True, filters={"label": f"{STACK_LABEL}={info.stack_id}"}) == []
        finally:
            client.close()
    status = stack.status()
    assert {part["state"] for part in status.values()} == {"stopped"}
    assert not any(part["answering"] for part in status.values())
    with pytest.raises(LocalStackNotRunning) as not_running:
        load_stack_info(stack.state_dir)
    assert str(stack.state_dir) in str(not_running.value)
    assert UP_HINT in str(not_running.value)
    with pytest.raises(EmulatorDown, match=UP_HINT):
        check_parts(info)
    stack.down()  # idempotent

    again = stack.up()
    assert again.api_ports == info.api_ports
    assert again.moto_endpoint == info.moto_endpoint
    assert again.registry_host == info.registry_host
    assert Path(again.docker_host.removeprefix("unix://")).is_socket() or not again.dockerd_managed


def test_a_deep_state_dir_leaves_no_engine_run_dir_in_tmp(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["nested-checkout"] * 6, "local", "docker")
    paths = engine_paths(deep)
    assert paths.run_dir != deep  # too deep for a socket path: the run dir moved to a short one in /tmp
    (paths.exec_root / "containerd").mkdir(parents=True)
    stop_dockerd(None, paths)
    assert not paths.run_dir.exists()


def test_a_site_edge_that_does_not_answer_serves_nothing_it_can_say(tmp_path: Path) -> None:
    """status and the settle read the edge's release beside the pointer: varnish down is the site probe's finding
    (HTTP 0, "connection refused"), never an exception that stops status for every env."""
    import socket

    from coderemote_pipeline.local_stack.site_edge import edge_release

    with socket.socket() as placeholder:  # a port nothing listens on once it is closed
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    assert edge_release(port) is None

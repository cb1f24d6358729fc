"""Whether a running stack's parts answer, with errors that say which part is down and how to fix it.

Resources call `check_parts` before a stage touches the stack, so a stopped emulator fails the run at once,
with its address and the command that starts it, rather than as a connection error deep inside boto3.
"""

from __future__ import annotations

from pathlib import Path

from docker.errors import DockerException

from coderemote_pipeline.local_stack import api_edge, dockerd, moto_server, site_edge
from coderemote_pipeline.local_stack import registry_server as registry
from coderemote_pipeline.local_stack.errors import UP_COMMAND, DockerEngineDown, EdgeDown, EmulatorDown, RegistryDown
from coderemote_pipeline.local_stack.processes import pid_alive
from coderemote_pipeline.local_stack.stack_info import StackInfo


def _exited(pid: int | None) -> str:
    return f" (process {pid} has exited)" if pid and not pid_alive(pid) else ""


def check_parts(info: StackInfo) -> None:
    """Raise EmulatorDown, RegistryDown or DockerEngineDown for the first part that does not answer."""
    if not moto_server.moto_answers(info.moto_endpoint):
        raise EmulatorDown(
            f"AWS emulator (moto) at {info.moto_endpoint} is not answering{_exited(info.moto_pid)}: "
            f"start it with `{UP_COMMAND}`"
        )
    if not registry.registry_answers(info.registry_host):
        raise RegistryDown(
            f"Image registry at {info.registry_host} is not answering{_exited(info.registry_pid)}: "
            f"start it with `{UP_COMMAND}`"
        )
    if info.edge_socket and not api_edge.edge_answers(Path(info.edge_socket)):
        raise EdgeDown(f"API edge (haproxy) at {info.edge_socket} is not answering{_exited(info.edge_pid)}: "
                       f"start it with `{UP_COMMAND}`")  # fmt: skip
    site_port = min(info.site_ports.values(), default=0)
    if site_port and not site_edge.site_answers(site_port):
        raise EdgeDown(f"site edge (varnish) at 127.0.0.1:{site_port} is not answering{_exited(info.site_pid)}: "
                       f"start it with `{UP_COMMAND}`")  # fmt: skip
    try:
        client = dockerd.docker_client(info.docker_host, timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except (DockerException, OSError) as error:
        fix = (
            f"start it with `{UP_COMMAND}`"
            if info.dockerd_managed
            else f"start that engine, or unset DOCKER_HOST and run `{UP_COMMAND}` to start one of our own"
        )
        raise DockerEngineDown(f"No Docker engine reachable at {info.docker_host}: {error}. {fix}") from error

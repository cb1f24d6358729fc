"""Whether a running stack's parts answer, with errors that say which part is down and how to fix it.

Resources call `check_parts` before a stage touches the stack, so a stopped emulator fails the run at once,
with its address and the command that starts it, rather than as a connection error deep inside boto3.
"""

from __future__ import annotations

from docker.errors import DockerException

from coderemote_pipeline.local_stack import dockerd, moto_server
from coderemote_pipeline.local_stack import registry_server as registry
from coderemote_pipeline.local_stack.errors import UP_COMMAND, DockerEngineDown, EmulatorDown, RegistryDown
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

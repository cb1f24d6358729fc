"""What each part of a local stack is doing now: `local status`'s table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coderemote_pipeline.local_stack import api_edge, dockerd, moto_server, site_edge
from coderemote_pipeline.local_stack import registry_server as registry
from coderemote_pipeline.local_stack.edges import EdgePaths
from coderemote_pipeline.local_stack.processes import pid_matches
from coderemote_pipeline.local_stack.stack_info import StackInfo, StackPaths, read_pid


def stack_status(paths: StackPaths, engine: dockerd.EnginePaths, edges: EdgePaths, info: StackInfo | None,
                 ports: dict[str, Any]) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per part: state (running/stopped), pid, endpoint, answering; `docker` also says if it is ours.

    `info` is the running stack's record (None when it is down), `ports` the ports it was given."""
    moto_at = moto_server.moto_endpoint(ports["moto"]) if "moto" in ports else None
    reg_at = registry.registry_host(ports["registry"]) if "registry" in ports else None
    managed = info.dockerd_managed if info is not None else True
    docker_host = info.docker_host if info is not None else engine.docker_host
    engine_pid = dockerd.read_pidfile(engine) if managed else None
    engine_answering = dockerd.engine_answers(docker_host)
    engine_alive = pid_matches(engine_pid, dockerd.CMDLINE_FRAGMENT)
    moto = _part_status(paths, "moto", moto_server.CMDLINE_FRAGMENT, moto_at, moto_server.moto_answers)
    reg = _part_status(paths, "registry", registry.CMDLINE_FRAGMENT, reg_at, registry.registry_answers)
    edge_pid, site_pid = read_pid(edges.api_pidfile), read_pid(edges.site_pidfile)
    site_port = min(ports.get("site", {"-": 0}).values())
    return {
        "moto": moto,
        "registry": reg,
        "api edge": {
            "state": "running" if pid_matches(edge_pid, api_edge.CMDLINE_FRAGMENT) else "stopped",
            "pid": edge_pid,
            "endpoint": str(edges.admin_socket),
            "answering": api_edge.edge_answers(edges.admin_socket),
        },
        "site edge": {
            "state": "running" if pid_matches(site_pid, site_edge.CMDLINE_FRAGMENT) else "stopped",
            "pid": site_pid,
            "endpoint": f"127.0.0.1:{site_port}" if site_port else None,
            "answering": bool(site_port) and site_edge.site_answers(site_port),
        },
        "docker": {
            "state": "running" if engine_answering or engine_alive else "stopped",
            "pid": engine_pid if engine_alive else None,
            "endpoint": docker_host,
            "answering": engine_answering,
            "managed": managed,
        },
    }


def _part_status(
    paths: StackPaths, part: str, fragment: str, endpoint: str | None, answers: Callable[[str], bool]
) -> dict[str, Any]:
    pid = read_pid(paths.pidfile(part))
    running = pid_matches(pid, fragment)
    return {
        "state": "running" if running else "stopped",
        "pid": pid if running else None,
        "endpoint": endpoint,
        # Only probe our own process: after `down` the port may belong to someone else.
        "answering": bool(running and endpoint and answers(endpoint)),
    }

"""`LocalStack`: brings the local stand-ins for AWS up and down and reports on them.

Parts: the AWS emulator (moto), the image registry, a Docker engine, and the Python base image inside that
engine. `up` is idempotent and repairs: a part is reused only if its process is alive *and* answers; anything
else is restarted on its recorded port. `down` stops only what this stack started.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coderemote_pipeline.local_stack import companions, dockerd, edges, moto_server
from coderemote_pipeline.local_stack import registry_server as registry
from coderemote_pipeline.local_stack.base_image import BASE_IMAGE, default_cache_dir, ensure_base_image
from coderemote_pipeline.local_stack.checks import check_parts
from coderemote_pipeline.local_stack.errors import LocalStackError, LocalStackNotRunning
from coderemote_pipeline.local_stack.processes import free_port, pid_matches, stop_pid
from coderemote_pipeline.local_stack.stack_info import (
    StackInfo,
    StackPaths,
    load_stack_info,
    read_pid,
    stack_id_for,
    write_atomically,
)
from coderemote_pipeline.local_stack.stack_status import stack_status
from coderemote_pipeline.rules.env_names import ENVIRONMENTS

LEGACY = {"moto": moto_server.LEGACY_CMDLINE_FRAGMENT}


def _stop_ours(pid: int | None, part: str, fragment: str) -> None:
    """Stop `pid` if it is this part's process, as it runs now or ran before an upgrade; anything else is left."""
    for expected in (fragment, LEGACY.get(part)):
        if expected is not None and stop_pid(pid, expect=expected):
            return


@dataclass(frozen=True)
class _Server:
    pid: int
    port: int
    fresh: bool  # started by this `up`, so still to be waited for


class LocalStack:
    def __init__(self, state_dir: Path, cache_dir: Path | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.paths = StackPaths(self.state_dir)
        self.engine = dockerd.engine_paths(self.paths.engine_dir)
        self.stack_id = stack_id_for(self.state_dir)
        self.edges = edges.EdgePaths(self.paths.root)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Two `up`s racing would each see a dead part and start it twice on the same port.
        self.paths.root.mkdir(parents=True, exist_ok=True)
        with open(self.paths.lock_file, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read_ports(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.paths.ports_file.read_text()))
        except (OSError, ValueError):
            return {}

    def read_info(self) -> StackInfo | None:
        try:
            return load_stack_info(self.state_dir)
        except LocalStackNotRunning:
            return None

    def up(self) -> StackInfo:
        """Start whatever is not running and answering; return (and persist) the stack's record."""
        with self._locked():
            started: list[Callable[[], object]] = []
            try:
                info = self._up(self.read_ports(), started)
            except BaseException:
                # A half-started stack would leave servers nobody records; stop what this call started.
                for stop in reversed(started):
                    stop()
                raise
            write_atomically(self.paths.info_file, info.to_json())
            return info

    def _up(self, ports: dict[str, Any], started: list[Callable[[], object]]) -> StackInfo:
        api_ports: dict[str, int] = dict(ports.get("api", {}))
        moto = self._server(
            "moto",
            moto_server.CMDLINE_FRAGMENT,
            lambda port: moto_server.moto_answers(moto_server.moto_endpoint(port)),
            lambda port: moto_server.start_moto(port, log_path=self.paths.log("moto"), memory=self.paths.memory),
            ports.get("moto"),
            [ports.get("registry", 0), *api_ports.values()],
            started,
        )
        reg = self._server(
            "registry",
            registry.CMDLINE_FRAGMENT,
            lambda port: registry.registry_answers(registry.registry_host(port)),
            lambda port: registry.start_registry(
                port,
                config_path=self.paths.registry_config,
                storage_dir=self.paths.registry_storage,
                log_path=self.paths.log("registry"),
            ),
            ports.get("registry"),
            [moto.port, *api_ports.values()],
            started,
        )
        # moto and the registry finish starting while the engine starts and the base image is imported.
        docker_host, dockerd_pid, managed = self._engine(started)
        client = dockerd.docker_client(docker_host)
        try:
            image_id = ensure_base_image(client, self.cache_dir)
        finally:
            client.close()
        if moto.fresh:
            moto_server.wait_for_moto(moto.pid, moto.port, log_path=self.paths.log("moto"))
        if reg.fresh:
            registry.wait_for_registry(reg.pid, reg.port, log_path=self.paths.log("registry"))

        site_ports = self._env_ports(api_ports, dict(ports.get("site", {})), moto.port, reg.port)
        edge_pid = edges.ensure_api_edge(self.edges, api_ports, started)
        site_pid = edges.ensure_site_edge(self.edges, site_ports, moto.port, moto.fresh, started)
        return StackInfo(
            stack_id=self.stack_id,
            moto_endpoint=moto_server.moto_endpoint(moto.port),
            moto_pid=moto.pid,
            registry_host=registry.registry_host(reg.port),
            registry_pid=reg.pid,
            docker_host=docker_host,
            dockerd_pid=dockerd_pid,
            dockerd_managed=managed,
            base_image=BASE_IMAGE,
            base_image_id=image_id,
            api_ports=api_ports,
            region=moto_server.REGION,
            account_id=moto_server.ACCOUNT_ID,
            site_ports=site_ports,
            edge_pid=edge_pid,
            edge_socket=str(self.edges.admin_socket),
            edge_state=str(self.edges.api_state),
            site_pid=site_pid,
        )

    def _env_ports(self, api_ports: dict[str, int], site_ports: dict[str, int], moto: int, reg: int) -> dict[str, int]:
        """Each env's API and site edge port, kept across restarts (the ports file), new ones free."""
        for env in ENVIRONMENTS:
            for wanted in (api_ports, site_ports):
                if env not in wanted:
                    wanted[env] = free_port(exclude=[moto, reg, *api_ports.values(), *site_ports.values()])
        write_atomically(
            self.paths.ports_file,
            json.dumps({"moto": moto, "registry": reg, "api": api_ports, "site": site_ports}, indent=2),
        )
        return site_ports

    def _server(
        self,
        part: str,
        fragment: str,
        answers: Callable[[int], bool],
        start: Callable[[int], int],
        preferred: int | None,
        exclude: list[int],
        started: list[Callable[[], object]],
    ) -> _Server:
        pidfile = self.paths.pidfile(part)
        pid = read_pid(pidfile)
        if pid is not None and preferred and pid_matches(pid, fragment) and answers(preferred):
            return _Server(pid=pid, port=preferred, fresh=False)
        # Alive but not answering means hung: replace it rather than run two (or one of before an upgrade).
        _stop_ours(pid, part, fragment)
        port = free_port(preferred, exclude=exclude)
        new_pid = start(port)
        started.append(lambda: stop_pid(new_pid, expect=fragment))
        write_atomically(pidfile, f"{new_pid}\n")
        return _Server(pid=new_pid, port=port, fresh=True)

    def _engine(self, started: list[Callable[[], object]]) -> tuple[str, int | None, bool]:
        """(docker_host, dockerd pid, managed): our running engine, someone else's, or a new one of ours."""
        pid = dockerd.read_pidfile(self.engine)
        if pid_matches(pid, dockerd.CMDLINE_FRAGMENT):
            if dockerd.engine_answers(self.engine.docker_host):
                return self.engine.docker_host, pid, True
            dockerd.stop_dockerd(pid, self.engine)
        external = dockerd.external_engine()
        if external is not None:
            return external, None, False
        log_path = self.paths.log("dockerd")
        new_pid = dockerd.start_dockerd(self.engine, log_path=log_path)
        started.append(lambda: dockerd.stop_dockerd(new_pid, self.engine))
        dockerd.wait_for_dockerd(new_pid, self.engine, log_path=log_path)
        return self.engine.docker_host, new_pid, True

    def down(self) -> None:
        """Remove this stack's containers, stop what it started, forget the running record. Idempotent."""
        with self._locked():
            companions.stop_all(self.state_dir)  # first: no command starts on a stack going down
            try:
                info = self.read_info()
                hosts = {info.docker_host} if info is not None else set()
            except LocalStackError:
                # A damaged record is what `down` is told to clear: the pidfiles and the containers' stack label
                # still name what this stack started, in our engine or in the one someone else runs.
                info, hosts = None, {h for h in [dockerd.external_engine()] if h}
            engine_pid = dockerd.read_pidfile(self.engine)
            own_engine = pid_matches(engine_pid, dockerd.CMDLINE_FRAGMENT)
            if own_engine:
                hosts.add(self.engine.docker_host)
            # API containers first: they belong to the stack even when the engine is not ours.
            for host in hosts:
                dockerd.remove_labelled_containers(host, self.stack_id)
            edges.stop_edges(self.edges)
            for part, fragment, recorded in (
                ("moto", moto_server.CMDLINE_FRAGMENT, info.moto_pid if info else None),
                ("registry", registry.CMDLINE_FRAGMENT, info.registry_pid if info else None),
            ):
                for pid in {read_pid(self.paths.pidfile(part)), recorded}:
                    _stop_ours(pid, part, fragment)
                self.paths.pidfile(part).unlink(missing_ok=True)
            managed_pids = {engine_pid if own_engine else None}
            if info is not None and info.dockerd_managed:
                managed_pids.add(info.dockerd_pid)
            for pid in managed_pids:
                dockerd.stop_dockerd(pid, self.engine)
            self.paths.info_file.unlink(missing_ok=True)

    def status(self) -> dict[str, dict[str, Any]]:
        """Per part: state (running/stopped), pid, endpoint, answering; `docker` also says if it is ours."""
        return stack_status(self.paths, self.engine, self.edges, self.read_info(), self.read_ports())

    def check(self, info: StackInfo | None = None) -> StackInfo:
        """The running stack's record, after checking every part answers (see `check_parts`)."""
        info = info if info is not None else load_stack_info(self.state_dir)
        check_parts(info)
        return info

"""The two edges of the local stack, up and down with it: haproxy for the API (api_edge.py) and varnish for the
site (site_edge.py). Each is reused when its process is alive and answers, otherwise started from its files: the
API edge from the slots' state file (so versions and weights survive a restart), the site edge from the VCL of
the emulator's current port.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from coderemote_pipeline.local_stack import api_edge, site_edge
from coderemote_pipeline.local_stack.processes import pid_matches, stop_pid
from coderemote_pipeline.local_stack.stack_info import read_pid, write_atomically
from coderemote_pipeline.rules.stack_outputs import frontend_bucket_name
from coderemote_pipeline.rules.state_dir import short_socket_path

# haproxy refuses a unix socket path over 97 bytes (sun_path less its own margin).
MAX_SOCKET_PATH = 90


@dataclass(frozen=True)
class EdgePaths:
    root: Path  # <state_dir>/local

    @property
    def api_dir(self) -> Path:
        return self.root / "edge"

    @property
    def api_config(self) -> Path:
        return self.api_dir / "haproxy.cfg"

    @property
    def api_state(self) -> Path:
        return self.api_dir / "slots.json"

    @property
    def api_pidfile(self) -> Path:
        return self.root / "run" / "edge.pid"

    @property
    def admin_socket(self) -> Path:
        return short_socket_path(self.api_dir / "admin.sock", "edge", MAX_SOCKET_PATH)

    @property
    def site_dir(self) -> Path:
        return self.root / "site"

    @property
    def site_pidfile(self) -> Path:
        return self.root / "run" / "site.pid"


@contextmanager
def slots_locked(paths: EdgePaths) -> Iterator[api_edge.EdgeState]:
    """The API edge's slot state, read and written under a lock: deploys of two environments change it at once."""
    paths.api_dir.mkdir(parents=True, exist_ok=True)
    with open(paths.api_dir / "slots.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = api_edge.EdgeState.load(paths.api_state)
        yield state
        partial = paths.api_state.with_suffix(".tmp")
        partial.write_text(state.to_json())
        partial.replace(paths.api_state)


def ensure_api_edge(paths: EdgePaths, api_ports: dict[str, int], started: list[Callable[[], object]]) -> int:
    pid = read_pid(paths.api_pidfile)
    if pid_matches(pid, api_edge.CMDLINE_FRAGMENT) and api_edge.edge_answers(paths.admin_socket):
        return pid  # type: ignore[return-value]
    stop_pid(pid, expect=api_edge.CMDLINE_FRAGMENT)
    paths.admin_socket.unlink(missing_ok=True)
    with slots_locked(paths) as state:
        for env in api_ports:
            state.slots(env)
        paths.api_config.write_text(api_edge.render_config(api_ports, state, paths.admin_socket,
                                                           paths.api_dir / "haproxy.pid"))  # fmt: skip
    log = paths.root / "logs" / "edge.log"
    new_pid = api_edge.start_haproxy(paths.api_config, log_path=log)
    started.append(lambda: stop_pid(new_pid, expect=api_edge.CMDLINE_FRAGMENT))
    write_atomically(paths.api_pidfile, f"{new_pid}\n")
    api_edge.wait_for_haproxy(new_pid, paths.admin_socket, log_path=log)
    return new_pid


def ensure_site_edge(
    paths: EdgePaths, site_ports: dict[str, int], moto_port: int, moto_fresh: bool, started: list[Callable[[], object]]
) -> int:
    pid = read_pid(paths.site_pidfile)
    vcl = paths.site_dir / "site.vcl"
    wanted = site_edge.render_vcl(moto_port, {env: frontend_bucket_name(env) for env in site_ports})
    current = vcl.read_text() if vcl.exists() else ""
    answering = pid_matches(pid, site_edge.CMDLINE_FRAGMENT) and site_edge.site_answers(min(site_ports.values()))
    if answering and current == wanted:
        if moto_fresh:  # the emulator came back empty: nothing cached from before may be served
            for port in site_ports.values():
                site_edge.forget_pointer(port)
                site_edge.ban_paths(port, ["/*"])
        return pid  # type: ignore[return-value]
    stop_pid(pid, expect=site_edge.CMDLINE_FRAGMENT)
    paths.site_dir.mkdir(parents=True, exist_ok=True)
    vcl.write_text(wanted)
    log = paths.root / "logs" / "site.log"
    new_pid = site_edge.start_varnish(paths.site_dir / "work", vcl, site_ports, log_path=log)
    started.append(lambda: stop_pid(new_pid, expect=site_edge.CMDLINE_FRAGMENT))
    write_atomically(paths.site_pidfile, f"{new_pid}\n")
    site_edge.wait_for_varnish(new_pid, min(site_ports.values()), log_path=log)
    return new_pid


def stop_edges(paths: EdgePaths) -> None:
    for pidfile, fragment in ((paths.api_pidfile, api_edge.CMDLINE_FRAGMENT),
                              (paths.site_pidfile, site_edge.CMDLINE_FRAGMENT)):  # fmt: skip
        # The group: varnishd's child (the cache worker) goes with it.
        stop_pid(read_pid(pidfile), expect=fragment, group=True)
        pidfile.unlink(missing_ok=True)
    paths.admin_socket.unlink(missing_ok=True)  # haproxy leaves it, and it may live in /tmp (short_socket_path)

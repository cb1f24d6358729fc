"""The local API edge: Debian's haproxy in front of the API containers, what a Lambda alias with a routing config
is on AWS. One frontend per environment listens on the env's API port (the stack's `api_url`); its backend has two
server slots, `blue` and `green`, each pointing at the container of one published version, with a weight. Weights
and addresses change at run time over the admin socket, without a reload and without dropping a request
(`retry-on conn-failure` and `redispatch` cover a container that goes away).

Every request is logged to an in-memory ring (`show events reqlog`: time, slot, status, response ms): the live
figures of each version over any recent window, for the canary's analysis. The slots' state is also kept in a JSON
file, so `local up` brings the edge back with the same versions and weights.
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from coderemote_pipeline.local_stack.processes import spawn, wait_until
from coderemote_pipeline.rules.traffic import Traffic

HAPROXY_BINARY = "/usr/sbin/haproxy"
CMDLINE_FRAGMENT = "haproxy"
SLOTS = ("blue", "green")
START_TIMEOUT_S = 15.0
PLACEHOLDER = 1  # the address of an empty slot: nothing listens on port 1, and the slot is in maintenance


@dataclass
class Slot:
    port: int = PLACEHOLDER
    version: str = ""
    weight: int = 0


@dataclass
class EdgeState:
    envs: dict[str, dict[str, Slot]] = field(default_factory=dict)

    def slots(self, env: str) -> dict[str, Slot]:
        return self.envs.setdefault(env, {name: Slot() for name in SLOTS})

    def to_json(self) -> str:
        return json.dumps({env: {n: asdict(s) for n, s in slots.items()} for env, slots in self.envs.items()},
                          indent=2, sort_keys=True)  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> EdgeState:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        return cls({env: {n: Slot(**s) for n, s in slots.items()} for env, slots in raw.items()})


def render_config(api_ports: dict[str, int], state: EdgeState, admin_socket: Path, pidfile: Path) -> str:
    lines = [
        "global",
        f'    stats socket "{admin_socket}" mode 600 level admin',
        f'    pidfile "{pidfile}"',
        "    log ring@reqlog format raw local0",
        "ring reqlog",
        "    format raw",
        "    maxlen 600",
        "    size 4194304",
        "defaults",
        "    mode http",
        "    log global",
        "    option dontlognull",
        "    option idle-close-on-response",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-keep-alive 5s",
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response",
    ]
    for env, port in sorted(api_ports.items()):
        lines += [
            f"frontend fe_{env}",
            f"    bind 127.0.0.1:{port}",
            '    log-format "%Ts.%ms %b %s %ST %Tr"',
            f"    default_backend be_{env}",
            f"backend be_{env}",
            "    balance roundrobin",
        ]
        for name, slot in state.slots(env).items():
            off = " disabled" if slot.port == PLACEHOLDER else ""
            lines.append(f"    server {name} 127.0.0.1:{slot.port} weight {slot.weight}{off}")
    return "\n".join(lines) + "\n"


def start_haproxy(config: Path, *, log_path: Path) -> int:
    return spawn([HAPROXY_BINARY, "-W", "-db", "-f", str(config)], log_path=log_path)


def wait_for_haproxy(pid: int, admin_socket: Path, *, log_path: Path) -> None:
    wait_until(lambda: edge_answers(admin_socket), timeout=START_TIMEOUT_S,
               what="API edge (haproxy) did not start", log_path=log_path, pid=pid)  # fmt: skip


def command(admin_socket: Path, commands: str, timeout: float = 5.0) -> str:
    """Commands (`;`-separated) over the admin socket; the answer text."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(admin_socket))
        sock.sendall(commands.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def edge_answers(admin_socket: Path) -> bool:
    try:
        return "Name:" in command(admin_socket, "show info", timeout=1.0)
    except OSError:
        return False


def apply(admin_socket: Path, env: str, slots: dict[str, Slot]) -> None:
    """Point the env's slots at their ports with their weights, in one round trip (the split changes at once)."""
    commands = []
    for name, slot in slots.items():
        server = f"be_{env}/{name}"
        if slot.port == PLACEHOLDER:
            commands += [f"set server {server} weight 0", f"set server {server} state maint"]
        else:
            commands += [f"set server {server} addr 127.0.0.1 port {slot.port}", f"set server {server} state ready",
                         f"set server {server} weight {slot.weight}"]  # fmt: skip
    # Raise weights after lowering none: commands run in order, and each slot's weight is set in one go.
    command(admin_socket, "; ".join(commands))


def traffic(admin_socket: Path, env: str, since: float) -> dict[str, Traffic]:
    """Per slot, what its server answered since `since` (epoch seconds), from the request ring."""
    seen: dict[str, list[tuple[int, int]]] = {name: [] for name in SLOTS}
    for line in command(admin_socket, "show events reqlog").splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[1] != f"be_{env}" or parts[2] not in seen:
            continue
        try:
            at, status, response_ms = float(parts[0]), int(parts[3]), int(parts[4])
        except ValueError:
            continue
        if at >= since:
            seen[parts[2]].append((status, response_ms))
    return {name: Traffic(len(rows), sum(1 for s, _ in rows if s >= 500), tuple(ms for _, ms in rows if ms >= 0))
            for name, rows in seen.items()}  # fmt: skip

"""The AWS emulator's process: moto's server app, whose memory survives a clean stop.

moto keeps every account, region and resource in memory. Run as `python -m coderemote_pipeline.local_stack.emulator
--port N --memory FILE`, this process answers exactly as `python -m moto.server` does, and on SIGTERM (what
`local down` and `up`'s repair send) it writes everything moto holds to FILE before it exits; the next start reads
FILE back and removes it. So `local down` + `local up` bring back the same functions, versions, aliases, buckets,
repositories, distributions and secrets, with the same ids and ARNs — what the ledger's live records name.

The file is read once: an emulator that is killed (SIGKILL, a crash, a reboot) leaves no file behind, and the next
one starts empty, like a cloud that lost its state; the ledger then says so as drift and the next deploy
re-provisions. The file holds what the emulator holds (the Secrets Manager values included), so it is written
owner-only, like the rest of the state dir's secrets.
"""

from __future__ import annotations

import argparse
import os
import pickle
import signal
import sys
import threading
import time
import weakref
from collections import defaultdict
from pathlib import Path
from typing import Any

# Written as one pickle so that objects shared between services stay shared when read back.
FORMAT = "coderemote-emulator-memory/1"


_LOCKS = {type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}


class _Pickler(pickle.Pickler):
    """What pickle cannot write by itself. moto's models guard themselves with locks: a lock is written as a new,
    free one (nothing holds it once the server has stopped). Its indexes hold weak references (Lambda's functions by
    ARN, EC2's VPCs): written as references to the same objects, which the pickle keeps anyway."""

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind in _LOCKS:
            return _LOCKS[kind], ()
        if kind is weakref.WeakValueDictionary or kind is weakref.WeakKeyDictionary:
            return kind, (dict(obj.items()),)
        if kind is weakref.WeakSet:
            return kind, (list(obj),)
        if kind is defaultdict and _unnamed(obj.default_factory):
            return defaultdict, (_plain_factory(obj.default_factory),), None, None, iter(obj.items())
        if kind is weakref.ref:
            target = obj()
            return (weakref.ref, (target,)) if target is not None else (_dead_ref, ())
        return NotImplemented


def _unnamed(factory: Any) -> bool:
    return factory is not None and "<" in getattr(factory, "__qualname__", "<")


def _plain_factory(factory: Any) -> type:
    """moto's `defaultdict(lambda: {})`: a lambda cannot be pickled, the empty value's type can stand for it."""
    empty = factory()
    if type(empty) in (dict, list, set) and not empty:
        return type(empty)
    raise pickle.PicklingError(f"a defaultdict whose factory makes {type(empty).__name__} values")


class _Gone:
    pass


def _dead_ref() -> weakref.ref:
    return weakref.ref(_Gone())  # refers to nothing, as the reference it stands for did


def _backend_dicts() -> list[Any]:
    from moto.core.base_backend import BackendDict

    # Every BackendDict a request has touched registers itself here; untouched services hold nothing.
    return [b for b in BackendDict._instances if len(b)]  # type: ignore[attr-defined]


def dump(path: Path) -> int:
    """Write what every touched service holds to `path` (atomically, owner-only); the number of services."""
    import moto

    services = [
        (b.backend, b.service_name, {account: dict(regions) for account, regions in b.items()})
        for b in _backend_dicts()
    ]
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            _Pickler(out, pickle.HIGHEST_PROTOCOL).dump(
                {"format": FORMAT, "moto": moto.__version__, "services": services}
            )
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return len(services)


def _registered(backend_class: type, service: str) -> Any:
    """The module-level BackendDict that serves `service` (the one moto's request handlers look up)."""
    from moto.core.base_backend import BackendDict

    module = sys.modules[backend_class.__module__]
    for value in vars(module).values():
        if isinstance(value, BackendDict) and value.backend is backend_class and value.service_name == service:
            return value
    return None


def load(path: Path) -> list[str]:
    """Put what `path` holds back into moto's services, then remove `path`; the services restored."""
    import moto

    with open(path, "rb") as source:
        memory = pickle.load(source)
    path.unlink()
    if memory.get("format") != FORMAT or memory.get("moto") != moto.__version__:
        # Another moto may lay its objects out differently: starting empty is safer than half-restoring.
        print(f"emulator: ignoring {path.name}: written by moto {memory.get('moto')}, this is {moto.__version__}")
        return []
    restored = []
    for backend_class, service, accounts in memory["services"]:
        target = _registered(backend_class, service)
        if target is None:
            print(f"emulator: no service {service!r} in this moto; its saved state is dropped")
            continue
        for account, regions in accounts.items():
            holder = target[account]  # creates the account's (empty) region map
            for region, backend in regions.items():
                dict.__setitem__(holder, region, backend)
        restored.append(service)
    return restored


def serve(host: str, port: int, memory: Path) -> None:
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    if memory.exists():
        started = time.monotonic()
        try:
            restored = load(memory)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError) as exc:
            # A damaged file must not keep the emulator from starting: it starts empty, as after a kill.
            memory.unlink(missing_ok=True)
            restored = []
            print(f"emulator: {memory.name} is unreadable ({type(exc).__name__}): starting empty", flush=True)
        print(f"emulator: restored {len(restored)} service(s) in {time.monotonic() - started:.2f} s: "
              f"{', '.join(sorted(restored))}", flush=True)  # fmt: skip
    os.environ.setdefault("MOTO_PORT", str(port))  # as moto.server does: some responses carry their own URL
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    stop = threading.Event()
    # The handler only flags: dumping from inside a signal handler could interleave with a request half done.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(f"emulator: answering on http://{host}:{port}", flush=True)
    stop.wait()
    server.stop()  # no request runs while the memory is written
    try:
        count = dump(memory)
    except (pickle.PicklingError, TypeError, AttributeError, OSError) as exc:
        # The stop must still end the process: a stack that cannot go down is worse than one that forgets.
        print(f"emulator: stopped; its memory could NOT be kept ({type(exc).__name__}: {exc}): the next start is "
              "empty and the next deploy of each environment provisions it again", flush=True)  # fmt: skip
        sys.exit(1)
    print(f"emulator: stopped; {count} service(s) written to {memory.name}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="coderemote-pipeline emulator")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--memory", type=Path, required=True, help="where the memory is kept across a clean stop")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.memory)


if __name__ == "__main__":
    main()

"""The image registry: Debian's `docker-registry` (distribution 2.8), holding the layers ECR cannot.

The packaged config listens on every interface behind htpasswd auth; ours binds 127.0.0.1 only and has no
auth, which is what lets the Docker engine push to it as an "insecure" registry: the engine trusts plain
HTTP for 127.0.0.0/8 without any daemon configuration.
"""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from coderemote_pipeline.local_stack.processes import spawn, wait_until

REGISTRY_BINARY = "/usr/bin/docker-registry"
CMDLINE_FRAGMENT = "docker-registry"
START_TIMEOUT_SECONDS = 20.0


def registry_host(port: int) -> str:
    return f"127.0.0.1:{port}"


def registry_answers(host: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}/v2/", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def write_config(path: Path, *, port: int, storage_dir: Path) -> Path:
    config = {
        "version": "0.1",
        # Access logs would grow by a line per blob request for every push; warnings are what we read.
        "log": {"level": "warn", "accesslog": {"disabled": True}, "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage_dir)},
            "cache": {"blobdescriptor": "inmemory"},
            # Lets the pipeline delete manifests (image cleanup) as it would with ECR lifecycle rules.
            "delete": {"enabled": True},
        },
        "http": {
            "addr": registry_host(port),
            # Signs upload state between requests; without one the registry warns and invents its own.
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
    }
    storage_dir.mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_registry(port: int, *, config_path: Path, storage_dir: Path, log_path: Path) -> int:
    """Write the config for `port` and spawn the registry; returns its pid without waiting."""
    write_config(config_path, port=port, storage_dir=storage_dir)
    return spawn([REGISTRY_BINARY, "serve", str(config_path)], log_path=log_path)


def wait_for_registry(pid: int, port: int, *, log_path: Path) -> None:
    host = registry_host(port)
    wait_until(
        lambda: registry_answers(host, timeout=1.0),
        timeout=START_TIMEOUT_SECONDS,
        what=f"Image registry at {host} did not start",
        log_path=log_path,
        pid=pid,
    )

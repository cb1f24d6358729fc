"""The code-location image (deploy/Dockerfile): its base, its build context, and the build itself.

No image can be pulled here and the local base has no pip, so the context carries everything: the project's
runtime dependencies copied from this virtualenv (the files each installed distribution lists in its RECORD),
and the project's source. That is sound because the image's Python is CPython 3.11 like the virtualenv's (same
ABI tag, cp311, for every compiled wheel) on the same Debian (same glibc); the Dockerfile's RUN step imports the
compiled packages, so a mismatch fails the build. The base (python3, git, node/npm) is made with mmdebstrap like
the API's base image and cached as a tarball outside the state dir.

    python -m coderemote_pipeline.usecases.code_image --docker-host unix:///…/docker.sock [--tag NAME] [--local-only]
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.metadata as md
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import docker
from packaging.requirements import Requirement

from coderemote_pipeline.local_stack.base_image import default_cache_dir
from coderemote_pipeline.resources.docker_engine import ImageBuildFailed
from coderemote_pipeline.rules.settings import PROJECT_ROOT

CODE_BASE_IMAGE = "coderemote/code-location-base:bookworm"
CODE_IMAGE = "coderemote/code-location:dev"
DOCKERFILE = PROJECT_ROOT / "deploy" / "Dockerfile"
MMDEBSTRAP_ARGS = (
    "--variant=essential",
    "--include=python3,git,ca-certificates,nodejs,npm",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "bookworm",
)
ROOTFS_LABEL = "coderemote.rootfs"
# The local stack runs the emulator itself on the host; the code location never imports it.
NOT_IN_IMAGE = {"moto"}
# Only the Pulumi program imports the AWS provider SDK (119 MB, half the context): an image for the local target
# (`--local-only`) leaves it out.
AWS_ONLY = {"pulumi-aws"}
KEY_LABEL = "coderemote.context-key"
APP_PARTS = ("coderemote_pipeline", "infra", "workspace.yaml", "pyproject.toml")


def _key() -> str:
    return hashlib.sha256("\0".join(MMDEBSTRAP_ARGS).encode()).hexdigest()[:12]


def ensure_code_base(client: docker.DockerClient, cache_dir: Path | None = None) -> str:
    """The base image in this engine (python3, git, node/npm), imported from a cached mmdebstrap tarball."""
    try:
        image = client.images.get(CODE_BASE_IMAGE)
        if (image.labels or {}).get(ROOTFS_LABEL) == _key():
            return str(image.id)
    except docker.errors.ImageNotFound:
        pass
    cache = cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"code-location-base-{_key()}.tar"
    with open(cache / "code-location-base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not tarball.exists():
            partial = tarball.with_suffix(".partial.tar")
            log = cache / "code-location-base.log"
            with open(log, "wb") as out:
                done = subprocess.run(["mmdebstrap", *MMDEBSTRAP_ARGS, str(partial)], stdin=subprocess.DEVNULL,
                                      stdout=out, stderr=subprocess.STDOUT, timeout=1200, check=False)  # fmt: skip
            if done.returncode != 0:
                partial.unlink(missing_ok=True)
                raise ImageBuildFailed(f"mmdebstrap of the code-location base failed: see {log}")
            partial.rename(tarball)  # only a complete tarball ever looks cached
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"LABEL {ROOTFS_LABEL}={_key()}",
    ]
    repository, tag = CODE_BASE_IMAGE.split(":")
    client.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=changes)
    return str(client.images.get(CODE_BASE_IMAGE).id)


def runtime_distributions(root: str = "coderemote-pipeline", *, local_only: bool = False) -> list[md.Distribution]:
    """The installed distributions this project needs at run time: its requirements, transitively, no extras."""
    skip = NOT_IN_IMAGE | (AWS_ONLY if local_only else set())
    found: dict[str, md.Distribution] = {}
    pending = [(Requirement(r), ()) for r in md.requires(root) or []]
    while pending:
        requirement, extras = pending.pop()
        env = {"extra": extras[0]} if extras else {"extra": ""}
        if requirement.marker is not None and not requirement.marker.evaluate(env):
            continue
        name = requirement.name.lower().replace("_", "-")
        if name in skip or name in found:
            continue
        dist = md.distribution(requirement.name)
        found[name] = dist
        for extra in requirement.extras or {""}:
            pending += [(Requirement(r), (extra,) if extra else ()) for r in dist.requires or []]
    return list(found.values())


def _app_files() -> list[Path]:
    files: list[Path] = []
    for part in APP_PARTS:
        source = PROJECT_ROOT / part
        found = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        files += [f for f in found if "__pycache__" not in f.parts and ".pulumi" not in f.parts]
    return files


def context_key(*, local_only: bool = False) -> str:
    """Names what the image is built from (dependency versions, project files, Dockerfile, base), so an engine
    that already holds the image skips the build."""
    digest = hashlib.sha256(_key().encode())
    for dist in sorted(runtime_distributions(local_only=local_only), key=lambda d: d.metadata["Name"].lower()):
        digest.update(f"{dist.metadata['Name']}=={dist.version}\n".encode())
    for file in [*_app_files(), DOCKERFILE]:
        digest.update(str(file.relative_to(PROJECT_ROOT)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def _console_scripts(bin_dir: Path, *, local_only: bool) -> None:
    """`dagster`, `dagster-daemon`, ... for the image's python3: the run launchers start runs with `dagster api
    execute_run`, and the virtualenv's own scripts point at its interpreter."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for dist in runtime_distributions(local_only=local_only):
        for entry in dist.entry_points.select(group="console_scripts"):
            module, _, attr = entry.value.partition(":")
            script = bin_dir / entry.name
            # The __main__ guard matters: forkserver and spawn re-import the main module in every step process.
            script.write_text(f"#!/usr/bin/python3\nimport sys\nfrom {module} import {attr.split('.')[0]}\n\n"
                              f"if __name__ == '__main__':\n    sys.exit({attr}())\n")  # fmt: skip
            script.chmod(0o755)


def prepare_context(dest: Path, *, local_only: bool = False) -> Path:
    """deploy/Dockerfile, site-packages/ (copied from this virtualenv), bin/ (their console scripts) and app/ (the
    project's source)."""
    site = dest / "site-packages"
    for dist in runtime_distributions(local_only=local_only):
        base = Path(str(dist.locate_file("")))
        for file in dist.files or []:
            source = base / file
            if file.parts[0] == ".." or "__pycache__" in file.parts or not source.is_file():
                continue  # console scripts point at this virtualenv's interpreter; bytecode is rebuilt
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    _console_scripts(dest / "bin", local_only=local_only)
    for file in _app_files():
        target = dest / "app" / file.relative_to(PROJECT_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
    shutil.copy2(DOCKERFILE, dest / "Dockerfile")
    return dest


def build_code_image(
    client: docker.DockerClient, tag: str = CODE_IMAGE, *, local_only: bool = False
) -> tuple[str, dict[str, float]]:
    """Build deploy/Dockerfile on the locally made base (unless this engine has it already, by context key);
    returns the image id and seconds per phase."""
    seconds: dict[str, float] = {}
    started = time.monotonic()
    key = context_key(local_only=local_only)
    existing = client.images.list(filters={"label": f"{KEY_LABEL}={key}"})
    if existing:
        existing[0].tag(*tag.split(":"))
        return str(existing[0].id), {"reused_s": round(time.monotonic() - started, 1)}
    ensure_code_base(client)
    seconds["base_s"] = round(time.monotonic() - started, 1)
    with tempfile.TemporaryDirectory(prefix="coderemote-code-image-") as tmp:
        mark = time.monotonic()
        context = prepare_context(Path(tmp), local_only=local_only)
        seconds["context_s"] = round(time.monotonic() - mark, 1)
        mark = time.monotonic()
        log: list[str] = []
        for chunk in client.api.build(path=str(context), tag=tag, buildargs={"BASE_IMAGE": CODE_BASE_IMAGE},
                                      labels={KEY_LABEL: key}, network_mode="host", rm=True, forcerm=True,
                                      decode=True):  # fmt: skip
            log += chunk.get("stream", "").splitlines()
            if "error" in chunk:
                raise ImageBuildFailed(f"code-location image build failed: {chunk['error']}\n" + "\n".join(log[-20:]))
        seconds["build_s"] = round(time.monotonic() - mark, 1)
    return str(client.images.get(tag).id), seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the code-location image from deploy/Dockerfile.")
    parser.add_argument("--docker-host", default=None, help="the engine to build on (default: DOCKER_HOST)")
    parser.add_argument("--tag", default=CODE_IMAGE)
    parser.add_argument("--local-only", action="store_true", help="leave out what only the aws target needs")
    args = parser.parse_args(argv)
    client = docker.DockerClient(base_url=args.docker_host, timeout=600) if args.docker_host else docker.from_env()
    image_id, seconds = build_code_image(client, args.tag, local_only=args.local_only)
    print(f"{args.tag} {image_id[:19]} {seconds}")


if __name__ == "__main__":
    main()

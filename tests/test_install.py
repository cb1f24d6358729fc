"""A non-editable install works from any directory: the policy files come with it (data files under the
environment's share/), and the command and the definitions load without the checkout.

The project is installed into a fresh venv of its own; its dependencies come from the project's venv through a
path entry (installing Dagster again would fetch hundreds of MB), which does not enable the checkout's editable
install of the package itself: the test asserts the package is imported from the new venv."""

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from coderemote_pipeline.rules.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("install")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    ours = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "dagster").is_dir())
    (site / "deps-from-project-venv.pth").write_text(f"{ours}\n")
    # Built as pip would for `pip install .` (an isolated build of a wheel), from a copy: the build leaves
    # its build/ directory in the tree it builds.
    source = root / "source"
    shutil.copytree(PROJECT_ROOT, source, ignore=shutil.ignore_patterns(".venv", ".state", ".git", "node_modules",
                                                                         "__pycache__", "build", "dist"))  # fmt: skip
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root / "dist"), str(source)],
                   check=True, capture_output=True, text=True, timeout=600, cwd=root)  # fmt: skip
    (wheel,) = (root / "dist").glob("coderemote_pipeline-*.whl")
    subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=600, cwd=root)  # fmt: skip
    return env_dir


def _run(env_dir: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "CODEREMOTE_STATE_DIR": str(cwd / "state")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_installed_command_and_definitions_work_from_anywhere(installed, tmp_path):
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    approvals = _run(installed, elsewhere, str(installed / "bin" / "coderemote-pipeline"), "approvals")
    assert approvals.returncode == 0, approvals.stderr
    assert "no approvals recorded yet" in approvals.stdout
    probe = (
        "import coderemote_pipeline, dagster as dg\n"
        "from coderemote_pipeline.definitions import defs\n"
        "from coderemote_pipeline.rules.environments import default_infra_dir, load_policies\n"
        "assert isinstance(defs(), dg.Definitions)\n"
        "print(coderemote_pipeline.__file__)\n"
        "print(default_infra_dir())\n"
        "print(load_policies()['prod'].approval.value)\n"
    )
    loaded = _run(installed, elsewhere, str(installed / "bin" / "python"), "-c", probe)
    assert loaded.returncode == 0, loaded.stderr
    package, infra, approval = loaded.stdout.split()
    assert Path(package).is_relative_to(installed) and not Path(package).is_relative_to(PROJECT_ROOT)
    assert Path(infra) == installed / "share" / "coderemote-pipeline" / "infra" and approval == "required"
    for command in ("deploy", "rollback", "status", "history", "approve", "ui", "local", "retry", "promote"):
        helped = _run(installed, elsewhere, str(installed / "bin" / "coderemote-pipeline"), command, "--help")
        assert helped.returncode == 0 and "usage:" in helped.stdout, helped.stderr

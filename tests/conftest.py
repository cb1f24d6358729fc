"""Shared fixtures: one real local stack per test session, real git remotes of the example apps, a persistent
Dagster instance. Everything started here is stopped here, by PID or container id (LocalStack.down)."""

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from coderemote_pipeline.ledger.instance import prepare_home
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, make_app_repo


def pytest_configure(config):
    """The suite's environment policy: the project's, but prod takes a release all at once. A canary waits minutes
    for live traffic that most tests do not send; the tests of progressive delivery set their own policy."""
    import tempfile

    import yaml

    from coderemote_pipeline.rules.environments import DEFAULT_INFRA_DIR

    infra = Path(tempfile.mkdtemp(prefix="coderemote-test-infra-")) / "infra"
    shutil.copytree(DEFAULT_INFRA_DIR, infra, ignore=shutil.ignore_patterns("__pycache__"))
    table = yaml.safe_load((infra / "environments.yaml").read_text())
    table["environments"]["prod"]["delivery"] = {"strategy": "all_at_once"}
    (infra / "environments.yaml").write_text(yaml.safe_dump(table, sort_keys=False))
    os.environ["CODEREMOTE_INFRA_DIR"] = str(infra)
    config._coderemote_infra = infra


def pytest_unconfigure(config):
    infra = getattr(config, "_coderemote_infra", None)
    if infra is not None:
        shutil.rmtree(infra.parent, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    has_aws = bool(os.environ.get("AWS_PROFILE") or os.environ.get("AWS_ACCESS_KEY_ID")) and shutil.which("pulumi")
    skip = pytest.mark.skip(reason="needs real AWS credentials and the Pulumi CLI (see docs/aws.md)")
    for item in items:
        if "aws" in item.keywords and not has_aws:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def commands_leave_the_worker_as_they_found_it():
    """A deploy command run in this process (`main(["deploy", ...])`) takes the hang-up, the broken pipe and SIGTERM
    for itself and wraps stdout/stderr (cli/outlive.py), as its own process should; not for the tests after it."""
    import signal
    import sys

    from coderemote_pipeline.cli.outlive import unwrapped

    kept = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE)}
    yield
    for signum, handler in kept.items():
        signal.signal(signum, handler)
    sys.stdout, sys.stderr = unwrapped(sys.stdout), unwrapped(sys.stderr)


@pytest.fixture
def repo(tmp_path):
    """A real bare remote with one commit on main, and a working clone that pushes into it (sensor_kit.AppRepo)."""
    from sensor_kit import AppRepo

    repo = AppRepo(tmp_path / "app")
    repo.push("initial import")
    return repo


@pytest.fixture
def cli_env(tmp_path, repo, monkeypatch):
    """The CLI's variables for one test: its own state dir, `repo` as the app remote, no other setting inherited."""
    for name in ("DAGSTER_HOME", "CODEREMOTE_APP_CONFIG", "CODEREMOTE_TARGET", "CODEREMOTE_INFRA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CODEREMOTE_APP_REMOTE", str(repo.remote))
    return {"tmp": tmp_path, "repo": repo}


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="session")
def local_stack(state_dir):
    from coderemote_pipeline.local_stack import LocalStack

    stack = LocalStack(state_dir)
    info = stack.up()
    try:
        yield info
    finally:
        stack.down()


@pytest.fixture(scope="session")
def app_remote(tmp_path_factory) -> tuple[Path, Path]:
    """(bare remote, working clone) of the example app, a real git repository."""
    root = tmp_path_factory.mktemp("app")
    make_app_repo(EXAMPLE_APP, root / "code-remote-app.git", root / "clone")
    return root / "code-remote-app.git", root / "clone"


@pytest.fixture(scope="session")
def settings(state_dir, app_remote, local_stack) -> Settings:
    return Settings(target="local", state_dir=state_dir, app_remote=str(app_remote[0]), app_config=None)


@pytest.fixture(scope="session")
def instance(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    prepare_home(home)
    with dg.DagsterInstance.from_config(str(home)) as inst:
        yield inst


@pytest.fixture(scope="session")
def postgres():
    """A throwaway Postgres server (Debian's binaries, a temp dir, a free port) for the team profile's tests; each
    module makes its own database on it. Stopped by its PID at the end of the session."""
    from testkit.postgres import PostgresCluster

    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()

"""The app config is strict and never leads out of the repository: refused when it loads, and again against the
release's commit, before any run is launched; no host file's content reaches a message."""

import os
from pathlib import Path

import dagster as dg
import pytest

from coderemote_pipeline.cli.main import main
from coderemote_pipeline.rules import frontend_files as ff
from coderemote_pipeline.rules.app_layout import AppLayout, load_app_layout
from coderemote_pipeline.rules.schema import ConfigError
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, make_app_repo

HOST_SECRET_LINE = Path("/etc/passwd").read_text().splitlines()[0]


@pytest.fixture
def app(tmp_path, monkeypatch):
    remote, clone = tmp_path / "app.git", tmp_path / "clone"
    make_app_repo(EXAMPLE_APP, remote, clone)
    monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("CODEREMOTE_APP_CONFIG", raising=False)
    return remote, clone, tmp_path


def _deploy(app, config_text: str, capsys) -> tuple[int, str]:
    remote, _, root = app
    config = root / "app.yaml"
    config.write_text(config_text)
    code = main(["deploy", "dev", "main", "--remote", str(remote), "--app-config", str(config)])
    out = capsys.readouterr()
    assert HOST_SECRET_LINE not in out.out + out.err
    assert "Traceback" not in out.err
    return code, out.err


def _no_runs(root: Path) -> bool:
    home = root / "state" / "dagster_home"
    if not (home / "dagster.yaml").exists():
        return True
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return not instance.get_runs()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("backend_context: .\ndockerfile: ../../../../etc/passwd\n",
         "dockerfile: '../../../../etc/passwd' leaves the repository"),
        ("backend_context: ../../etc\n", "backend_context: '../../etc' leaves the repository"),
        ("backend_context: /etc\n", "backend_context: '/etc' is absolute"),
        ("dockerfile: /etc/passwd\n", "dockerfile: '/etc/passwd' is absolute"),
        ("frontend_output_dir: ../../../tmp\n", "frontend_output_dir: '../../../tmp' leaves the repository"),
        ("dockerfil: Dockerfile\n", "unknown key 'dockerfil'; did you mean 'dockerfile'?"),
        ("frontend_env_mode: buildtime\n",
         "'buildtime' is not one of runtime_config, build_time; did you mean 'build_time'?"),
        ("health_path: health\n", "health_path: 'health' must be a URL path starting with '/'"),
        ("frontend_build_command: ''\n", "frontend_build_command: is empty: give the command line to run"),
        ("- just a list\n", "expected a mapping of keys at the top level"),
        ("root:*:20228:0:99999:7:::\n", "unknown key on line 1 that is not a key name (is this the right file?)"),
    ],
)  # fmt: skip
def test_refused_when_the_config_loads(app, capsys, config, message):
    code, err = _deploy(app, config, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: app config ") and message in err
    assert _no_runs(app[2])


def _commit_links(clone: Path, links: dict[str, str]) -> None:
    for name, target in links.items():
        path = clone / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
    commit_and_push(clone, "links")


@pytest.mark.parametrize(
    ("links", "config", "message"),
    [
        ({"backend/Dockerfile.host": "/etc/passwd"}, "dockerfile: Dockerfile.host\n",
         "dockerfile 'backend/Dockerfile.host' is refused: 'backend/Dockerfile.host' is a symlink"),
        ({"linked": "/etc"}, "backend_context: linked\n", "backend_context 'linked' is refused: 'linked' is a symlink"),
        ({"backend/app/hostfile": "/etc/passwd"}, "", "holds symlink(s) pointing outside it: 'backend/app/hostfile'"),
        ({"backend/app/up": "../../frontend"}, "", "holds symlink(s) pointing outside it: 'backend/app/up'"),
        ({"frontend/src/leak": "../../../../etc/passwd"}, "", "frontend_dir 'frontend' of commit"),
        ({}, "backend_context: backnd\n", "backend_context 'backnd' does not exist in commit"),
        ({}, "backend_context: backnd\n", "point backend_context in the app config at a path that commit has, or "
                                          "deploy one that has it"),
    ],
)  # fmt: skip
def test_refused_against_the_commits_tree(app, capsys, links, config, message):
    _commit_links(app[1], links)
    code, err = _deploy(app, config or "backend_context: backend\n", capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert _no_runs(app[2])


def test_a_link_inside_the_context_is_fine(app, capsys):
    remote, clone, root = app
    _commit_links(clone, {"backend/app/alias.py": "server.py"})
    from coderemote_pipeline.resources.app_source import AppSource

    source = AppSource(remote_url=str(remote), work_dir=str(root / "work"))
    commit = source.remote().resolve("main").commit
    source.check_paths(commit)
    exported = source.export_backend(commit, root / "ctx")
    assert (exported / "app" / "alias.py").is_symlink() and (exported / "Dockerfile").is_file()


def test_a_bundle_symlink_is_never_followed(tmp_path):
    (tmp_path / "index.html").write_text("<html></html>")
    (tmp_path / "leak").symlink_to("/etc/passwd")
    with pytest.raises(ff.BundleLinkRefused, match="symlink 'leak'"):
        ff.collect(tmp_path)


def test_layout_defaults_and_normalisation(tmp_path):
    assert load_app_layout(None) == AppLayout()
    config = tmp_path / "app.yaml"
    config.write_text("backend_context: ./services//api/\ndockerfile: docker/../Containerfile\n")
    layout = load_app_layout(config)
    assert (layout.backend_context, layout.dockerfile) == ("services/api", "Containerfile")
    assert layout.dockerfile_in_repo == "services/api/Containerfile"
    assert AppLayout.from_json(layout.to_json()) == layout
    with pytest.raises(ConfigError, match="file not found"):
        load_app_layout(tmp_path / "missing.yaml")


GOOGLE_KEY = "AIzaSyA1bC2dE3fG4hI5jK6lM7nO8pQ9rS0tU1v"
CHECK = "{name: unit, side: backend, command: make test"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (f"checks: [{CHECK}, timeout_s: {GOOGLE_KEY}}}]\n", "checks[0].timeout_s must be a number, got text"),
        (f"checks: [{CHECK}, timeout_s: true}}]\n", "checks[0].timeout_s must be a number, got true"),
        (f"checks: [{CHECK}, timeout_s: '60'}}]\n", "checks[0].timeout_s must be a number, got the text '60'"),
        (f"checks: [{CHECK}, timeout_s: 0}}]\n", "checks[0].timeout_s must be more than 0, got 0"),
        ("checks: null\n", "checks must be a list of mappings, got null"),
        ("checks: abc\n", "checks must be a list of mappings, got the text 'abc'"),
        ("checks: {name: unit}\n", "checks must be a list of mappings, got a mapping"),
        ("checks: [1]\n", "checks[0] must be a mapping of keys, got 1"),
        ("checks: [{1: x}]\n", "checks[0]: keys must be names, got 1"),
        ("1: x\n", "(top level): keys must be names, got 1"),
        ("dockerfile: 5\n", "dockerfile must be text, got 5 (quote it if it is meant as text)"),
        (f"frontend_env_mode: {GOOGLE_KEY}\n", "frontend_env_mode must be one of runtime_config, build_time, got text"),
        (f"health_path: {GOOGLE_KEY}\n", "health_path: the value must be a URL path starting with '/', e.g. /health"),
        (f"container_command: TOKEN={GOOGLE_KEY} 'npm run\n",
         "container_command: the command is not a command line (No closing quotation)"),
        (f"dockerfile: /{GOOGLE_KEY}\n",
         "dockerfile: the path is absolute: paths are relative to the app's repository"),
        (f"checks: [{CHECK}}}, {CHECK}}}]\n", "checks: every check needs its own name; unit is used twice"),
    ],
)  # fmt: skip
def test_a_mistake_says_what_to_write_and_never_echoes_the_value(tmp_path, config, message):
    path = tmp_path / "app.yaml"
    path.write_text(config)
    with pytest.raises(ConfigError) as err:
        load_app_layout(path)
    assert str(err.value) == f"app config {path}: {message}" and GOOGLE_KEY[:12] not in str(err.value)

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
        ("- just a list\n", "expected a mapping of keys at the top level"),
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

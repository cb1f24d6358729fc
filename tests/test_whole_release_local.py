"""An environment is always one whole release, and `status` says what really serves, on the real local stack:
a Dockerfile that fails to build leaves dev wholly on its previous release (API and site); an API container
stopped behind the pipeline's back is reported down, and `local up` brings it back; a rollback uses the layout the
release was built with, whatever the caller's configuration says."""

import json
import shutil
import urllib.request
from dataclasses import replace

import docker
import pytest

from coderemote_pipeline.cli.main import main
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.rules.settings import PROJECT_ROOT
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, make_app_repo
from coderemote_pipeline.usecases.deploy import run_deployment

pytestmark = pytest.mark.stack
QUIET = {"echo": lambda _: None}
ALT_APP = PROJECT_ROOT / "tests" / "fixtures" / "alt-app"


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _serves(live) -> tuple[str, str]:
    outputs = live.stack_outputs
    return _get(outputs["api_url"] + "/health")["release"], _get(outputs["frontend_url"] + "/config.json")["release"]


@pytest.fixture
def cli_env(settings, instance, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
    monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(settings.state_dir))
    monkeypatch.delenv("CODEREMOTE_APP_CONFIG", raising=False)


def test_a_dockerfile_that_fails_to_build_leaves_dev_whole(settings, instance, tmp_path, cli_env, capsys):
    remote, clone = tmp_path / "app.git", tmp_path / "clone"
    make_app_repo(EXAMPLE_APP, remote, clone)
    mine = replace(settings, app_remote=str(remote))
    good = run_deployment("dev", "main", settings=mine, instance=instance, **QUIET)
    assert good.success, good.failure
    dockerfile = clone / "backend" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN exit 3\n")
    (clone / "frontend" / "src" / "style.css").write_text("body { color: red; }\n")  # a new site, ready first
    commit_and_push(clone, "a Dockerfile that does not build")
    broken = run_deployment("dev", "main", settings=mine, instance=instance, **QUIET)
    assert not broken.success and broken.failure.startswith("api_image: docker build of Dockerfile failed")
    assert f"dev serves {good.release} " in broken.failure and "as one whole release" in broken.failure
    assert "traffic_shift" not in broken.stages
    assert _serves(recorded_live(instance, "dev")) == (good.release, good.release)
    assert main(["status", "dev"]) == 0
    assert "API ok" in capsys.readouterr().out


def test_status_reports_an_api_stopped_behind_its_back_and_local_up_revives_it(settings, instance, local_stack,
                                                                                cli_env, capsys):  # fmt: skip
    live = recorded_live(instance, "dev")
    engine = docker.DockerClient(base_url=local_stack.docker_host)
    # One container per version it keeps (the live one and the one before): stop the live one.
    labels = ["coderemote.env=dev", f"coderemote.version={live.version}"]
    (container,) = engine.containers.list(filters={"label": labels})
    container.stop(timeout=2)
    assert main(["status", "dev"]) == 3
    out = capsys.readouterr().out
    assert "API DOWN" in out and "does not answer" in out and "coderemote-pipeline local up" in out
    assert main(["local", "up"]) == 0
    assert f"API revived:   dev: {live.release}" in capsys.readouterr().out
    assert main(["status", "dev"]) == 0 and "API ok" in capsys.readouterr().out
    assert _serves(live)[0] == live.release


def test_a_rollback_uses_the_layout_the_release_was_built_with(settings, instance, tmp_path, cli_env, capsys,
                                                              monkeypatch):  # fmt: skip
    remote, clone = tmp_path / "alt.git", tmp_path / "alt"
    make_app_repo(ALT_APP, remote, clone)
    alt = replace(settings, app_remote=str(remote), app_config=PROJECT_ROOT / "tests" / "fixtures" / "alt-app.yaml")
    first = run_deployment("staging", "main", settings=alt, instance=instance, **QUIET)
    assert first.success, first.failure
    (clone / "services" / "api" / "svc" / "NOTE").write_text("second\n")
    second = run_deployment("staging", commit_and_push(clone, "second"), settings=alt, instance=instance, **QUIET)
    assert second.success, second.failure
    shutil.rmtree(clone)
    # The caller knows nothing of the alt layout (no --app-config, another remote): the record does.
    monkeypatch.setenv("CODEREMOTE_APP_REMOTE", str(tmp_path / "some-other-app.git"))
    assert main(["rollback", "staging"]) == 0, capsys.readouterr()
    live = recorded_live(instance, "staging")
    assert live.release == first.release
    assert _get(live.stack_outputs["api_url"] + "/status")["release"] == first.release


def test_infra_history_lists_the_pipelines_updates_of_dev_with_their_releases(instance, cli_env, capsys):
    live = recorded_live(instance, "dev")
    assert main(["infra", "dev", "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(" run " in line and " change(s): " in line for line in lines), lines
    assert any(f" {live.release} " in line for line in lines), lines  # each update names its release and run
    assert main(["infra", "dev", "preview"]) == 0
    assert capsys.readouterr().out == "dev: nothing to change\n"

"""The realistic app the deploy bench measures (testkit/realistic_app.py): a repository with the example app's
contract whose builds need no network — its dependencies are in the repository — and whose layout validates."""

import subprocess

import pytest

from coderemote_pipeline.rules.app_layout import AppLayout
from coderemote_pipeline.rules.schema import read_yaml_mapping, validate
from testkit.realistic_app import FEATURE_MODULES, REQUIREMENTS, make_realistic_repo


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    root = tmp_path_factory.mktemp("realistic")
    commit = make_realistic_repo(root / "app.git", root / "clone")
    return root / "clone", commit


def _tracked(clone, path: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", path], cwd=clone, check=True, capture_output=True, text=True).stdout
    return out.split()


def test_its_layout_validates_and_names_its_checks(realistic):
    clone, _ = realistic
    layout = validate(AppLayout, read_yaml_mapping(clone / "coderemote.yaml"), source="coderemote.yaml")
    assert {c.name for c in layout.checks} == {"backend_tests", "backend_lint", "frontend_check"}
    assert (clone / layout.backend_context / layout.dockerfile).is_file()


def test_its_dependencies_are_in_the_repository_so_builds_need_no_network(realistic):
    clone, commit = realistic
    wheels = {name.rsplit("/", 1)[-1].split("-")[0].lower().replace("_", "-")
              for name in _tracked(clone, "backend/wheels")}  # fmt: skip
    assert set(REQUIREMENTS) | {"pip", "botocore", "pydantic-core"} <= wheels
    dockerfile = (clone / "backend" / "Dockerfile").read_text()
    assert "--no-index --find-links /build/wheels" in dockerfile
    assert _tracked(clone, "frontend/node_modules/typescript/bin/tsc")
    assert len(_tracked(clone, "frontend/features")) == FEATURE_MODULES
    assert subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout == ""
    head = subprocess.run(["git", "rev-parse", "origin/main"], cwd=clone, capture_output=True, text=True).stdout
    assert head.strip() == commit

"""Resources a stage needs beside the one a unit test is about."""

from pathlib import Path


def policy_resources(work_dir: Path) -> dict:
    """The resources a stage needs beside the one under test: the policy files and an app source (unused remote)."""
    from coderemote_pipeline.resources.app_source import AppSource
    from coderemote_pipeline.resources.environments import Environments
    from coderemote_pipeline.rules.environments import DEFAULT_INFRA_DIR

    return {
        "environments": Environments(infra_dir=str(DEFAULT_INFRA_DIR)),
        "app_source": AppSource(remote_url=str(work_dir / "no-remote.git"), work_dir=str(work_dir / "work")),
    }

"""What every bench needs: a state dir of its own, quiet deploys that stop the bench on failure, approved tags."""

import sys
import tempfile
from pathlib import Path

from coderemote_pipeline.cli.approvals import record_decision
from coderemote_pipeline.demo import git
from coderemote_pipeline.deploy import DeployOutcome
from coderemote_pipeline.release_rules import parse_release_key
from coderemote_pipeline.settings import Settings


def quiet(_: str) -> None:
    pass


def checked(outcome: DeployOutcome) -> DeployOutcome:
    if not outcome.success:
        sys.exit(f"{outcome.env}|{outcome.release} failed: {outcome.failure}")
    return outcome


def bench_settings(prefix: str) -> tuple[Path, Settings]:
    """A temporary root holding the bench's own state dir and app remote."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    return root, Settings("local", root / "state", str(root / "app.git"), None)


def tag_and_approve(settings: Settings, instance, clone: Path, tag: str) -> None:
    git("tag", tag, cwd=clone)
    git("push", "--quiet", "origin", tag, cwd=clone)
    record_decision(settings, instance, "prod", parse_release_key(tag), by="bench", decision="approve", reason="")

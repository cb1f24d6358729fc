"""What every bench needs: a state dir of its own, quiet deploys that stop the bench on failure, approved tags."""

import sys
import tempfile
from pathlib import Path

# testkit/ sits beside the package, not in it: benches import it from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coderemote_pipeline.rules.release_keys import parse_release_key
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.usecases.approve import record_decision
from coderemote_pipeline.usecases.demo import git
from coderemote_pipeline.usecases.deploy import DeployOutcome


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

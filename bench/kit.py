"""What every bench needs: a state dir of its own, quiet deploys that stop the bench on failure, approved tags."""

import shutil
import sys
import tempfile
from pathlib import Path

# testkit/ sits beside the package, not in it: benches import it from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from coderemote_pipeline.rules.app_layout import AppLayout, Side
from coderemote_pipeline.rules.environments import DEFAULT_INFRA_DIR
from coderemote_pipeline.rules.release_keys import parse_release_key
from coderemote_pipeline.rules.settings import Settings
from coderemote_pipeline.rules.stage_seconds import own_seconds
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
    """A temporary root holding the bench's own state dir, app remote and policy: the project's, but prod takes
    a release all at once. These benches time the deploy's own mechanics; a canary waits minutes for traffic
    nobody sends here (bench/canary.py times the shift)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    infra = root / "infra"
    shutil.copytree(DEFAULT_INFRA_DIR, infra, ignore=shutil.ignore_patterns("__pycache__"))
    table = yaml.safe_load((infra / "environments.yaml").read_text())
    table["environments"]["prod"]["delivery"] = {"strategy": "all_at_once"}
    (infra / "environments.yaml").write_text(yaml.safe_dump(table, sort_keys=False))
    return root, Settings("local", root / "state", str(root / "app.git"), None, infra_dir=infra)


def tag_and_approve(settings: Settings, instance, clone: Path, tag: str) -> None:
    git("tag", tag, cwd=clone)
    git("push", "--quiet", "origin", tag, cwd=clone)
    record_decision(settings, instance, "prod", parse_release_key(tag), by="bench", decision="approve", reason="")


def critical_path_s(outcome: DeployOutcome, layout: AppLayout) -> float:
    """The floor of a deploy: its stages' own work along the longest path of the graph (infra, then the slower of
    the backend branch — image, its checks, version — and the frontend branch — bundle, its checks —, then the
    shift, the invalidation and smoke), from the seconds each stage recorded. A check reused from an earlier run
    did no work here; checks that ran side by side count their longest, frontend checks that ran ahead, beside the
    frontend build, count only where they outlasted it, and backend checks that ran ahead, beside the image's push,
    only where they outlasted the push."""

    def own(name: str) -> float:
        meta = outcome.stages.get(name, {})
        if name.startswith("check:") and not meta.get("ran", True):
            return 0.0
        return own_seconds(meta)

    def metas(side: Side) -> list[tuple[float, dict]]:
        return [(own(f"check:{c.name}"), outcome.stages.get(f"check:{c.name}", {})) for c in layout.checks_of(side)]

    def checks(side: Side) -> float:
        # Checks that ran side by side cost their longest; the others, one after another, their sum.
        found = [(s, meta) for s, meta in metas(side) if not meta.get("ran_ahead")]
        together = [s for s, meta in found if meta.get("side_by_side")]
        return sum(s for s, meta in found if not meta.get("side_by_side")) + max(together, default=0.0)

    # Checks that ran ahead started with the frontend build, one after another: the branch waits for the longer.
    ahead = sum(s for s, meta in metas(Side.FRONTEND) if meta.get("ran_ahead"))
    # The backend's started once the image was built, side by side, beside its push: the longer of the two counts.
    image = own("api_image")
    backend_ahead = [s for s, meta in metas(Side.BACKEND) if meta.get("ran_ahead")]
    if backend_ahead:
        push = float(outcome.stages.get("api_image", {}).get("push_s", 0.0) or 0.0)
        image += max(push, *backend_ahead) - push
    backend = image + checks(Side.BACKEND) + own("lambda_version")
    frontend = max(own("frontend_bundle"), ahead) + checks(Side.FRONTEND)
    return sum(own(s) for s in ("infra_stack", "traffic_shift", "cloudfront_invalidation", "smoke_result")) + max(
        backend, frontend
    )


def beside_floor(outcome: DeployOutcome, layout: AppLayout) -> str:
    floor = critical_path_s(outcome, layout)
    return f"{outcome.seconds:.2f} s (floor {floor:.2f} s, x{outcome.seconds / floor:.2f})" if floor else "-"


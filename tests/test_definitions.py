import dagster as dg

from coderemote_pipeline.assets.jobs import STAGE_ASSETS
from coderemote_pipeline.definitions import build_defs, defs
from coderemote_pipeline.rules import names, stack_outputs
from coderemote_pipeline.rules.settings import Settings


def test_definitions_load_and_resolve(tmp_path):
    settings = Settings(target="local", state_dir=tmp_path, app_remote=str(tmp_path / "app.git"), app_config=None)
    loaded = build_defs(settings)
    dg.Definitions.validate_loadable(loaded)
    assert tuple(a.key.to_user_string() for a in STAGE_ASSETS) == names.STAGES
    nodes = {name: {node.name for node in loaded.resolve_job_def(name).nodes_in_topological_order}
             for name in names.DEPLOY_JOBS}  # fmt: skip
    assert nodes == {
        names.DEPLOY_JOB: {*names.STAGES, names.BACKEND_CHECKS, names.FRONTEND_CHECKS},
        names.REDEPLOY_JOB: {*names.STAGES, names.BACKEND_CHECKS, names.FRONTEND_CHECKS},
        # Back to a release that served the env: no infra change, its checks on the record of the run that built it.
        names.ROLLBACK_JOB: set(names.STAGES[1:]),
    }
    graph = loaded.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} >= {
        *names.STAGES, names.LIVE_RELEASE, names.DELIVERY_METRICS, names.RELEASE_APPROVAL
    }
    # The switch waits for both branches; what users see changes only there.
    assert graph.get(names.key(names.TRAFFIC_SHIFT)).parent_keys == {
        names.key(names.LAMBDA_VERSION), names.key(names.FRONTEND_BUNDLE)
    }  # fmt: skip
    assert graph.get(names.key(names.SMOKE_RESULT)).parent_keys == {names.key(names.CLOUDFRONT_INVALIDATION)}
    assert graph.get(names.key(names.LIVE_RELEASE)).parent_keys == {names.key(names.SMOKE_RESULT)}
    assert graph.get(names.key(names.DELIVERY_METRICS)).parent_keys == {names.key(names.LIVE_RELEASE)}
    # The app's own checks gate the builds, one blocking asset check each.
    checks = {k.name: k.asset_key for k in graph.asset_check_keys}
    assert checks == {"backend_tests": names.key(names.API_IMAGE), "backend_lint": names.key(names.API_IMAGE),
                      "frontend_check": names.key(names.FRONTEND_BUNDLE),
                      "live_release_matches_target": names.key(names.LIVE_RELEASE)}  # fmt: skip


def test_lazy_definitions_load_without_touching_the_stack(tmp_path, monkeypatch):
    # No stack is running under this state dir: loading must not need one (no network at load time).
    monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(tmp_path))
    assert isinstance(defs(), dg.Definitions)


def test_output_keys_are_shared_constants():
    assert stack_outputs.API_URL in stack_outputs.ALL_KEYS
    assert stack_outputs.ecr_repository_name("prod") == "code-remote-prod-api"

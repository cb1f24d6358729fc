import dagster as dg

from coderemote_pipeline.definitions import JOB_NAMES, STAGES, build_defs, defs
from coderemote_pipeline.rules import stack_outputs
from coderemote_pipeline.rules.settings import Settings


def test_definitions_load_and_resolve(tmp_path):
    settings = Settings(target="local", state_dir=tmp_path, app_remote=str(tmp_path / "app.git"), app_config=None)
    loaded = build_defs(settings)
    dg.Definitions.validate_loadable(loaded)
    for name in JOB_NAMES:
        job = loaded.resolve_job_def(name)
        assert {node.name for node in job.nodes_in_topological_order} == {a.op.name for a in STAGES}
    graph = loaded.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} >= {
        "infra_stack", "api_image", "lambda_version", "frontend_bundle", "cloudfront_invalidation", "smoke_result",
        "live_release", "delivery_metrics",
    }  # fmt: skip
    assert graph.get(dg.AssetKey("smoke_result")).parent_keys == {
        dg.AssetKey("lambda_version"),
        dg.AssetKey("cloudfront_invalidation"),
    }


def test_lazy_definitions_load_without_touching_the_stack(tmp_path, monkeypatch):
    # No stack is running under this state dir: loading must not need one (no network at load time).
    monkeypatch.setenv("CODEREMOTE_STATE_DIR", str(tmp_path))
    assert isinstance(defs(), dg.Definitions)


def test_output_keys_are_shared_constants():
    assert stack_outputs.API_URL in stack_outputs.ALL_KEYS
    assert stack_outputs.ecr_repository_name("prod") == "code-remote-prod-api"

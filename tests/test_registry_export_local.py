"""An image with more new bytes than the engine pushes quickly goes out through the export path (layers gzipped on
every core, resources/image_registry.py), on the real local stack: the registry serves it, the engine pulls it back
by digest and runs it, a second push makes the same digest, and a blob record the registry contradicts heals."""

import contextlib
import hashlib
import json
import urllib.request

import docker
import pytest

from coderemote_pipeline.actions import images
from coderemote_pipeline.local_stack.stack_info import StackPaths
from coderemote_pipeline.resources import image_registry
from coderemote_pipeline.resources.targets import resources_for
from coderemote_pipeline.rules.stack_outputs import ecr_repository_name
from coderemote_pipeline.usecases.demo import commit_and_push
from coderemote_pipeline.usecases.deploy import run_deployment

pytestmark = pytest.mark.stack
REPOSITORY = "export-path-check"
LINES = 2_600_000  # ~70 MB of text: above EXPORT_FROM_BYTES, and compressible as a real layer is
WRITE = f"open('/blob','w').write(''.join(f'line {{i}} of the export check\\n' for i in range({LINES})))"
READ = "import hashlib; print(hashlib.sha256(open('/blob','rb').read()).hexdigest())"


def expected_hash() -> str:
    return hashlib.sha256("".join(f"line {i} of the export check\n" for i in range(LINES)).encode()).hexdigest()


@pytest.fixture(scope="module")
def parts(settings, tmp_path_factory):
    resources = resources_for(settings)
    ecr = resources["aws"].client("ecr")
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=REPOSITORY)
    context = tmp_path_factory.mktemp("export-image")
    (context / "Dockerfile").write_text(f'ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN python3 -c "{WRITE}"\n')
    engine = resources["docker"]
    built = engine.build(context, "Dockerfile", tag="coderemote-export-check:1",
                         buildargs={"BASE_IMAGE": engine.base_image()}, labels={})  # fmt: skip
    assert built.size_bytes - engine.client().images.get(engine.base_image()).attrs["Size"] > (
        image_registry.EXPORT_FROM_BYTES
    )
    yield resources["registry"], engine, built
    with contextlib.suppress(docker.errors.ImageNotFound):
        engine.client().images.remove(built.image_id, force=True)


def push(registry, engine, built, release: str):
    return images.push(registry, engine, built.image_id, repository=REPOSITORY, build_key="e" * 64, release=release,
                       size_bytes=built.size_bytes)  # fmt: skip


def record(settings) -> dict:
    return json.loads((StackPaths(settings.state_dir).registry_storage.parent / "layer-blobs.json").read_text())


def test_the_registry_serves_it_and_the_engine_runs_it_pulled_back_by_digest(settings, parts):
    registry, engine, built = parts
    ref = push(registry, engine, built, "v-export-1")
    diff_ids = engine.client().images.get(built.image_id).attrs["RootFS"]["Layers"]
    blobs = record(settings)
    assert set(diff_ids) <= set(blobs) and all(blobs[d]["tar_bytes"] > 0 for d in diff_ids)
    manifest, media_type, digest = registry._manifest(REPOSITORY, "v-export-1")
    assert media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert digest == ref.digest == f"sha256:{hashlib.sha256(manifest).hexdigest()}"
    parsed = json.loads(manifest)
    assert parsed["config"]["digest"] == built.image_id  # the engine's own config bytes: the same image id
    assert [layer["digest"] for layer in parsed["layers"]] == [blobs[d]["digest"] for d in diff_ids]
    assert registry.find(REPOSITORY, "v-export-1").digest == ref.digest  # registered in the emulated ECR too
    client = engine.client()
    # The engine knows the pushed name, as after its own push: containers are created from it without a pull.
    client.containers.create(registry.run_reference(ref), ["true"]).remove()
    client.images.remove(built.image_id, force=True)  # the engine must fetch every layer from the registry
    out = client.containers.run(registry.run_reference(ref), ["python3", "-c", READ], network_mode="host", remove=True)
    assert out.decode().strip() == expected_hash()
    assert client.images.get(registry.run_reference(ref)).id == built.image_id


def test_a_second_push_is_the_same_digest_and_a_contradicted_record_heals(settings, parts):
    registry, engine, built = parts
    first = push(registry, engine, built, "v-export-2")
    again = push(registry, engine, built, "v-export-3")
    assert again.digest == first.digest
    # Promoted as any image is: blob mounts into the other repository, the very same digest, every layer there.
    ecr = resources_for(settings)["aws"].client("ecr")
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=f"{REPOSITORY}-prod")
    copied = registry.copy(again, f"{REPOSITORY}-prod", ["v-export-3"])
    assert copied.digest == again.digest and registry.has_layers(copied)
    # A record naming a blob the registry never had (its storage wiped, say): the push finds out and compresses.
    path = StackPaths(settings.state_dir).registry_storage.parent / "layer-blobs.json"
    blobs = record(settings)
    base = engine.client().images.get(built.image_id).attrs["RootFS"]["Layers"][0]
    blobs[base] = {**blobs[base], "digest": "sha256:" + "0" * 64, "repository": "nowhere"}
    path.write_text(json.dumps(blobs))
    healed = push(registry, engine, built, "v-export-4")
    assert healed.digest == first.digest
    assert record(settings)[base]["digest"] != "sha256:" + "0" * 64


def test_a_deploy_whose_image_goes_out_this_way_runs_its_checks_and_serves(settings, instance, app_remote, monkeypatch):
    """The example app's image is small; with the bar at 0 its deploy takes the export path end to end: the backend's
    checks run in containers of the pushed image, the API container runs it, smoke passes."""
    clone = app_remote[1]
    (clone / "backend" / "app" / "export.txt").write_text("pushed through the export path\n")
    commit = commit_and_push(clone, "a backend change pushed through the export path")
    monkeypatch.setattr(image_registry, "EXPORT_FROM_BYTES", 0)
    outcome = run_deployment("dev", "main", settings=settings, instance=instance, echo=lambda _: None)
    assert outcome.success, outcome.failure
    assert outcome.stages["api_image"]["outcome"] == "built"
    digest = outcome.stages["api_image"]["digest"]
    manifest = json.loads(resources_for(settings)["registry"]._manifest(ecr_repository_name("dev"), digest)[0])
    blobs = {blob["digest"] for blob in record(settings).values()}
    assert {layer["digest"] for layer in manifest["layers"]} <= blobs  # every layer is one this path compressed
    api_url = outcome.stages["infra_stack"]["stack_outputs"]["api_url"]
    with urllib.request.urlopen(api_url + "/health", timeout=5) as response:
        health = json.load(response)
    assert health["release"] == outcome.release and health["commit"] == commit

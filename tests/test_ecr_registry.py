"""EcrRegistry against moto's ECR: the authorization token, layer availability, and promotion by ECR's layer API.

moto implements ECR's layer upload API and BatchCheckLayerAvailability (it even rejects out-of-order parts) but
not GetDownloadUrlForLayer: `layer_chunks`, the one method that reads a blob from its download URL, is replaced
by one serving the bytes this test uploaded. The Docker engine's push is a recording fake of its two calls.
"""

from __future__ import annotations

import hashlib
import json
import os

import moto_aws as fixtures
import pytest
from pydantic import PrivateAttr

from coderemote_pipeline.resources.ecr_registry import EcrRegistry, manifest_blobs, parse_authorization
from coderemote_pipeline.resources.image_registry import ImageRef, RegistryError

MotoAws = fixtures.MotoAws
moto_endpoint = fixtures.moto_endpoint
emulated_aws = fixtures.emulated_aws

ACCOUNT_HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class ServedRegistry(EcrRegistry):
    """moto has no download URL for a layer: serve the blobs the test uploaded, and count what was read."""

    _blobs: dict[str, bytes] = PrivateAttr(default_factory=dict)
    _downloads: list[str] = PrivateAttr(default_factory=list)

    @property
    def blobs(self) -> dict[str, bytes]:
        return self._blobs

    @property
    def downloads(self) -> list[str]:
        return self._downloads

    def layer_chunks(self, repository: str, digest: str):
        self.downloads.append(digest)
        data = self.blobs[digest]
        for start in range(0, len(data), 1024 * 1024):
            yield data[start : start + 1024 * 1024]


def upload_blob(ecr, repository: str, data: bytes) -> str:
    upload = ecr.initiate_layer_upload(repositoryName=repository)
    ecr.upload_layer_part(
        repositoryName=repository,
        uploadId=upload["uploadId"],
        partFirstByte=0,
        partLastByte=len(data) - 1,
        layerPartBlob=data,
    )
    return ecr.complete_layer_upload(
        repositoryName=repository, uploadId=upload["uploadId"], layerDigests=[digest_of(data)]
    )["layerDigest"]


def put_manifest(ecr, repository: str, manifest: str, tag: str) -> None:
    # ECR names an image by the SHA-256 of its manifest bytes; moto only if told, so tell it what ECR would compute.
    ecr.put_image(
        repositoryName=repository,
        imageManifest=manifest,
        imageManifestMediaType=MANIFEST_TYPE,
        imageTag=tag,
        imageDigest=digest_of(manifest.encode()),
    )


def manifest_for(config: bytes, layers: list[bytes]) -> str:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": digest_of(config)},
            "layers": [{"mediaType": LAYER_TYPE, "size": len(x), "digest": digest_of(x)} for x in layers],
        },
        indent=3,  # the daemon's formatting, not Python's: a copy must keep the bytes, not re-serialize
    )


@pytest.fixture
def image(emulated_aws: MotoAws, request: pytest.FixtureRequest):
    """An image in a fresh `<test>-dev` repository: a config, a 'base' layer and an 'app' layer (64 KiB unless
    the test asks for more: ECR takes parts of at most 10 MiB, so a bigger layer is uploaded in parts)."""
    ecr = emulated_aws.client("ecr")
    name = request.node.name.replace("_", "-").lower()[:40]
    source, target = f"{name}-dev", f"{name}-prod"
    for repository in (source, target):
        ecr.create_repository(repositoryName=repository)
    app = os.urandom(getattr(request, "param", 64 * 1024))
    config, base = b'{"architecture":"amd64"}', b"base-layer" * 1000
    for blob in (config, base, app):
        upload_blob(ecr, source, blob)
    manifest = manifest_for(config, [base, app])
    digest = digest_of(manifest.encode())
    put_manifest(ecr, source, manifest, "build-1")
    uri = f"{ACCOUNT_HOST}/{source}"
    ref = ImageRef(source, digest, uri, len(base) + len(app))
    blobs = {digest_of(b): b for b in (config, base, app)}
    registry = ServedRegistry(aws=emulated_aws)
    registry.blobs.update(blobs)
    return registry, ref, target, {"config": config, "base": base, "app": app}


def test_authorization_token_is_parsed_for_the_engine(emulated_aws: MotoAws) -> None:
    registry = EcrRegistry(aws=emulated_aws)
    auth = registry.authorization()
    assert (auth.username, auth.host) == ("AWS", ACCOUNT_HOST)
    assert auth.password == "123456789012-auth-token"
    assert auth.auth_config() == {"username": "AWS", "password": auth.password, "serveraddress": ACCOUNT_HOST}
    assert auth.password not in repr(auth)
    assert registry.image_uri("code-remote-dev-api", "bootstrap") == f"{ACCOUNT_HOST}/code-remote-dev-api:bootstrap"


def test_token_parsing_keeps_colons_in_the_password() -> None:
    token = "QVdTOnBhc3M6d29yZA=="  # base64 of AWS:pass:word
    auth = parse_authorization({"authorizationData": [{"authorizationToken": token, "proxyEndpoint": "https://h/"}]})
    assert (auth.username, auth.password, auth.host) == ("AWS", "pass:word", "h")


def test_has_layers_checks_every_blob_in_ecr(image) -> None:
    registry, ref, _, parts = image
    assert registry.has_layers(ref)
    ecr = registry.aws.client("ecr")
    hollow = manifest_for(parts["config"], [parts["base"], b"never uploaded"])
    put_manifest(ecr, ref.repository, hollow, "hollow")
    assert not registry.has_layers(ImageRef(ref.repository, digest_of(hollow.encode()), ref.repository_uri, 0))
    assert not registry.has_layers(ImageRef(ref.repository, "sha256:" + "0" * 64, ref.repository_uri, 0))


@pytest.mark.parametrize("image", [11 * 1024 * 1024], indirect=True, ids=["11MiB-layer"])
def test_copy_keeps_the_digest_and_moves_only_missing_blobs(image) -> None:
    registry, ref, target, parts = image
    ecr = registry.aws.client("ecr")
    upload_blob(ecr, target, parts["base"])  # already there, like the base image's layers after `bootstrap`

    copied = registry.copy(ref, target, ["build-1", "v1.2.3"])

    assert (copied.repository, copied.digest) == (target, ref.digest)
    assert sorted(registry.downloads) == sorted([digest_of(parts["config"]), digest_of(parts["app"])])
    for tag in ("build-1", "v1.2.3"):
        assert registry.find(target, tag).digest == ref.digest
    assert registry.has_layers(copied)
    # The very manifest bytes: what ECR serves from the target is what the source holds.
    get = {"imageIds": [{"imageDigest": ref.digest}]}
    source_bytes = ecr.batch_get_image(repositoryName=ref.repository, **get)["images"][0]["imageManifest"]
    assert ecr.batch_get_image(repositoryName=target, **get)["images"][0]["imageManifest"] == source_bytes

    registry.downloads.clear()
    again = registry.copy(ref, target, ["build-1", "v1.2.3"])  # a re-run: nothing moves, nothing changes
    assert again.digest == ref.digest and registry.downloads == []


def test_copy_refuses_bytes_that_do_not_match_their_digest(image) -> None:
    registry, ref, target, parts = image
    registry.blobs[digest_of(parts["app"])] = b"tampered"
    with pytest.raises(RegistryError, match="has digest sha256:"):
        registry.copy(ref, target, ["build-1"])
    assert registry.find(target, "build-1") is None


def test_copy_of_an_image_gone_from_ecr_says_rebuild(image) -> None:
    registry, ref, target, _ = image
    gone = ImageRef(ref.repository, "sha256:" + "1" * 64, ref.repository_uri, 0)
    with pytest.raises(RegistryError, match="must be rebuilt from its commit"):
        registry.copy(gone, target, ["build-1"])


def test_a_multi_platform_index_is_refused() -> None:
    with pytest.raises(RegistryError, match="single-platform"):
        manifest_blobs(json.dumps({"schemaVersion": 2, "manifests": []}))


class FakeEngine:
    """The two calls EcrRegistry.push makes on the docker SDK; the 'push' lands the manifest in moto's ECR."""

    def __init__(self, ecr, manifest: str, error: str = "") -> None:
        self.ecr, self.manifest, self.error = ecr, manifest, error
        self.tags: list[tuple[str, str]] = []
        self.pushes: list[dict] = []
        self.images = self
        self.api = self

    def get(self, image_id: str):
        engine = self

        class Image:
            def tag(self, repository: str, tag: str) -> None:
                engine.tags.append((repository, tag))

        return Image()

    def push(self, repository: str, *, tag: str, stream: bool, decode: bool, auth_config: dict):
        self.pushes.append({"repository": repository, "tag": tag, "auth": auth_config})
        yield {"status": "Preparing"}
        if self.error:
            yield {"error": self.error}
            return
        name = repository.split("/", 1)[1]
        put_manifest(self.ecr, name, self.manifest, tag)
        yield {"aux": {"Tag": tag, "Digest": digest_of(self.manifest.encode()), "Size": len(self.manifest)}}


def test_push_logs_in_with_the_token_and_returns_the_pushed_digest(emulated_aws: MotoAws) -> None:
    ecr = emulated_aws.client("ecr")
    ecr.create_repository(repositoryName="push-target")
    registry = EcrRegistry(aws=emulated_aws)
    manifest = manifest_for(b"{}", [b"layer"])
    engine = FakeEngine(ecr, manifest)

    ref = registry.push(engine, "sha256:built", "push-target", ["build-9", "main-abc1234"])

    uri = f"{ACCOUNT_HOST}/push-target"
    assert engine.tags == [(uri, "build-9")]
    (push,) = engine.pushes  # one push moves the layers; the second tag is a manifest put
    assert (push["repository"], push["tag"]) == (uri, "build-9")
    assert push["auth"]["username"] == "AWS" and push["auth"]["serveraddress"] == ACCOUNT_HOST
    assert ref.digest == digest_of(manifest.encode()) and ref.uri == f"{uri}@{ref.digest}"
    assert registry.find("push-target", "main-abc1234").digest == ref.digest


def test_a_refused_push_names_the_image_and_the_error(emulated_aws: MotoAws) -> None:
    ecr = emulated_aws.client("ecr")
    ecr.create_repository(repositoryName="push-refused")
    engine = FakeEngine(ecr, "{}", error="denied: not authorized to perform ecr:InitiateLayerUpload")
    with pytest.raises(RegistryError, match=r"push-refused:build-1 to ECR failed: denied"):
        EcrRegistry(aws=emulated_aws).push(engine, "sha256:x", "push-refused", ["build-1"])

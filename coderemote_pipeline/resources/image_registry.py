"""Where API images live: ECR as the index of record, layers in the local registry or in ECR itself."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg
import docker

from coderemote_pipeline.actions import registry_push as upload
from coderemote_pipeline.actions.image_export import ImageExportError, export_image
from coderemote_pipeline.actions.scratch import scratch_dir
from coderemote_pipeline.local_stack.errors import UP_COMMAND, RegistryDown
from coderemote_pipeline.local_stack.registry_server import registry_answers
from coderemote_pipeline.local_stack.stack_info import StackPaths, write_atomically
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.local_stack import LocalStackResource
from coderemote_pipeline.rules.images import ImageRef

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)

# Above this many new bytes, the layers are exported and compressed here (actions/parallel_gzip.py) rather than
# pushed by the engine (one gzip stream per layer, default level). Measured on this 2-core machine (2026-12-04), the
# realistic app's 390 MB of new layers: the engine 9.4-9.7 s (~40 MB/s), here 4.7 s, of which ~0.7 s is the engine
# exporting the base image's layers again (nothing asks it for less). Small images stay with the engine's push.
EXPORT_FROM_BYTES = 64 * 1024 * 1024


class RegistryError(RuntimeError):
    pass


class ImageRegistry(dg.ConfigurableResource, ABC):
    aws: AwsResource

    def find(self, repository: str, tag: str) -> ImageRef | None:
        """The image a tag names in the env's ECR repository, or None."""
        ecr = self.aws.client("ecr")
        try:
            detail = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"][0]
        except ecr.exceptions.ImageNotFoundException:
            return None
        uri = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryUri"]
        return ImageRef(repository, detail["imageDigest"], uri, int(detail.get("imageSizeInBytes", 0)))

    def add_tags(self, ref: ImageRef, tags: list[str]) -> None:
        """Point more tags at an image already in the repository: the same manifest bytes, so the same digest."""
        ecr = self.aws.client("ecr")
        image = ecr.batch_get_image(repositoryName=ref.repository, imageIds=[{"imageDigest": ref.digest}])["images"][0]
        for tag in tags:
            # Already tagged with this very digest: nothing to do, which keeps re-runs safe.
            with contextlib.suppress(ecr.exceptions.ImageAlreadyExistsException):
                ecr.put_image(
                    repositoryName=ref.repository,
                    imageManifest=image["imageManifest"],
                    imageManifestMediaType=image.get("imageManifestMediaType", MANIFEST_TYPES[0]),
                    imageTag=tag,
                    imageDigest=ref.digest,
                )

    @abstractmethod
    def push(
        self, client: docker.DockerClient, image_id: str, repository: str, tags: list[str], fresh_bytes: int = 0
    ) -> ImageRef:
        """Push a locally built image and return it as the registry knows it (digest of the pushed manifest).
        `fresh_bytes`: what the image adds to its base image, uncompressed (what a push has to compress)."""

    @abstractmethod
    def has_layers(self, ref: ImageRef) -> bool:
        """Whether the image's bytes are really there (an index entry without layers cannot run)."""

    @abstractmethod
    def copy(self, source: ImageRef, repository: str, tags: list[str]) -> ImageRef:
        """Put an existing image into another repository without rebuilding it; the digest must not change."""

    @abstractmethod
    def run_reference(self, ref: ImageRef) -> str:
        """The name the Docker engine runs or pulls this image by."""


class LocalRegistry(ImageRegistry):
    """Layers in the local docker-registry; manifests registered in the emulated ECR (moto has no registry API)."""

    stack: LocalStackResource

    def _host(self) -> str:
        return self.stack.info().registry_host

    def _request(self, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes | None = None):
        url = f"http://{self._host()}{path}"
        request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            return urllib.request.urlopen(request, timeout=30)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise RegistryError(f"image registry {method} {url} answered {exc.code}: {exc.read()[:300]!r}") from None
        except urllib.error.URLError as exc:
            raise RegistryError(
                f"image registry at {self._host()} is not answering ({exc.reason}): "
                "start it with `coderemote-pipeline local up`"
            ) from None

    def _manifest(self, repository: str, reference: str) -> tuple[bytes, str, str] | None:
        response = self._request(
            "GET", f"/v2/{repository}/manifests/{reference}", headers={"Accept": ", ".join(MANIFEST_TYPES)}
        )
        if response is None:
            return None
        with response:
            return response.read(), response.headers["Content-Type"], response.headers["Docker-Content-Digest"]

    def _register(self, repository: str, manifest: bytes, media_type: str, digest: str, tags: list[str]) -> ImageRef:
        ecr = self.aws.client("ecr")
        for tag in tags:
            with contextlib.suppress(ecr.exceptions.ImageAlreadyExistsException):
                ecr.put_image(
                    repositoryName=repository,
                    imageManifest=manifest.decode(),
                    imageManifestMediaType=media_type,
                    imageTag=tag,
                    imageDigest=digest,
                )
        uri = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryUri"]
        layers = json.loads(manifest).get("layers", [])
        return ImageRef(repository, digest, uri, sum(int(layer.get("size", 0)) for layer in layers))

    def push(
        self, client: docker.DockerClient, image_id: str, repository: str, tags: list[str], fresh_bytes: int = 0
    ) -> ImageRef:
        if fresh_bytes >= EXPORT_FROM_BYTES:
            manifest, digest = self._push_exported(client, image_id, repository)
            for tag in tags:
                self._put_manifest(repository, tag, manifest, upload.MANIFEST_TYPE)
            # The engine learns the image's registry name, as after its own push: what it creates containers from
            # (the checks, the API). It has the config already, so it fetches the manifest and nothing else.
            client.api.pull(f"{self._host()}/{repository}", tag=digest)
            return self._register(repository, manifest, upload.MANIFEST_TYPE, digest, tags)
        name = f"{self._host()}/{repository}"
        image = client.images.get(image_id)
        for tag in tags:
            image.tag(name, tag)
        # One push uploads the layers; the other tags are then manifest-only puts.
        for chunk in client.api.push(name, tag=tags[0], stream=True, decode=True):
            if "error" in chunk:
                if not registry_answers(self._host()):
                    # A registry that is down (or restarting) is worth a retry; any other push error is not.
                    raise RegistryDown(
                        f"push of {name}:{tags[0]} failed: the image registry at {self._host()} is not answering "
                        f"({chunk['error']}): start it with `{UP_COMMAND}`"
                    )
                raise RegistryError(f"push of {name}:{tags[0]} to the image registry failed: {chunk['error']}")
        pushed = self._manifest(repository, tags[0])
        if pushed is None:
            raise RegistryError(f"{name}:{tags[0]} was pushed but the registry does not serve its manifest")
        manifest, media_type, digest = pushed
        for tag in tags[1:]:
            self._put_manifest(repository, tag, manifest, media_type)
        return self._register(repository, manifest, media_type, digest, tags)

    def _push_exported(self, client: docker.DockerClient, image_id: str, repository: str) -> tuple[bytes, str]:
        """The image's layers compressed on every core, as they leave the engine (actions/parallel_gzip.py)."""
        paths = StackPaths(Path(self.stack.state_dir))
        record = paths.registry_storage.parent / "layer-blobs.json"
        blobs = upload.LayerBlobs(record.read_text() if record.exists() else "")
        held = blobs.sizes(client.images.get(image_id).attrs["RootFS"]["Layers"])
        with scratch_dir(paths.root / "scratch", "push") as tmp:
            try:
                exported = export_image(client, image_id, tmp, held)
                pushed = upload.push_exported(self._request, exported, repository, blobs)
            except upload.LayerMissing:
                # A layer of a held size is not in the registry after all: once more, compressing every layer.
                pushed = upload.push_exported(self._request, export_image(client, image_id, tmp), repository, blobs)
            except (ImageExportError, upload.UploadRefused) as exc:
                raise RegistryError(f"push of {image_id[:19]} to {repository}: {exc}") from None
        # Two pushes at once may each write: the loser's entries are only re-learnt, never wrong.
        write_atomically(record, blobs.to_json())
        return pushed

    def _put_manifest(self, repository: str, reference: str, manifest: bytes, media_type: str) -> None:
        response = self._request(
            "PUT", f"/v2/{repository}/manifests/{reference}", headers={"Content-Type": media_type}, body=manifest
        )
        if response is None:
            raise RegistryError(f"registry refused the manifest for {repository}:{reference}")
        response.close()

    def has_layers(self, ref: ImageRef) -> bool:
        pushed = self._manifest(ref.repository, ref.digest)
        if pushed is None:
            return False
        manifest = json.loads(pushed[0])
        blobs = [manifest["config"], *manifest.get("layers", [])]
        for blob in blobs:
            response = self._request("HEAD", f"/v2/{ref.repository}/blobs/{blob['digest']}")
            if response is None:
                return False
            response.close()
        return True

    def copy(self, source: ImageRef, repository: str, tags: list[str]) -> ImageRef:
        # Cross-repository blob mounts: the registry links the existing layers, no layer data moves.
        pushed = self._manifest(source.repository, source.digest)
        if pushed is None:
            raise RegistryError(f"image {source.uri} is gone from the registry; it must be rebuilt from its commit")
        manifest, media_type, digest = pushed
        parsed = json.loads(manifest)
        for blob in [parsed["config"], *parsed.get("layers", [])]:
            response = self._request(
                "POST", f"/v2/{repository}/blobs/uploads/?mount={blob['digest']}&from={source.repository}"
            )
            if response is None or response.status != 201:
                raise RegistryError(
                    f"registry could not mount {blob['digest']} from {source.repository} into {repository}"
                )
            response.close()
        for tag in tags:
            self._put_manifest(repository, tag, manifest, media_type)
        return self._register(repository, manifest, media_type, digest, tags)

    def run_reference(self, ref: ImageRef) -> str:
        return f"{self._host()}/{ref.repository}@{ref.digest}"


__all__ = ["ImageRef", "ImageRegistry", "LocalRegistry", "RegistryError"]

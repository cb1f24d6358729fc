"""ECR as the registry itself (the aws target): the Docker engine pushes to it, ECR's layer API copies between repos.

A promotion (dev → prod) copies the image's blobs with ECR's own layer API — download from the source
repository, upload to the target — and puts the very same manifest bytes, so the digest cannot change and no
Docker engine is needed. Blobs the target already holds (the base image's, pushed there as `bootstrap`) are
not moved. `put_image` is called with the source digest, so ECR itself refuses a manifest that would differ.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import docker

from coderemote_pipeline.resources.image_registry import MANIFEST_TYPES, ImageRef, ImageRegistry, RegistryError

# Single-platform manifests only: Lambda runs one image manifest, never an index.
ACCEPTED_MEDIA_TYPES = list(MANIFEST_TYPES)
# ECR's quotas: layer parts of at least 5 MiB (except the last) and at most 10 MiB; within that, the part size
# initiate_layer_upload suggests.
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PART_BYTES = 10 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 60


@dataclass(frozen=True)
class RegistryAuth:
    username: str
    # Never in a repr or a log: only ever handed to the Docker engine as auth_config.
    password: str = field(default="", repr=False)
    host: str = ""

    def auth_config(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password, "serveraddress": self.host}


def parse_authorization(response: dict[str, Any]) -> RegistryAuth:
    """ECR's token is base64 `AWS:<password>`; its proxy endpoint names the registry host for this account."""
    data = response["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return RegistryAuth(username, password, data["proxyEndpoint"].removeprefix("https://").rstrip("/"))


def manifest_blobs(manifest: str) -> list[str]:
    """The config blob and every layer a single-platform manifest references."""
    parsed = json.loads(manifest)
    if "manifests" in parsed:
        raise RegistryError("the image is a multi-platform index: Lambda runs single-platform images only")
    return [parsed["config"]["digest"], *(layer["digest"] for layer in parsed.get("layers", []))]


class EcrRegistry(ImageRegistry):
    """Layers and manifests both in ECR, reached with boto3 and the Docker engine's push."""

    def authorization(self) -> RegistryAuth:
        # A fresh token per call: tokens last 12 hours, a call costs ~50 ms, and nothing is cached on disk.
        return parse_authorization(self.aws.client("ecr").get_authorization_token())

    def image_uri(self, repository: str, tag: str) -> str:
        return f"{self.authorization().host}/{repository}:{tag}"

    def _repository_uri(self, repository: str) -> str:
        ecr = self.aws.client("ecr")
        return ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryUri"]

    def push(
        self, client: docker.DockerClient, image_id: str, repository: str, tags: list[str], fresh_bytes: int = 0
    ) -> ImageRef:
        # Always the engine's push: the faster export path (resources/image_registry.py) speaks the registry API,
        # which ECR serves behind its token, and has not been run against real ECR; so it is not used here.
        uri = self._repository_uri(repository)
        client.images.get(image_id).tag(uri, tags[0])
        pushed_digest = ""
        # One push of one tag moves the layers; the other tags are manifest-only puts through the ECR API.
        for chunk in client.api.push(
            uri, tag=tags[0], stream=True, decode=True, auth_config=self.authorization().auth_config()
        ):
            if "error" in chunk:
                raise RegistryError(f"push of {uri}:{tags[0]} to ECR failed: {chunk['error']}")
            pushed_digest = chunk.get("aux", {}).get("Digest", pushed_digest)
        ref = self.find(repository, tags[0])
        if ref is None or (pushed_digest and ref.digest != pushed_digest):
            raise RegistryError(
                f"{uri}:{tags[0]} was pushed as {pushed_digest or 'an unknown digest'} but ECR lists "
                f"{ref.digest if ref else 'nothing'} under that tag (another push of the same tag at the same time?)"
            )
        self.add_tags(ref, tags[1:])
        return ref

    def _missing_blobs(self, repository: str, digests: list[str]) -> list[str]:
        ecr = self.aws.client("ecr")
        answer = ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=digests)
        available = {
            layer["layerDigest"] for layer in answer.get("layers", []) if layer.get("layerAvailability") == "AVAILABLE"
        }
        return [digest for digest in digests if digest not in available]

    def _manifest(self, ref: ImageRef) -> dict[str, Any] | None:
        ecr = self.aws.client("ecr")
        images = ecr.batch_get_image(
            repositoryName=ref.repository,
            imageIds=[{"imageDigest": ref.digest}],
            acceptedMediaTypes=ACCEPTED_MEDIA_TYPES,
        )["images"]
        return images[0] if images else None

    def has_layers(self, ref: ImageRef) -> bool:
        image = self._manifest(ref)
        return image is not None and not self._missing_blobs(ref.repository, manifest_blobs(image["imageManifest"]))

    def copy(self, source: ImageRef, repository: str, tags: list[str]) -> ImageRef:
        image = self._manifest(source)
        if image is None:
            raise RegistryError(f"image {source.uri} is gone from ECR; it must be rebuilt from its commit")
        manifest = image["imageManifest"]
        media_type = image.get("imageManifestMediaType") or json.loads(manifest).get("mediaType", MANIFEST_TYPES[0])
        for digest in self._missing_blobs(repository, manifest_blobs(manifest)):
            self._copy_blob(source.repository, repository, digest)
        ecr = self.aws.client("ecr")
        try:
            put = ecr.put_image(
                repositoryName=repository,
                imageManifest=manifest,
                imageManifestMediaType=media_type,
                imageTag=tags[0],
                imageDigest=source.digest,
            )
            digest = put["image"]["imageId"]["imageDigest"]
        except ecr.exceptions.ImageAlreadyExistsException:
            digest = source.digest  # this very manifest already carries that tag: a re-run
        copied = self.find(repository, tags[0])
        if digest != source.digest or copied is None or copied.digest != source.digest:
            raise RegistryError(
                f"copy of {source.uri} into {repository} produced digest {digest}, not {source.digest}: "
                "the promoted image must be the very bytes that were tested"
            )
        self.add_tags(copied, tags[1:])
        return ImageRef(repository, source.digest, copied.repository_uri, copied.size_bytes or source.size_bytes)

    def layer_chunks(self, repository: str, digest: str) -> Iterator[bytes]:
        """The blob's bytes from ECR's download URL (a pre-signed S3 address), in pieces."""
        url = self.aws.client("ecr").get_download_url_for_layer(repositoryName=repository, layerDigest=digest)[
            "downloadUrl"
        ]
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(1024 * 1024):
                yield chunk

    def _copy_blob(self, source_repository: str, repository: str, digest: str) -> None:
        ecr = self.aws.client("ecr")
        upload = ecr.initiate_layer_upload(repositoryName=repository)
        part_size = min(max(int(upload.get("partSize") or MIN_PART_BYTES), MIN_PART_BYTES), MAX_PART_BYTES)
        sha, sent, buffer = hashlib.sha256(), 0, b""

        def send(part: bytes) -> int:
            ecr.upload_layer_part(
                repositoryName=repository,
                uploadId=upload["uploadId"],
                partFirstByte=sent,
                partLastByte=sent + len(part) - 1,
                layerPartBlob=part,
            )
            return sent + len(part)

        for chunk in self.layer_chunks(source_repository, digest):
            sha.update(chunk)
            buffer += chunk
            while len(buffer) >= part_size:
                sent, buffer = send(buffer[:part_size]), buffer[part_size:]
        if buffer or not sent:
            sent = send(buffer)
        if f"sha256:{sha.hexdigest()}" != digest:
            raise RegistryError(f"blob {digest} read from {source_repository} has digest sha256:{sha.hexdigest()}")
        with contextlib.suppress(ecr.exceptions.LayerAlreadyExistsException):
            ecr.complete_layer_upload(repositoryName=repository, uploadId=upload["uploadId"], layerDigests=[digest])

    def run_reference(self, ref: ImageRef) -> str:
        return ref.uri

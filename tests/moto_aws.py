"""An in-process moto server and an AwsResource pointed at it, for unit tests of the aws target's resources.

The aws target's code is boto3 against AWS; moto answers the same calls over HTTP (ECR's control plane and layer
upload API, Lambda's functions and aliases). What moto cannot do (ECR's layer download URL) a test fakes narrowly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from coderemote_pipeline.resources.aws import AwsResource


class MotoAws(AwsResource):
    endpoint: str

    def _session_kwargs(self) -> dict[str, Any]:
        return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

    def endpoint_url(self) -> str | None:
        return self.endpoint

    @property
    def object_acl(self) -> str | None:
        return None


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def emulated_aws(moto_endpoint: str) -> MotoAws:
    return MotoAws(endpoint=moto_endpoint)

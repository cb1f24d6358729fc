"""boto3 clients for either target: the emulator over HTTP or real AWS through the default credential chain."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from abc import ABC, abstractmethod
from typing import Any

import boto3
import botocore.exceptions
import botocore.loaders
import botocore.session
import dagster as dg
from botocore.config import Config

from coderemote_pipeline.local_stack.errors import UP_COMMAND, EmulatorDown
from coderemote_pipeline.local_stack.moto_server import moto_answers
from coderemote_pipeline.resources.local_stack import LocalStackResource
from coderemote_pipeline.rules.aws_errors import AwsCredentialsMissing, error_code

# What boto3's default credential chain reads from the environment. A client is kept per value of these too: a
# process whose variables change never reuses a client made with other credentials (or with none missing).
_CHAIN_VARIABLES = ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                    "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_EC2_METADATA_DISABLED")  # fmt: skip

# Adaptive retries absorb throttling and transient 5xx; permanent errors (4xx) surface at once with their message.
_CLIENT_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 8}, connect_timeout=5, read_timeout=60)


class AwsResource(dg.ConfigurableResource, ABC):
    """The one place boto3 clients are made; stages never build their own."""

    region: str = "us-east-1"

    @abstractmethod
    def _session_kwargs(self) -> dict[str, Any]: ...

    @abstractmethod
    def endpoint_url(self) -> str | None: ...

    @property
    @abstractmethod
    def object_acl(self) -> str | None:
        """ACL for uploaded frontend objects: None on AWS (private bucket behind CloudFront)."""

    def max_attempts(self) -> int:
        return _CLIENT_CONFIG.retries["max_attempts"]

    def read_timeout(self) -> float:
        return float(_CLIENT_CONFIG.read_timeout)

    def cli(self) -> tuple[str, ...]:
        """The AWS CLI's first words, reaching what these clients reach: for a command printed for a person."""
        return ("aws",)

    def client(self, service: str) -> Any:
        kwargs = tuple(sorted(self._session_kwargs().items()))
        chain = tuple(os.environ.get(name) for name in _CHAIN_VARIABLES)
        limits = (self.max_attempts(), self.read_timeout())
        return _cached_client(service, self.region, self.endpoint_url(), kwargs, limits, chain)

    def check_credentials(self) -> None:
        """Raise AwsCredentialsMissing, with the fix, when the credential chain finds nothing (no AWS call)."""
        _credentialed_session(self.region, self._session_kwargs())

    def check_reachable(self) -> None:
        """Raise, with the fix, when no stage could reach this AWS now: asked before a run is launched or requested."""
        self.check_credentials()


# What a deploy's stages ask for, in order of need (infra first).
STAGE_SERVICES = ("iam", "ecr", "s3", "lambda", "cloudfront", "secretsmanager")


def warm_clients(aws: AwsResource, services: tuple[str, ...] = STAGE_SERVICES) -> threading.Thread:
    """Make the clients a deploy's stages will use, in the background, while the caller resolves the release and
    opens the instance: each costs its service model's load (0.1-0.35 s), and a run in this process reuses them.
    A failure here is left for the stage that needs the client to meet and report."""

    def make() -> None:
        for service in services:
            with contextlib.suppress(Exception):
                aws.client(service)

    worker = threading.Thread(target=make, name="warm-aws-clients", daemon=True)
    worker.start()
    return worker


@functools.cache
def _service_models() -> botocore.loaders.Loader:
    """One loader of service models per process, shared by every session: a model is parsed once (its JSON is
    0.1-0.3 s of a client's making), and a process forked after `preload_service_models` parses none."""
    return botocore.loaders.create_loader()


def _session(region: str, session_kwargs: dict[str, Any]) -> boto3.session.Session:
    core = botocore.session.Session()
    core.register_component("data_loader", _service_models())
    return boto3.session.Session(botocore_session=core, region_name=region, **session_kwargs)


_PROVIDERS = {"env": "the environment", "shared-credentials-file": "the credentials file",
              "config-file": "the AWS config file"}  # fmt: skip


def _credential_problem(exc: botocore.exceptions.BotoCoreError) -> str:
    """What is wrong with the credential chain, and the fix; botocore's words name a setting, never its value."""
    said = exc.kwargs
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        return (f"AWS profile {said.get('profile', '')!r} is not defined in the AWS config or credentials files: "
                "check AWS_PROFILE (`aws configure list-profiles` lists the defined ones)")  # fmt: skip
    if isinstance(exc, botocore.exceptions.PartialCredentialsError):
        return (f"AWS credentials from {_PROVIDERS.get(said.get('provider', ''), 'the environment')} lack "
                f"{said.get('cred_var', 'a part')}: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                "neither (and use AWS_PROFILE)")  # fmt: skip
    if isinstance(exc, botocore.exceptions.ConfigParseError):
        return (f"the AWS config or credentials file {said.get('path', '')!r} is not valid INI: fix it, or point "
                "AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE at a valid one")  # fmt: skip
    return f"AWS credentials could not be read: {exc}"


def _credentialed_session(region: str, session_kwargs: dict[str, Any]) -> boto3.session.Session:
    try:
        session = _session(region, session_kwargs)
        credentials = session.get_credentials()  # where a named profile is first looked up
    except botocore.exceptions.BotoCoreError as exc:
        raise AwsCredentialsMissing(_credential_problem(exc)) from None
    if credentials is None:
        raise AwsCredentialsMissing(
            "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "or run `aws configure` / `aws sso login` (the aws target uses boto3's default credential chain)"
        )
    return session


def preload_service_models(services: tuple[str, ...] = STAGE_SERVICES) -> None:
    """Parse the stages' service models now (the warm process, before it forks): clients made later, with whatever
    credentials and endpoint their command has, find them parsed. The clients made here are thrown away unused."""
    session = _session("us-east-1", {"aws_access_key_id": "preload", "aws_secret_access_key": "preload"})
    for service in services:
        session.client(service, endpoint_url="http://127.0.0.1:9")


@functools.lru_cache(maxsize=64)
def _cached_client(
    service: str, region: str, endpoint_url: str | None, session_kwargs: tuple, limits: tuple[int, float], chain: tuple
) -> Any:
    # Making a client loads its service model (~0.1-0.3 s); one per process, endpoint and credential source is
    # enough, and boto3 clients are thread-safe. `chain` is only part of the key.
    session = _credentialed_session(region, dict(session_kwargs))
    attempts, read_timeout = limits
    config = _CLIENT_CONFIG.merge(Config(retries={"mode": "adaptive", "max_attempts": attempts},
                                         read_timeout=read_timeout))  # fmt: skip
    return session.client(service, endpoint_url=endpoint_url, config=config)


class EmulatorAws(AwsResource):
    """The AWS API emulator of the local stack (moto in server mode), with its fixed test credentials."""

    stack: LocalStackResource

    def _session_kwargs(self) -> dict[str, Any]:
        # moto accepts any credentials; fixed ones keep a user's real keys from ever being sent to it.
        return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

    def cli(self) -> tuple[str, ...]:
        # Nothing of the user's own AWS identity goes with it: the test keys only, as the pipeline's clients.
        return ("env", "-u", "AWS_SESSION_TOKEN", "-u", "AWS_SECURITY_TOKEN", "-u", "AWS_PROFILE",
                "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "aws", "--region", self.region,
                "--endpoint-url", self.stack.info().moto_endpoint)  # fmt: skip

    def endpoint_url(self) -> str | None:
        endpoint = self.stack.info().moto_endpoint
        _emulator_answers(endpoint)
        return endpoint

    def client(self, service: str) -> Any:
        made = super().client(service)
        # The check in endpoint_url remembers success for the process: an emulator that dies mid-deploy is found
        # here, where a call could not connect, and named with its fix rather than as botocore's endpoint error.
        endpoint = made.meta.endpoint_url
        made.meta.events.register("after-call-error", functools.partial(_name_a_dead_emulator, endpoint),
                                  unique_id=f"coderemote-dead-emulator:{endpoint}")  # fmt: skip
        return made

    def check_reachable(self) -> None:
        self.endpoint_url()  # the stack is up (LocalStackNotRunning) and its emulator answers (EmulatorDown)

    def max_attempts(self) -> int:
        # A local process that refuses connections is down, not throttled: boto3's backoff would wait ~30 s
        # before failing. The stage's RetryPolicy retries instead, behind a check that names the emulator.
        return 2

    def read_timeout(self) -> float:
        # A local emulator answers in milliseconds; one that does not answer in this long is hung (stopped, wedged),
        # and 60 s a call, tried again by botocore and the stage, left a deploy silent for many minutes.
        return 15.0

    @property
    def object_acl(self) -> str | None:
        # moto's S3 serves an object over plain HTTP only when it is public-read.
        return "public-read"


def _emulator_down(endpoint: str) -> EmulatorDown:
    return EmulatorDown(f"AWS emulator (moto) at {endpoint} is not answering: start it with `{UP_COMMAND}`")


@functools.lru_cache(maxsize=8)
def _emulator_answers(endpoint: str) -> bool:
    """Fail in milliseconds with the fix, rather than after boto3's retries, when the emulator is down."""
    if not moto_answers(endpoint):
        raise _emulator_down(endpoint)
    return True  # only success is cached; a down emulator is asked again next time


_NO_CONNECTION = (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError,
                  botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectTimeoutError)  # fmt: skip


def _name_a_dead_emulator(endpoint: str, exception: BaseException | None = None, **_: Any) -> None:
    """botocore's `after-call-error` hook: a call that could not reach the emulator, or got no answer in time, raises
    EmulatorDown (transient, so the stage's RetryPolicy still retries it) when the emulator no longer answers at all
    (killed, or hung: its dashboard does not answer either)."""
    if isinstance(exception, _NO_CONNECTION) and not moto_answers(endpoint, timeout=0.5):
        raise _emulator_down(endpoint) from exception


class RealAws(AwsResource):
    """Real AWS: boto3's default credential chain, optionally a named profile."""

    profile: str | None = None

    def _session_kwargs(self) -> dict[str, Any]:
        return {"profile_name": self.profile} if self.profile else {}

    def cli(self) -> tuple[str, ...]:
        return ("aws", "--profile", self.profile) if self.profile else ("aws",)

    def endpoint_url(self) -> str | None:
        return None

    @property
    def object_acl(self) -> str | None:
        return None


__all__ = ["AwsCredentialsMissing", "AwsResource", "EmulatorAws", "RealAws", "error_code"]

"""The aws target's infra stage: `pulumi up` of `infra/pulumi` for the env's stack, through the Automation API.

The program runs from its own directory with the Pulumi CLI (local-program mode), against whichever backend the
CLI is logged in to, or `backend_url`. The pipeline sets two config values itself: the bootstrap image the Lambda
function is created from, and the Gemini API key as a secret; only when they differ from the stack's, so an
unchanged stack file stays unchanged. An update is skipped when the program, its config and the SDK versions
hash to what the stack's last successful update recorded (its update message), unless `force`.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import botocore.exceptions

from coderemote_pipeline.resources.aws import error_code
from coderemote_pipeline.resources.docker_engine import DockerEngine
from coderemote_pipeline.resources.ecr_registry import EcrRegistry
from coderemote_pipeline.resources.provisioner import BOOTSTRAP_TAG, InfraProvisioner, InfraResult
from coderemote_pipeline.rules import pulumi_update as ps
from coderemote_pipeline.rules.stack_config import StackConfig
from coderemote_pipeline.rules.stack_outputs import ecr_repository_name

SDK_PACKAGES = ("pulumi", "pulumi-aws")


def sdk_versions() -> dict[str, str]:
    """A new provider can change what `up` does to unchanged code: its version is part of the fingerprint."""
    return {name: importlib.metadata.version(name) for name in SDK_PACKAGES}


class PulumiProvisioner(InfraProvisioner):
    """One Pulumi stack per environment, named like the environment (dev, staging, prod)."""

    registry: EcrRegistry
    docker: DockerEngine
    # dg.EnvVar("GEMINI_API_KEY"): resolved at launch, handed to the CLI as a secret, never logged.
    gemini_api_key: str
    work_dir: str = str(ps.PROGRAM_DIR)
    # None: the backend the CLI is logged in to (`pulumi login`, or PULUMI_BACKEND_URL); else s3://…, file://…
    backend_url: str | None = None
    # Used when a stack is created: None for the backend's default (Pulumi Cloud's, or a passphrase).
    secrets_provider: str | None = None
    # For a passphrase provider; when None the CLI reads PULUMI_CONFIG_PASSPHRASE(_FILE) from the environment.
    config_passphrase: str | None = None
    force: bool = False

    def ensure(self, env: str, config: StackConfig, log: Callable[[str], None]) -> InfraResult:
        started = time.monotonic()
        region = self.registry.aws.region
        if config.region != region:
            raise ps.PulumiError(
                f"infra/pulumi/Pulumi.{env}.yaml sets aws:region {config.region}, but the aws target's clients "
                f"use {region}: the target runs every environment in one region (see docs/aws.md)"
            )
        stack = self._stack(env)
        repository = ecr_repository_name(env)
        wanted = {
            ps.BOOTSTRAP_IMAGE_KEY: (self._bootstrap_uri(repository), False),
            ps.GEMINI_API_KEY_KEY: (self.gemini_api_key, True),
        }
        with self._cli(env, "config"):
            current = {key: value.value for key, value in stack.get_all_config().items()}
            for key, (value, secret) in wanted.items():
                if current.get(key) != value:
                    stack.set_config(key, _config_value(value, secret))
                    current[key] = value
            last = stack.info(show_secrets=False)
        fingerprint = ps.program_fingerprint(Path(self.work_dir), current, sdk_versions())
        if not self.force and ps.recorded_fingerprint(last) == fingerprint:
            log(f"stack {env}: program and config unchanged since update {last.version}: `pulumi up` skipped")
            with self._cli(env, "stack output"):
                outputs = ps.string_outputs(stack.outputs())
            return InfraResult(outputs=outputs, changes=[], seconds=time.monotonic() - started)
        changes = [] if self._bootstrap_present(repository) else self._bootstrap(stack, env, repository, log)
        log(f"stack {env}: `pulumi up` ({'forced' if self.force else 'program, config or SDK changed'})")
        with self._cli(env, "up"):
            # refresh: the alias's routing and the origin path move outside Pulumi (the pipeline's shifts and site
            # flips, both in ignore_changes); the update starts from what AWS holds, not from the last state.
            result = stack.up(message=ps.update_message(fingerprint), refresh=True, **self._up_options(log))
        bootstrap_changes = len(changes)
        changes += ps.change_lines(result.summary.resource_changes)
        counted = sum(n for op, n in (result.summary.resource_changes or {}).items() if op != "same")
        return InfraResult(
            outputs=ps.string_outputs(result.outputs),
            changes=changes,
            seconds=time.monotonic() - started,
            change_count=bootstrap_changes + counted,
        )

    def preview(self, env: str, config: StackConfig) -> list[str]:
        stack = self._stack(env)
        with self._cli(env, "preview"):
            result = stack.preview(refresh=True, color="never", diff=False)
        return [f"{op}: {n}" for op, n in sorted((result.change_summary or {}).items()) if op != "same"]

    def refresh(self, env: str, config: StackConfig) -> list[str]:
        stack = self._stack(env)
        with self._cli(env, "refresh"):
            result = stack.refresh(color="never", message="coderemote-pipeline infra refresh")
        return [f"{op}: {n}" for op, n in sorted((result.summary.resource_changes or {}).items()) if op != "same"]

    def history(self, env: str) -> list[str]:
        stack = self._stack(env)
        with self._cli(env, "stack history"):
            updates = stack.history(page_size=20, page=1, show_secrets=False)
        return [f"update {u.version} {u.kind} {u.result} {u.start_time:%Y-%m-%d %H:%M} — {u.message}" for u in updates]

    @staticmethod
    def check_cli() -> None:
        """Raise PulumiCliMissing, with the fix, when the Pulumi CLI is absent or too old."""
        PulumiProvisioner._command()

    @staticmethod
    def _command() -> Any:
        from pulumi import automation as auto

        try:
            return auto.PulumiCommand()  # runs `pulumi version`: the CLI must be there, and recent enough
        except (OSError, subprocess.SubprocessError, auto.InvalidVersionError) as exc:
            raise ps.cli_missing(exc) from None

    def _stack(self, env: str) -> Any:
        from pulumi import automation as auto

        options = auto.LocalWorkspaceOptions(
            env_vars=self._env_vars(), secrets_provider=self.secrets_provider, pulumi_command=self._command()
        )
        with self._cli(env, "stack select"):
            return auto.create_or_select_stack(stack_name=env, work_dir=self.work_dir, opts=options)

    def _env_vars(self) -> dict[str, str]:
        env = {"PULUMI_SKIP_UPDATE_CHECK": "true"}
        if self.backend_url:
            env["PULUMI_BACKEND_URL"] = self.backend_url
        if self.config_passphrase:
            env["PULUMI_CONFIG_PASSPHRASE"] = self.config_passphrase
        profile = getattr(self.registry.aws, "profile", None)
        if profile:
            env["AWS_PROFILE"] = profile  # the provider and boto3 then use the same credentials
        return env

    @staticmethod
    def _up_options(log: Callable[[str], None]) -> dict[str, Any]:
        return {"on_output": log, "on_error": log, "color": "never", "suppress_progress": True, "show_secrets": False}

    @contextmanager
    def _cli(self, env: str, operation: str) -> Iterator[None]:
        from pulumi.automation import CommandError

        try:
            yield
        except CommandError as exc:
            secrets = (self.gemini_api_key, self.config_passphrase or "")
            raise ps.command_failure(exc, stack=env, operation=operation, secrets=secrets) from None

    def _bootstrap_uri(self, repository: str) -> str:
        """Also the credentials check, before Pulumi runs: no ECR token, no deploy."""
        try:
            return self.registry.image_uri(repository, BOOTSTRAP_TAG)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise (ps.aws_credentials_failure(exc) or exc) from None

    def _bootstrap_present(self, repository: str) -> bool:
        try:
            return self.registry.find(repository, BOOTSTRAP_TAG) is not None
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "RepositoryNotFoundException":
                return False
            raise

    def _bootstrap(self, stack: Any, env: str, repository: str, log: Callable[[str], None]) -> list[str]:
        """First deploy of an env: an image function needs an image in its own repository before it can exist.

        So the repository first (an update targeted at it alone), then the engine's base image pushed there as
        `bootstrap`, which the function is created from; the full update follows.
        """
        log(f"stack {env}: first deploy: creating ECR repository {repository} before the rest of the stack")
        with self._cli(env, "up --target"):
            stack.up(target=[ps.repository_urn(env)], message="coderemote-pipeline bootstrap", **self._up_options(log))
        ref = self.registry.push(self.docker.client(), self.docker.base_image_id(), repository, [BOOTSTRAP_TAG])
        log(f"stack {env}: pushed {self.docker.base_image()} as {ref.uri}")
        return [f"created ECR repository {repository}", f"pushed bootstrap image {ref.digest[:19]}"]


def _config_value(value: str, secret: bool) -> Any:
    from pulumi.automation import ConfigValue

    return ConfigValue(value=value, secret=secret)

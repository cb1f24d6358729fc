"""The pure half of the Pulumi provisioner: what identifies an applied stack, and what a failed CLI call means.

Everything here is plain data in, plain data out, so it is tested without the Pulumi CLI; the resource in
`resources/pulumi_provisioner.py` only moves values between these functions and the Automation API.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from coderemote_pipeline.rules import stack_outputs
from coderemote_pipeline.rules.aws_errors import AwsCredentialsMissing, error_code
from coderemote_pipeline.rules.environments import DEFAULT_INFRA_DIR
from coderemote_pipeline.rules.errors import Transient, UserError

PROGRAM_DIR = DEFAULT_INFRA_DIR / "pulumi"
BOOTSTRAP_IMAGE_KEY = f"{stack_outputs.PROJECT}:bootstrap_image_uri"
GEMINI_API_KEY_KEY = f"{stack_outputs.PROJECT}:gemini_api_key"
# The one resource a first deploy creates before anything else (infra/pulumi/ecr_repository.py declares it).
REPOSITORY_TYPE = "aws:ecr/repository:Repository"
REPOSITORY_RESOURCE = "api-repository"
APPLIED_PREFIX = "coderemote-pipeline applied "
TAIL_LINES = 25
INSTALL_URL = "https://www.pulumi.com/docs/install/"


class PulumiError(RuntimeError):
    """A Pulumi step that cannot go on; the message names the cause and the fix."""


class PulumiCliMissing(PulumiError, UserError):
    pass


class StackBusy(PulumiError, Transient):
    pass


class PulumiSetupError(PulumiError):
    """Not logged in to a backend, or no passphrase for the stack's secrets."""


class PulumiUpdateFailed(PulumiError):
    pass


def program_fingerprint(work_dir: Path, config: Mapping[str, Any], versions: Mapping[str, str]) -> str:
    """What `pulumi up` would apply: the program's files, the stack's config and the SDK/provider versions.

    Stack files (`Pulumi.<env>.yaml`) are left out: their content reaches the hash as `config`, so another
    env's file, or the encrypted form of an unchanged secret, never forces an update. The program imports
    `stack_outputs` for its resource names, so that file is part of it too.
    """
    files = [p for p in sorted(work_dir.glob("*.py")) if p.is_file()]
    files += [work_dir / "Pulumi.yaml", Path(stack_outputs.__file__)]
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    digest.update(json.dumps({"config": dict(config), "versions": dict(versions)}, sort_keys=True).encode())
    return digest.hexdigest()


def update_message(fingerprint: str) -> str:
    return f"{APPLIED_PREFIX}{fingerprint}"


def recorded_fingerprint(last_update: Any | None) -> str | None:
    """The fingerprint of the stack's latest operation, if that was an update of ours that succeeded.

    Any other latest operation (a failed or targeted update, a refresh or `pulumi up` by hand) returns None,
    so the next deploy runs `up` again: the recorded hash holds only for the state it was applied to.
    """
    if last_update is None or last_update.kind != "update" or last_update.result != "succeeded":
        return None
    message = last_update.message or ""
    return message.removeprefix(APPLIED_PREFIX) if message.startswith(APPLIED_PREFIX) else None


def repository_urn(stack: str) -> str:
    return f"urn:pulumi:{stack}::{stack_outputs.PROJECT}::{REPOSITORY_TYPE}::{REPOSITORY_RESOURCE}"


def change_lines(resource_changes: Mapping[str, int] | None) -> list[str]:
    """`{"create": 3, "same": 9}` → `["create: 3"]`: unchanged resources are not changes."""
    return [f"{op}: {n}" for op, n in sorted((resource_changes or {}).items()) if op != "same" and n]


def string_outputs(outputs: Mapping[str, Any]) -> dict[str, str]:
    """The stack's outputs as strings, refusing a stack whose keys are not the shared contract."""
    values = {key: getattr(value, "value", value) for key, value in outputs.items()}
    if values.keys() != stack_outputs.ALL_KEYS:
        missing = sorted(stack_outputs.ALL_KEYS - values.keys())
        extra = sorted(values.keys() - stack_outputs.ALL_KEYS)
        raise PulumiError(
            f"the stack's outputs are not the pipeline's (missing {missing}, unexpected {extra}): "
            "infra/pulumi and coderemote_pipeline/stack_outputs.py disagree; run the deploy again to apply the program"
        )
    return {key: "" if value is None else str(value) for key, value in values.items()}


def cli_missing(exc: BaseException) -> PulumiCliMissing:
    """What the Automation API raised when it could not run `pulumi version` (absent, not executable, too old)."""
    if isinstance(exc, FileNotFoundError):
        what = f"Pulumi CLI not found: install it ({INSTALL_URL})"
        detail = f"`{exc.filename or 'pulumi'}` is not on PATH"
    else:
        what = f"Pulumi CLI not usable: install a current one ({INSTALL_URL})"
        detail = str(exc).strip()
    return PulumiCliMissing(
        f"{what} and put `pulumi` on the PATH of the process that runs the deploy; the aws target's infra stage "
        f"runs `pulumi up` through the Automation API ({detail})"
    )


def split_command_result(text: str) -> tuple[str, str, str]:
    """(code, stdout, stderr) of a CommandError, whose only carrier is its message text."""
    head, _, stderr = text.rpartition("\n stderr: ")
    code_part, _, stdout = head.partition("\n stdout: ")
    return code_part.replace("code:", "").strip(), stdout, stderr


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[secret]")
    return text


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(line for line in text.strip().splitlines()[-lines:])


_EXPIRED_CODES = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException"}


def aws_credentials_failure(exc: Exception) -> Exception | None:
    """AwsCredentialsMissing for boto3's ways of saying the credentials are absent, expired or not accepted;
    None for anything else (an AccessDenied names its missing permission well enough on its own)."""
    import botocore.exceptions as bx

    lacking = (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError, bx.SSOError,
               bx.TokenRetrievalError, bx.UnauthorizedSSOTokenError)  # fmt: skip
    if isinstance(exc, lacking) or error_code(exc) in _EXPIRED_CODES:
        return AwsCredentialsMissing(
            f"AWS did not accept the credentials ({type(exc).__name__}: {exc}): renew them (`aws sso login`) or set "
            "AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment of the deploy"
        )
    return None


_CREDENTIALS = re.compile(
    r"NoCredentialProviders|no valid credential sources|failed to refresh cached credentials|ExpiredToken"
    r"|InvalidClientTokenId|UnrecognizedClientException|security token included in the request is (invalid|expired)",
    re.IGNORECASE,
)
_LOGIN = re.compile(r"PULUMI_ACCESS_TOKEN must be set|not logged in|invalid access token|\[401\]", re.IGNORECASE)
_PASSPHRASE = re.compile(r"passphrase must be set|incorrect passphrase|PULUMI_CONFIG_PASSPHRASE", re.IGNORECASE)
_LOCKED = ("Another update is currently in progress", "the stack is currently locked by")


def command_failure(exc: Exception, *, stack: str, operation: str, secrets: Iterable[str] = ()) -> Exception:
    """The exception to raise instead of the Automation API's CommandError, with the cause and the fix.

    Always a PulumiError, or AwsCredentialsMissing for the AWS provider's credential errors (the CLI knows that
    one as a user error). Secrets the caller passed to the CLI are redacted from every quoted line.
    """
    from pulumi.automation import ConcurrentUpdateError


    code, stdout, stderr = split_command_result(redact(str(exc), secrets))
    both = f"{stdout}\n{stderr}"
    where = f"Pulumi stack {stack!r} (infra/pulumi)"
    if isinstance(exc, ConcurrentUpdateError) or any(text in both for text in _LOCKED):
        return StackBusy(
            f"{where} is being updated by another process (another deploy of {stack}, or `pulumi up` by hand): "
            f"wait for it to finish and deploy again. If no update is running (one was killed), release the lock "
            f"with `pulumi cancel --stack {stack}` in infra/pulumi.\n{tail(stderr, 5)}"
        )
    if match := _CREDENTIALS.search(both):
        return AwsCredentialsMissing(
            f"{where}: the Pulumi AWS provider has no valid AWS credentials ({match.group(0)}): set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws sso login`, in the environment of the deploy"
        )
    if _LOGIN.search(both):
        return PulumiSetupError(
            f"{where}: not logged in to a Pulumi backend: run `pulumi login` (Pulumi Cloud; or set "
            "PULUMI_ACCESS_TOKEN), or choose a self-managed backend with PULUMI_BACKEND_URL=s3://<bucket> or "
            f"file://<dir> (see docs/aws.md)\n{tail(stderr, 5)}"
        )
    if _PASSPHRASE.search(both):
        return PulumiSetupError(
            f"{where} keeps its secrets with a passphrase: set PULUMI_CONFIG_PASSPHRASE (or "
            f"PULUMI_CONFIG_PASSPHRASE_FILE) to the stack's passphrase for the deploy\n{tail(stderr, 5)}"
        )
    diagnostics = stdout[stdout.find("Diagnostics:") :] if "Diagnostics:" in stdout else stdout
    return PulumiUpdateFailed(
        f"`pulumi {operation}` of {where} failed (exit {code or '?'}); the stack keeps whatever it applied "
        f"before the error, and the next deploy runs `up` again.\n--- pulumi output (tail) ---\n"
        f"{tail(diagnostics)}\n--- pulumi stderr (tail) ---\n{tail(stderr)}"
    )

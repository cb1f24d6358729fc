"""The pure half of the Pulumi provisioner: the applied-stack fingerprint, and what each CLI failure is told as.

CLI failures are built with the Automation API's own classifier (`create_command_error`) from the texts the
real CLI prints, so the mapping is tested against the exception types the provisioner really receives.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import botocore.exceptions
import pytest
from botocore.exceptions import ClientError
from pulumi.automation import CommandResult, ConcurrentUpdateError, InvalidVersionError
from pulumi.automation.errors import create_command_error

from coderemote_pipeline.resources.aws import AwsCredentialsMissing
from coderemote_pipeline.rules import pulumi_update as ps
from coderemote_pipeline.rules import stack_outputs

CONFIG = {"aws:region": "us-east-1", "code-remote:gemini_model": "gemini-2.5-flash", ps.GEMINI_API_KEY_KEY: "k1"}
VERSIONS = {"pulumi": "3.200.0", "pulumi-aws": "7.0.0"}


@pytest.fixture
def program(tmp_path: Path) -> Path:
    copy = tmp_path / "pulumi"
    shutil.copytree(ps.PROGRAM_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_fingerprint_follows_program_config_and_versions_but_not_stack_files(program: Path) -> None:
    base = ps.program_fingerprint(program, CONFIG, VERSIONS)
    assert ps.program_fingerprint(program, dict(reversed(CONFIG.items())), VERSIONS) == base

    (program / "Pulumi.dev.yaml").write_text("config:\n  code-remote:gemini_api_key:\n    secure: v1:other\n")
    assert ps.program_fingerprint(program, CONFIG, VERSIONS) == base, "stack files reach the hash as config"
    assert ps.program_fingerprint(program, {**CONFIG, ps.GEMINI_API_KEY_KEY: "k2"}, VERSIONS) != base
    assert ps.program_fingerprint(program, CONFIG, {**VERSIONS, "pulumi-aws": "7.1.0"}) != base

    (program / "frontend_site.py").write_text((program / "frontend_site.py").read_text() + "\n")
    assert ps.program_fingerprint(program, CONFIG, VERSIONS) != base
    assert len(base) == 64 and "k1" not in base


@pytest.mark.parametrize(
    ("kind", "result", "message", "expected"),
    [
        ("update", "succeeded", ps.update_message("abc"), "abc"),
        ("update", "failed", ps.update_message("abc"), None),
        ("update", "in-progress", ps.update_message("abc"), None),
        ("update", "succeeded", "coderemote-pipeline bootstrap", None),  # the targeted first update
        ("update", "succeeded", "pulumi up by hand", None),
        ("refresh", "succeeded", ps.update_message("abc"), None),
    ],
)
def test_only_our_last_successful_update_counts(kind: str, result: str, message: str, expected: str | None) -> None:
    summary = SimpleNamespace(kind=kind, result=result, message=message)
    assert ps.recorded_fingerprint(summary) == expected


def test_a_new_stack_has_no_recorded_fingerprint() -> None:
    assert ps.recorded_fingerprint(None) is None


def test_repository_urn_names_the_program_resource() -> None:
    assert ps.repository_urn("dev") == "urn:pulumi:dev::code-remote::aws:ecr/repository:Repository::api-repository"


def test_change_lines_leave_out_unchanged_resources() -> None:
    assert ps.change_lines({"same": 30, "update": 1, "create": 2, "delete": 0}) == ["create: 2", "update: 1"]
    assert ps.change_lines(None) == []


def test_outputs_must_be_exactly_the_contract_keys() -> None:
    values = {key: SimpleNamespace(value=f"v-{key}", secret=False) for key in stack_outputs.ALL_KEYS}
    values[stack_outputs.VPC_ID] = SimpleNamespace(value=None, secret=False)
    outputs = ps.string_outputs(values)
    assert outputs[stack_outputs.API_URL] == f"v-{stack_outputs.API_URL}" and outputs[stack_outputs.VPC_ID] == ""
    del values[stack_outputs.API_URL]
    with pytest.raises(ps.PulumiError, match=r"missing \['api_url'\]"):
        ps.string_outputs({**values, "extra": SimpleNamespace(value="x")})


def test_cli_missing_messages() -> None:
    absent = ps.cli_missing(FileNotFoundError(2, "No such file or directory", "pulumi"))
    assert str(absent).startswith("Pulumi CLI not found: install it (https://www.pulumi.com/docs/install/)")
    old = ps.cli_missing(InvalidVersionError("your current CLI version is 3.0.0"))
    assert "Pulumi CLI not usable" in str(old) and "3.0.0" in str(old)


def failure(stderr: str, stdout: str = "", code: int = 255) -> Exception:
    return create_command_error(CommandResult(stdout=stdout, stderr=stderr, code=code))


DIY_LOCK = (
    "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the "
    "lock file with `pulumi cancel`.\n  s3://state/.pulumi/locks/organization/code-remote/dev/1.json: created by ci"
)


@pytest.mark.parametrize(
    ("error", "expected", "text"),
    [
        (failure("error: [409] Conflict: Another update is currently in progress."), ps.StackBusy, "pulumi cancel"),
        (failure(DIY_LOCK), ps.StackBusy, "--stack dev"),
        (failure("error: No valid credential sources found"), AwsCredentialsMissing, "AWS_PROFILE"),
        (
            failure("", "error: ExpiredToken: The security token included in the request is expired"),
            AwsCredentialsMissing,
            "ExpiredToken",
        ),
        (
            failure("error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions"),
            ps.PulumiSetupError,
            "pulumi login",
        ),
        (failure("error: incorrect passphrase"), ps.PulumiSetupError, "PULUMI_CONFIG_PASSPHRASE"),
        (
            failure("error: update failed", "Updating\nDiagnostics:\n  pulumi:pulumi:Stack: error: boom\n"),
            ps.PulumiUpdateFailed,
            "pulumi:pulumi:Stack: error: boom",
        ),
    ],
)
def test_command_failures_name_the_cause_and_the_fix(error: Exception, expected: type, text: str) -> None:
    mapped = ps.command_failure(error, stack="dev", operation="up")
    assert type(mapped) is expected
    assert text in str(mapped)
    assert "Pulumi stack 'dev'" in str(mapped)


def test_the_automation_api_classifies_a_conflict_as_concurrent_update() -> None:
    assert isinstance(failure("error: [409] Conflict: Another update is currently in progress."), ConcurrentUpdateError)


def test_failed_update_message_is_bounded_and_redacted() -> None:
    stdout = "\n".join(f"line {i}" for i in range(200)) + "\nDiagnostics:\n  error: key sk-secret-1 rejected"
    mapped = ps.command_failure(
        failure("error: update failed", stdout, 255), stack="prod", operation="up", secrets=["sk-secret-1", ""]
    )
    text = str(mapped)
    assert "sk-secret-1" not in text and "key [secret] rejected" in text
    assert "line 10\n" not in text  # only the diagnostics, not the whole log
    assert "(exit 255)" in text


def test_split_command_result_reads_the_command_error_text() -> None:
    code, stdout, stderr = ps.split_command_result(str(failure("bad\nworse", "out", 3)))
    assert (code, stdout, stderr) == ("3", "out", "bad\nworse")


@pytest.mark.parametrize(
    ("error", "mapped"),
    [
        (botocore.exceptions.NoCredentialsError(), True),
        (botocore.exceptions.SSOTokenLoadError(error_msg="token expired"), True),
        (
            ClientError({"Error": {"Code": "ExpiredTokenException", "Message": "expired"}}, "GetAuthorizationToken"),
            True,
        ),
        (
            ClientError({"Error": {"Code": "UnrecognizedClientException", "Message": "bad"}}, "GetAuthorizationToken"),
            True,
        ),
        (ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetAuthorizationToken"), False),
    ],
)
def test_boto3_credential_errors_become_credentials_missing(error: Exception, mapped: bool) -> None:
    result = ps.aws_credentials_failure(error)
    assert isinstance(result, AwsCredentialsMissing) if mapped else result is None
    if mapped:
        assert "aws sso login" in str(result)

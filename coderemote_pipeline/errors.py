"""The errors a user can cause, each with a message that names the thing and the fix; the CLI prints them plainly."""

from __future__ import annotations

from coderemote_pipeline.approvals import ApprovalError
from coderemote_pipeline.deploy import DeployRefused
from coderemote_pipeline.git import GitError
from coderemote_pipeline.local_stack.errors import LocalStackError
from coderemote_pipeline.partitions import UnknownEnvironmentError
from coderemote_pipeline.policy import PolicyError
from coderemote_pipeline.release_rules import ReleaseKeyError
from coderemote_pipeline.resources.aws import AwsCredentialsMissing
from coderemote_pipeline.rules.schema import ConfigError
from coderemote_pipeline.settings import SettingsError

USER_ERRORS: tuple[type[Exception], ...] = (
    ApprovalError,
    AwsCredentialsMissing,
    ConfigError,
    DeployRefused,
    GitError,
    LocalStackError,
    PolicyError,
    ReleaseKeyError,
    SettingsError,
    UnknownEnvironmentError,
)

"""The errors a user can cause, each with a message that names the thing and the fix; the CLI prints them plainly."""

from __future__ import annotations

from coderemote_pipeline.actions.git_remote import GitError
from coderemote_pipeline.ledger.approvals import ApprovalError
from coderemote_pipeline.local_stack.errors import LocalStackError
from coderemote_pipeline.resources.aws import AwsCredentialsMissing
from coderemote_pipeline.rules.environments import PolicyError
from coderemote_pipeline.rules.partitions import UnknownEnvironmentError
from coderemote_pipeline.rules.release_keys import ReleaseKeyError
from coderemote_pipeline.rules.schema import ConfigError
from coderemote_pipeline.rules.settings import SettingsError
from coderemote_pipeline.usecases.deploy import DeployRefused

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

"""What an AWS error means, read from boto3's exceptions without calling anything."""

import botocore.exceptions

from coderemote_pipeline.rules.errors import UserError


class AwsCredentialsMissing(UserError):
    pass


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""

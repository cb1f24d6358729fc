"""Stack output keys: the contract between the Pulumi program, the emulator provisioner and the assets.

Both infra implementations export exactly these keys, so every downstream stage reads the same names whichever
target produced them. `infra/pulumi/program.py` imports this module; a test asserts the two key sets are equal.
"""

REGION = "region"
ECR_REPOSITORY_NAME = "ecr_repository_name"
ECR_REPOSITORY_URL = "ecr_repository_url"
LAMBDA_FUNCTION_NAME = "lambda_function_name"
LAMBDA_ALIAS_NAME = "lambda_alias_name"
LAMBDA_ALIAS_ARN = "lambda_alias_arn"
API_URL = "api_url"
FRONTEND_BUCKET = "frontend_bucket"
CLOUDFRONT_DISTRIBUTION_ID = "cloudfront_distribution_id"
CLOUDFRONT_DOMAIN = "cloudfront_domain"
FRONTEND_URL = "frontend_url"
VPC_ID = "vpc_id"

ALL_KEYS = frozenset(
    {
        REGION,
        ECR_REPOSITORY_NAME,
        ECR_REPOSITORY_URL,
        LAMBDA_FUNCTION_NAME,
        LAMBDA_ALIAS_NAME,
        LAMBDA_ALIAS_ARN,
        API_URL,
        FRONTEND_BUCKET,
        CLOUDFRONT_DISTRIBUTION_ID,
        CLOUDFRONT_DOMAIN,
        FRONTEND_URL,
        VPC_ID,
    }
)

LIVE_ALIAS = "live"
PROJECT = "code-remote"


def resource_prefix(env: str) -> str:
    """`code-remote-<env>`: the prefix of every per-environment resource name, as the strategy's ECR example."""
    return f"{PROJECT}-{env}"


def ecr_repository_name(env: str) -> str:
    return f"{resource_prefix(env)}-api"


def lambda_function_name(env: str) -> str:
    return f"{resource_prefix(env)}-api"


def frontend_bucket_name(env: str) -> str:
    return f"{resource_prefix(env)}-frontend"


# The function's environment names the Gemini key's secret by ARN under this variable; the API reads the key at start.
GEMINI_SECRET_ARN_VARIABLE = "GEMINI_API_KEY_SECRET_ARN"


def gemini_secret_name(env: str) -> str:
    return f"{resource_prefix(env)}/gemini-api-key"

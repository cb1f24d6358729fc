"""The Pulumi program of `infra/pulumi` under Pulumi's mock runtime, one case per stack file.

The pattern of pulumi/examples `testing-unit-py`: `set_mocks` answers every resource registration and invoke,
`@pulumi.runtime.test` runs the program and awaits `Output.all(...).apply(check)`. Resources register
asynchronously, so assertions on what the mocks recorded run after the runtime has finished (the `deployment`
fixture); mocks, config and the root stack are set afresh for every test so no state leaks between tests.
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret
from pulumi.runtime.settings import set_root_resource

from coderemote_pipeline.resources.provisioner import BOOTSTRAP_TAG
from coderemote_pipeline.rules import pulumi_update as pulumi_stack
from coderemote_pipeline.rules import stack_outputs

# pulumi_aws warns about its own deprecated aliases (BucketV2 and friends) when its modules load.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pulumi_aws")

PULUMI_DIR = Path(__file__).resolve().parents[1] / "infra" / "pulumi"
ENVS = ("dev", "staging", "prod")
REGION = "us-east-1"
ACCOUNT = "123456789012"
ZONES = tuple(f"{REGION}{letter}" for letter in "abcdef")
AZ_INVOKE = "aws:index/getAvailabilityZones:getAvailabilityZones"
BOOTSTRAP_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/code-remote-bootstrap:bootstrap"
GEMINI_KEY = "test-gemini-api-key"
DISTRIBUTION_ID = "E2MOCKDISTRIB"
DISTRIBUTION_ARN = f"arn:aws:cloudfront::{ACCOUNT}:distribution/{DISTRIBUTION_ID}"
CLOUDFRONT_DOMAIN = "d111111abcdef8.cloudfront.net"
URL_ID = "mockurlid0123456789"


def _import_program_modules() -> tuple[Any, Any]:
    """`infra/pulumi` holds plain modules beside `__main__.py`, the way the Pulumi CLI runs them. It is never
    a package (one named `pulumi` would shadow the SDK): put it on sys.path just long enough to import them."""
    sys.path.insert(0, str(PULUMI_DIR))
    try:
        return importlib.import_module("program"), importlib.import_module("stack_settings")
    finally:
        sys.path.remove(str(PULUMI_DIR))


program, stack_settings = _import_program_modules()


def mock_state(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Plausible provider outputs, camelCase like the engine's; `name` is the physical name if one is set."""
    if typ == "aws:ecr/repository:Repository":
        return {"repositoryUrl": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{name}"}
    if typ == "aws:lambda/function:Function":
        return {"arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}", "version": "1"}
    if typ == "aws:lambda/alias:Alias":
        return {"arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{inputs['functionName']}:{name}"}
    if typ == "aws:lambda/functionUrl:FunctionUrl":
        return {"functionUrl": f"https://{URL_ID}.lambda-url.{REGION}.on.aws/", "urlId": URL_ID}
    if typ == "aws:s3/bucket:Bucket":
        bucket = f"{inputs['bucketPrefix']}20250101000000000001"
        return {
            "bucket": bucket,
            "arn": f"arn:aws:s3:::{bucket}",
            "bucketRegionalDomainName": f"{bucket}.s3.amazonaws.com",
        }
    if typ == "aws:cloudfront/distribution:Distribution":
        return {"arn": DISTRIBUTION_ARN, "domainName": CLOUDFRONT_DOMAIN}
    if typ == "aws:cloudwatch/logGroup:LogGroup":
        return {"arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"}
    return {"arn": f"arn:aws:mock:{REGION}:{ACCOUNT}:{name}"}


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers with plausible provider outputs (camelCase, like the engine's) and records every registration."""

    def __init__(self, zones: tuple[str, ...] = ZONES) -> None:
        self.zones = zones
        self.resources: list[pulumi.runtime.MockResourceArgs] = []
        self.invokes: list[str] = []
        self.ignore_changes: dict[str, list[str]] = {}  # filled by RecordingMonitor

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        state = mock_state(args.typ, args.inputs.get("name", args.name), args.inputs)
        resource_id = DISTRIBUTION_ID if args.typ == "aws:cloudfront/distribution:Distribution" else f"{args.name}-id"
        return resource_id, {**args.inputs, **state}

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        self.invokes.append(args.token)
        if args.token == AZ_INVOKE:
            return {"id": REGION, "names": list(self.zones), "zoneIds": [f"use1-az{i}" for i in range(len(self.zones))]}
        raise NotImplementedError(f"the program made an unexpected invoke: {args.token}")

    def of_type(self, typ: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [resource for resource in self.resources if resource.typ == typ]

    def one(self, typ: str) -> dict[str, Any]:
        (resource,) = self.of_type(typ)
        return resource.inputs


class RecordingMonitor(MockMonitor):
    """MockResourceArgs carries no resource options: read `ignore_changes` from the raw registration."""

    def RegisterResource(self, request: Any) -> Any:
        self.mocks.ignore_changes[request.name] = list(request.ignoreChanges)
        return super().RegisterResource(request)


def stack_file_config(env: str) -> dict[str, str]:
    """The `config:` of `Pulumi.<env>.yaml`, as strings like the CLI hands them to the program."""
    data = yaml.safe_load((PULUMI_DIR / f"Pulumi.{env}.yaml").read_text(encoding="utf-8"))
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in data["config"].items()}


def ensure_event_loop() -> None:
    """Pulumi's runtime runs on the thread's current event loop; a test elsewhere in the session that used
    asyncio.run() leaves none behind (or a closed one), and set_mocks would fail creating the root stack."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loop = asyncio.get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


def start_runtime(env: str, mocks: RecordingMocks, **overrides: str | None) -> RecordingMocks:
    """Fresh config (the stack file + what the pipeline sets: bootstrap image, secret key; an override of None
    removes a key), a fresh root stack and the mocks."""
    config = {
        **stack_file_config(env),
        "code-remote:bootstrap_image_uri": BOOTSTRAP_IMAGE,
        "code-remote:gemini_api_key": GEMINI_KEY,
        **overrides,
    }
    ensure_event_loop()
    config = {key: value for key, value in config.items() if value is not None}
    pulumi.runtime.set_all_config(config, secret_keys=["code-remote:gemini_api_key"])
    set_root_resource(None)  # so set_mocks creates a new root stack: exports of earlier tests do not linger
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=stack_outputs.PROJECT, stack=env, preview=False, monitor=monitor)
    return mocks


def run_program(env: str) -> dict[str, pulumi.Output]:
    return program.code_remote_stack(env, stack_settings.load_settings(pulumi.Config(), env))


@dataclass(frozen=True)
class Deployment:
    env: str
    mocks: RecordingMocks
    outputs: dict[str, Any]


@pytest.fixture(params=ENVS)
def env(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def mocks(env: str) -> RecordingMocks:
    return start_runtime(env, RecordingMocks())


@pytest.fixture
def deployment(env: str, mocks: RecordingMocks) -> Deployment:
    """Runs the program to completion: the test wrapper returns once every registration has been answered."""
    resolved: dict[str, Any] = {}

    @pulumi.runtime.test
    def deploy() -> pulumi.Output:
        return pulumi.Output.all(**run_program(env)).apply(resolved.update)

    deploy()
    return Deployment(env, mocks, resolved)


@pytest.mark.usefixtures("mocks")
@pulumi.runtime.test
def test_exports_are_exactly_the_contract_keys(env: str) -> pulumi.Output:
    outputs = run_program(env)
    assert outputs.keys() == stack_outputs.ALL_KEYS
    assert pulumi.runtime.get_root_resource().outputs.keys() == stack_outputs.ALL_KEYS  # what pulumi.export saw

    def check(values: dict[str, Any]) -> None:
        assert all(isinstance(value, str) for value in values.values())
        assert values[stack_outputs.REGION] == REGION
        assert values[stack_outputs.ECR_REPOSITORY_NAME] == stack_outputs.ecr_repository_name(env)
        assert values[stack_outputs.ECR_REPOSITORY_URL].endswith(f"/{stack_outputs.ecr_repository_name(env)}")
        assert values[stack_outputs.LAMBDA_FUNCTION_NAME] == stack_outputs.lambda_function_name(env)
        assert values[stack_outputs.LAMBDA_ALIAS_NAME] == stack_outputs.LIVE_ALIAS
        assert values[stack_outputs.LAMBDA_ALIAS_ARN].endswith(f":{stack_outputs.LIVE_ALIAS}")
        assert values[stack_outputs.API_URL] == f"https://{URL_ID}.lambda-url.{REGION}.on.aws"
        assert values[stack_outputs.FRONTEND_BUCKET].startswith(stack_outputs.frontend_bucket_name(env))
        assert values[stack_outputs.CLOUDFRONT_DISTRIBUTION_ID] == DISTRIBUTION_ID
        assert values[stack_outputs.FRONTEND_URL] == f"https://{values[stack_outputs.CLOUDFRONT_DOMAIN]}"
        assert (values[stack_outputs.VPC_ID] == "") == (env != "prod")

    return pulumi.Output.all(**outputs).apply(check)


def test_vpc_only_where_the_stack_file_configures_one(deployment: Deployment) -> None:
    mocks = deployment.mocks
    function = mocks.one("aws:lambda/function:Function")
    role_policies = {resource.name for resource in mocks.of_type("aws:iam/rolePolicy:RolePolicy")}
    if deployment.env != "prod":
        assert not [resource for resource in mocks.resources if resource.typ.startswith("aws:ec2/")]
        assert AZ_INVOKE not in mocks.invokes
        assert "vpcConfig" not in function
        assert role_policies == {"api-logs-policy", "api-secret-policy"}
        return

    assert mocks.one("aws:ec2/vpc:Vpc")["cidrBlock"] == "10.2.0.0/16"
    subnets = [s.inputs for s in mocks.of_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == "private"]
    assert len(subnets) == 3
    assert len({subnet["availabilityZone"] for subnet in subnets}) == 3
    assert {subnet["availabilityZone"] for subnet in subnets} <= set(ZONES)
    vpc_block = ipaddress.ip_network("10.2.0.0/16")
    blocks = [ipaddress.ip_network(subnet["cidrBlock"]) for subnet in subnets]
    assert all(block.subnet_of(vpc_block) for block in blocks)
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])
    assert sorted(function["vpcConfig"]["subnetIds"]) == sorted(f"private-subnet-{i}-id" for i in range(3))
    assert function["vpcConfig"]["securityGroupIds"] == ["api-function-sg-id"]
    assert not mocks.one("aws:ec2/securityGroup:SecurityGroup").get("ingress")
    assert role_policies == {"api-logs-policy", "api-secret-policy", "api-vpc-policy"}
    assert len(mocks.of_type("aws:ec2/natGateway:NatGateway")) == 1  # egress to the Gemini API


def test_too_few_zones_for_az_count_fails_naming_the_key() -> None:
    start_runtime("prod", RecordingMocks(zones=ZONES[:2]))

    @pulumi.runtime.test
    def deploy() -> pulumi.Output:
        return pulumi.Output.all(**run_program("prod"))

    with pytest.raises(ValueError, match="code-remote:az_count is 3 but the region has only 2"):
        deploy()


def test_frontend_bucket_is_private_and_read_only_by_the_distribution(deployment: Deployment) -> None:
    mocks = deployment.mocks
    bucket = mocks.one("aws:s3/bucket:Bucket")
    assert bucket["bucketPrefix"] == f"{stack_outputs.frontend_bucket_name(deployment.env)}-"
    assert bucket.get("acl") in (None, "private")
    assert not mocks.of_type("aws:s3/bucketAcl:BucketAcl")
    block = mocks.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert all(block[flag] is True for flag in flags)
    ownership = mocks.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert ownership["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    versioning = mocks.one("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    encryption = mocks.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert encryption["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"

    policy = json.loads(mocks.one("aws:s3/bucketPolicy:BucketPolicy")["policy"])
    allows = [statement for statement in policy["Statement"] if statement["Effect"] == "Allow"]
    assert allows
    for statement in allows:
        assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
        assert statement["Condition"]["StringEquals"]["AWS:SourceArn"] == DISTRIBUTION_ARN

    oac = mocks.one("aws:cloudfront/originAccessControl:OriginAccessControl")
    assert (oac["originAccessControlOriginType"], oac["signingProtocol"]) == ("s3", "sigv4")
    distribution = mocks.one("aws:cloudfront/distribution:Distribution")
    (origin,) = distribution["origins"]
    assert origin["originAccessControlId"] == "frontend-oac-id"
    assert "s3OriginConfig" not in origin  # OAC, not the legacy origin access identity
    # Each release under its own prefix; the pipeline moves the origin to the live one, Pulumi leaves it there.
    assert origin["originPath"] == "/_releases/none"
    assert mocks.ignore_changes["frontend-cdn"] == ["origins[0].originPath"]
    assert distribution["defaultRootObject"] == "index.html"
    assert distribution["defaultCacheBehavior"]["viewerProtocolPolicy"] == "redirect-to-https"
    fallbacks = {
        (e["errorCode"], e["responseCode"], e["responsePagePath"]) for e in distribution["customErrorResponses"]
    }
    assert fallbacks == {(403, 200, "/index.html"), (404, 200, "/index.html")}


def test_api_is_an_image_function_behind_the_live_alias(deployment: Deployment) -> None:
    mocks, env = deployment.mocks, deployment.env
    name = stack_outputs.lambda_function_name(env)
    function = mocks.one("aws:lambda/function:Function")
    assert (function["name"], function["packageType"], function["imageUri"]) == (name, "Image", BOOTSTRAP_IMAGE)
    assert function["publish"] is True
    alias = mocks.one("aws:lambda/alias:Alias")
    assert (alias["name"], alias["functionName"], alias["functionVersion"]) == ("live", name, "1")
    # The pipeline moves the code and the alias; `pulumi up` must not move them back.
    assert mocks.ignore_changes["api-function"] == ["imageUri"]
    assert mocks.ignore_changes["api-live-alias"] == ["functionVersion", "routingConfig"]  # canary weights: ours

    url = mocks.one("aws:lambda/functionUrl:FunctionUrl")
    assert (url["qualifier"], url["authorizationType"]) == ("live", "NONE")
    assert url["cors"]["allowOrigins"] == [deployment.outputs[stack_outputs.FRONTEND_URL]]
    permissions = {p["action"]: p for p in (r.inputs for r in mocks.of_type("aws:lambda/permission:Permission"))}
    assert permissions.keys() == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    assert all(p["qualifier"] == "live" for p in permissions.values())

    log_group = mocks.one("aws:cloudwatch/logGroup:LogGroup")
    assert log_group["name"] == f"/aws/lambda/{name}"
    assert log_group["retentionInDays"] == (30 if env == "prod" else 14)
    logs_policy = next(r for r in mocks.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == "api-logs-policy")
    (statement,) = json.loads(logs_policy.inputs["policy"])["Statement"]
    assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    log_group_arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{name}"
    assert statement["Resource"] == [log_group_arn, f"{log_group_arn}:*"]


@pulumi.runtime.test
def test_gemini_api_key_stays_secret(env: str, mocks: RecordingMocks) -> pulumi.Output:
    settings = stack_settings.load_settings(pulumi.Config(), env)
    assert GEMINI_KEY not in repr(settings)
    outputs = program.code_remote_stack(env, settings)

    def check(args: list[Any]) -> None:
        key_is_secret, exported = args[0], args[1:]
        assert key_is_secret
        # The key is the secret's value (under mocks, wrapped in its RPC signature: what the engine encrypts in
        # the state); the function's environment holds only the secret's ARN, and the role may read that secret.
        value = mocks.one("aws:secretsmanager/secretVersion:SecretVersion")["secretString"]
        assert is_rpc_secret(value) and unwrap_rpc_secret(value) == GEMINI_KEY
        secret = mocks.one("aws:secretsmanager/secret:Secret")
        assert secret["name"] == f"code-remote-{env}/gemini-api-key"
        arn = f"arn:aws:mock:{REGION}:{ACCOUNT}:code-remote-{env}/gemini-api-key"
        environment = mocks.one("aws:lambda/function:Function")["environment"]
        assert environment["variables"] == {"APP_ENV": env, "GEMINI_MODEL": "gemini-2.5-flash",
                                            "GEMINI_API_KEY_SECRET_ARN": arn}  # fmt: skip
        assert GEMINI_KEY not in json.dumps(environment) and all(GEMINI_KEY not in value for value in exported)
        (read,) = [r.inputs for r in mocks.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == "api-secret-policy"]
        statement = json.loads(read["policy"])["Statement"]
        assert statement == [{"Sid": "ReadOwnSecret", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                              "Resource": arn}]  # fmt: skip

    # Output.is_secret() is a coroutine: Output.from_input awaits it inside the runtime.
    return pulumi.Output.all(pulumi.Output.from_input(settings.gemini_api_key.is_secret()), *outputs.values()).apply(
        check
    )


@pytest.mark.parametrize("stack_file", sorted(PULUMI_DIR.glob("Pulumi.*.yaml")), ids=lambda path: path.name)
def test_stack_files_hold_no_plaintext_secret(stack_file: Path) -> None:
    config = yaml.safe_load(stack_file.read_text(encoding="utf-8"))["config"]
    assert config["aws:region"] == REGION
    key = config.get("code-remote:gemini_api_key")
    assert key is None or set(key) == {"secure"}  # only as `pulumi config set --secret` writes it


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code-remote:az_count": "2"}, "code-remote:vpc_cidr is required"),
        ({"code-remote:vpc_cidr": "10.9.0.0/16"}, "code-remote:az_count is required"),
        ({"code-remote:vpc_cidr": "10.9.0.0/16", "code-remote:az_count": "7"}, "code-remote:az_count must be"),
        ({"code-remote:vpc_cidr": "10.9.0.0/26", "code-remote:az_count": "2"}, "code-remote:vpc_cidr must be"),
        ({"code-remote:vpc_cidr": "not-a-cidr", "code-remote:az_count": "2"}, "code-remote:vpc_cidr is not"),
        ({"code-remote:log_retention_days": "10"}, "code-remote:log_retention_days must be"),
        ({"code-remote:bootstrap_image_uri": None}, "code-remote:bootstrap_image_uri"),
        ({"code-remote:gemini_api_key": None}, "code-remote:gemini_api_key"),
    ],
)
def test_invalid_settings_name_the_key(overrides: dict[str, str | None], error: str) -> None:
    start_runtime("dev", RecordingMocks(), **overrides)
    with pytest.raises((ValueError, pulumi.ConfigMissingError), match=error):
        stack_settings.load_settings(pulumi.Config(), "dev")


def test_api_repository_scans_on_push_and_keeps_images_for_rollback(deployment: Deployment) -> None:
    mocks = deployment.mocks
    repository = mocks.one(pulumi_stack.REPOSITORY_TYPE)
    assert repository["name"] == stack_outputs.ecr_repository_name(deployment.env)
    assert repository["imageScanningConfiguration"]["scanOnPush"] is True
    rules = sorted(
        json.loads(mocks.one("aws:ecr/lifecyclePolicy:LifecyclePolicy")["policy"])["rules"],
        key=lambda rule: rule["rulePriority"],
    )
    # The function is created from `bootstrap`: the first rule shields it from the count rule below it.
    assert rules[0]["selection"]["tagPrefixList"] == [BOOTSTRAP_TAG]
    (keep,) = [r for r in rules if r["selection"]["tagStatus"] == "tagged" and r["selection"].get("tagPatternList")]
    assert keep["selection"]["countType"] == "imageCountMoreThan" and keep["selection"]["countNumber"] >= 10
    assert all(r["selection"]["tagStatus"] != "any" for r in rules[:-1])  # ECR: `any` only as the lowest priority


def test_first_deploy_target_is_the_programs_repository(deployment: Deployment) -> None:
    """PulumiProvisioner's first deploy runs `up --target <this URN>`, then pushes `bootstrap` into it."""
    (repository,) = deployment.mocks.of_type(pulumi_stack.REPOSITORY_TYPE)
    assert repository.name == pulumi_stack.REPOSITORY_RESOURCE
    assert pulumi_stack.repository_urn(deployment.env).endswith(f"::{repository.typ}::{repository.name}")
    assert sys.modules["ecr_repository"].BOOTSTRAP_TAG == BOOTSTRAP_TAG


def test_live_alias_errors_raise_an_alarm(deployment: Deployment) -> None:
    name = stack_outputs.lambda_function_name(deployment.env)
    alarm = deployment.mocks.one("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert (alarm["namespace"], alarm["metricName"], alarm["statistic"]) == ("AWS/Lambda", "Errors", "Sum")
    assert alarm["dimensions"] == {"FunctionName": name, "Resource": f"{name}:{stack_outputs.LIVE_ALIAS}"}
    assert alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold" and alarm["threshold"] == 1
    assert alarm["treatMissingData"] == "notBreaching"

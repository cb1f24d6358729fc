"""The local target's infrastructure: the Pulumi program's resources, with the same names and outputs, made
through boto3 against the emulator."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable

from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.docker_engine import DockerEngine
from coderemote_pipeline.resources.emulator_plan import planned_changes
from coderemote_pipeline.resources.image_registry import ImageRegistry
from coderemote_pipeline.resources.local_stack import LocalStackResource
from coderemote_pipeline.resources.provisioner import BOOTSTRAP_TAG, InfraProvisioner, InfraResult
from coderemote_pipeline.rules import stack_outputs as out
from coderemote_pipeline.rules.stack_config import StackConfig

LAMBDA_ASSUME_ROLE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


class EmulatorProvisioner(InfraProvisioner):
    """The Pulumi program's resources, with the same names and outputs, made through boto3 against the emulator."""

    aws: AwsResource
    registry: ImageRegistry
    docker: DockerEngine
    stack: LocalStackResource
    # dg.EnvVar("GEMINI_API_KEY") when that variable is set (targets.py): resolved at launch, put into the
    # function's environment as on AWS, never into metadata or logs. None: the function gets no key.
    gemini_api_key: str | None = None

    def preview(self, env: str, config: StackConfig) -> list[str]:
        return planned_changes(self.aws, env, config)

    def refresh(self, env: str, config: StackConfig) -> list[str]:
        # The emulator is the only state there is: what differs from the declaration is what a deploy will fix.
        return planned_changes(self.aws, env, config)

    def ensure(self, env: str, config: StackConfig, log: Callable[[str], None]) -> InfraResult:
        started = time.monotonic()
        changes: list[str] = []
        role_arn = self._role(env, changes)
        repo_name, repo_uri = self._repository(env, changes)
        bucket = self._bucket(env, changes)
        function = self._function(env, config, role_arn, repo_name, changes)
        alias_arn = self._alias(function, changes)
        distribution_id, domain = self._distribution(env, bucket, changes)
        vpc_id = self._vpc(env, config, changes) if config.vpc_cidr else ""
        for change in changes:
            log(change)
        info = self.stack.info()
        outputs = {
            out.REGION: config.region,
            out.ECR_REPOSITORY_NAME: repo_name,
            out.ECR_REPOSITORY_URL: repo_uri,
            out.LAMBDA_FUNCTION_NAME: function,
            out.LAMBDA_ALIAS_NAME: out.LIVE_ALIAS,
            out.LAMBDA_ALIAS_ARN: alias_arn,
            # moto cannot invoke functions: the local runtime serves the alias's image on this env's port.
            out.API_URL: f"http://127.0.0.1:{info.api_ports[env]}",
            out.FRONTEND_BUCKET: bucket,
            out.CLOUDFRONT_DISTRIBUTION_ID: distribution_id,
            out.CLOUDFRONT_DOMAIN: domain,
            # The site edge (varnish, the local CloudFront) serves the bucket's live release on this env's port.
            out.FRONTEND_URL: f"http://127.0.0.1:{info.site_ports[env]}",
            out.VPC_ID: vpc_id,
        }
        return InfraResult(outputs=outputs, changes=changes, seconds=time.monotonic() - started)

    def _role(self, env: str, changes: list[str]) -> str:
        iam = self.aws.client("iam")
        name = f"{out.resource_prefix(env)}-api-role"
        try:
            return iam.get_role(RoleName=name)["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            pass
        try:
            arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(LAMBDA_ASSUME_ROLE))["Role"]["Arn"]
        except iam.exceptions.EntityAlreadyExistsException:
            # Another environment's (or a reclaimed) provisioning made it between our get and create.
            return iam.get_role(RoleName=name)["Role"]["Arn"]
        changes.append(f"created IAM role {name}")
        return arn

    def _repository(self, env: str, changes: list[str]) -> tuple[str, str]:
        ecr = self.aws.client("ecr")
        name = out.ecr_repository_name(env)
        try:
            repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        except ecr.exceptions.RepositoryNotFoundException:
            try:
                repo = ecr.create_repository(repositoryName=name, imageScanningConfiguration={"scanOnPush": True})[
                    "repository"
                ]
                changes.append(f"created ECR repository {name}")
            except ecr.exceptions.RepositoryAlreadyExistsException:
                repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        return name, repo["repositoryUri"]

    def _bucket(self, env: str, changes: list[str]) -> str:
        s3 = self.aws.client("s3")
        name = out.frontend_bucket_name(env)
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if name not in existing:
            try:
                s3.create_bucket(Bucket=name)
            except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
                return name
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            changes.append(f"created S3 bucket {name} (versioned)")
        return name

    def _function(self, env: str, config: StackConfig, role_arn: str, repo: str, changes: list[str]) -> str:
        lam = self.aws.client("lambda")
        name = out.lambda_function_name(env)
        try:
            current = lam.get_function_configuration(FunctionName=name)
        except lam.exceptions.ResourceNotFoundException:
            current = None
        wanted = {"GEMINI_MODEL": config.gemini_model}
        if self.gemini_api_key:  # set and not empty: an empty key is no key
            # The key lives in the secret store; the function's environment names it only (as on AWS).
            wanted[out.GEMINI_SECRET_ARN_VARIABLE] = self._secret(env, changes)
        if current is None:
            # An Image function cannot exist without an image: the base image stands in until the first deploy.
            bootstrap = self._bootstrap_image(repo)
            lam.create_function(
                FunctionName=name,
                PackageType="Image",
                Code={"ImageUri": bootstrap},
                Role=role_arn,
                Timeout=30,
                MemorySize=512,
                Environment={"Variables": wanted},
                Description=f"Code Remote API ({env}); code moved by the api stages",
                Publish=True,
            )
            changes.append(f"created Lambda function {name} from {BOOTSTRAP_TAG} image")
            return name
        variables = current.get("Environment", {}).get("Variables", {})
        # A key an earlier version put in the environment in clear goes: only the secret's ARN stays.
        differing = sorted(key for key, value in wanted.items() if variables.get(key) != value)
        differing += ["GEMINI_API_KEY"] if "GEMINI_API_KEY" in variables else []
        if differing:
            merged = {k: v for k, v in {**variables, **wanted}.items() if k != "GEMINI_API_KEY"}
            lam.update_function_configuration(FunctionName=name, Environment={"Variables": merged})
            lam.get_waiter("function_updated_v2").wait(FunctionName=name)
            shown = [f"{key}={merged[key]}" if key in merged else f"{key} removed" for key in differing]
            changes.append(f"updated {name} {', '.join(shown)}")
        return name

    def _secret(self, env: str, changes: list[str]) -> str:
        """The env's Gemini key in Secrets Manager (created, or its value brought up to date); its ARN."""
        sm, name = self.aws.client("secretsmanager"), out.gemini_secret_name(env)
        try:
            current = sm.get_secret_value(SecretId=name)
        except sm.exceptions.ResourceNotFoundException:
            created = sm.create_secret(Name=name, SecretString=str(self.gemini_api_key),
                                       Description=f"Gemini API key of the Code Remote API ({env})")  # fmt: skip
            changes.append(f"created secret {name}")
            return created["ARN"]
        if current["SecretString"] != self.gemini_api_key:
            sm.put_secret_value(SecretId=name, SecretString=str(self.gemini_api_key))
            changes.append(f"updated the value of secret {name} (not shown)")
        return current["ARN"]

    def _bootstrap_image(self, repo: str) -> str:
        existing = self.registry.find(repo, BOOTSTRAP_TAG)
        if existing is None:
            client = self.docker.client()
            existing = self.registry.push(client, self.docker.base_image_id(), repo, [BOOTSTRAP_TAG])
        return existing.uri

    def _alias(self, function: str, changes: list[str]) -> str:
        lam = self.aws.client("lambda")
        try:
            return lam.get_alias(FunctionName=function, Name=out.LIVE_ALIAS)["AliasArn"]
        except lam.exceptions.ResourceNotFoundException:
            versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName=function)["Versions"]]
            first = next(v for v in versions if v != "$LATEST")
            changes.append(f"created alias {function}:{out.LIVE_ALIAS} → version {first}")
            return lam.create_alias(FunctionName=function, Name=out.LIVE_ALIAS, FunctionVersion=first)["AliasArn"]

    def _distribution(self, env: str, bucket: str, changes: list[str]) -> tuple[str, str]:
        cf = self.aws.client("cloudfront")
        comment = f"{out.resource_prefix(env)} frontend"
        for item in cf.list_distributions().get("DistributionList", {}).get("Items", []) or []:
            if item.get("Comment") == comment:
                return item["Id"], item["DomainName"]
        origin_id = f"s3-{bucket}"
        created = cf.create_distribution(
            DistributionConfig={
                "CallerReference": f"{out.resource_prefix(env)}-frontend",
                "Comment": comment,
                "Enabled": True,
                "DefaultRootObject": "index.html",
                "Origins": {
                    "Quantity": 1,
                    "Items": [
                        {
                            "Id": origin_id,
                            "DomainName": f"{bucket}.s3.amazonaws.com",
                            "S3OriginConfig": {"OriginAccessIdentity": ""},
                        }
                    ],
                },
                "DefaultCacheBehavior": {
                    "TargetOriginId": origin_id,
                    "ViewerProtocolPolicy": "redirect-to-https",
                    "MinTTL": 0,
                    "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                    "TrustedSigners": {"Enabled": False, "Quantity": 0},
                },
            }
        )["Distribution"]
        changes.append(f"created CloudFront distribution {created['Id']} for {bucket}")
        return created["Id"], created["DomainName"]

    def _vpc(self, env: str, config: StackConfig, changes: list[str]) -> str:
        ec2 = self.aws.client("ec2")
        name = f"{out.resource_prefix(env)}-vpc"
        found = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [name]}])["Vpcs"]
        if found:
            return found[0]["VpcId"]
        vpc_id = ec2.create_vpc(
            CidrBlock=config.vpc_cidr,
            TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": name}]}],
        )["Vpc"]["VpcId"]
        zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][: config.az_count]
        subnets = ipaddress.ip_network(config.vpc_cidr).subnets(new_prefix=20)
        for zone, cidr in zip(zones, subnets, strict=False):
            ec2.create_subnet(VpcId=vpc_id, CidrBlock=str(cidr), AvailabilityZone=zone)
        changes.append(f"created VPC {name} {config.vpc_cidr} across {len(zones)} availability zones")
        return vpc_id

"""The frontend: a private, versioned S3 bucket reached only through CloudFront with Origin Access Control.

No API origin: CloudFront serves only the frontend, and the browser calls the API at its Function URL (the
`api_url` output, with CORS for this distribution's origin; see lambda_api.py). A second origin for the Function
URL with an `/api/*` behaviour (caching disabled, all methods) was considered and left out:
- the Function URL's CORS origin is this distribution's domain, so the distribution cannot also depend on the
  Function URL: the two would form a dependency cycle (only a custom domain known in config would break it);
- `custom_error_responses` apply to every behaviour, so the SPA fallback below would turn the API's 403/404
  into `200 index.html` under `/api/*`, hiding real errors from the frontend;
- nothing in the release uses it: smoke tests call `api_url`, the frontend gets `api_url` at deploy time, and
  the local target (API in a container, frontend from the emulated bucket) is cross-origin too;
- the API's routes would have to live under `/api/` (`/health` does not).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from coderemote_pipeline.rules.frontend_files import RELEASES_PREFIX
from coderemote_pipeline.rules.stack_outputs import frontend_bucket_name, resource_prefix

S3_ORIGIN_ID = "frontend-s3"
# AWS managed policies, by their documented fixed IDs (no lookup needed).
CACHING_OPTIMIZED_POLICY_ID = "658327ea-f89d-4fab-a63d-7e88639e58f6"
NONCURRENT_VERSION_DAYS = 90
INDEX_DOCUMENT = "index.html"
# The origin path before the first release goes live (nothing is there yet: CloudFront answers 403).
BOOTSTRAP_RELEASE = "none"


@dataclass(frozen=True)
class Frontend:
    bucket: aws.s3.Bucket
    distribution: aws.cloudfront.Distribution

    @property
    def url(self) -> pulumi.Output[str]:
        return self.distribution.domain_name.apply(lambda domain: f"https://{domain}")


def bucket_policy(bucket_arn: str, distribution_arn: str) -> dict[str, object]:
    """Only this distribution may read objects; nothing may reach the bucket without TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowCloudFrontReadOnly",
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn}/*",
                "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
            },
            {
                # Every deployed release keeps a snapshot under _releases/ for rollbacks; only the live site
                # (the bucket's root) is public through the CDN.
                "Sid": "DenyCloudFrontReleaseSnapshots",
                "Effect": "Deny",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn}/_releases/*",
            },
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


def frontend_site(env: str, tags: Mapping[str, str]) -> Frontend:
    prefix = resource_prefix(env)
    # Bucket names are global: auto-named from the prefix, the real name is the `frontend_bucket` output.
    bucket = aws.s3.Bucket("frontend-bucket", bucket_prefix=f"{frontend_bucket_name(env)}-", tags=dict(tags))
    public_access = aws.s3.BucketPublicAccessBlock(
        "frontend-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )
    # ACLs disabled: the bucket owner owns every object, and uploads must not send an ACL.
    aws.s3.BucketOwnershipControls(
        "frontend-ownership", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}
    )
    aws.s3.BucketVersioning("frontend-versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"})
    aws.s3.BucketServerSideEncryptionConfiguration(
        "frontend-encryption",
        bucket=bucket.id,
        # SSE-S3: CloudFront with OAC reads it without a KMS key policy.
        rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
    )
    # Every deploy overwrites index.html and friends: bound the history versioning keeps.
    aws.s3.BucketLifecycleConfiguration(
        "frontend-lifecycle",
        bucket=bucket.id,
        rules=[
            {
                "id": "expire-old-versions",
                "status": "Enabled",
                "filter": {},
                "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_VERSION_DAYS},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
            }
        ],
    )

    origin_access = aws.cloudfront.OriginAccessControl(
        "frontend-oac",
        name=f"{prefix}-frontend",
        description=f"{prefix}: CloudFront reads the frontend bucket",
        origin_access_control_origin_type="s3",
        signing_behavior="always",
        signing_protocol="sigv4",
    )
    distribution = aws.cloudfront.Distribution(
        "frontend-cdn",
        enabled=True,
        comment=f"{prefix} frontend",
        default_root_object=INDEX_DOCUMENT,
        is_ipv6_enabled=True,
        http_version="http2and3",
        price_class="PriceClass_100",
        origins=[
            {
                "origin_id": S3_ORIGIN_ID,
                "domain_name": bucket.bucket_regional_domain_name,
                "origin_access_control_id": origin_access.id,
                # Each release's files stay under their own prefix; the pipeline points the origin at the live
                # one (resources/site_edge.py CloudFrontOriginEdge), so going live and rolling back copy nothing.
                "origin_path": f"/{RELEASES_PREFIX.rstrip('/')}/{BOOTSTRAP_RELEASE}",
            }
        ],
        default_cache_behavior={
            "target_origin_id": S3_ORIGIN_ID,
            "viewer_protocol_policy": "redirect-to-https",
            "allowed_methods": ["GET", "HEAD", "OPTIONS"],
            "cached_methods": ["GET", "HEAD"],
            "cache_policy_id": CACHING_OPTIMIZED_POLICY_ID,
            "compress": True,
        },
        # SPA fallback: client-side routes are not objects. Without s3:ListBucket a missing key is a 403.
        custom_error_responses=[
            {
                "error_code": code,
                "response_code": 200,
                "response_page_path": f"/{INDEX_DOCUMENT}",
                "error_caching_min_ttl": 10,
            }
            for code in (403, 404)
        ],
        restrictions={"geo_restriction": {"restriction_type": "none"}},
        viewer_certificate={"cloudfront_default_certificate": True},
        tags=dict(tags),
        # The pipeline points the origin at the live release (a flip, a rollback): not Pulumi's to put back.
        opts=pulumi.ResourceOptions(ignore_changes=["origins[0].originPath"]),
    )
    aws.s3.BucketPolicy(
        "frontend-bucket-policy",
        bucket=bucket.id,
        policy=pulumi.Output.all(bucket.arn, distribution.arn).apply(
            lambda arns: json.dumps(bucket_policy(arns[0], arns[1]))
        ),
        # With block_public_policy on first, a policy that were public would be refused, not applied.
        opts=pulumi.ResourceOptions(depends_on=[public_access]),
    )
    return Frontend(bucket=bucket, distribution=distribution)

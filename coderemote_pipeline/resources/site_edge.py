"""What serves the site to users: CloudFront on AWS, varnish on the local target. Both follow the bucket's
live-release pointer (actions/site_store.py); this resource tells the edge when the pointer moved, and forgets
cached paths when an invalidation asks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import dagster as dg

from coderemote_pipeline.local_stack import site_edge
from coderemote_pipeline.resources.aws import AwsResource
from coderemote_pipeline.resources.local_stack import LocalStackResource
from coderemote_pipeline.rules import stack_outputs as out

RELEASES = "/_releases/"  # the origin path of a release's snapshot in the bucket (actions/site_store.py)


class SiteEdge(dg.ConfigurableResource, ABC):
    @abstractmethod
    def follow(self, env: str, outputs: dict[str, str], release: str) -> str:
        """The edge serves `release` from now on (its pointer just flipped); returns what was done."""

    @abstractmethod
    def forget(self, env: str, paths: list[str]) -> None:
        """Drop the cached copies of `paths` (CloudFront does it itself from the invalidation)."""

    def forget_command(self, env: str, paths: list[str]) -> str:
        """`forget` as a command a person runs, when it failed ("": it does nothing here)."""
        return ""

    @abstractmethod
    def serves(self, env: str, outputs: dict[str, str]) -> str | None:
        """The release the edge serves now, as the edge itself says (None: none). A process killed between the
        pointer's flip and `follow` leaves the edge on the release before: the pointer alone would not tell."""


class LocalSiteEdge(SiteEdge):
    """varnish re-reads the pointer object: one PURGE of it on the env's port."""

    stack: LocalStackResource

    def follow(self, env: str, outputs: dict[str, str], release: str) -> str:
        port = self.stack.info().site_ports[env]
        site_edge.forget_pointer(port)
        return f"the site edge on port {port} follows the pointer to {release}"

    def forget(self, env: str, paths: list[str]) -> None:
        if paths:
            site_edge.ban_paths(self.stack.info().site_ports[env], paths)

    def forget_command(self, env: str, paths: list[str]) -> str:
        return site_edge.ban_command(self.stack.info().site_ports[env], paths)

    def serves(self, env: str, outputs: dict[str, str]) -> str | None:
        return site_edge.edge_release(self.stack.info().site_ports[env])


class CloudFrontOriginEdge(SiteEdge):
    """CloudFront's origin path is the live release's prefix: the distribution follows the pointer by an update of
    its origin (what docs/aws.md shows, and what a CloudFront Function reading a KeyValueStore could do instead)."""

    aws: AwsResource

    def follow(self, env: str, outputs: dict[str, str], release: str) -> str:
        cf = self.aws.client("cloudfront")
        distribution = outputs[out.CLOUDFRONT_DISTRIBUTION_ID]
        current = cf.get_distribution_config(Id=distribution)
        config, etag = current["DistributionConfig"], current["ETag"]
        path = f"{RELEASES}{release}"
        origins = config["Origins"]["Items"]
        if all(origin.get("OriginPath") == path for origin in origins):
            # Asked again after a flip it already followed: an update would redeploy the distribution for nothing.
            return f"CloudFront {distribution} already serves origin path {path}"
        for origin in origins:
            origin["OriginPath"] = path
        cf.update_distribution(Id=distribution, IfMatch=etag, DistributionConfig=config)
        return f"CloudFront {distribution} serves origin path {path}"

    def forget(self, env: str, paths: list[str]) -> None:
        return None

    def serves(self, env: str, outputs: dict[str, str]) -> str | None:
        config = self.aws.client("cloudfront").get_distribution_config(Id=outputs[out.CLOUDFRONT_DISTRIBUTION_ID])
        paths = {origin.get("OriginPath", "") for origin in config["DistributionConfig"]["Origins"]["Items"]}
        path = paths.pop() if len(paths) == 1 else ""
        return path.removeprefix(RELEASES) or None if path.startswith(RELEASES) else None

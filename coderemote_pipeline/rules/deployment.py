"""One deployment as one typed value: the environment, the release, its commit and the environment's policy.

The edges (the CLI, a sensor, a stage reading its partition) parse `dev|main-3f9c2ab` into a `Deployment` once;
everything below takes the value and never re-validates the strings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import dagster as dg

from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.env_names import check_env
from coderemote_pipeline.rules.environments import Accepts, EnvironmentPolicy
from coderemote_pipeline.rules.partitions import ENV_DIMENSION, RELEASE_DIMENSION, partition_key, split_partition_key
from coderemote_pipeline.rules.release_keys import Release, parse_release_key


@dataclass(frozen=True)
class Deployment:
    env: str
    release: Release
    policy: EnvironmentPolicy
    # The commit being deployed, once known (resolved from the remote, or pinned by whoever launched the run).
    commit: str = ""

    @classmethod
    def of(
        cls, env: str, release: str, policies: dict[str, EnvironmentPolicy], commit: str = ""
    ) -> Deployment:
        env = check_env(env)
        return cls(env, parse_release_key(release), policies[env], commit)

    @classmethod
    def parse(cls, key: str | dg.MultiPartitionKey, policies: dict[str, EnvironmentPolicy], commit: str = ""):
        env, release = split_partition_key(key)
        return cls.of(env, release, policies, commit)

    @property
    def partition(self) -> str:
        return partition_key(self.env, self.release.key)

    @property
    def label(self) -> str:
        return f"{self.env}|{self.release.key}"

    def at(self, commit: str) -> Deployment:
        return replace(self, commit=commit)

    def refusal(self) -> str | None:
        """Why the environment's policy refuses this release (prod takes stable tags only), or None."""
        return self.policy.refusal(self.release)

    @property
    def must_be_on_main(self) -> bool:
        """A stable tag for an env of stable tags: its commit must be on main, as its tag sensor asks (a hotfix tagged
        on its branch is missing from every later tag, and the next release takes it back out of prod)."""
        return self.policy.accepts is Accepts.STABLE_TAGS and self.release.is_stable

    def off_main(self) -> str:
        return (f"{self.label}: its commit {self.commit[:12]} is not on main, and {self.env} takes releases tagged on "
                "main (the next tag would not have this change). Merge it into main and tag the merge commit, or "
                "deploy it anyway with --force --reason TEXT, recorded in history")  # fmt: skip

    def tags(self, trigger: str) -> dict[str, str]:
        """The run tags of this deployment: what history, the lease and the ledger's run queries look up."""
        return {
            names.PARTITION_TAG: self.partition,
            f"{names.PARTITION_TAG}/{ENV_DIMENSION}": self.env,
            f"{names.PARTITION_TAG}/{RELEASE_DIMENSION}": self.release.key,
            names.ENV_TAG: self.env,
            names.RELEASE_TAG: self.release.key,
            names.COMMIT_TAG: self.commit,
            names.TRIGGER_TAG: trigger,
        }

    def built_tags(self, trigger: str, remote: str, layout_json: str, commit_time: float | None) -> dict[str, str]:
        """The run tags plus how the release is built (remote, layout) and when its commit was made."""
        made = {names.COMMIT_TIME_TAG: f"{commit_time:.0f}"} if commit_time is not None else {}
        return {**self.tags(trigger), names.APP_REMOTE_TAG: remote, names.APP_LAYOUT_TAG: layout_json, **made}

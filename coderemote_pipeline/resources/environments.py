"""The environment policy as a resource: stages and sensors read the policy files through it, never by path."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from coderemote_pipeline.rules.deployment import Deployment
from coderemote_pipeline.rules.environments import EnvironmentPolicy, load_policies


class Environments(dg.ConfigurableResource):
    """infra/environments.yaml and the stack files in `infra_dir` (parsed once per change of the files)."""

    infra_dir: str

    def policies(self) -> dict[str, EnvironmentPolicy]:
        return load_policies(Path(self.infra_dir))

    def policy(self, env: str) -> EnvironmentPolicy:
        return self.policies()[env]

    def deployment(self, partition: str | dg.MultiPartitionKey, commit: str = "") -> Deployment:
        return Deployment.parse(partition, self.policies(), commit)

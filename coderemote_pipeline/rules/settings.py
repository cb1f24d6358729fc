"""Where this installation keeps its state and which app and target it deploys, read when definitions load.

Everything here is plain configuration from the environment; secrets never pass through it (they reach resources
as `dg.EnvVar`, resolved at launch).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from coderemote_pipeline.rules.app_layout import AppLayout, load_app_layout
from coderemote_pipeline.rules.environments import default_infra_dir, load_policies
from coderemote_pipeline.rules.errors import UserError
from coderemote_pipeline.rules.remote_urls import absolute, check_remote
from coderemote_pipeline.rules.schema import nearest
from coderemote_pipeline.rules.state_dir import PROJECT_ROOT, state_dir_from

__all__ = ["PROJECT_ROOT", "Settings", "SettingsError"]

TARGETS = ("local", "aws")
DEFAULT_SENSOR_INTERVAL_S = 30
MAX_SENSOR_INTERVAL_S = 86_400  # a day: longer, a push would wait days for its deploy
PREFIX = "CODEREMOTE_"
# Every CODEREMOTE_* variable something reads. Any other is refused: a misspelled one would silently leave its
# default in place (a misspelled CODEREMOTE_STATE_DIR deploys into a fresh ledger, out of reach of the lease that
# guards the real one; a misspelled CODEREMOTE_APP_REMOTE deploys the demo app).
VARIABLES = (
    "CODEREMOTE_TARGET", "CODEREMOTE_STATE_DIR", "CODEREMOTE_APP_REMOTE", "CODEREMOTE_APP_CONFIG",
    "CODEREMOTE_INFRA_DIR", "CODEREMOTE_SENSOR_INTERVAL_S",
    "CODEREMOTE_LEASE_RECLAIM_S",  # ledger/leases.py
    "CODEREMOTE_WARM",  # cli/warm.py
    "CODEREMOTE_AWS_TEST_APP_REMOTE",  # tests/test_aws_release.py
)  # fmt: skip


# Above the lease's 2 s heartbeat: a shorter time would take the lease from a run that is working.
MIN_LEASE_RECLAIM_S = 3.0
MAX_LEASE_RECLAIM_S = 86_400.0


class SettingsError(UserError, ValueError):
    pass


def demo_remote(state_dir: Path) -> Path:
    """The remote a deploy uses when none is given: the example app `./scripts/demo.sh` makes."""
    return state_dir / "demo" / "code-remote-app.git"


@dataclass(frozen=True)
class Settings:
    target: str
    state_dir: Path
    app_remote: str
    app_config: Path | None
    # How often the git sensors read the app remote; read when definitions load, like everything here.
    sensor_interval_s: int = DEFAULT_SENSOR_INTERVAL_S
    # The app's layout: read from `app_config` (validated, paths inside the repository) unless given, e.g. the
    # layout recorded with a release, which rollback, retry and promotion reuse whatever the caller's file says.
    layout_override: AppLayout | None = None
    # infra/environments.yaml and the Pulumi stack files (CODEREMOTE_INFRA_DIR; default: rules.environments).
    infra_dir: Path = field(default_factory=default_infra_dir)

    def __post_init__(self) -> None:
        self.app_layout  # noqa: B018 (validated when the settings are made, not when a run first needs it)

    @functools.cached_property
    def app_layout(self) -> AppLayout:
        return self.layout_override or load_app_layout(self.app_config)

    @property
    def dagster_home(self) -> Path:
        return self.state_dir / "dagster_home"

    @property
    def missing_demo(self) -> bool:
        """No remote was given and the demo's example app, the default, was never made (`./scripts/demo.sh`)."""
        demo = demo_remote(self.state_dir)
        return self.app_remote == str(demo) and not demo.exists()

    @property
    def work_dir(self) -> Path:
        return self.state_dir / "work"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        check_variables(env)
        target = env.get("CODEREMOTE_TARGET", "local")
        if target not in TARGETS:
            raise SettingsError(f"CODEREMOTE_TARGET={target[:40]!r} is not a target: use one of {', '.join(TARGETS)}")
        state_dir = _usable(state_dir_from(env), "CODEREMOTE_STATE_DIR" if env.get("CODEREMOTE_STATE_DIR") else "")
        remote = env.get("CODEREMOTE_APP_REMOTE") or str(demo_remote(state_dir))
        remote = absolute(check_remote(remote, name="CODEREMOTE_APP_REMOTE"))
        lease_reclaim_s(env)
        config = env.get("CODEREMOTE_APP_CONFIG")
        interval = env.get("CODEREMOTE_SENSOR_INTERVAL_S") or str(DEFAULT_SENSOR_INTERVAL_S)
        if not re.fullmatch(r"[0-9]{1,6}", interval) or not 1 <= int(interval) <= MAX_SENSOR_INTERVAL_S:
            raise SettingsError(f"CODEREMOTE_SENSOR_INTERVAL_S={interval[:40]!r} must be a whole number of seconds "
                                f"from 1 to {MAX_SENSOR_INTERVAL_S}")  # fmt: skip
        return cls(
            target=target,
            state_dir=state_dir,
            app_remote=remote,
            app_config=Path(config) if config else None,
            sensor_interval_s=int(interval),
            infra_dir=default_infra_dir(env),
        )

    def as_fields(self) -> dict[str, str]:
        return {
            "target": self.target,
            "state_dir": str(self.state_dir),
            "app_remote": self.app_remote,
            "app_layout": self.app_layout.to_json(),
            "infra_dir": str(self.infra_dir),
        }

    def env_fields(self) -> dict[str, str]:
        """The CODEREMOTE_* variables (without the prefix) that make another process load these same settings."""
        fields = {
            "target": self.target,
            "state_dir": str(self.state_dir),
            "app_remote": self.app_remote,
            "infra_dir": str(self.infra_dir),
            "sensor_interval_s": str(self.sensor_interval_s),
        }
        if self.app_config is not None:
            fields["app_config"] = str(self.app_config)
        return fields

    @classmethod
    def from_fields(cls, *, target: str, state_dir: str, app_remote: str, app_layout: str, infra_dir: str) -> Settings:
        layout = AppLayout.from_json(app_layout)
        return cls(target, Path(state_dir), app_remote, None, layout_override=layout, infra_dir=Path(infra_dir))

    def for_app(self, remote: str, layout: AppLayout) -> Settings:
        """The same installation deploying `remote` with `layout` (what a release recorded)."""
        return replace(self, app_remote=remote, app_config=None, layout_override=layout)

    def app_source_fields(self) -> dict[str, Any]:
        """The AppSource resource's fields: the remote, the mirror's directory and the validated layout."""
        layout = self.app_layout.model_dump(exclude={"checks"})
        checks = json.dumps([c.model_dump(mode="json") for c in self.app_layout.checks])
        return {"remote_url": self.app_remote, "work_dir": str(self.work_dir), **layout, "checks_json": checks}


def _usable(state_dir: Path, variable: str) -> Path:
    """`state_dir`, made if missing, once this user can keep state in it."""
    named = f"{variable}={str(state_dir)[:120]!r}" if variable else f"the state directory {str(state_dir)[:120]!r}"
    fix = f"set {variable or 'CODEREMOTE_STATE_DIR'} to a directory you can write"
    try:
        if state_dir.exists() and not state_dir.is_dir():
            raise SettingsError(f"{named} is a file, not a directory: {fix}")
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"{named} cannot be made ({exc.strerror}): {fix}") from None
    if not os.access(state_dir, os.W_OK | os.X_OK):
        raise SettingsError(f"{named} is not writable by this user: {fix}")
    return state_dir


def check_variables(env: Mapping[str, str]) -> None:
    if empty := sorted(name for name in VARIABLES if env.get(name) == ""):
        # Empty is not "the default": an empty CODEREMOTE_STATE_DIR would deploy out of reach of the real lease.
        raise SettingsError(f"{empty[0]} is set but empty: give it a value, or unset it (`unset {empty[0]}`) for the "
                            "default")  # fmt: skip
    unknown = sorted(name for name in env if name.startswith(PREFIX) and name not in VARIABLES)
    if unknown:
        # Matched without the prefix every name shares, which would make any two look alike.
        close = nearest(unknown[0].removeprefix(PREFIX), [v.removeprefix(PREFIX) for v in VARIABLES])
        hint = close.replace("'", f"'{PREFIX}", 1) or f" (the pipeline's: {', '.join(VARIABLES[:6])})"
        raise SettingsError(f"unknown environment variable {unknown[0]}{hint}: fix or unset it")


def lease_reclaim_s(env: Mapping[str, str]) -> float | None:
    """CODEREMOTE_LEASE_RECLAIM_S: after how many seconds without a heartbeat an env's deploy lease may be taken from
    its run; None when unset (the lease's own default)."""
    raw = env.get("CODEREMOTE_LEASE_RECLAIM_S")
    if raw is None:
        return None
    # Plain ASCII digits: float() would take " 3_0 ", "+30" and digits of any script.
    value = float(raw) if re.fullmatch(r"[0-9]{1,6}(\.[0-9]{1,3})?", raw) else math.nan
    if not MIN_LEASE_RECLAIM_S <= value <= MAX_LEASE_RECLAIM_S:  # NaN fails both
        raise SettingsError(
            f"CODEREMOTE_LEASE_RECLAIM_S={raw[:40]!r} must be a number of seconds from {MIN_LEASE_RECLAIM_S:g} to "
            f"{MAX_LEASE_RECLAIM_S:g}: a run silent that long loses its env's deploy lease (unset: 30)"
        )
    return value


def aws_region(settings: Settings) -> str:
    """The region of every stack file (`aws:region` in infra/pulumi/Pulumi.<env>.yaml): one for all envs."""
    by_region: dict[str, list[str]] = {}
    for env, policy in load_policies(settings.infra_dir).items():
        by_region.setdefault(policy.stack.region, []).append(env)
    if len(by_region) != 1:
        said = "; ".join(f"{region} in {', '.join(f'Pulumi.{e}.yaml' for e in envs)}" for region, envs in
                         sorted(by_region.items()))  # fmt: skip
        raise SettingsError(f"CODEREMOTE_TARGET=aws runs every environment in one region, but infra/pulumi sets "
                            f"aws:region to {said}: set the same aws:region in each")  # fmt: skip
    return next(iter(by_region))

"""Where this installation keeps its state and which app and target it deploys, read when definitions load.

Everything here is plain configuration from the environment; secrets never pass through it (they reach resources
as `dg.EnvVar`, resolved at launch).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("local", "aws")
DEFAULT_SENSOR_INTERVAL_S = 30


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    target: str
    state_dir: Path
    app_remote: str
    app_config: Path | None
    # How often the git sensors read the app remote; read when definitions load, like everything here.
    sensor_interval_s: int = DEFAULT_SENSOR_INTERVAL_S

    @property
    def dagster_home(self) -> Path:
        return self.state_dir / "dagster_home"

    @property
    def work_dir(self) -> Path:
        return self.state_dir / "work"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        target = env.get("CODEREMOTE_TARGET", "local")
        if target not in TARGETS:
            raise SettingsError(f"CODEREMOTE_TARGET={target!r} is not a target: use one of {', '.join(TARGETS)}")
        state_dir = Path(env.get("CODEREMOTE_STATE_DIR") or PROJECT_ROOT / ".state").resolve()
        remote = env.get("CODEREMOTE_APP_REMOTE") or str(state_dir / "demo" / "code-remote-app.git")
        config = env.get("CODEREMOTE_APP_CONFIG")
        interval = env.get("CODEREMOTE_SENSOR_INTERVAL_S") or str(DEFAULT_SENSOR_INTERVAL_S)
        if not interval.isdigit() or int(interval) < 1:
            raise SettingsError(f"CODEREMOTE_SENSOR_INTERVAL_S={interval!r} must be a whole number of seconds >= 1")
        return cls(
            target=target,
            state_dir=state_dir,
            app_remote=remote,
            app_config=Path(config) if config else None,
            sensor_interval_s=int(interval),
        )

    def as_fields(self) -> dict[str, str]:
        return {
            "target": self.target,
            "state_dir": str(self.state_dir),
            "app_remote": self.app_remote,
            "app_config": str(self.app_config or ""),
        }

    @classmethod
    def from_fields(cls, *, target: str, state_dir: str, app_remote: str, app_config: str) -> Settings:
        return cls(target, Path(state_dir), app_remote, Path(app_config) if app_config else None)

    def app_source_fields(self) -> dict[str, Any]:
        """The app's layout from CODEREMOTE_APP_CONFIG (YAML with AppSource's field names), validated."""
        from coderemote_pipeline.resources.app_source import AppSource

        fields: dict[str, Any] = {"remote_url": self.app_remote, "work_dir": str(self.work_dir)}
        if self.app_config is None:
            return fields
        try:
            data = yaml.safe_load(self.app_config.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"app config {self.app_config}: cannot read it: {exc}") from None
        allowed = set(AppSource.model_fields) - {"work_dir"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise SettingsError(f"app config {self.app_config}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        return {**fields, **data}

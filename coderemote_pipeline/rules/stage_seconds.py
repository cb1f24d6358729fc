"""A stage's own work in seconds, from what it recorded: what the floor of a deploy and the job choice add up.

A step's wall (`total_s`) is its own work, except where work ran elsewhere: a frontend built ahead, beside the
image build (`build_ahead_s`), took its seconds in parallel, and the step's wall holds only the wait for it
(`build_waited_s`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _number(value: Any) -> float:
    value = getattr(value, "value", value)  # a Dagster MetadataValue, or the plain number
    return float(value or 0.0)


def own_seconds(metadata: Mapping[str, Any]) -> float:
    wall = _number(metadata.get("total_s", metadata.get("seconds", 0.0)))
    return max(wall - _number(metadata.get("build_waited_s", 0.0)), 0.0) + _number(metadata.get("build_ahead_s", 0.0))

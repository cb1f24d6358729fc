"""Strict configuration files: every key declared, every value typed, every mistake one line naming the fix.

A configuration file is a pydantic model with `extra="forbid"`; `validate` turns the first validation error into a
`ConfigError` that names the file, the key's dotted path and, for a misspelled key or enum value, the nearest valid
one. A typo must never silently fall back to a default: `aproval: required` would otherwise disarm prod's approval.
"""

from __future__ import annotations

import difflib
import typing
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from coderemote_pipeline.rules.errors import UserError

M = TypeVar("M", bound=BaseModel)


class ConfigError(UserError, ValueError):
    """A configuration file that does not validate; the message names the file, the key and the fix."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, use_enum_values=False)


def read_yaml_mapping(path: Path, *, what: str = "") -> dict[str, Any]:
    """The YAML mapping in `path`; a missing, unreadable or non-mapping file is a one-line ConfigError."""
    label = f"{what} {path}".strip()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{label}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{label}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def validate(model: type[M], data: Any, *, source: str) -> M:
    """`model` from `data`, or a ConfigError about the first thing wrong, prefixed with `source` (the file)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # A misspelled key also makes the key it meant "missing": name the misspelling, which is the cause.
        errors = sorted(exc.errors(), key=lambda e: e.get("type") != "extra_forbidden")
        raise ConfigError(f"{source}: {describe(model, errors[0])}") from None


def _key_names(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _inner_types(annotation: Any) -> list[Any]:
    """The classes inside Optional[...], list[...], dict[str, ...] and unions, outermost first."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if not args or origin is typing.Literal:
        return [annotation]
    if origin is dict:
        return _inner_types(args[1])
    return [t for arg in args for t in _inner_types(arg)]


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, Any]:
    """Walk `loc` through nested models; returns (the model that owns the last key, the last key's annotation)."""
    current: type[BaseModel] | None = model
    annotation: Any = model
    for part in loc:
        if current is None or not isinstance(part, str) or part == "[key]":
            continue  # a list index or a dict key: the annotation already points past it
        fields = {field.alias or name: field for name, field in current.model_fields.items()}
        field = fields.get(part)
        if field is None:
            # A dict key (environment name) or an unknown key: stay on the value type of the dict.
            continue
        annotation = field.annotation
        nested = [t for t in _inner_types(annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
        owner = current
        current = nested[0] if nested else None
        if current is None:
            return owner, annotation
    return current, annotation


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc) or "(top level)"


def nearest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def describe(model: type[BaseModel], error: dict[str, Any]) -> str:
    """One line for one pydantic error: what is wrong where, and what would be right."""
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        owner, _ = _model_at(model, loc[:-1])
        allowed = _key_names(owner) if owner is not None else []
        where = f" in {_dotted(loc[:-1])}" if loc[:-1] else ""
        hint = nearest(str(loc[-1]), allowed) or (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
        return f"unknown key {loc[-1]!r}{where}{hint}"
    value = error.get("input")
    if loc and loc[-1] == "[key]":
        # A mapping key outside the allowed names (an environment called `stagin`).
        expected = _choices(model, loc[:-1], error)
        hint = nearest(str(value), expected) or f"; allowed: {', '.join(expected)}"
        return f"unknown key {value!r} in {_dotted(loc[:-2])}{hint}"
    path = _dotted(loc)
    if not loc and kind == "value_error":
        return str(error.get("msg", "")).removeprefix("Value error, ")
    if kind == "missing":
        return f"{path} is required"
    if kind in ("enum", "literal_error"):
        expected = _choices(model, loc, error)
        return f"{path}: {value!r} is not one of {', '.join(expected)}{nearest(str(value), expected)}"
    if kind.startswith("bool"):
        return f"{path}: {value!r} must be true or false"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"{path} must be a mapping of keys, got {type(value).__name__}"
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    return f"{path}: {message}" if value is None or kind == "value_error" else f"{path}: {value!r}: {message}"


def _choices(model: type[BaseModel], loc: tuple[Any, ...], error: dict[str, Any]) -> list[str]:
    _, annotation = _model_at(model, loc)
    for candidate in _inner_types(annotation):
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return [str(m.value) for m in candidate]
        if typing.get_origin(candidate) is typing.Literal:
            return [str(a) for a in typing.get_args(candidate)]
    expected = str(error.get("ctx", {}).get("expected", ""))
    return [part.strip(" '\"") for part in expected.replace(" or ", ",").split(",") if part.strip(" '\"")]

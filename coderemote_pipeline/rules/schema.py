"""Strict configuration files: every key declared, every value typed, every mistake one line naming the fix.

A configuration file is a pydantic model with `extra="forbid"`; `validate` turns the first validation error into a
`ConfigError` that names the file, the key's dotted path and, for a misspelled key or enum value, the nearest valid
one. A typo must never silently fall back to a default: `aproval: required` would otherwise disarm prod's approval.

A message never quotes what it cannot vouch for: a token pasted where a variable name belongs, or a line of a host
file named as the config, is named by its key, its line and its type, never by its text (see `plain`).
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from coderemote_pipeline.rules.errors import UserError
from coderemote_pipeline.rules.schema_words import (
    BOUNDS,
    EXPECTED,
    choices,
    expected,
    got,
    key_names,
    keylike,
    kind_of,
    model_at,
    plain,
    said,
)

M = TypeVar("M", bound=BaseModel)
# Configuration files are a few kB; anything far larger is the wrong file, read before it fills memory.
MAX_CONFIG_BYTES = 1_000_000
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


class ConfigError(UserError, ValueError):
    """A configuration file that does not validate; the message names the file, the key and the fix."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, use_enum_values=False)


class _Lined(dict):
    """A YAML mapping that remembers the line of each key, to point at a key it may not quote."""

    lines: dict[Any, int]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice, where PyYAML silently keeps the last one."""

    def key_lines(self, node: yaml.MappingNode) -> dict[Any, int]:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            if isinstance(key, typing.Hashable) and key in lines:
                what = f"key {key!r}" if keylike(key) else "a key"
                raise ConfigError(f"{what} appears twice (lines {lines[key]} and {line}): keep one")
            if isinstance(key, typing.Hashable):
                lines[key] = line
        return lines


def _construct_map(loader: _StrictLoader, node: yaml.MappingNode) -> typing.Iterator[_Lined]:
    data = _Lined()
    yield data  # first the empty mapping, as SafeLoader does, so that aliases may refer back to it
    data.lines = loader.key_lines(node)
    data.update(loader.construct_mapping(node))


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)


def read_config_text(path: Path, label: str) -> str:
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise ConfigError(f"{label} is not a regular file")
        # Non-blocking: a path swapped for a FIFO after the check must not wait for a writer (fstat refuses it).
        handle = os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb")
    except FileNotFoundError:
        raise ConfigError(f"{label}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read it ({exc.strerror})") from None
    with handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{label} is not a regular file")
        raw = handle.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{label} is {max(info.st_size, len(raw)) / 1e6:.1f} MB: not a configuration file "
                          f"(the limit is {MAX_CONFIG_BYTES // 1_000_000} MB)")  # fmt: skip
    try:
        if b"\0" not in raw:
            return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    raise ConfigError(f"{label}: not a UTF-8 text file")


def yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """Where and what, with the quoted file text PyYAML puts in its messages taken out (it may be a secret)."""
    if isinstance(exc, yaml.reader.ReaderError):
        return f" at line {text.count(chr(10), 0, exc.position) + 1}: a control character, not text"
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]

    def keep(match: re.Match[str]) -> str:  # token names ('<block end>') and single punctuation say no secret
        return match[0] if re.fullmatch(r"<[a-z ]+>|[^\w\s]|\\[a-z]", match[0][1:-1]) else ""

    # A quote left once the quoted parts are gone is a message of a shape not foreseen: dropped whole.
    words = [" ".join(_QUOTED.sub(keep, p).split()) for p in parts if p and not re.search("['\"]", _QUOTED.sub("", p))]
    return f"{where}: {', '.join(w for w in words if w) or 'a syntax error'}"


def _parse(text: str) -> Any:
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml_mapping(path: Path, *, what: str = "") -> dict[str, Any]:
    """The YAML mapping in `path`; a missing, unreadable or non-mapping file is a one-line ConfigError."""
    label = f"{what} {path}".strip()
    text = read_config_text(Path(path), label)
    try:
        data = _parse(text)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: not valid YAML{yaml_problem(exc, text)}") from None
    except (ValueError, RecursionError) as exc:  # PyYAML's own int() and date(), and its recursive composer
        kind = "nested too deeply" if isinstance(exc, RecursionError) else "an impossible date or a number too long"
        raise ConfigError(f"{label}: not valid YAML: {kind}") from None
    if data is None:
        return {}  # an empty file, or only comments: every default
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping of keys at the top level, got {kind_of(data)}")
    return data


def _blank_key(data: Any, path: tuple[Any, ...] = ()) -> str | None:
    """The first key written with no value in a file read by `read_yaml_mapping` (`verified_in:`), where it is."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        if value is None and isinstance(data, _Lined):
            line = data.lines.get(key)
            return f"{_dotted((*path, key))}{f' (line {line})' if line else ''}"
        if (found := _blank_key(value, (*path, key))) is not None:
            return found
    return None


def validate(model: type[M], data: Any, *, source: str) -> M:
    """`model` from `data`, or a ConfigError about the first thing wrong, prefixed with `source` (the file).
    A key written with no value is an error, never its default: `verified_in:` left blank would quietly drop a
    promotion gate."""
    try:
        valid = model.model_validate(data)
    except ValidationError as exc:
        # A misspelled key also makes the key it meant "missing": name the misspelling, which is the cause.
        errors = sorted(exc.errors(), key=lambda e: e.get("type") not in ("extra_forbidden", "invalid_key"))
        raise ConfigError(f"{source}: {describe(model, errors[0], line=_line_of(data, errors[0]))}") from None
    if (blank := _blank_key(data)) is not None:
        raise ConfigError(f"{source}: {blank} has no value: give it one, or remove the key for its default")
    return valid


def _line_of(data: Any, error: Any) -> int | None:
    """The line of the key an error is about, when `data` came from `read_yaml_mapping`."""
    *parents, key = [p for p in error.get("loc", ()) if p != "[key]"] or [None]
    for part in parents:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return getattr(data, "lines", {}).get(key)


def _dotted(loc: tuple[Any, ...]) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else str(p) if plain(p) else "<key>" for p in loc if p != "[key]"]
    return ".".join(parts).replace(".[", "[") or "(top level)"


def nearest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unknown_key(model: type[BaseModel], error: dict[str, Any], line: int | None) -> str:
    """A key outside the declared ones: a field of a model, or a mapping key outside its allowed names."""
    loc = tuple(error.get("loc", ()))
    parent, key = (loc[:-2], loc[-2]) if loc[-1] == "[key]" else (loc[:-1], loc[-1])
    if loc[-1] == "[key]":
        allowed = choices(model, parent, error)
    else:
        owner, _ = model_at(model, parent)
        allowed = key_names(owner) if owner is not None else []
    where = f" in {_dotted(parent)}" if parent else ""
    listed = f"; allowed{'' if loc[-1] == '[key]' else ' keys'}: {', '.join(allowed)}" if allowed else ""
    if not keylike(key):
        # Not a key anybody would write (a line of /etc/shadow, a token): named by its place, never quoted.
        at = f" on line {line}" if line else ""
        return f"unknown key{where}{at} that is not a key name (is this the right file?){listed}"
    return f"unknown key {key!r}{where}{nearest(key, allowed) or listed}"


def describe(model: type[BaseModel], error: dict[str, Any], *, line: int | None = None) -> str:
    """One line for one pydantic error: what is wrong where, and what would be right; no unsafe input quoted."""
    loc = tuple(error.get("loc", ()))
    kind, value = str(error.get("type", "")), error.get("input")
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    if kind == "extra_forbidden" or (loc and loc[-1] == "[key]" and kind in ("enum", "literal_error")):
        return _unknown_key(model, error, line)
    path = _dotted(loc[:-2] if loc and loc[-1] == "[key]" else loc)
    if kind == "invalid_key" or (loc and loc[-1] == "[key]" and kind == "string_type"):
        return f"{_dotted(loc[:-1]) if kind == 'invalid_key' else path}: keys must be names, got {got(value)}"
    if not loc and kind == "value_error":
        return message
    if kind == "missing":
        return f"{path} is required"
    if kind in ("enum", "literal_error"):
        allowed = choices(model, loc, error)
        if isinstance(value, str) and plain(value):
            return f"{path}: {value!r} is not one of {', '.join(allowed)}{nearest(value, allowed)}"
        return f"{path} must be one of {', '.join(allowed)}, got {got(value)}"
    base = kind.split("_")[0]
    if base in EXPECTED and kind.endswith(("_type", "_parsing", "_from_float")):
        hint = " (quote it if it is meant as text)" if base == "string" and isinstance(value, int | float) else ""
        return f"{path} must be {expected(model, loc, base)}, got {got(value)}{hint}"
    if kind == "value_error":
        return f"{path} {message}" if message.startswith("must ") else f"{path}: {message}"
    if kind == "string_pattern_mismatch":
        return f"{path} must match {error.get('ctx', {}).get('pattern')}"
    bounds = [f"{BOUNDS[k]} {v:g}" for k, v in error.get("ctx", {}).items() if k in BOUNDS]
    if kind.startswith(("greater_than", "less_than")) and bounds:
        return f"{path} must be {bounds[0]}, got {got(value)}"
    return f"{path}: {said(value)}: {message}" if plain(value) and value is not None else f"{path}: {message}"


"""A Dagster instance config (dagster.yaml) that Dagster refuses, said in one line without the file's text.

Dagster's own errors run to a page and quote what the file holds: a key it does not know verbatim ("unexpected
config entry"), a value it cannot use, a whole file that is no mapping. A DAGSTER_HOME pointed at the wrong
directory, or a dagster.yaml linked to another file, would print that file's lines (a password hash, a token)."""

from __future__ import annotations

import re

from coderemote_pipeline.rules.schema import nearest
from coderemote_pipeline.rules.schema_words import keylike

_PATH = re.compile(r"at path (?P<path>\S+?)(?=[.:,]?\s|$)")


def config_problem(exc: Exception) -> str:
    """The first problem of a DagsterInvalidConfigError: where, and what would be right; no value of the file's."""
    first = next(iter(getattr(exc, "errors", None) or ()), None)
    message = str(getattr(first, "message", "") or "")
    where = _where(message)
    data = getattr(first, "error_data", None)
    reason = getattr(getattr(first, "reason", None), "name", "")
    keys = [data.field_name] if hasattr(data, "field_name") else list(getattr(data, "field_names", None) or ())
    if reason.startswith("MISSING_REQUIRED_FIELD") and keys and all(keylike(key) for key in keys):
        return f"missing key{'s' if len(keys) > 1 else ''} {', '.join(repr(key) for key in keys)}{where}"
    if reason in ("FIELD_NOT_DEFINED", "FIELDS_NOT_DEFINED") and keys:
        allowed = _allowed(message.partition(' Expected: "')[2])
        if not all(keylike(key) for key in keys):
            return f"an unknown key{where} that is not a key name (is this the right file?)"
        named = ", ".join(repr(key) for key in keys)
        return f"unknown key{'s' if len(keys) > 1 else ''} {named}{where}{nearest(keys[0], allowed)}"
    if not message:
        return type(exc).__name__
    if expected := re.search(r'expected type "([\w\[\]]+)"|not in enum type (\w+)', message):
        return f"the value{where} is not {expected[1] or 'one of ' + expected[2]}"  # never the value itself
    # The others quote the schema's names, and may quote a value (after "got"): only what reads as a key is kept.
    said = re.split(r"\s+got\s", message.split(" Expected:")[0])[0]
    said = re.sub(r'"([^"]*)"', lambda quoted: repr(quoted[1]) if keylike(quoted[1]) else "a value", said)
    return " ".join(said.split()).rstrip(".")[:160]


def _where(message: str) -> str:
    """ at the root, or in `a.b` (the keys Dagster walked, each one of its schema's); "" when not said."""
    if "at the root" in message:
        return " at the root"
    found = _PATH.search(message)
    if found is None:
        return ""
    parts = [part for part in found["path"].split(":") if part != "root"]
    return f" in {'.'.join(parts)}" if parts and all(keylike(part) for part in parts) else ""


def _allowed(expected: str) -> list[str]:
    """The keys Dagster expected at that place: listed ("['a', 'b']"), or the top level of a type ("{ a?: ... }")."""
    if expected.startswith("["):
        return re.findall(r"'(\w+)'", expected)
    keys, depth = [], 0
    for token in re.finditer(r"[{}\[\]()]|(\w+)\??:", expected):
        if token[1] is None:
            depth += 1 if token[0] in "{[(" else -1
        elif depth == 1:
            keys.append(token[1])
    return keys

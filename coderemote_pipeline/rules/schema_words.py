"""The words of a configuration message: what of the input a message may quote, and what the model expected at a
place of the file. `schema.describe` builds its one line from these, so that it names the fix without repeating a
token pasted where a name belongs, or a line of a host file named as the config.
"""

from __future__ import annotations

import re
import typing
from enum import Enum
from typing import Any

from pydantic import BaseModel

_PLAIN = re.compile(r"[A-Za-z0-9 _.:/@+~-]{1,32}")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}(?::[A-Za-z_][A-Za-z0-9_.-]{0,31})?")
# A long run of letters holding a digit is how API keys and tokens look (AKIA…, ghp_…, AIza…): never quoted,
# unless it reads as words and numbers (Canary10Percent5Minutes).
_TOKEN = re.compile(r"(?=[A-Za-z0-9]*\d)[A-Za-z0-9]{16,}")
_WORDS = re.compile(r"(?:[A-Z]?[a-z]{2,}\d{0,4})+")
_KINDS = ((bool, "true/false"), (int, "a number"), (float, "a number"), (str, "text"), (dict, "a mapping"),
          (list, "a list"), (tuple, "a list"))  # fmt: skip
BOUNDS = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}
# What each kind of pydantic type error expected, in the words of the one who writes the YAML.
EXPECTED = {"bool": "true or false", "int": "a whole number", "float": "a number", "string": "text",
            "dict": "a mapping of keys", "model": "a mapping of keys", "list": "a list", "tuple": "a list"}  # fmt: skip


def plain(value: object) -> bool:
    """Whether a message may quote `value`: a number, or a short word of ordinary characters that is no token."""
    if value is None or isinstance(value, bool):
        return True
    text = str(value) if isinstance(value, str | int | float) else ""
    return bool(_PLAIN.fullmatch(text)) and "://" not in text and not _tokenlike(text)


def _tokenlike(text: str) -> bool:
    return any(not _WORDS.fullmatch(run) for run in _TOKEN.findall(text))


def keylike(key: object) -> bool:
    """Whether `key` reads as a key someone would write (`aproval`, `aws:zone`), so a message may quote it."""
    return isinstance(key, str) and bool(_KEY.fullmatch(key)) and not _tokenlike(key)


def said(value: object, otherwise: str = "the value") -> str:
    """`value` as written in YAML, when `plain`; else `otherwise`."""
    if not plain(value):
        return otherwise
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value) if isinstance(value, str) else str(value)


def kind_of(value: object) -> str:
    if value is None:
        return "null"
    return next((word for cls, word in _KINDS if isinstance(value, cls)), f"a {type(value).__name__}")


def got(value: object) -> str:
    """What was written, for "…, got X": the value when `plain`, else its kind."""
    if isinstance(value, str):
        return f"the text {value!r}" if plain(value) else "text"
    return said(value, kind_of(value))


def key_names(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def inner_types(annotation: Any) -> list[Any]:
    """The classes inside Optional[...], list[...], dict[str, ...] and unions, outermost first."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if not args or origin is typing.Literal:
        return [annotation]
    if origin is dict:
        return inner_types(args[1])
    return [t for arg in args for t in inner_types(arg) if t is not Ellipsis]


def model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, Any]:
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
        nested = [t for t in inner_types(annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
        owner = current
        current = nested[0] if nested else None
        if current is None:
            return owner, annotation
    return current, annotation


def expected(model: type[BaseModel], loc: tuple[Any, ...], kind: str) -> str:
    """What a value of `kind` (bool, int, list, …) at `loc` should have been: "a list of mappings", "text"."""
    words = EXPECTED[kind]
    if kind in ("list", "tuple"):
        items = inner_types(model_at(model, loc)[1])[:1]
        if items and isinstance(items[0], type) and issubclass(items[0], BaseModel):
            words += " of mappings"
        elif items and items[0] in (str, int):
            words += " of names" if items[0] is str else " of numbers"
    return words


def choices(model: type[BaseModel], loc: tuple[Any, ...], error: dict[str, Any]) -> list[str]:
    """The values an enum or a Literal at `loc` allows."""
    _, annotation = model_at(model, loc)
    for candidate in inner_types(annotation):
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return [str(m.value) for m in candidate]
        if typing.get_origin(candidate) is typing.Literal:
            return [str(a) for a in typing.get_args(candidate)]
    words = str(error.get("ctx", {}).get("expected", ""))
    return [part.strip(" '\"") for part in words.replace(" or ", ",").split(",") if part.strip(" '\"")]

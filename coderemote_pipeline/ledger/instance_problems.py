"""A Dagster instance config (dagster.yaml) that Dagster refuses, said in one line without the file's text.

Dagster's own errors run to a page and quote what the file holds: a key it does not know verbatim ("unexpected
config entry"), a value it cannot use, a whole file that is no mapping. A DAGSTER_HOME pointed at the wrong
directory, or a dagster.yaml linked to another file, would print that file's lines (a password hash, a token)."""

from __future__ import annotations

import re

from coderemote_pipeline.rules.schema import nearest
from coderemote_pipeline.rules.schema_words import keylike

_PATH = re.compile(r"at path (?P<path>\S+?)(?=[.:,]?\s|$)")


def unset_variable(exc: Exception) -> str | None:
    """The environment variable a DagsterInvalidConfigError says is not set or not valid (`{env: NAME}`), if it is
    one and its name is a variable's name (a secret written in its place is never repeated)."""
    found = re.search(r"\{'env': '([A-Za-z_][A-Za-z0-9_]*)'\}", str(getattr(_first(exc), "message", "")))
    return found[1] if found else None


def config_problem(exc: Exception) -> str:
    """The first problem of a DagsterInvalidConfigError: where, and what would be right; no value of the file's."""
    first = _first(exc)
    message = str(getattr(first, "message", "") or "")
    where = _where(message)
    data = getattr(first, "error_data", None)
    reason = getattr(getattr(first, "reason", None), "name", "")
    keys = [data.field_name] if hasattr(data, "field_name") else list(getattr(data, "field_names", None) or ())
    named = f"key{'s' if len(keys) > 1 else ''} {', '.join(repr(key) for key in keys)}"
    if reason.startswith("MISSING_REQUIRED_FIELD") and keys and all(keylike(key) for key in keys):
        return f"missing {named}{where}"
    if reason in ("FIELD_NOT_DEFINED", "FIELDS_NOT_DEFINED") and keys:
        if not all(keylike(key) for key in keys):
            return f"an unknown key{where} that is not a key name (is this the right file?)"
        allowed = _allowed(message.partition(' Expected: "')[2])
        return f"unknown {named}{where}{nearest(keys[0], allowed)}"
    if reason == "SELECTOR_FIELD_ERROR":  # one key of a few (storage's kind, `env:`), and a list of what was given
        return f"give exactly one key{where}{_listed(message.partition('available fields are ')[2])}"
    if reason == "FAILED_POST_PROCESSING":  # its text holds the value written under `env:`, a secret maybe
        return f"the environment variable named{where} is not set or not valid: set it, or name another"
    if first is None:  # a check Dagster makes before the schema's, in its own words: its values are masked
        said = re.sub(r"Found value `[^`]*`", "Found a value", str(exc).split(", Expected one of:")[0].strip())
        said = re.sub(r" at \S*dagster\.yaml", "", said).replace("Errors whilst loading dagster storage", "storage: "
                                                                     "give exactly one kind")  # fmt: skip
        return (_masked(said) + _listed(str(exc).partition("Expected one of:")[2])).rstrip(".")[:160]
    if expected := re.search(r'expected type "([\w\[\]]+)"|not in enum type (\w+)', message):
        return f"the value{where} is not {expected[1] or 'one of ' + expected[2]}"  # never the value itself
    # The others quote the schema's names, and may quote a value (after "got"): only what reads as a key is kept.
    return _masked(re.split(r"\s+got\s", message.split(" Expected:")[0])[0]).rstrip(".")[:160]


def _first(exc: Exception):
    return next(iter(getattr(exc, "errors", None) or ()), None)


def _masked(text: str) -> str:
    """`text` with every quoted part and list that does not read as a key name said as "a value"."""
    text = re.sub(r"\[[^\]]*\]", "a list", text)

    def kept(quoted: re.Match[str]) -> str:  # a key, or Dagster's path of keys (`pools > default_limit`)
        return repr(quoted[2]) if all(keylike(part) for part in quoted[2].split(" > ")) else "a value"

    text = re.sub(r"([\"'`])([^\"'`]*)\1", kept, text)
    return " ".join(text.split())


def _listed(choices: str) -> str:
    """ (one of a, b): the schema's names Dagster listed ("['a', 'b']"), those that read as keys."""
    names = _names(choices)
    return f" (one of {', '.join(names)})" if names else ""


def _names(listed: str) -> list[str]:
    """The names in a list as Dagster prints it ("['a', 'b']"), those that read as keys."""
    return [name for name in re.findall(r"'([^']*)'", listed) if keylike(name)]


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
        return _names(expected)
    keys, depth = [], 0
    for token in re.finditer(r"[{}\[\]()]|(\w+)\??:", expected):
        if token[1] is None:
            depth += 1 if token[0] in "{[(" else -1
        elif depth == 1:
            keys.append(token[1])
    return keys


class RunCutOff(RuntimeError):
    """The instance's storage went away while a deploy of `env` ran (`run_id`, if this command saw it created), or
    as it ended (`ended`: how, before its settle and records): what the env serves is unknown here."""

    def __init__(self, env: str, label: str, run_id: str | None, ended: str = ""):
        then = f"When the instance answers again, `coderemote-pipeline status {env}` says what {env} serves"
        if run_id is None:
            said = (f"the deploy of {label} was cut off as its run was being created: it may not have started. {then}; "
                    f"`coderemote-pipeline history {env}` shows whether it ran")  # fmt: skip
        elif ended:
            said = (f"run {run_id[:8]} of {label} {ended}, then the instance was cut off before {env}'s lease was "
                    f"freed and the run settled. {then}; the next deploy of {env} takes the lease over")  # fmt: skip
        else:
            said = (f"run {run_id[:8]} of {label} was cut off part-way: {env} may serve its previous release, the new "
                    f"one not yet checked, or a part of each. {then}; `coderemote-pipeline retry {run_id[:8]} "
                    f"--mark-failed` then marks the run failed and finishes its deploy, or `coderemote-pipeline "
                    f"rollback {env}` goes back")  # fmt: skip
        super().__init__(said)


def storage_problem(exc: BaseException) -> str | None:
    """The instance's database refusing (read-only, damaged, a team Postgres that does not answer), in one line."""
    seen: BaseException | None = exc
    while seen is not None:
        kind, first = type(seen).__name__, (str(seen).strip().splitlines() or [""])[0][:200]
        if isinstance(seen, ModuleNotFoundError) and seen.name in ("psycopg", "pg8000", "asyncpg"):
            # Dagster's Postgres storage names the newer driver unless told the scheme; this installation has psycopg2.
            return (f"the instance's dagster.yaml needs the Postgres driver {seen.name}, which is not installed: "
                    "add `scheme: postgresql+psycopg2` under postgres_db (as deploy/dagster.yaml does), or begin "
                    "postgres_url with postgresql+psycopg2://")  # fmt: skip
        if kind == "DagsterPostgresException":
            return (f"the instance's Postgres does not answer ({_pg_cause(seen) or first}): check DAGSTER_PG_* and "
                    "that the database is up")  # fmt: skip
        if type(seen).__module__ == "sqlite3":
            if "readonly" in first:
                return (f"the state database cannot be written ({first}): give this account write access to the "
                        "state dir (CODEREMOTE_STATE_DIR)")  # fmt: skip
            if "locked" in first:
                return f"the state database is busy ({first}): another command holds it; try again in a moment"
            if "full" in first:
                return f"the state database cannot grow ({first}): free space on the state dir's disk"
            if "disk i/o" in first.lower():
                return (f"the state database cannot be read or written ({first}): is the state dir's disk full? Free "
                        "space on it, or make CODEREMOTE_STATE_DIR a directory this account can read and write")
            if "unable to open" in first:
                return (f"the state database cannot be opened ({first}): CODEREMOTE_STATE_DIR must be a directory "
                        "this account can read and write")  # fmt: skip
            if "not a database" in first or "malformed" in first:
                return (f"the state database is damaged ({first}): restore the state dir from a backup, or move it "
                        "away to start a new one")  # fmt: skip
            return None  # any other: a bug, whose traceback is the report
        seen = seen.__cause__ or seen.__context__
    return None


def _pg_cause(exc: BaseException) -> str:
    """The refusal under Dagster's "too many retries" (host and port refused, a name that does not resolve, a
    password refused), without SQLAlchemy's class prefix and link."""
    cause = exc.__cause__
    lines = [line.strip() for line in str(cause or "").splitlines() if line.strip() and "sqlalche.me" not in line]
    first = lines[0] if lines else ""
    return first.split(") ", 1)[1] if first.startswith("(") and ") " in first else first

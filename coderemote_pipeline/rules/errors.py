"""The kinds of error a user can act on. The CLI prints each as one line, never as a traceback."""

import unicodedata
from pathlib import Path

# Zero-width joiners are "format" characters that many scripts (and emoji) need in a name; every other one
# (direction overrides, zero-width spaces) hides or reorders what a terminal shows.
_JOINERS = {"\u200c", "\u200d"}


class UserError(Exception):
    """Something the user can fix (a name, a file, a refused release); the message says what and how."""


class InfrastructureError(UserError):
    """A part of the target (the emulator, the registry, a Docker engine, AWS) that does not answer."""


class Transient(Exception):
    """A part that did not answer this time (restarting, busy, a dropped connection): trying again in seconds may
    succeed, unlike a refused release or a failing build (rules/transient.py)."""


class DeployRefused(UserError, RuntimeError):
    """A release this environment may not take now (its policy, the gate, a window, an approval): says why."""


def resolved(path: str | Path, named: str) -> Path:
    """`path` made absolute with its symlinks followed; a loop of symlinks is the user's to fix, said in one line."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError) as exc:  # Python 3.11 raises RuntimeError for a loop; later ones OSError
        why = getattr(exc, "strerror", None) or "a loop of symbolic links"
        raise UserError(f"{named} {str(path)!r} cannot be followed ({why}): point it at a real path") from None


def has_controls(text: str) -> bool:
    """A newline, an escape, a direction override or an invisible character: in a name or reason that is recorded
    and listed, one would forge or hide a line of `approvals` and `history`, or make one name look like another."""
    return any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") and c not in _JOINERS for c in text)


def config_text_refusal(by: str, reason: str) -> str | None:
    """Why a UI run's `by` and `reason` (recorded and listed one per line) cannot be taken, or None."""
    if has_controls(by.strip()) or has_controls(reason):
        return "config `by` and `reason` must be one line of text: no newline, escape or direction override"
    return None

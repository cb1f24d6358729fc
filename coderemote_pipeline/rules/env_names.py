"""The environments' names, defined once, and the check of a name a user typed.

Light on purpose (no Dagster): the CLI checks an environment before it prints its first progress line, and the
local stack's record names one port per environment.
"""

from __future__ import annotations

from coderemote_pipeline.rules.errors import UserError

ENVIRONMENTS = ("dev", "staging", "prod")
ENV_HELP = f"{', '.join(ENVIRONMENTS)} (their policies: infra/environments.yaml)"


class UnknownEnvironmentError(UserError, ValueError):
    pass


def check_env(env: str) -> str:
    if env not in ENVIRONMENTS:
        raise UnknownEnvironmentError(
            f"unknown environment {env!r}: choose one of {', '.join(ENVIRONMENTS)} "
            "(environments are declared in infra/environments.yaml)"
        )
    return env

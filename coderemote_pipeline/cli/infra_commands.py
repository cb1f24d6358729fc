"""`infra ENV history|preview|refresh`: the env's stack, as `pulumi stack history`, `preview` and `refresh` would
show it (the local target's equivalents on the emulator)."""

from __future__ import annotations

import argparse

from coderemote_pipeline.rules.env_names import ENV_HELP
from coderemote_pipeline.rules.errors import UserError

ACTIONS = ("history", "preview", "refresh")


def cmd_infra(args: argparse.Namespace, settings_from) -> int:
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.usecases.infra import infra

    settings = settings_from(args)
    if args.env in ACTIONS and args.action not in ACTIONS:  # `infra preview dev`: the order is no one's mistake
        args.env, args.action = args.action, args.env
    if args.action not in ACTIONS:
        raise UserError(f"unknown infra action {args.action!r}: use {', '.join(ACTIONS)} (`infra ENV ACTION`)")
    lines = infra(settings, open_instance(settings.state_dir), args.env, args.action)
    print("\n".join(lines) if lines else f"no infra update of {args.env} recorded yet")
    return 0


def add_parsers(sub) -> None:
    cmd = sub.add_parser("infra", help="ENV's stack: the updates the pipeline applied, a preview, or a refresh")
    cmd.add_argument("env", help=ENV_HELP)
    cmd.add_argument("action", metavar="{" + ",".join(ACTIONS) + "}", help="the stack's updates, a preview, a refresh")
    cmd.set_defaults(func=cmd_infra)

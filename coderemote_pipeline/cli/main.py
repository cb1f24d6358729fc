"""`coderemote-pipeline`: parses the command line and prints; the work is in coderemote_pipeline.usecases.

Importing this module loads nothing but argparse: `--help` and a typo answer at once, and each command imports what
it needs when it runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from coderemote_pipeline.cli import (
    approval_commands,
    infra_commands,
    release_commands,
    stack_commands,
    traffic_commands,
)


def settings_from(args: argparse.Namespace):
    """The settings of this installation, with the command's --remote and --app-config applied."""
    from coderemote_pipeline.rules.remote_urls import check_remote
    from coderemote_pipeline.rules.settings import Settings, SettingsError

    environ = dict(os.environ)
    if (remote := getattr(args, "remote", None)) is not None:
        environ["CODEREMOTE_APP_REMOTE"] = check_remote(remote, name="--remote")
    if (config := getattr(args, "app_config", None)) is not None:
        if not config.strip():
            raise SettingsError("--app-config is empty: give the app config file's path, or leave the option out")
        environ["CODEREMOTE_APP_CONFIG"] = str(Path(config).resolve())
    return Settings.from_env(environ)


class OneLineParser(argparse.ArgumentParser):
    """A usage mistake is one line naming it and where the help is, like every other error of the command."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def parser() -> argparse.ArgumentParser:
    top = OneLineParser(prog="coderemote-pipeline", description="The release system of Code Remote.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    stack_commands.add_parsers(sub)
    release_commands.add_parsers(sub)
    approval_commands.add_parsers(sub)
    traffic_commands.add_parsers(sub)
    infra_commands.add_parsers(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    """The command: `argv`, or (the installed command) this process's own, handed to the warm process when one runs
    (cli/warm.py)."""
    # `coderemote-pipeline history prod | head` ends quietly, as any Unix tool does.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = parser().parse_args(argv)
    if argv is None:
        from coderemote_pipeline.cli.warm import run_warm

        code = run_warm(sys.argv[1:], args.command)
        if code is not None:
            return code
    from coderemote_pipeline.rules.errors import UserError

    try:
        return args.func(args, settings_from)
    except UserError as exc:
        print(f"error: {str(exc).strip()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

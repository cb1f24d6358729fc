"""`coderemote-pipeline`: parses the command line and prints; the work is in coderemote_pipeline.usecases.

Importing this module loads nothing but argparse: `--help` and a typo answer at once, and each command imports what
it needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from coderemote_pipeline.cli import (
    approval_commands,
    infra_commands,
    release_commands,
    stack_commands,
    traffic_commands,
)


def settings_from(args: argparse.Namespace):
    """The settings of this installation, with the command's --remote and --app-config applied."""
    from coderemote_pipeline.rules.errors import resolved
    from coderemote_pipeline.rules.remote_urls import check_remote
    from coderemote_pipeline.rules.settings import Settings, SettingsError

    environ = dict(os.environ)
    if (remote := getattr(args, "remote", None)) is not None:
        environ["CODEREMOTE_APP_REMOTE"] = check_remote(remote, name="--remote")  # made absolute in Settings
    if (config := getattr(args, "app_config", None)) is not None:
        if not config.strip():
            raise SettingsError("--app-config is empty: give the app config file's path, or leave the option out")
        environ["CODEREMOTE_APP_CONFIG"] = str(resolved(config, "--app-config"))
    return Settings.from_env(environ)


class _StoreOnce(argparse.Action):
    """An option's value, refused when the option comes again: argparse keeps the last one without a word, and
    `--remote A ... --remote B` would deploy from B while the user reads A."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault("_options_given", set())
        if option_string is not None and self.dest in given:
            parser.error(f"{option_string} given twice: give it once")
        given.add(self.dest)
        setattr(namespace, self.dest, values)


class OneLineParser(argparse.ArgumentParser):
    """A usage mistake is one line naming it and where the help is, like every other error of the command."""

    commands: dict[str, argparse.ArgumentParser] | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        # An option the command lacks is the command's mistake: its own help lists what it takes.
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            chosen = (self.commands or {}).get(getattr(parsed, "command", None) or "", self)
            chosen.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


class _Version(argparse.Action):
    """`--version`, read from the installed package's metadata only when asked (every command builds this parser)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the installed version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version

        try:
            shown = version("coderemote-pipeline")
        except PackageNotFoundError:  # run from a source tree that was never installed
            shown = "not installed (run from source)"
        print(f"coderemote-pipeline {shown}")
        parser.exit(0)


def parser() -> argparse.ArgumentParser:
    top = OneLineParser(prog="coderemote-pipeline", description="The release system of Code Remote.")
    top.add_argument("--version", action=_Version)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    stack_commands.add_parsers(sub)
    release_commands.add_parsers(sub)
    approval_commands.add_parsers(sub)
    traffic_commands.add_parsers(sub)
    infra_commands.add_parsers(sub)
    top.commands = sub.choices
    return top


def main(argv: list[str] | None = None) -> int:
    """The command: `argv`, or (the installed command) this process's own, handed to the warm process when one runs
    (cli/warm.py)."""
    # `coderemote-pipeline history prod | head` ends quietly, as any Unix tool does.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if (garbled := _not_text(sys.argv[1:] if argv is None else argv, os.environ)) is not None:
        print(f"error: {garbled}", file=sys.stderr)
        return 2
    args = parser().parse_args(argv)
    _quiet_postgres_retries()
    from coderemote_pipeline.rules.errors import UserError

    try:
        if argv is None:
            from coderemote_pipeline.cli.warm import run_warm

            code = run_warm(sys.argv[1:], args.command)
            if code is not None:
                return code
        return args.func(args, settings_from)
    except UserError as exc:
        print(f"error: {_short(str(exc).strip())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from coderemote_pipeline.ledger.instance_problems import RunCutOff, storage_problem

        if (said := storage_problem(exc)) is None:
            raise
        print(f"error: {said}", file=sys.stderr)
        if isinstance(exc, RunCutOff):  # a run was under way: not the user's mistake, and the env may be part-way
            print(str(exc), file=sys.stderr)
            return 1
        return 2


MAX_MESSAGE = 1000


def _short(message: str) -> str:
    """A refusal quotes what it refuses: a 5 kB argument pasted by mistake is shortened in the middle, keeping the
    start (what is wrong) and the end (the fix). A message that ends in a tool's log is cut between its lines: the
    first says what failed, the last ones why."""
    if len(message) <= MAX_MESSAGE:
        return message
    first, *rest = message.splitlines()
    if not rest:
        return f"{message[:600]} … {message[-300:]}"
    kept: list[str] = []
    budget = MAX_MESSAGE - min(len(first), 600)
    for line in reversed(rest):
        line = line if len(line) <= 200 else f"{line[:150]} … {line[-40:]}"
        if len(line) + 1 > budget:
            break
        kept.insert(0, line)
        budget -= len(line) + 1
    left_out = len(rest) - len(kept)
    head = first if len(first) <= 600 else f"{first[:450]} … {first[-140:]}"
    return "\n".join([head, *([f"… ({left_out} lines left out)"] if left_out else []), *kept])


def _not_text(argv: list[str], environ) -> str | None:
    """An argument or one of our variables holding bytes that are not UTF-8 (a path pasted from elsewhere): said in
    one line, before anything stores or sends it. A variable's value is not shown: it may be a secret."""
    ours = ("CODEREMOTE_", "DAGSTER_", "AWS_", "GEMINI_")
    named = [(f"argument {i}", a, True) for i, a in enumerate(argv, 1)]
    named += [(name, v, False) for name, v in environ.items() if name.startswith(ours)]
    for what, value, shown in named:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            text = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")[:80]
            return f"{what}{f' ({text!r})' if shown else ''} is not UTF-8 text: type it again"
    return None


class _PostgresRetries(logging.Filter):
    """dagster_postgres warns on the root logger at each retry of a refused connection: several multi-line warnings
    per storage over about 13 s, before the one line this command says about it at the end."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Retrying failed database")


def _quiet_postgres_retries() -> None:
    root = logging.getLogger()
    if not any(isinstance(f, _PostgresRetries) for f in root.filters):
        root.addFilter(_PostgresRetries())


if __name__ == "__main__":
    sys.exit(main())

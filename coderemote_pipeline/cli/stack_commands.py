"""`local up|status|down`, `demo` and `ui`: the local stack, the demo and the Dagster UI."""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

UI_HELP = "the Dagster UI and daemon on this project's instance (dagster dev)"


def bring_up(settings):
    """`local up` and `demo`: the stack, the API of what each environment served when it stopped (a reboot, `local
    down`), and the warm process commands fork. Returns the stack's info, the revived APIs and the warm pid."""
    from coderemote_pipeline.cli import warm_process
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.local_stack import LocalStack
    from coderemote_pipeline.usecases.status import revive_apis

    info = LocalStack(settings.state_dir).up()
    revived = revive_apis(settings, open_instance(settings.state_dir))
    return info, revived, warm_process.ensure(settings.state_dir)


def cmd_local(args: argparse.Namespace, settings_from) -> int:
    from coderemote_pipeline.cli import warm_process
    from coderemote_pipeline.cli.warm import socket_path
    from coderemote_pipeline.local_stack import LocalStack

    settings = settings_from(args)
    stack = LocalStack(settings.state_dir)
    if args.action == "up":
        info, revived, warm = bring_up(settings)
        print(f"local stack up under {stack.state_dir}")
        print(f"  AWS emulator:  {info.moto_endpoint}")
        print(f"  registry:      {info.registry_host}")
        print(f"  Docker engine: {info.docker_host} ({'started by us' if info.dockerd_managed else 'existing'})")
        print(f"  base image:    {info.base_image}")
        for line in revived:
            print(f"  API revived:   {line}")
        print(f"  commands:      warm process pid {warm} (commands fork it)")
    elif args.action == "status":
        parts = stack.status()
        for part, state in parts.items():
            answering = "answering" if state.get("answering") else "not answering"
            where = state.get("endpoint") or "-"
            pid = f"pid {state['pid']}" if state.get("pid") else "no process"
            print(f"  {part:<10} {state['state']:<8} {answering:<14} {where}  ({pid})")
        warm = warm_process.running_pid(settings.state_dir)
        answering = "answering" if warm and warm_process.answers(settings.state_dir) else "not answering"
        pid = f"pid {warm}" if warm else "no process"
        where = socket_path(settings.state_dir)
        print(f"  {'commands':<10} {'running' if warm else 'stopped':<8} {answering:<14} {where}  ({pid})")
        # As `status` does for an env: a script (or a health check) tells a stack that cannot deploy by the exit
        # code. The warm process is not needed to deploy (commands then run in their own process).
        if down := [part for part, state in parts.items() if not state.get("answering")]:
            fix = "start the stack with `coderemote-pipeline local up`"
            if down == ["docker"] and parts["docker"].get("managed") is False:
                fix = f"start the Docker engine at {parts['docker']['endpoint']} (the stack uses it, not started by it)"
            print(f"not answering: {', '.join(down)}: {fix}")
            return 3
    else:
        stack.down()
        print(f"local stack under {stack.state_dir} is down")
    return 0


def cmd_demo(args: argparse.Namespace, settings_from) -> int:
    from coderemote_pipeline.cli.outlive import outlive_the_terminal
    from coderemote_pipeline.cli.release_commands import preflight
    from coderemote_pipeline.cli.summary import render
    from coderemote_pipeline.rules import names
    from coderemote_pipeline.usecases.demo import ensure_demo_repo
    from coderemote_pipeline.usecases.deploy import run_deployment

    outlive_the_terminal()
    settings = settings_from(args)
    print("bringing up the local stack (emulator, registry, Docker engine, base image)…")
    for line in bring_up(settings)[1]:
        print(f"  API revived: {line}")
    clone = ensure_demo_repo(Path(settings.app_remote))
    print(f"example app: remote {settings.app_remote}, working copy {clone}")
    outcome = run_deployment(
        "dev", "main", settings=settings, trigger=names.TRIGGER_DEMO, preflight=preflight(settings)
    )
    print(render(outcome))
    print(
        "\nSee the run, lineage and per-stage timings in the Dagster UI:\n"
        "  .venv/bin/coderemote-pipeline ui     (then open http://127.0.0.1:3000; --port N for another port)\n"
        f"Push to the example app ({clone}) and deploy again: .venv/bin/coderemote-pipeline deploy dev main\n"
        "Stop everything: .venv/bin/coderemote-pipeline local down"
    )
    return 0 if outcome.success else 1


def port(text: str) -> int:
    """A `--port` value: a TCP port a server can listen on."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give a whole number from 1 to 65535")
    return number


def _cannot_listen(host: str, port: int) -> str | None:
    """Why the UI could not listen on host:port, with the fix, or None when it can."""
    use_local = "use --host 127.0.0.1 (this machine only) or an address of this machine"
    if not host.strip():
        return f"--host is empty: {use_local}"
    try:
        family, kind, _, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError):
        return f"--host {host!r} does not resolve to an address: {use_local}"
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(where)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use: choose another with `ui --port N`"
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"--host {host} is not an address of this machine: {use_local}"
            if exc.errno == errno.EACCES:
                return f"port {port} needs privileges (below 1024): choose another with `ui --port N`"
            return f"cannot listen on {host} port {port} ({exc.strerror}): {use_local}, or another `ui --port N`"
    return None


def cmd_ui(args: argparse.Namespace, settings_from) -> int:
    from coderemote_pipeline.ledger.instance import dagster_home
    from coderemote_pipeline.rules.errors import UserError

    settings = settings_from(args)
    if problem := _cannot_listen(args.host, args.port):
        raise UserError(problem)
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or shutil.which("dagster")
    if dagster is None:
        raise UserError("the `dagster` command is not installed beside this one: pip install dagster-webserver")
    _warn_if_the_target_is_away(settings)
    os.environ.update({f"CODEREMOTE_{k.upper()}": v for k, v in settings.env_fields().items()})
    os.environ["DAGSTER_HOME"] = str(dagster_home(settings.state_dir))
    # A shell that started us in the background may have left SIGINT/SIGTERM ignored; dagster dev must stop on them.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    argv = [dagster, "dev", "-m", "coderemote_pipeline.definitions", "-h", args.host, "-p", str(args.port),
            "--log-level", args.log_level]  # fmt: skip
    os.execv(dagster, argv)
    return 0


def _warn_if_the_target_is_away(settings) -> None:
    """The UI reads history without the target, but its sensors deploy: they wait for it (asking what is asked
    here), and the user should know."""
    from coderemote_pipeline.local_stack.errors import UP_COMMAND
    from coderemote_pipeline.resources.targets import resources_for

    blocker = resources_for(settings)["readiness"].blocker()
    if blocker is None:
        return
    if settings.target == "local":
        print(f"warning: the local stack is down: the sensors hold every deploy until `{UP_COMMAND}`", file=sys.stderr)
    else:
        print(f"warning: the sensors hold every deploy while this stands: {blocker}", file=sys.stderr)


def add_parsers(sub) -> None:
    local = sub.add_parser("local", help="the local stack: AWS emulator, image registry, Docker engine")
    local.add_argument("action", choices=["up", "status", "down"])
    local.set_defaults(func=cmd_local)
    demo = sub.add_parser("demo", help="local stack up, example app repository, deploy main to dev")
    demo.set_defaults(func=cmd_demo)
    ui = sub.add_parser("ui", help=UI_HELP)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=port, default=3000)
    ui.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                    help="what dagster dev prints (default warning; every tick is in the UI anyway)")  # fmt: skip
    ui.set_defaults(func=cmd_ui)

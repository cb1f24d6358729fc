"""`coderemote-pipeline`: the local stack, deploys and the demo, from a terminal."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path

from coderemote_pipeline.rules.settings import PROJECT_ROOT, Settings


def _settings(args: argparse.Namespace) -> Settings:
    if getattr(args, "remote", None):
        os.environ["CODEREMOTE_APP_REMOTE"] = args.remote
    if getattr(args, "app_config", None):
        os.environ["CODEREMOTE_APP_CONFIG"] = str(Path(args.app_config).resolve())
    return Settings.from_env()


def cmd_local(args: argparse.Namespace) -> int:
    from coderemote_pipeline.local_stack import LocalStack

    stack = LocalStack(_settings(args).state_dir)
    if args.action == "up":
        info = stack.up()
        print(f"local stack up under {stack.state_dir}")
        print(f"  AWS emulator:  {info.moto_endpoint}")
        print(f"  registry:      {info.registry_host}")
        print(f"  Docker engine: {info.docker_host} ({'started by us' if info.dockerd_managed else 'existing'})")
        print(f"  base image:    {info.base_image}")
    elif args.action == "status":
        for part, state in stack.status().items():
            print(f"  {part:<12} {state}")
    else:
        stack.down()
        print(f"local stack under {stack.state_dir} is down")
    return 0


def _preflight(settings: Settings):
    def check() -> None:
        if settings.target == "local":
            from coderemote_pipeline.local_stack import check_parts, load_stack_info

            check_parts(load_stack_info(settings.state_dir))

    return check


def cmd_deploy(args: argparse.Namespace) -> int:
    from coderemote_pipeline.cli.summary import render
    from coderemote_pipeline.usecases.deploy import DeployRefused, Override, run_deployment

    settings = _settings(args)
    if args.reason and not args.force:
        raise DeployRefused("--reason goes with --force (the reason for overriding the promotion gate)")
    override = Override(reason=args.reason or "", by=args.by) if args.force else None
    outcome = run_deployment(
        args.env,
        args.ref,
        settings=settings,
        trigger="cli",
        preflight=_preflight(settings),
        executor=args.executor,
        override=override,
    )
    print(render(outcome))
    return 0 if outcome.success else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from coderemote_pipeline.cli.summary import render
    from coderemote_pipeline.local_stack import LocalStack
    from coderemote_pipeline.usecases.demo import ensure_demo_repo
    from coderemote_pipeline.usecases.deploy import run_deployment

    settings = _settings(args)
    print("bringing up the local stack (emulator, registry, Docker engine, base image)…")
    LocalStack(settings.state_dir).up()
    clone = ensure_demo_repo(Path(settings.app_remote))
    print(f"example app: remote {settings.app_remote}, working copy {clone}")
    outcome = run_deployment("dev", "main", settings=settings, trigger="demo", preflight=_preflight(settings))
    print(render(outcome))
    print(
        "\nSee the run, lineage and per-stage timings in the Dagster UI:\n"
        "  .venv/bin/coderemote-pipeline ui     (then open http://127.0.0.1:3000)\n"
        f"Push to the example app ({clone}) and deploy again: "
        ".venv/bin/coderemote-pipeline deploy dev main\n"
        "Stop everything: .venv/bin/coderemote-pipeline local down"
    )
    return 0 if outcome.success else 1


def cmd_ui(args: argparse.Namespace) -> int:
    from coderemote_pipeline.usecases.deploy import export_settings

    export_settings(_settings(args))
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    # A shell that started us in the background may have left SIGINT/SIGTERM ignored; dagster dev must stop on them.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    argv = [dagster, "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", args.host, "-p", str(args.port)]
    os.execv(dagster, argv)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="coderemote-pipeline", description="The release system of Code Remote.")
    sub = top.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="the local stack: AWS emulator, image registry, Docker engine")
    local.add_argument("action", choices=["up", "status", "down"])
    local.set_defaults(func=cmd_local)

    deploy = sub.add_parser("deploy", help="deploy REF (branch, tag or commit of the app remote) to ENV")
    deploy.add_argument("env")
    deploy.add_argument("ref")
    deploy.add_argument("--remote", help="app git remote URL (default: CODEREMOTE_APP_REMOTE or the demo's)")
    deploy.add_argument("--app-config", help="YAML file with the app's layout (AppSource fields)")
    deploy.add_argument("--force", action="store_true", help="deploy past the promotion gate (needs --reason)")
    deploy.add_argument("--reason", help="why the gate is overridden; recorded on the run and in history")
    deploy.add_argument("--by", default=os.environ.get("USER", "unknown"), help="who deploys (default: $USER)")
    deploy.add_argument(
        "--executor",
        choices=["auto", "parallel", "serial"],
        default="auto",
        help="parallel: deploy_job, branches in parallel processes; serial: redeploy_job, one process; "
        "auto (default): serial when the commit's image and bundle already exist, else parallel",
    )
    deploy.set_defaults(func=cmd_deploy)

    demo = sub.add_parser("demo", help="local stack up, example app repository, deploy main to dev")
    demo.set_defaults(func=cmd_demo)

    ui = sub.add_parser("ui", help="the Dagster UI on this project's instance")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    from coderemote_pipeline.cli.release_commands import add_parsers as add_release_parsers

    add_release_parsers(sub)

    from coderemote_pipeline.cli.approval_commands import add_parsers as add_approval_parsers

    add_approval_parsers(sub)

    from coderemote_pipeline.cli.retry_command import add_parsers as add_retry_parsers

    add_retry_parsers(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    from coderemote_pipeline.cli.errors import USER_ERRORS

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

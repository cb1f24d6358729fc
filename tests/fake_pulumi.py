"""A stand-in for the `pulumi` CLI: the few commands the Automation API runs for PulumiProvisioner, nothing more.

The real CLI cannot be installed on these machines; this one lets the real Automation API (its argv, its JSON
parsing, its error classification) drive the provisioner. It answers like the CLI: config lives in the work
dir's `Pulumi.<stack>.yaml` (secrets as `secure:` values), history and outputs in a JSON state file. Every call
is recorded there. FAKE_PULUMI_MODE makes `up` fail the ways the CLI does: conflict, locked, fail, nocreds,
nologin, nopassphrase; `old` makes `version` answer a CLI older than the Automation API accepts.
"""

import base64
import datetime
import json
import os
import sys
from pathlib import Path

import yaml

OUTPUT_KEYS = json.loads(os.environ.get("FAKE_PULUMI_OUTPUT_KEYS", "[]"))
FAILURES = {
    "conflict": ("", "error: [409] Conflict: Another update is currently in progress."),
    "locked": ("", "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end"),
    "nocreds": ("", "error: unable to validate AWS credentials.\nDetails: No valid credential sources found"),
    "nologin": ("", "error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions"),
    "nopassphrase": ("", "error: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or _FILE environment variables"),
    "fail": (
        "Updating (dev)\n + aws:lambda:Function api-function creating (1s) error: Source image does not exist\n"
        "Diagnostics:\n  aws:lambda:Function (api-function):\n    error: creating Lambda Function: "
        "InvalidParameterValueException: Source image {key} does not exist\n",
        "error: update failed",
    ),
}


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def main(args: list[str]) -> int:
    args = [a for a in args if a != "--non-interactive"]
    mode = os.environ.get("FAKE_PULUMI_MODE", "")
    if args == ["version"]:
        print("v3.0.0" if mode == "old" else "v3.200.0")
        return 0
    state_path = Path(os.environ["FAKE_PULUMI_STATE"])
    state = json.loads(state_path.read_text()) if state_path.exists() else {"stacks": {}, "calls": []}
    state["calls"].append(args)
    # What the provisioner put in the CLI's environment (the passphrase only as set or not).
    seen = {"backend": os.environ.get("PULUMI_BACKEND_URL", ""), "passphrase": "PULUMI_CONFIG_PASSPHRASE" in os.environ}
    state.setdefault("environments", []).append(seen)
    try:
        return run(args, mode, state)
    finally:
        state_path.write_text(json.dumps(state))


def run(args: list[str], mode: str, state: dict) -> int:
    name = option(args, "--stack") or (args[2] if args[:2] == ["stack", "init"] else "")
    stack_file = Path.cwd() / f"Pulumi.{name}.yaml"
    stacks = state["stacks"]
    if args[:2] == ["stack", "select"]:
        if name not in stacks:
            print(f"error: no stack named '{name}' found", file=sys.stderr)
            return 255
        return 0
    if args[:2] == ["stack", "init"]:
        stacks[name] = {"history": [], "outputs": {}, "secrets_provider": option(args, "--secrets-provider")}
        return 0
    if args[0] == "config" and args[1:2] == ["set"]:
        data = yaml.safe_load(stack_file.read_text()) if stack_file.exists() else {}
        value = args[args.index("--") + 1]
        if "--secret" in args:
            value = {"secure": "v1:" + base64.b64encode(value[::-1].encode()).decode()}
        data.setdefault("config", {})[args[2]] = value
        stack_file.write_text(yaml.safe_dump(data))
        return 0
    if args[0] == "config":
        config = (yaml.safe_load(stack_file.read_text()) or {}).get("config", {}) if stack_file.exists() else {}
        answer = {}
        for key, value in config.items():
            secret = isinstance(value, dict)
            plain = base64.b64decode(value["secure"][3:]).decode()[::-1] if secret else str(value)
            answer[key] = {"value": plain, "secret": secret}
        print(json.dumps(answer))
        return 0
    if args[:2] == ["stack", "history"]:
        print(json.dumps(list(reversed(stacks[name]["history"]))[: int(option(args, "--page-size") or 1000)]))
        return 0
    if args[:2] == ["stack", "output"]:
        print(json.dumps(stacks[name]["outputs"]))
        return 0
    if args[0] == "up":
        return up(args, mode, stacks[name], name)
    print(f"fake pulumi: unsupported command {args}", file=sys.stderr)
    return 2


def up(args: list[str], mode: str, stack: dict, name: str) -> int:
    history = stack["history"]
    if mode in FAILURES:
        stdout, stderr = FAILURES[mode]
        print(stdout.format(key=os.environ.get("FAKE_PULUMI_LEAK", "")))
        print(stderr, file=sys.stderr)
        if mode == "fail":
            history.append(entry(history, option(args, "--message"), "failed", {"create": 1}))
        return 255
    targeted = "--target" in args
    created = not any(h["result"] == "succeeded" and not h.get("targeted") for h in history)
    changes = {"create": 1} if targeted else ({"create": 20} if created else {"same": 20})
    history.append({**entry(history, option(args, "--message"), "succeeded", changes), "targeted": targeted})
    if not targeted:
        stack["outputs"] = {key: f"{key}-of-{name}" for key in OUTPUT_KEYS}
    print(f"Updating ({name})\nResources:\n    {json.dumps(changes)}")
    return 0


def entry(history: list, message: str | None, result: str, changes: dict) -> dict:
    return {
        "kind": "update",
        "startTime": now(),
        "endTime": now(),
        "message": message or "",
        "environment": {},
        "config": {},
        "result": result,
        "version": len(history) + 1,
        "resourceChanges": changes,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

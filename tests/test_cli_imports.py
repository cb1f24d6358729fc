"""The quick commands load only what they use: `--help` nothing but argparse and the command table; `status`,
`approvals` and `history` read the ledger without the code location (definitions, jobs, stages), and without boto3
or the Docker SDK while there is no deployed target to ask. Checked in a fresh interpreter by what it imported, not
by a clock: the real command runs on a real (empty) instance, and then says which heavy modules it had loaded."""

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("coderemote_pipeline.definitions", "coderemote_pipeline.resources.targets", "dagster", "boto3", "docker")
LEDGER_ONLY = set(HEAVY) - {"dagster"}
WITHOUT_DAGSTER = set(HEAVY) - {"docker"}


def _loaded_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize(
    ("modules", "absent"),
    [
        (("coderemote_pipeline.cli.main",), set(HEAVY)),
        (("coderemote_pipeline.usecases.approval_view", "coderemote_pipeline.ledger.instance"), LEDGER_ONLY),
        (("coderemote_pipeline.usecases.history",), LEDGER_ONLY),
        (("coderemote_pipeline.usecases.status",), LEDGER_ONLY),
        # `local up|status|down` and the warm process's client judge pids without Dagster (~0.5 s to load).
        (("coderemote_pipeline.local_stack.processes", "coderemote_pipeline.cli.warm_process"), WITHOUT_DAGSTER),
    ],
)
def test_quick_command_modules_import_only_what_they_use(modules, absent):
    assert not _loaded_after("\n".join(f"import {m}" for m in modules)) & absent


@pytest.mark.parametrize(
    ("argv", "absent"),
    [
        (["--help"], set(HEAVY)),
        (["status"], LEDGER_ONLY),
        (["approvals"], LEDGER_ONLY),
        (["history", "dev"], LEDGER_ONLY),
    ],
)
def test_quick_commands_run_without_the_code_location(argv, absent, tmp_path):
    env = {**os.environ, "CODEREMOTE_STATE_DIR": str(tmp_path / "state"), "CODEREMOTE_APP_REMOTE": str(tmp_path)}
    env.pop("DAGSTER_HOME", None)
    run = ("import contextlib, io\nfrom coderemote_pipeline.cli.main import main\n"
           f"with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
           f"    assert main({argv!r}) == 0")  # fmt: skip
    assert not _loaded_after(run, env) & absent

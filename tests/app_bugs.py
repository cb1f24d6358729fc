"""Bugs planted in the example app that only show once it is deployed.

The app's own checks run its tests with ``CI=true`` (actions/app_checks.py), and a deployed API never has ``CI`` in
its environment: a bug guarded by it passes every check and fails in the environment, which is what the fault and
rollback tests need to reach the switch and the smoke stage. `smoke_fails` is the other fault: a probe that
expects another release than the one deployed, so smoke fails after the switch whatever the app does.
"""

from pathlib import Path

MAIN = "def main() -> int:\n"


def plant(server: Path, *bug_lines: str) -> str:
    """Put ``bug_lines`` at the top of ``main()``, run only outside CI; returns the good source to put back."""
    good = server.read_text()
    assert MAIN in good, f"{server} has no {MAIN.strip()!r} to plant a bug in"
    guarded = "".join(f"        {line}\n" for line in bug_lines)
    server.write_text(good.replace(MAIN, f'{MAIN}    if not os.environ.get("CI"):\n{guarded}', 1))
    return good


def smoke_fails(monkeypatch) -> None:
    """Every smoke check of runs in this process fails after the switch, until ``monkeypatch.undo()``."""
    from coderemote_pipeline.assets import smoke_result

    real = smoke_result.smoke_checks
    monkeypatch.setattr(smoke_result, "smoke_checks", lambda **kw: real(**{**kw, "release": "a-flaky-probe"}))

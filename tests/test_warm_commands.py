"""Commands run by a fork of the warm process (cli/warm.py, cli/warm_server.py): the installed command hands its
arguments, environment, working directory and standard streams over, and gets the same output and exit status it
would have produced alone. Its own test stack; the warm process is stopped by its pid at the end."""

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from coderemote_pipeline.cli import warm_process
from coderemote_pipeline.cli.main import main
from coderemote_pipeline.cli.warm import socket_path
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.leases import Lease
from coderemote_pipeline.ledger.live import recorded_live
from coderemote_pipeline.local_stack import LocalStack
from coderemote_pipeline.local_stack.processes import pid_alive
from coderemote_pipeline.usecases.demo import EXAMPLE_APP, commit_and_push, make_app_repo

pytestmark = pytest.mark.stack
BIN = Path(sys.executable).parent / "coderemote-pipeline"


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """(env of the command line, state dir, clone, warm pid) over a stack of this module's own."""
    root = tmp_path_factory.mktemp("warm")
    state = root / "state"
    stack = LocalStack(state)
    stack.up()
    try:
        make_app_repo(EXAMPLE_APP, root / "app.git", root / "clone")
        pid = warm_process.ensure(state, wait=True)
        env = {**os.environ, "CODEREMOTE_STATE_DIR": str(state), "CODEREMOTE_APP_REMOTE": str(root / "app.git")}
        for name in ("DAGSTER_HOME", "CODEREMOTE_APP_CONFIG", "CODEREMOTE_WARM"):
            env.pop(name, None)
        yield env, state, root / "clone", pid
    finally:
        stack.down()


def _cli(env: dict[str, str], *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *argv], env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


def _forks(state: Path) -> list[str]:
    """The commands the warm process has forked so far, by name (its log)."""
    log = (state / "local" / "logs" / "commands.log").read_text().splitlines()
    return [line.split()[1].rstrip(":") for line in log if ": pid " in line]


def test_a_deploy_is_a_fork_of_the_warm_process_and_says_the_same(warm):
    env, state, clone, pid = warm
    (clone / "backend" / "app" / "warm.txt").write_text("through the warm process\n")
    commit = commit_and_push(clone, "warm deploy")
    before = _forks(state)
    done = _cli(env, "deploy", "dev", "main")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"LIVE: dev|main-{commit[:7]}" in done.stdout
    assert "✓ smoke_result" in done.stdout
    assert _forks(state) == [*before, "deploy"]
    assert warm_process.running_pid(state) == pid  # the warm process itself ran nothing


def test_read_commands_print_exactly_what_their_own_process_prints(warm):
    env, state, _clone, _pid = warm
    for argv in (("history", "dev"), ("approvals",), ("status", "dev")):
        before = _forks(state)
        forked = _cli(env, *argv)
        alone = _cli({**env, "CODEREMOTE_WARM": "0"}, *argv)
        assert _forks(state) == [*before, argv[0]]
        assert (forked.returncode, forked.stdout, forked.stderr) == (alone.returncode, alone.stdout, alone.stderr)


def test_mistakes_get_their_one_line_with_the_command_lines_environment_and_directory(warm, tmp_path):
    env, state, _clone, _pid = warm
    unknown = _cli(env, "deploy", "qa", "main")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "qa" in unknown.stderr
    # The environment is the command line's: its target, not the warm process's.
    target = _cli({**env, "CODEREMOTE_TARGET": "nowhere"}, "status")
    assert target.returncode == 2 and "CODEREMOTE_TARGET='nowhere'" in target.stderr
    # So is the working directory: a relative --app-config is read from where the command was typed.
    (tmp_path / "app.yaml").write_text("dockerfle: Dockerfile\n")
    config = _cli(env, "deploy", "dev", "main", "--app-config", "app.yaml", cwd=tmp_path)
    assert config.returncode == 2 and "dockerfle" in config.stderr and "Traceback" not in config.stderr
    assert _forks(state)[-3:] == ["deploy", "status", "deploy"]
    switch = _cli({**env, "CODEREMOTE_WARM": "no"}, "status")
    assert switch.returncode == 2 and switch.stderr.count("\n") == 1 and "CODEREMOTE_WARM='no'" in switch.stderr


def test_a_killed_command_line_leaves_its_deploy_to_end_as_the_run_decides(warm):
    """The command line gone (killed, its terminal closed), the deploy it asked for is not cut half-way: the warm
    child finishes it, records it and frees the lease (cli/outlive.py); then it ends."""
    env, state, clone, pid = warm
    (clone / "backend" / "app" / "warm.txt").write_text("a deploy whose terminal goes away\n")
    commit = commit_and_push(clone, "killed client")
    client = subprocess.Popen([str(BIN), "deploy", "dev", "main"], env=env, stdout=subprocess.PIPE, text=True)
    for line in client.stdout:
        if "… api_image" in line:
            break
    child = int((state / "local" / "logs" / "commands.log").read_text().split("deploy: pid ")[-1].split()[0])
    assert pid_alive(child)
    # Its own process group, as a command started from a shell: `kill -- -PGID` of this deploy (what stops its
    # docker builds too) must not reach the warm process, nor another command it forked.
    assert os.getpgid(child) == child != os.getpgid(pid)
    client.kill()
    client.wait()
    deadline = time.monotonic() + 120
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(child)
    with open_instance(state) as instance:
        (run,) = instance.get_runs(dg.RunsFilter(tags={"coderemote/commit": commit}))
        assert run.status is dg.DagsterRunStatus.SUCCESS and recorded_live(instance, "dev").commit == commit
        assert Lease(instance, "dev").holder() is None
    assert warm_process.running_pid(state) == pid


def test_a_reader_gone_before_the_first_line_ends_it_as_quietly_as_its_own_process(warm):
    """`history dev | head -1`: the fork dies of SIGPIPE writing into the closed pipe, as the command's own
    process does (cli/main.py keeps SIGPIPE's default); the command line said it "was killed", exit 1."""
    env, state, _, _ = warm
    before = _forks(state)
    for own in ("0", "1"):
        read, write = os.pipe()
        os.close(read)  # the reader left before the first line
        try:
            done = subprocess.run([str(BIN), "history", "dev"], env={**env, "CODEREMOTE_WARM": own}, stdout=write,
                                  stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
        finally:
            os.close(write)
        assert (done.returncode, done.stderr) == (-13, ""), (own, done.returncode, done.stderr)
    assert _forks(state)[len(before):] == ["history"]  # the second one was the warm process's fork


def test_a_change_of_code_is_run_by_its_own_process_and_the_warm_process_reloads(warm):
    env, state, _clone, pid = warm
    touched = Path(warm_process.PACKAGE) / "rules" / "__init__.py"
    times = touched.stat()
    os.utime(touched, (times.st_atime, time.time() + 5))
    try:
        before = _forks(state)
        done = _cli(env, "history", "dev")
        assert done.returncode == 0 and "started" in done.stdout
        assert _forks(state) == before  # refused: it ran in its own process
        warm_process.ensure(state, wait=True)
        assert warm_process.running_pid(state) == pid  # loaded again under the same pid
        assert _cli(env, "history", "dev").returncode == 0
        assert _forks(state)[-1] == "history"
    finally:
        os.utime(touched, (times.st_atime, times.st_mtime))
        # The code changed back: the next command is refused and the warm process reloads. That reload happens here,
        # so the tests after this one find it taking commands, not mid-reload.
        assert _cli(env, "history", "dev").returncode == 0
        warm_process.ensure(state, wait=True)
        assert _cli(env, "history", "dev").returncode == 0 and _forks(state)[-1] == "history"


def test_only_its_user_may_connect_and_the_stack_going_down_stops_it(warm, monkeypatch, capsys):
    env, state, _clone, pid = warm
    assert stat.S_IMODE(socket_path(state).stat().st_mode) == 0o600
    for name in ("CODEREMOTE_STATE_DIR", "CODEREMOTE_APP_REMOTE"):
        monkeypatch.setenv(name, env[name])
    assert main(["local", "status"]) == 0
    assert f"commands   running  answering      {socket_path(state)}  (pid {pid})" in capsys.readouterr().out
    LocalStack(state).down()  # what `local down` does, and every test stack's teardown
    assert not pid_alive(pid) and not socket_path(state).exists()
    assert main(["local", "status"]) == 3  # a stack that cannot deploy says so by its exit code too
    assert "not answering: moto, registry" in capsys.readouterr().out
    # With none running, the command runs in its own process.
    assert _cli(env, "history", "dev").returncode == 0

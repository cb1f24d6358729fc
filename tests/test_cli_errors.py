"""Every command, given broken input, answers with one line on stderr that names the thing and the fix: no
traceback, exit code 2. None of these needs the local stack: each mistake is caught before anything runs."""

import os
import re
import shutil
import signal
import socket
import subprocess

import dagster as dg
import pytest
from dagster._core.events import EngineEventData

from coderemote_pipeline.cli.main import _short, main, parser
from coderemote_pipeline.cli.release_commands import _override
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.ledger.leases import Lease
from coderemote_pipeline.ledger.process_place import process_place
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.environments import DEFAULT_INFRA_DIR
from testkit.ledger_seed import Seeder


@pytest.fixture
def env(tmp_path, cli_env):
    typo = tmp_path / "typo.yaml"
    typo.write_text("dockerfil: Dockerfile\n")
    infra = tmp_path / "infra"
    shutil.copytree(DEFAULT_INFRA_DIR, infra, ignore=shutil.ignore_patterns("__pycache__"))
    policy = infra / "environments.yaml"
    policy.write_text(policy.read_text().replace("    approval: required", "    aproval: required"))
    regions = tmp_path / "regions"
    shutil.copytree(DEFAULT_INFRA_DIR, regions, ignore=shutil.ignore_patterns("__pycache__"))
    prod_stack = regions / "pulumi" / "Pulumi.prod.yaml"
    prod_stack.write_text(prod_stack.read_text().replace("aws:region: us-east-1", "aws:region: eu-west-1"))
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "blocked" / "dagster_home").mkdir(parents=True)
    (tmp_path / "blocked" / "dagster_home" / "history").write_text("")  # a file where the storage's directory goes
    (tmp_path / "frees_slots").mkdir()  # a team's dagster.yaml with the daemon freeing ended runs' slots
    (tmp_path / "frees_slots" / "dagster.yaml").write_text("run_monitoring:\n  enabled: true\n"
                                                           "  free_slots_after_run_end_seconds: 60\n")
    (tmp_path / "pg_driver").mkdir()  # a team config written the usual Dagster way: no scheme, so psycopg 3
    (tmp_path / "pg_driver" / "dagster.yaml").write_text("storage:\n  postgres:\n    postgres_db:\n      username: u\n"
                                                         "      password: p\n      hostname: h\n      db_name: d\n")
    (tmp_path / "bad_module").mkdir()  # a team config's storage class, misspelled
    (tmp_path / "bad_module" / "dagster.yaml").write_text("run_storage:\n  module: dagster._core.storage.runz\n"
                                                          "  class: SqliteRunStorage\n  config: {base_dir: runs}\n")
    (tmp_path / "fifo_home").mkdir()
    os.mkfifo(tmp_path / "fifo_home" / "dagster.yaml")  # reading it would wait for a writer forever
    return {"tmp": tmp_path, "typo": str(typo), "infra": str(infra), "regions": str(regions), "long": "d" * 300}


CASES = [
    ([], {}, "the following arguments are required: COMMAND"),
    (["deploy", "qa", "main"], {}, "unknown environment 'qa'"),
    (["deploy", "dev", "no-such-branch"], {}, "'no-such-branch' is not a branch, version tag or commit"),
    (["deploy", "dev", "main", "--remote", "{tmp}/nowhere.git"], {}, "is unreachable"),
    (["deploy", "prod", "main"], {}, "prod deploys only stable version tags"),
    (["deploy", "prod", "v9.9.9-rc.1"], {}, "'v9.9.9-rc.1' is a pre-release tag"),  # said without asking the remote
    (["deploy", "prod", "V1.3.0"], {}, "'V1.3.0' is not a version tag: version tags start with a lowercase v"),
    (["deploy", "dev", "main", "--app-config", "{typo}"], {}, "unknown key 'dockerfil'; did you mean 'dockerfile'?"),
    (["deploy", "dev", "main", "--app-config", "{tmp}/missing.yaml"], {}, "missing.yaml: file not found"),
    (["deploy", "dev", "main", "--reason", "x"], {}, "--reason goes with --force"),
    (["deploy", "dev", "main", "--force"], {}, "--force needs --reason TEXT"),
    (["deploy", "dev", "main", "--executor", "fast"], {}, "invalid choice: 'fast'"),
    (["deploy", "dev", "main"], {"CODEREMOTE_TARGET": "gcp"}, "CODEREMOTE_TARGET='gcp' is not a target"),
    (["deploy", "dev", "main"], {"CODEREMOTE_SENSOR_INTERVAL_S": "soon"}, "must be a whole number of seconds"),
    (["deploy", "dev", "main"], {"CODEREMOTE_INFRA_DIR": "{infra}"}, "unknown key 'aproval'"),
    (["status"], {"CODEREMOTE_STATEDIR": "{tmp}/elsewhere"},
     "unknown environment variable CODEREMOTE_STATEDIR; did you mean 'CODEREMOTE_STATE_DIR'?: fix or unset it"),
    (["deploy", "dev", "main"], {"CODEREMOTE_COLOUR": "1"},
     "unknown environment variable CODEREMOTE_COLOUR (the pipeline's: CODEREMOTE_TARGET, CODEREMOTE_STATE_DIR"),
    (["deploy", "dev", "main"], {}, "No local stack is running for state dir"),
    (["promote", "dev", "dev"], {}, "promote needs two different environments"),
    (["promote", "dev", "qa"], {}, "unknown environment 'qa'"),
    (["promote", "dev", "staging"], {}, "nothing is live in dev: deploy it first"),
    (["rollback", "qa"], {}, "unknown environment 'qa'"),
    (["rollback", "dev"], {}, "dev has no earlier release that passed smoke (live: nothing): deploy one first: "
                              "coderemote-pipeline deploy dev main"),
    (["rollback", "prod"], {}, "deploy one first: coderemote-pipeline deploy prod vMAJOR.MINOR.PATCH"),
    (["rollback", "dev", "--to", "v9.9.9"], {}, "v9.9.9 never passed smoke in dev: nothing verified to roll back "
                                                "to. Deploy it instead: coderemote-pipeline deploy dev v9.9.9"),
    (["rollback", "dev", "--to", "main-abcdef0"], {}, "Deploy it instead: coderemote-pipeline deploy dev abcdef0"),
    (["rollback", "prod", "--to", "main-abcdef0"], {}, "main-abcdef0 never passed smoke in prod: nothing verified "
     "to roll back to, and it cannot be deployed there either: prod deploys only stable version tags"),
    (["rollback", "dev", "--to", "a|b"], {}, "release key 'a|b' is empty or contains one of '|,[]/' or whitespace"),
    (["rollback", "dev", "--to", "v1.2"], {}, "version tag 'v1.2' is not semantic versioning"),
    (["rollback", "dev", "--to", ""], {}, "--to is empty: give the release key to go back to"),
    (["rollback", "dev", "--to", " "], {}, "--to is empty"),
    (["retry", "0123abcd"], {}, "no run's id starts with '0123abcd' in this instance: `coderemote-pipeline history "
                                "ENV` lists an environment's runs with their ids"),
    (["retry", "abcdef"], {}, "no run's id starts with 'abcdef'"),
    (["retry", "ab"], {}, "run id 'ab' is too short: give its first 4+ characters"),
    (["retry", "prodd"], {}, "'prodd' is neither an environment (dev, staging, prod) nor a run id: give one"),
    (["retry", "qa"], {}, "'qa' is neither an environment (dev, staging, prod) nor a run id"),
    (["retry", "dev"], {}, "dev has no deploy or rollback run to retry"),
    (["infra", "dev", "frob"], {}, "unknown infra action 'frob': use history, preview, refresh"),
    (["status", "qa"], {}, "unknown environment 'qa'"),
    (["deploy", "dev", "main", "--app-config", "{tmp}/loop1"], {}, "--app-config '"),
    (["status"], {"CODEREMOTE_STATE_DIR": "{tmp}/loop1"}, "loop1' cannot be followed (a loop of symbolic links): "
                                                           "point it at a real path"),
    (["status"], {"CODEREMOTE_INFRA_DIR": "{tmp}/loop1"}, "CODEREMOTE_INFRA_DIR '"),
    (["approve", "prod", "v1.0.0", "--by", "pat\udcff"], {}, "argument 5 ('pat\ufffd') is not UTF-8 text"),
    (["status"], {"CODEREMOTE_STATE_DIR": "{tmp}/st\udcff"}, "CODEREMOTE_STATE_DIR is not UTF-8 text: type it again"),
    (["status"], {"CODEREMOTE_INFRA_DIR": "{infra}"}, "unknown key 'aproval'"),  # said before the next deploy fails
    (["status"], {"CODEREMOTE_TARGET": "aws", "CODEREMOTE_INFRA_DIR": "{regions}"},
     "one region, but infra/pulumi sets aws:region to eu-west-1 in Pulumi.prod.yaml; us-east-1 in Pulumi.dev.yaml"),
    (["status", ""], {}, "unknown environment ''"),
    (["history", "qa"], {}, "unknown environment 'qa'"),
    (["history", "dev", "--days", "0"], {}, "--days 0 must be a number of days more than 0 and at most 3650"),
    (["history", "dev", "--days", "-2"], {}, "--days -2 must be a number of days"),
    (["history", "dev", "--days", "nan"], {}, "--days nan must be a number of days"),
    (["history", "dev", "--days", "inf"], {}, "--days inf must be a number of days"),
    (["history", "dev", "--days", "1e300"], {}, "--days 1e+300 must be a number of days"),
    (["history", "dev", "--days", "1e6"], {}, "--days 1e+06 must be a number of days"),
    (["history", "dev", "--days", "many"], {}, "argument --days: many is not a number of days: write it in digits"),
    (["traffic", "staging", "--abort", "--by", ""], {}, "argument --by: '' names nobody: give who you are"),
    (["traffic", "staging", "--promote", "--by", "  "], {}, "argument --by: '  ' names nobody"),
    (["traffic", "dev", "--reason", "x"], {}, "--reason goes with --promote or --abort"),
    (["traffic", "dev", "--by", "pat"], {}, "--by goes with --promote or --abort"),
    (["deploy", "dev", "main", "--force", "--reason", "x", "--by", ""], {}, "argument --by: '' names nobody"),
    (["promote", "dev", "staging", "--by", " "], {}, "argument --by: ' ' names nobody"),
    (["deploy", "dev", "main", "--by", "bob"], {}, "--by goes with --force or --skip-checks (who overrides"),
    (["deploy", "dev", "main", "--remote", "/a.git", "--remote", "/b.git"], {}, "--remote given twice: give it once"),
    (["rollback", "dev", "--to", "v1.2.3", "--to", "v1.2.4"], {}, "--to given twice: give it once"),
    (["promote", "dev", "staging", "--by", "bob"], {}, "--by goes with --force (who overrides, recorded with the"),
    (["approve", "qa", "v1.0.0", "--by", "x"], {}, "unknown environment 'qa'"),
    (["approve", "prod", "v1.2", "--by", "x"], {}, "'v1.2' is not semantic versioning"),
    (["approve", "prod", "v1.0.0", "--by", " "], {}, "' ' names nobody: give who you are"),
    # What is recorded and listed: a newline, an escape or a direction override would forge or hide a line.
    (["approve", "prod", "v1.0.0", "--by", "evil\nerror: fake"], {}, "argument --by: has a control character"),
    (["approve", "prod", "v1.0.0", "--by", "\u202eecila"], {}, "argument --by: has a control character"),
    (["approve", "prod", "v1.0.0", "--by", "ali\u200bce"], {}, "argument --by: has a control character"),
    (["reject", "prod", "v1.0.0", "--reason", "why\x1b[31mRED"], {}, "argument --reason: has a control character"),
    (["deploy", "dev", "main", "--force", "--reason", "a\nb"], {}, "write it on one line"),
    (["reject", "prod", "v1.0.0", "--by", ""], {}, "'' names nobody: give who you are"),
    (["reject", "prod", "v9.9.9", "--by", "x"], {}, "'v9.9.9' is not registered"),
    (["approvals", "--bogus"], {}, "unrecognized arguments: --bogus"),
    (["local", "sideways"], {}, "invalid choice: 'sideways'"),
    (["ui", "--port", "web"], {}, "argument --port: 'web' is not a port: give a whole number from 1 to 65535"),
    (["ui", "--port", "-1"], {}, "argument --port: '-1' is not a port"),
    (["ui", "--port", "0"], {}, "argument --port: '0' is not a port"),
    (["ui", "--port", "99999"], {}, "argument --port: '99999' is not a port"),
    (["ui", "--host", "256.1.1.1"], {}, "--host '256.1.1.1' does not resolve to an address: use --host 127.0.0.1"),
    (["ui", "--host", "nosuchhost.invalid"], {}, "--host 'nosuchhost.invalid' does not resolve to an address"),
    (["ui", "--host", "192.0.2.1"], {}, "--host 192.0.2.1 is not an address of this machine: use --host 127.0.0.1"),
    # Paths the file system refuses or that would break out of the instance's config: named, never a traceback.
    (["status"], {"CODEREMOTE_STATE_DIR": "{tmp}/{long}"}, "cannot be made (File name too long)"),
    (["approvals"], {"CODEREMOTE_INFRA_DIR": "{tmp}/{long}"}, "cannot be read (File name too long): set "
                                                              "CODEREMOTE_INFRA_DIR"),
    (["status"], {"CODEREMOTE_INFRA_DIR": "{tmp}/no-such-dir"}, "environments.yaml: file not found "
     "(CODEREMOTE_INFRA_DIR chose that directory: set it to the repository's infra/ directory, or unset it)"),
    (["status"], {"CODEREMOTE_INFRA_DIR": "{infra}/environments.yaml"}, "cannot read it (Not a directory) "
     "(CODEREMOTE_INFRA_DIR chose that directory"),
    (["status"], {"DAGSTER_HOME": "relative/home"}, "DAGSTER_HOME='relative/home' is not an absolute path"),
    (["status"], {"CODEREMOTE_STATE_DIR": '{tmp}/st"ate'}, "holds a quote, a backslash or a control character"),
    (["history", "dev"], {"CODEREMOTE_STATE_DIR": "{tmp}/blocked"}, "/history): File exists. Move that away"),
    (["status"], {"DAGSTER_HOME": "{tmp}/fifo_home"}, "dagster.yaml is not a regular file: fix it"),
    (["history", "dev"], {"DAGSTER_HOME": "{tmp}/bad_module"},
     "Couldn't import module dagster._core.storage.runz when attempting to load the configurable class"),
    (["history", "dev"], {"DAGSTER_HOME": "{tmp}/pg_driver"}, "needs the Postgres driver psycopg, which is not "
     "installed: add `scheme: postgresql+psycopg2` under postgres_db"),
    (["deploy", "dev", "main"], {"DAGSTER_HOME": "{tmp}/frees_slots"},
     "frees_slots/dagster.yaml sets run_monitoring.free_slots_after_run_end_seconds, which would free an environment"),
    (["deploy", "dev", "main", "--remote", "ssh://git@host:notaport/x"], {}, "has a port that is not a number"),
    (["deploy", "dev", "main", "--remote", "https://[::1/x"], {}, "is not a valid URL (an unclosed '['"),
    (["promote", "dev", "staging", "--reason", "x"], {}, "--reason goes with --force (the reason"),
    (["approve", "prod", "v1.0.0", "--by", "b" * 129], {}, "argument --by: is 129 characters: give a name of at most"),
    (["reject", "prod", "v1.0.0", "--reason", "r" * 501], {}, "argument --reason: is 501 characters: say it in"),
    (["deploy", "dev", "main", "--reason", "x"], {"USER": "bob\nEVIL"}, "--reason goes with --force or --skip-chec"),
    (["history", "dev", "--days", "1_0"], {}, "argument --days: 1_0 is not a number of days: write it in digits"),
    (["history", "d" * 5000], {}, "unknown environment 'ddd"),  # quoted, shortened: one line of at most ~1 kB
    (["approve", "prod", "v1.0.0+" + "b" * 3000, "--by", "x"], {}, "which is not allowed: tag the release without"),
    # semver's own message would repeat the key raw: a carriage return would rewrite the line on the terminal.
    (["approve", "prod", "v1.0.0\rFAKE", "--by", "x"], {}, "'v1.0.0\\rFAKE' is not semantic versioning"),
]


@pytest.mark.parametrize(("argv", "environ", "message"), CASES, ids=[" ".join(c[0]) or "(none)" for c in CASES])
def test_broken_input_gets_one_line_and_exit_2(env, monkeypatch, capsys, argv, environ, message):
    for name, value in environ.items():
        monkeypatch.setenv(name, value.format(**env))
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main([a.format(**env) for a in argv]))
    out = capsys.readouterr()
    assert exited.value.code == 2, out
    assert "Traceback" not in out.err + out.out
    lines = out.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.err
    assert len(lines[0]) < 1100
    before_progress = ("unknown environment '", "not a valid URL")
    if any(said in message for said in before_progress):  # checked before any progress line
        assert out.out == ""


def test_a_refusal_quotes_neither_a_config_value_nor_a_git_file(env, monkeypatch, capsys):
    """Dagster quotes the value of a mistyped key (a password, here) and git the content of a `.git` file (any host
    file it is pointed at): neither reaches the message."""
    home = env["tmp"] / "pg_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("storage:\n  postgres:\n    postgres_db:\n      username: u\n"
                                       "      password: 98765432\n      hostname: h\n      db_name: d\n")  # fmt: skip
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "the value in storage.postgres.postgres_db.password is not String" in err and "98765432" not in err, err
    monkeypatch.delenv("DAGSTER_HOME")
    (env["tmp"] / "gf").mkdir()
    (env["tmp"] / "gf" / ".git").write_text("gitdir: TOPSECRET-hunter2\n")
    assert main(["deploy", "dev", "main", "--remote", str(env["tmp"] / "gf")]) == 2
    err = capsys.readouterr().err
    assert "is unreachable (not a git repository)" in err and "TOPSECRET" not in err, err


KEYS = {"AWS_ACCESS_KEY_ID": "sekrit-key-id", "AWS_SECRET_ACCESS_KEY": "sekrit-access"}
AWS_CASES = [
    ({}, "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"),
    ({"AWS_PROFILE": "sandbx"}, "AWS profile 'sandbx' is not defined in the AWS config or credentials files"),
    (KEYS, "GEMINI_API_KEY is not set"),
    ({**KEYS, "GEMINI_API_KEY": "sekrit-gemini"}, "Pulumi CLI not found: install it"),
]


@pytest.mark.parametrize(("environ", "message"), AWS_CASES, ids=["no-credentials", "profile", "gemini", "pulumi"])
def test_what_the_aws_target_lacks_is_refused_before_a_run(env, monkeypatch, capsys, environ, message):
    """Met by the first step instead, each would be a failed deploy in the ledger; refused first, it is none."""
    for name in [n for n in os.environ if n.startswith(("AWS_", "PULUMI_"))] + ["GEMINI_API_KEY"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(env["tmp"] / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(env["tmp"] / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to find on this machine
    bin_dir = env["tmp"] / "bin"  # git only: whatever else the host has, the Pulumi CLI is not on this PATH
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("CODEREMOTE_TARGET", "aws")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert main(["deploy", "dev", "main"]) == 2
    out = capsys.readouterr()
    lines = out.err.splitlines()
    assert "Traceback" not in out.err + out.out
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.err
    assert "sekrit" not in out.err + out.out  # the secrets given are not echoed
    with open_instance(env["tmp"] / "state") as instance:
        assert instance.get_runs() == []


def test_a_rollback_or_retry_with_the_local_stack_down_is_refused_before_a_run(env, capsys):
    """After `local down` (or a reboot) nothing can switch: one line, and no failed run in the ledger's figures."""
    with open_instance(env["tmp"] / "state") as instance:
        seed = Seeder(instance)
        seed.deploy("dev", "main-aaaaaaa", "a" * 40)
        seed.deploy("dev", "main-bbbbbbb", "b" * 40)
        failed = seed.deploy("dev", "main-ccccccc", "c" * 40, passed=False)
        seed.flush()
        before = len(instance.get_runs())
    for argv in (["rollback", "dev"], ["retry", failed[:8]], ["promote", "dev", "staging"]):
        assert main(argv) == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and "No local stack is running for state dir" in lines[0], lines
        assert "run `coderemote-pipeline local up`" in lines[0]
    with open_instance(env["tmp"] / "state") as instance:
        assert len(instance.get_runs()) == before


def test_a_damaged_state_database_or_stack_record_is_one_line(env, capsys):
    open_instance(env["tmp"] / "state").dispose()  # the instance exists
    (env["tmp"] / "state" / "local").mkdir(parents=True)
    (env["tmp"] / "state" / "local" / "stack.json").write_text("[]")  # JSON, but not the stack's record
    assert main(["deploy", "dev", "main"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "stack.json is unreadable (a JSON list" in err
    (env["tmp"] / "state" / "local" / "stack.json").write_text('{"stack_id": "x", "moto_pid": 1}')  # half of one
    assert main(["deploy", "dev", "main"]) == 2
    err = capsys.readouterr().err
    assert "stack.json is unreadable (it lacks moto_endpoint, registry_host" in err and "__init__" not in err
    assert "then `coderemote-pipeline local up`" in err
    assert main(["local", "down"]) == 0  # what the message says to run works past the damaged record
    assert not (env["tmp"] / "state" / "local" / "stack.json").exists()
    (runs_db,) = (env["tmp"] / "state").rglob("runs.db")
    runs_db.write_text("not a database\n")
    assert main(["history", "dev"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["error: the state database is damaged (file is not a database): restore the state dir from a "
                     "backup, or move it away to start a new one"]


def test_retry_of_a_run_that_a_later_run_of_its_env_followed_is_refused(env, capsys):
    """Re-executing an older failure would put its release back over what came after, as `retry ENV` refuses."""
    with open_instance(env["tmp"] / "state") as instance:
        seed = Seeder(instance)
        failed = seed.deploy("dev", "main-aaaaaaa", "a" * 40, passed=False)
        seed.deploy("dev", "main-bbbbbbb", "b" * 40)
        seed.flush()
        before = len(instance.get_runs())
    assert main(["retry", failed[:8]]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: run {failed[:8]} (main-aaaaaaa) is not dev's last run: run ")
    assert "(main-bbbbbbb, success) came after it" in lines[0]
    assert lines[0].endswith("To deploy main-aaaaaaa again: coderemote-pipeline deploy dev aaaaaaaaaaaa")
    with open_instance(env["tmp"] / "state") as instance:
        assert len(instance.get_runs()) == before


def test_retry_mark_failed_refuses_a_run_whose_process_still_runs(env, capsys):
    """Marked failed, a working run would lose its lease to the retry: two deploys of dev at once. A run holding the
    lease with a fresh heartbeat, whose process is alive here (this one), is refused in one line; nothing changes."""
    with open_instance(env["tmp"] / "state") as instance:
        run = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED,
                            tags={"coderemote/env": "dev", "coderemote/release": "main-ddddddd"})  # fmt: skip
        instance.add_run(run)
        instance.report_engine_event("executing", run, EngineEventData.in_process(os.getpid()))
        Lease(instance, "dev").acquire(run.run_id, log=print, describe=str)
    assert main(["retry", "dev", "--mark-failed"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and f"run {run.run_id[:8]} may still be running: it holds dev's deploy lease" in lines[0]
    assert "If its process is gone, retry in " in lines[0] and f" (pid {os.getpid()}). " in lines[0]
    with open_instance(env["tmp"] / "state") as instance:
        assert instance.get_run_by_id(run.run_id).status is dg.DagsterRunStatus.STARTED


def test_retry_mark_failed_refuses_a_run_whose_step_outlived_its_process(env, capsys):
    """The process that began the run is gone (a killed CLI), but a step it started still works and heartbeats the
    lease (the process-per-step executor): marked failed, the retry would deploy beside it."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    with open_instance(env["tmp"] / "state") as instance:
        run = dg.DagsterRun(job_name="deploy_job", status=dg.DagsterRunStatus.STARTED,
                            tags={"coderemote/env": "dev", "coderemote/release": "main-ddddddd"})  # fmt: skip
        instance.add_run(run)
        instance.report_engine_event("executing", run, EngineEventData.in_process(dead.pid))
        with Lease(instance, "dev").held(run.run_id, log=print, describe=str):  # the step, beating
            assert main(["retry", "dev", "--mark-failed"]) == 2
    assert f"run {run.run_id[:8]} may still be running" in capsys.readouterr().err
    with open_instance(env["tmp"] / "state") as instance:
        assert instance.get_run_by_id(run.run_id).status is dg.DagsterRunStatus.STARTED


def test_retry_mark_failed_judges_a_cli_run_by_the_process_its_tag_names(env):
    """A CLI run names its process (host, boot, pid namespace: pid), as the sensors read it: gone from here and no
    beat since, it is marked failed at once; a process elsewhere is not judged, and its fresh lease refuses."""
    from coderemote_pipeline.usecases.deploy import DeployRefused
    from coderemote_pipeline.usecases.retry import _to_mark_failed

    dead = subprocess.Popen(["true"])
    dead.wait()
    with open_instance(env["tmp"] / "state") as instance:
        for place, gone in ((process_place(), True), ("elsewhere/boot/4026531836", False)):
            tags = {"coderemote/env": "dev", "coderemote/release": "main-ddddddd",
                    names.EXECUTED_BY_TAG: f"{place}:{dead.pid}"}  # fmt: skip
            run = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED, tags=tags)
            instance.add_run(run)
            Lease(instance, "dev").acquire(run.run_id, log=print, describe=str)
            if gone:
                assert _to_mark_failed(instance, run, mark_failed=True)
            else:
                with pytest.raises(DeployRefused, match=f"run {run.run_id[:8]} may still be running"):
                    _to_mark_failed(instance, run, mark_failed=True)
            Lease(instance, "dev").release(run.run_id)


def test_history_shows_a_killed_cli_deploy_as_gone_not_started(env, capsys):
    """A deploy killed with `kill -9` and no daemon to mark it stayed "started" in history until the next deploy of
    its env: its `executed_by` process is gone from this host, and history says so, with the command that ends it."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    with open_instance(env["tmp"] / "state") as instance:
        tags = {"coderemote/env": "dev", "coderemote/release": "main-eeeeeee", "coderemote/trigger": "cli",
                names.EXECUTED_BY_TAG: f"{process_place()}:{dead.pid}"}  # fmt: skip
        run = dg.DagsterRun(job_name="redeploy_job", status=dg.DagsterRunStatus.STARTED, tags=tags)
        instance.add_run(run)
    assert main(["history", "dev"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if run.run_id[:8] in line]
    assert " gone " in row and f"was executed by process {dead.pid} on this host, which is gone" in row, row
    assert f"`coderemote-pipeline retry {run.run_id[:8]} --mark-failed` re-executes it from there" in row, row


def test_local_status_names_the_fix_of_an_engine_the_stack_did_not_start(env, monkeypatch, capsys):
    """Every part answers but a Docker engine of the user's own: `local up` does not start that one."""
    from coderemote_pipeline.local_stack import LocalStack

    up = {"state": "running", "pid": 1, "endpoint": "-", "answering": True}
    engine = {"state": "stopped", "pid": None, "endpoint": "unix:///run/docker.sock", "answering": False,
              "managed": False}  # fmt: skip
    parts = {"moto": up, "registry": up, "api edge": up, "site edge": up, "docker": engine}
    monkeypatch.setattr(LocalStack, "status", lambda self: parts)
    assert main(["local", "status"]) == 3
    last = capsys.readouterr().out.splitlines()[-1]
    fix = "start the Docker engine at unix:///run/docker.sock (the stack uses it, not started by it)"
    assert last == f"not answering: docker: {fix}", last


def test_the_ui_warns_that_its_sensors_cannot_deploy_while_the_stack_is_down(env, monkeypatch, capsys):
    started: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, argv: started.append(argv))
    # What `ui` sets for the process it becomes stays out of this one.
    monkeypatch.setattr(os, "environ", os.environ.copy())
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["ui", "--port", str(port)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: the local stack is down: the sensors hold every deploy until")
    assert "coderemote-pipeline local up" in err and started and started[0][1:3] == ["dev", "-m"]


def test_a_rollback_to_the_release_already_live_is_no_run(env, capsys):
    """As `deploy` of the live release succeeds changing nothing (exit 0), so does this, without a run: a run would
    be recorded as a rollback that rolled nothing back."""
    with open_instance(env["tmp"] / "state") as instance:
        seed = Seeder(instance)
        seed.deploy("dev", "main-aaaaaaa", "a" * 40)
        seed.deploy("dev", "main-bbbbbbb", "b" * 40)
        seed.flush()
        before = len(instance.get_runs())
    assert main(["rollback", "dev", "--to", "main-bbbbbbb"]) == 0
    out = capsys.readouterr()
    assert out.err == "" and out.out.splitlines()[-1] == "main-bbbbbbb is already live in dev: nothing to roll back to"
    with open_instance(env["tmp"] / "state") as instance:
        assert len(instance.get_runs()) == before


def test_the_run_ids_retry_asks_for_are_in_history(env, capsys):
    with open_instance(env["tmp"] / "state") as instance:
        seed = Seeder(instance)
        failed = seed.deploy("dev", "main-ccccccc", "c" * 40, passed=False)
        seed.flush()
    assert main(["history", "dev"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "main-ccccccc" in line]
    assert len(listed) == 1 and f"  {failed[:8]}  " in listed[0]


def test_version_is_printed_without_a_command(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == "coderemote-pipeline 0.1.0\n"


def test_by_is_who_without_the_spaces_around_it(monkeypatch):
    assert parser().parse_args(["traffic", "dev", "--abort", "--by", "  pat "]).by == "pat"
    assert parser().parse_args(["deploy", "dev", "main", "--by", "\tpat"]).by == "pat"
    name = "Ada Lovelace <ada.lovelace@analytical-engines.example.org>"  # how many teams write who approved
    assert parser().parse_args(["approve", "prod", "v1.0.0", "--by", name]).by == name
    monkeypatch.setenv("USER", " ")  # an account name that names nobody is not recorded as one
    forced = parser().parse_args(["promote", "dev", "staging", "--force", "--reason", "outage"])
    assert forced.by is None and _override(forced).by == "unknown"


def test_the_ui_on_a_port_in_use_says_so(env, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"error: port {port} on 127.0.0.1 is in use: choose another with `ui --port N`"]


def test_a_message_ending_in_a_log_is_cut_between_its_lines():
    """What failed (the first line) and why (the log's last lines) survive; no line is cut in the middle."""
    log = [f"line {i}: " + "x" * 60 for i in range(100)]
    said = _short("\n".join(["emulator (moto): process 42 exited", "--- last lines of moto.log ---", *log]))
    lines = said.splitlines()
    assert lines[0] == "emulator (moto): process 42 exited" and lines[-1] == log[-1], said
    assert re.fullmatch(r"… \(\d+ lines left out\)", lines[1]) and set(lines[2:]) <= set(log), said
    assert len(said) <= 1100


def test_a_first_deploy_without_a_remote_or_the_demo_says_which_to_give(env, monkeypatch, capsys):
    """The default remote is the demo's example app: never made, the fix is a remote or the demo, not the URL."""
    monkeypatch.delenv("CODEREMOTE_APP_REMOTE")
    assert main(["deploy", "dev", "main"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == ("error: no app remote is set, and the demo app it defaults to is not made: "
                                         "give --remote URL or set CODEREMOTE_APP_REMOTE, or run ./scripts/demo.sh "
                                         "for the demo\n")  # fmt: skip


def test_history_with_nothing_to_measure_says_n_a(env, capsys):
    """Zeros would read as measured: an instant lead time, an instant recovery."""
    assert main(["history", "dev"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == ("last 30 days in dev: 0.0 deploys/day, lead time n/a, change fail rate n/a, recovery time n/a "
                    "(no failures), rework rate n/a"), last  # fmt: skip


def test_a_disk_io_error_of_the_state_database_asks_whether_its_disk_is_full():
    """SQLite says "disk I/O error" when a full disk refuses a write to its journal: it was told as a permissions
    problem alone (fault injection, a state dir on a full disk)."""
    import sqlite3

    from coderemote_pipeline.ledger.instance_problems import storage_problem

    assert storage_problem(RuntimeError("not the storage's")) is None
    cause = sqlite3.OperationalError("disk I/O error")
    wrapped = RuntimeError("storage")
    wrapped.__cause__ = cause
    assert storage_problem(wrapped) == (
        "the state database cannot be read or written (disk I/O error): is the state dir's disk full? Free space on "
        "it, or make CODEREMOTE_STATE_DIR a directory this account can read and write"
    )

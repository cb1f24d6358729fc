"""What a user types into variables and options, refused in one line before anything runs: a remote git would read
as an option or that carries a credential, empty values, a lease reclaim time that would break the lease, a state
directory or Dagster instance that cannot be used, half-set AWS credentials, a team Postgres that does not answer;
and a release redeployed with another app layout than it was built with. No local stack: each is refused first."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coderemote_pipeline.actions.git_remote import GitRemote
from coderemote_pipeline.actions.release_notes import release_notes
from coderemote_pipeline.cli.main import main
from coderemote_pipeline.ledger.instance import open_instance
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.app_layout import AppLayout
from coderemote_pipeline.rules.remote_urls import absolute, shown
from coderemote_pipeline.rules.settings import PROJECT_ROOT, Settings
from testkit.ledger_seed import Seeder


@pytest.fixture
def env(cli_env):
    return cli_env


def _one_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    out = capsys.readouterr()
    lines = out.err.splitlines()
    assert "Traceback" not in out.err + out.out and len(lines) == 1 and lines[0].startswith("error: "), out.err
    return lines[0]


def test_a_remote_that_git_would_read_as_an_option_runs_nothing(env, capsys):
    made = env["tmp"] / "made-by-git"
    said = _one_line(capsys, ["deploy", "dev", "main", f"--remote=--upload-pack=touch {made}"])
    assert "--remote '--upload-pack=touch" in said and "is not a git URL or path: it starts with '-'" in said
    assert not made.exists()
    with pytest.raises(ValueError, match="starts with '-'"):
        GitRemote("--upload-pack=touch x", env["tmp"] / "git")


def test_a_relative_remote_path_is_the_user_s_directory_s(tmp_path, monkeypatch):
    """git reads the remote from inside the mirror: `app.git` is made absolute where the user typed it."""
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "app.git")], check=True)
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"CODEREMOTE_STATE_DIR": str(tmp_path / "state"), "CODEREMOTE_APP_REMOTE": "app.git"})
    assert settings.app_remote == str(tmp_path / "app.git")
    GitRemote(settings.app_remote, tmp_path / "git").sync()  # reachable from the mirror's directory
    for kept in ("git@github.com:acme/app.git", "https://github.com/acme/app.git", "/srv/app.git"):
        assert absolute(kept) == kept


def test_a_remote_named_in_emoji_gets_a_mirror_the_file_system_takes(env, tmp_path):
    """A mirror's name is cut to bytes, not characters: 60 emoji would be 240 bytes, near the 255 a name may have."""
    app = tmp_path / ("\U0001f680" * 60 + ".git")  # 244 bytes: a name the file system takes
    subprocess.run(["git", "init", "-q", "--bare", str(app)], check=True)
    remote = GitRemote(str(app), tmp_path / "git")
    assert len(remote.mirror.name.encode()) <= 60 + len("-123456789abc.git")
    assert remote.mirror.name.startswith("\U0001f680" * 15)
    remote.sync()  # the mirror is made under that name
    assert remote.mirror.is_dir()


def test_a_credential_in_the_remote_url_is_refused_and_never_shown(env, capsys, monkeypatch):
    monkeypatch.setenv("CODEREMOTE_APP_REMOTE", "https://deployer:ghp_sekrit123@git.example.invalid/app.git")
    said = _one_line(capsys, ["status"])
    assert "CODEREMOTE_APP_REMOTE 'https://***@git.example.invalid/app.git' holds a credential in the URL" in said
    assert "sekrit" not in said and "credential helper" in said
    assert shown("ssh://git@host/app.git") == "ssh://git@host/app.git"  # a user name over ssh is no secret
    assert shown("ssh://git:pw@host:2222/app.git") == "ssh://git:***@host:2222/app.git"


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["deploy", "dev", "main", "--remote", ""], {}, "--remote is empty: give the app's git remote"),
        (["deploy", "dev", "main", "--app-config", " "], {}, "--app-config is empty: give the app config file's"),
        (["status"], {"CODEREMOTE_STATE_DIR": ""}, "CODEREMOTE_STATE_DIR is set but empty: give it a value, or "
                                                   "unset it (`unset CODEREMOTE_STATE_DIR`) for the default"),
        (["status"], {"CODEREMOTE_APP_CONFIG": ""}, "CODEREMOTE_APP_CONFIG is set but empty"),
        (["status"], {"CODEREMOTE_LEASE_RECLAIM_S": "abc"}, "CODEREMOTE_LEASE_RECLAIM_S='abc' must be a number of "
                                                           "seconds from 3 to 86400"),
        (["status"], {"CODEREMOTE_LEASE_RECLAIM_S": "0"}, "CODEREMOTE_LEASE_RECLAIM_S='0' must be a number"),
        (["status"], {"CODEREMOTE_LEASE_RECLAIM_S": "nan"}, "CODEREMOTE_LEASE_RECLAIM_S='nan' must be a number"),
        (["status"], {"CODEREMOTE_LEASE_RECLAIM_S": "1e9"}, "CODEREMOTE_LEASE_RECLAIM_S='1e9' must be a number"),
        (["status"], {"CODEREMOTE_LEASE_RECLAIM_S": "3_0"}, "CODEREMOTE_LEASE_RECLAIM_S='3_0' must be a number"),
        (["status"], {"CODEREMOTE_LEASE_RECLAIM_S": "٣٠"}, "CODEREMOTE_LEASE_RECLAIM_S='٣٠' must be a number"),
        (["status"], {"CODEREMOTE_SENSOR_INTERVAL_S": "٣٠"}, "CODEREMOTE_SENSOR_INTERVAL_S='٣٠' must be a whole "
                                                             "number of seconds from 1 to 86400"),
        (["status"], {"CODEREMOTE_SENSOR_INTERVAL_S": "99999999999999999999"}, "from 1 to 86400"),
        (["status"], {"CODEREMOTE_STATE_DIR": "{tmp}/a-file"}, "CODEREMOTE_STATE_DIR='{tmp}/a-file' is a file, not "
                                                              "a directory: set CODEREMOTE_STATE_DIR to a directory"),
        (["history", "dev"], {"DAGSTER_HOME": "{tmp}/a-file"}, "the Dagster instance directory '{tmp}/a-file' "
                                                               "cannot be used (File exists): set DAGSTER_HOME"),
        (["history", "dev"], {"DAGSTER_HOME": "{tmp}/home"}, "{tmp}/home/dagster.yaml is not a valid Dagster "
         "instance config (unknown key 'run_launcherr' at the root; did you mean 'run_launcher'?): fix it, or move it"),
    ],
    ids=["remote", "app-config", "state-dir", "app-config-var", "reclaim-word", "reclaim-0", "reclaim-nan",
         "reclaim-huge", "reclaim-underscore", "reclaim-arabic", "interval-arabic", "interval-huge", "state-dir-file",
         "home-file", "home-config"],
)  # fmt: skip
def test_an_empty_or_unusable_setting_is_one_line(env, capsys, monkeypatch, argv, environ, message):
    (env["tmp"] / "a-file").write_text("not a directory\n")
    (env["tmp"] / "home").mkdir()
    (env["tmp"] / "home" / "dagster.yaml").write_text("run_launcherr:\n  module: x\n")
    for name, value in environ.items():
        monkeypatch.setenv(name, value.format(**env))
    assert message.format(**env) in _one_line(capsys, argv)


def test_a_team_instance_without_its_database_variables_names_the_variable(env, capsys, monkeypatch):
    (env["tmp"] / "team").mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", env["tmp"] / "team" / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(env["tmp"] / "team"))
    for name in [n for n in os.environ if n.startswith("DAGSTER_PG_")]:
        monkeypatch.delenv(name)
    said = _one_line(capsys, ["history", "dev"])
    assert said.endswith("dagster.yaml reads DAGSTER_PG_USERNAME from the environment, which is not set or not valid: "
                         "set DAGSTER_PG_USERNAME (deploy/README.md)")  # not "move it away": a team's config is kept


def test_a_team_postgres_that_does_not_answer_is_one_line_naming_why(env, tmp_path):
    """Dagster retries the connection for about 13 s and warns on the root logger at each try (multi-line, several
    per storage): the command says one line at the end, with the refusal under Dagster's "too many retries"."""
    team = tmp_path / "team"
    team.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", team / "dagster.yaml")
    pg = {"DAGSTER_PG_USERNAME": "u", "DAGSTER_PG_PASSWORD": "s3cr3t-pw", "DAGSTER_PG_HOST": "127.0.0.1",
          "DAGSTER_PG_PORT": "1", "DAGSTER_PG_DB": "releases"}  # fmt: skip
    done = subprocess.run([str(Path(sys.executable).parent / "coderemote-pipeline"), "history", "dev"],
                          env={**os.environ, "DAGSTER_HOME": str(team), **pg}, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [
        "error: the instance's Postgres does not answer (connection to server at \"127.0.0.1\", port 1 failed: "
        "Connection refused): check DAGSTER_PG_* and that the database is up"
    ]


def test_a_lease_reclaim_time_in_range_is_taken(env, monkeypatch):
    monkeypatch.setenv("CODEREMOTE_LEASE_RECLAIM_S", "4.5")
    from coderemote_pipeline.ledger.leases import reclaim_after_s

    Settings.from_env()
    assert reclaim_after_s() == 4.5


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"AWS_ACCESS_KEY_ID": "AKIAsekrit"}, "AWS credentials from the environment lack AWS_SECRET_ACCESS_KEY: set "
                                              "both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither"),
        ({"AWS_CONFIG_FILE": "{tmp}/bad.ini"}, "the AWS config or credentials file '{tmp}/bad.ini' is not valid INI"),
    ],
    ids=["half-set", "bad-ini"],
)
def test_half_set_or_unreadable_aws_credentials_are_one_line(env, capsys, monkeypatch, environ, message):
    for name in [n for n in os.environ if n.startswith(("AWS_", "PULUMI_"))] + ["GEMINI_API_KEY"]:
        monkeypatch.delenv(name, raising=False)
    (env["tmp"] / "bad.ini").write_text("[default\naws_access_key_id = AKIAsekrit\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(env["tmp"] / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(env["tmp"] / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("CODEREMOTE_TARGET", "aws")
    for name, value in environ.items():
        monkeypatch.setenv(name, value.format(**env))
    said = _one_line(capsys, ["deploy", "dev", "main"])
    assert message.format(**env) in said and "sekrit" not in said


def test_a_live_release_redeployed_with_another_layout_is_refused(env, capsys, monkeypatch):
    """Its image and bundle are reused as recorded: a run with another layout would record one nothing was built
    with, and a later promotion would meet it (a build that produces no `nosuch/`)."""
    commit = env["repo"].git("rev-parse", "HEAD")
    release = f"main-{commit[:7]}"
    with open_instance(env["tmp"] / "state") as instance:
        seed = Seeder(instance)
        seed.deploy("dev", release, commit)
        seed.flush()
        run = instance.get_runs(limit=1)[0]
        instance.add_run_tags(run.run_id, {names.APP_LAYOUT_TAG: AppLayout().to_json()})
    config = env["tmp"] / "app.yaml"
    config.write_text("frontend_output_dir: nosuch\n")
    said = _one_line(capsys, ["deploy", "dev", "main", "--app-config", str(config)])
    assert (f"dev|{release} was built and deployed with another app layout (frontend_output_dir 'dist' → 'nosuch'): "
            "a release is built once. Commit the change to the app for a new release") in said  # fmt: skip
    config.write_text(json.dumps({"checks": []}))  # its checks may change: they run again per check
    assert "No local stack is running" in _one_line(capsys, ["deploy", "dev", "main", "--app-config", str(config)])
    with open_instance(env["tmp"] / "state") as instance:
        assert len(instance.get_runs()) == 1


def test_release_notes_that_cannot_be_read_say_so(env, tmp_path):
    remote = GitRemote(str(tmp_path / "gone.git"), tmp_path / "git")
    notes = release_notes(remote, AppLayout(), None, "", "a" * 40)
    assert notes.lines()[0].startswith("release notes unavailable: app git remote")
    assert "commit(s)" not in "\n".join(notes.lines()) and "unavailable" in notes.markdown()


def test_release_notes_of_a_first_release_do_not_say_no_files_changed(tmp_path):
    """Nothing deployed yet: every file is new to the env, and the notes said "files changed: none"."""
    repo = tmp_path / "app"
    repo.mkdir()
    for argv in (["init", "-q", "-b", "main"], ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q",
                                                "--allow-empty", "-m", "first"]):  # fmt: skip
        subprocess.run(["git", *argv], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True)
    notes = release_notes(GitRemote(str(repo), tmp_path / "git"), AppLayout(), None, "", head.stdout.strip())
    assert notes.lines()[0] == "1 commit(s) since nothing deployed"
    assert notes.lines()[-1] == "  files changed: all of the app's (nothing deployed to compare with)"
    assert "**files changed**: all of the app's" in notes.markdown()


def test_release_notes_of_a_tag_behind_what_the_env_serves_list_what_it_takes_out(tmp_path):
    """A stable tag on an ancestor of what prod serves: the notes said "0 commit(s) since v2.1.5", and approving it
    took commit G out of prod without a word."""
    repo = tmp_path / "app"
    repo.mkdir()
    git = ["-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    shas = []
    for subject in ("F", "G"):
        subprocess.run(["git", *git, "commit", "-q", "--allow-empty", "-m", subject], cwd=repo, check=True)
        shas.append(subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True,
                                   text=True).stdout.strip())  # fmt: skip
    notes = release_notes(GitRemote(str(repo), tmp_path / "git"), AppLayout(), shas[1], "v2.1.5", shas[0])
    assert notes.lines()[:3] == ["0 commit(s) since v2.1.5",
                                 "  WARNING: takes 1 commit(s) of v2.1.5 back out: a step back, not forward:",
                                 f"  - {shas[1][:12]} G (t)"]  # fmt: skip
    assert f"~~`{shas[1][:12]}` G~~" in notes.markdown()

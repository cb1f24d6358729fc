"""Where the Dagster instance lives: DAGSTER_HOME as Dagster reads it, and what we refuse to write there."""

from __future__ import annotations

import errno

import dagster as dg
import pytest

from coderemote_pipeline.ledger.instance import InstanceUnusable, dagster_home, open_instance


def test_a_home_under_tilde_is_the_one_dagster_opens(tmp_path, monkeypatch):
    """Dagster expands `~` in DAGSTER_HOME: refusing it, or writing under a literal `~` directory, would split the
    CLI's instance from the daemon's."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", "~/instance")
    assert dagster_home(tmp_path / "state") == tmp_path / "instance"
    assert (tmp_path / "instance" / "dagster.yaml").is_file()
    open_instance(tmp_path / "state").dispose()


def test_a_home_whose_real_path_has_a_quote_is_refused_before_a_config_is_written(tmp_path, monkeypatch):
    """Our config names the storage by the resolved path, in a YAML string: a link to a quoted directory would
    write a config that breaks out of it."""
    (tmp_path / 'q"uoted').mkdir()
    (tmp_path / "plain").symlink_to(tmp_path / 'q"uoted')
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "plain"))
    with pytest.raises(InstanceUnusable, match="holds a quote, a backslash or a control character"):
        dagster_home(tmp_path / "state")
    assert not (tmp_path / 'q"uoted' / "dagster.yaml").exists()


def test_a_team_config_in_an_oddly_named_home_is_left_alone(tmp_path, monkeypatch):
    """We never rewrite a config someone else wrote, so its directory's name is none of our business."""
    home = tmp_path / "team\\home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n# kept by the team\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert dagster_home(tmp_path / "state") == home
    assert (home / "dagster.yaml").read_text().endswith("# kept by the team\n")


@pytest.mark.parametrize(
    ("error", "turned"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), False),  # a team database down
        (OSError(errno.ENOENT, "No such file or directory", "/usr/lib/python3/missing.py"), False),  # a bug
        (OSError(errno.ENOENT, "No such file or directory", "{home}/history/runs.db"), True),
        (PermissionError(errno.EACCES, "Permission denied", "/elsewhere/storage"), True),
    ],
)
def test_only_the_instance_s_own_file_errors_become_a_one_line_fix(tmp_path, monkeypatch, error, turned):
    """A refused connection or a bug is not fixed by moving the home: its own text and traceback say more."""
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    if isinstance(error.filename, str):
        error.filename = error.filename.format(home=home)

    def fails(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(dg.DagsterInstance, "from_config", fails)
    with pytest.raises(InstanceUnusable if turned else type(error)) as raised:
        open_instance(tmp_path / "state")
    if turned:
        assert "None" not in str(raised.value) and str(error.filename) in str(raised.value)


def test_a_storage_directory_the_team_config_names_elsewhere_is_the_instance_s_own(tmp_path, monkeypatch):
    """A base_dir outside the home that cannot be made is the config's to fix: one line, naming it."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere" / "storage"
    home.mkdir()
    (home / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {elsewhere}\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    def fails(*_args, **_kwargs):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(elsewhere / "history" / "runs.db"))

    monkeypatch.setattr(dg.DagsterInstance, "from_config", fails)
    with pytest.raises(InstanceUnusable, match=r"storage cannot be opened .*elsewhere/storage/history/runs\.db"):
        open_instance(tmp_path / "state")


@pytest.mark.parametrize(
    ("written", "said", "never"),
    [
        ("root:x:0:0:SECRETNAME:/root:/bin/bash\n", ": expected a mapping of keys at the top level: fix it", "SECRET"),
        ("- a list\n", ": expected a mapping of keys at the top level: fix it", "a list"),
        ("alice:$6$salt$SECRETHASH:20228:0:99999:7::\n", "(an unknown key at the root that is not a key name (is this "
         "the right file?))", "SECRET"),
        ("telemtry:\n  enabled: false\n", "(unknown key 'telemtry' at the root; did you mean 'telemetry'?)", None),
        ("telemetry:\n  enabld: false\n", "(unknown key 'enabld' in telemetry; did you mean 'enabled'?)", None),
        ("run_storage:\n  module: x\n", "(missing key 'class' in run_storage)", None),
        ("run_monitoring:\n  enabled: true\n  poll_interval_seconds: SECRETVALUE\n",
         "(the value in run_monitoring.poll_interval_seconds is not Int)", "SECRET"),
        ("telemetry:\n  enabled: 'SECRET\n", "(not valid YAML at line 3, column 1: while scanning a quoted scalar, "
         "found unexpected end of stream)", "SECRET"),
        ("storage:\n  sqlite:\n    base_dir: {env: X, 'db pass hunter2 yes': 1}\n",
         "(give exactly one key in storage.sqlite.base_dir (one of env))", "hunter2"),
        ("run_storage:\n  module: dagster._core.storage.runs\n  class: SqliteRunStorage\n  config:\n"
         "    base_dir: {env: 'pa$$w0rd-Hunter2'}\n", "(the environment variable named in base_dir is not set or not "
         "valid: set it, or name another)", "Hunter2"),
        ("storage:\n  sqlite: {}\n  postgres: {}\n", "(storage: give exactly one kind (one of postgres, mysql, "
         "sqlite, custom))", None),
        ("concurrency:\n  pools:\n    granularity: hunter2\n", "(Found a value for 'granularity', Expected value 'run' "
         "or 'op')", "hunter2"),
    ],
    ids=["passwd-line", "list", "shadow-line", "typo", "nested-typo", "missing", "type", "yaml", "selector",
         "env-value", "storage-kinds", "before-schema"],
)  # fmt: skip
def test_a_dagster_yaml_dagster_refuses_is_one_line_without_its_text(tmp_path, monkeypatch, written, said, never):
    """Dagster quotes the file (a key it does not know verbatim, a value, a whole file that is no mapping): a
    DAGSTER_HOME pointed at the wrong place printed a host file's lines."""
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text(written)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with pytest.raises(InstanceUnusable) as refused:
        open_instance(tmp_path / "state")
    message = str(refused.value)
    assert said in message and "\n" not in message and "Traceback" not in message
    assert never is None or never not in message

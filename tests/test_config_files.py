"""Reading a configuration file: only a small regular UTF-8 file is read, each key is written once, the top level is
a mapping, and no message quotes what the file holds (a secret, or a line of the host file named by mistake)."""

import os
import shutil
import threading
from pathlib import Path

import pytest

from coderemote_pipeline.rules.app_layout import AppLayout, load_app_layout
from coderemote_pipeline.rules.environments import DEFAULT_INFRA_DIR, PolicyError, load_policies
from coderemote_pipeline.rules.schema import ConfigError, plain, said

SHADOW_LIKE = "root:*:20228:0:99999:7:::\ndaemon:*:20228:0:99999:7:::\n"
LEAK = "AIzaSyLEAKEDa1b2c3d4e5f6g7h8i9j0k1l2m3n"


def _app_error(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_app_layout(path)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"app config {path}")
    return text


@pytest.fixture
def infra(tmp_path: Path) -> Path:
    shutil.copytree(DEFAULT_INFRA_DIR, tmp_path / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "infra"


def _policy_error(infra: Path, name: str, content: bytes) -> str:
    path = infra / name
    path.write_bytes(content)
    with pytest.raises(PolicyError) as err:
        load_policies(infra)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{path}")
    return text


@pytest.mark.parametrize("name", ["environments.yaml", "pulumi/Pulumi.dev.yaml"])
def test_a_binary_policy_file_is_not_text(infra, name):
    assert _policy_error(infra, name, b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe").endswith(": not a UTF-8 text file")


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", b"backend_context: \xff\xfe\n", b"a\x00b"])
def test_a_binary_app_config_is_not_text(tmp_path, content):
    path = tmp_path / "app.yaml"
    path.write_bytes(content)
    assert _app_error(path) == f"app config {path}: not a UTF-8 text file"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "app.yaml"
    os.mkfifo(fifo)
    outcome: list[str] = []
    reader = threading.Thread(target=lambda: outcome.append(_app_error(fifo)), daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # the old behaviour: blocked in open(); a writer lets it go before the test fails
        with open(fifo, "w"):
            pass
        reader.join(10)
    assert outcome == [f"app config {fifo} is not a regular file"]


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/null", "."])
def test_what_is_not_a_regular_file_is_refused_before_reading(tmp_path, special):
    path = Path(special) if special.startswith("/") else tmp_path
    assert _app_error(path) == f"app config {path} is not a regular file"


def test_a_file_of_megabytes_is_not_a_configuration_file(tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text("# padding\n" * 200_000)
    assert _app_error(path) == f"app config {path} is 2.0 MB: not a configuration file (the limit is 1 MB)"


@pytest.mark.parametrize(
    ("content", "kind"), [("[]\n", "a list"), ("0\n", "a number"), ("false\n", "true/false"), ('""\n', "text")]
)
def test_only_an_empty_file_means_every_default(tmp_path, infra, content, kind):
    path = tmp_path / "app.yaml"
    path.write_text(content)
    assert _app_error(path).endswith(f": expected a mapping of keys at the top level, got {kind}")
    text = _policy_error(infra, "environments.yaml", content.encode())
    assert text.endswith(f"expected a mapping of keys at the top level, got {kind}") and "is required" not in text
    for empty in ("", "# nothing set yet\n"):
        path.write_text(empty)
        assert load_app_layout(path) == AppLayout()


def test_a_key_written_twice_is_refused_with_both_lines(tmp_path, infra):
    path = tmp_path / "app.yaml"
    path.write_text("backend_context: api\ndockerfile: Dockerfile\n\nbackend_context: services/api\n")
    assert _app_error(path).endswith(": key 'backend_context' appears twice (lines 1 and 4): keep one")
    table = (DEFAULT_INFRA_DIR / "environments.yaml").read_text()
    twice = table.replace("    approval: required\n", "    approval: required\n    approval: none\n")
    assert "key 'approval' appears twice" in _policy_error(infra, "environments.yaml", twice.encode())


def test_a_host_file_named_as_the_config_is_never_quoted(tmp_path):
    path = tmp_path / "shadow"
    path.write_text(SHADOW_LIKE)
    text = _app_error(path).removeprefix(f"app config {path}")
    assert "root" not in text and "20228" not in text
    assert ": unknown key on line 1 that is not a key name (is this the right file?); allowed keys: " in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (f"GEMINI_API_KEY: *{LEAK}\n", "not valid YAML at line 1, column 17: found undefined alias"),
        (f"backend_context: '{LEAK}\n", "not valid YAML at line 2, column 1: while scanning a quoted scalar, found "
                                        "unexpected end of stream"),
        (f"backend_context: !{LEAK} x\n", "not valid YAML at line 1, column 18: could not determine a constructor "
                                          "for the tag"),
        (f"backend_context: x\n\x01{LEAK}\n", "not valid YAML at line 2: a control character, not text"),
        (f"{LEAK}:\n  x: 1\n {LEAK}\n", "not valid YAML at line 3, column 2"),
    ],
)  # fmt: skip
def test_a_yaml_error_says_where_without_the_files_text(tmp_path, content, message):
    path = tmp_path / "app.yaml"
    path.write_text(content)
    text = _app_error(path)
    assert message in text and "LEAKED" not in text


@pytest.mark.parametrize(
    ("value", "shown"),
    [("nightly", "'nightly'"), ("30 seconds", "'30 seconds'"), ("Canary10Percent5Minuts", "'Canary10Percent5Minuts'"),
     (0, "0"), (True, "true"), (None, "null"), ("AKIAIOSFODNN7EXAMPLE", None), (LEAK, None),
     ("ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8", None), ("https://hooks.slack.com/services/T0/B0/X", None),
     ("ftp://x", None), ("root:*:20228:0:99999:7::", None), (12345678901234567890, None), (["a"], None),
     ({"a": 1}, None)],
)  # fmt: skip
def test_only_a_short_plain_word_is_quoted(value, shown):
    assert plain(value) is (shown is not None)
    assert said(value, "the value") == (shown or "the value")

import shutil
from pathlib import Path

import pytest

from coderemote_pipeline.rules.approvers import ApprovalRule, Creator
from coderemote_pipeline.rules.environments import (
    DEFAULT_INFRA_DIR,
    Approval,
    PolicyError,
    Trigger,
    load_policies,
)
from coderemote_pipeline.rules.release_keys import parse_release_key


def test_strategy_tables_load():
    policies = load_policies()
    dev, staging, prod = policies["dev"], policies["staging"], policies["prod"]
    assert (dev.trigger, dev.approval) == (Trigger.MAIN_PUSH, Approval.NONE)
    assert (staging.trigger, staging.approval) == (Trigger.MANUAL, Approval.OPTIONAL)
    assert (prod.trigger, prod.approval_required) == (Trigger.STABLE_TAG, True)
    assert prod.stack.vpc_cidr == "10.2.0.0/16" and prod.stack.az_count == 3
    assert dev.stack.vpc_cidr is None and dev.stack.az_count is None
    for policy in policies.values():
        assert policy.stack.region == "us-east-1"
        assert policy.stack.gemini_model == "gemini-2.5-flash"


@pytest.mark.parametrize(
    ("release", "refused"),
    [("v1.2.3", None), ("v2.0.0-beta.1", "pre-release"), ("main-3f9c2ab", "a commit")],
)
def test_prod_accepts_only_stable_tags(release, refused):
    reason = load_policies()["prod"].refusal(parse_release_key(release))
    if refused is None:
        assert reason is None
    else:
        assert refused in reason and "git tag v1.2.3" in reason


def test_dev_accepts_commits_and_prereleases():
    dev = load_policies()["dev"]
    assert dev.refusal(parse_release_key("main-3f9c2ab")) is None
    assert dev.refusal(parse_release_key("v2.0.0-beta.1")) is None


@pytest.fixture
def infra_copy(tmp_path: Path) -> Path:
    shutil.copytree(DEFAULT_INFRA_DIR, tmp_path / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "infra"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("environments.yaml", "trigger: stable_tag", "trigger: nightly", "environments.prod.trigger: 'nightly'"),
        ("environments.yaml", "approval: required", "approval: maybe", "environments.prod.approval"),
        ("environments.yaml", "auto_rollback: true", "auto_rollback: sometimes", "auto_rollback"),
        ("environments.yaml", "  staging:", "  qa:", "unknown key 'qa' in environments; allowed: dev, staging, prod"),
        ("environments.yaml", "approval_expires: 72h", "approval_expires: 72", "needs a unit: ms, s, m, h or d"),
        ("environments.yaml", "approval_expires: 72h", "approval_expires: 1000h", "between 1m and 30d"),
        ("environments.yaml", "approval_expires: 72h", "approval_expires: ٧٢h", "needs a unit"),  # ASCII digits only
        ("environments.yaml", "approval_expires: 72h", "approval_expires: -5h", "'-5h' is negative: give a length"),
        # Left blank, a key would quietly take its default: no promotion gate, approvals that never expire.
        ("environments.yaml", "verified_in: dev", "verified_in:", "prod.verified_in (line "),
        ("environments.yaml", "approval_expires: 72h", "approval_expires: ~", "approval_expires (line "),
        ("environments.yaml", "  dev:\n", "  dev:\n    approvals_required: 2\n",
         "approvals_required only count with approval: required or optional; set approval, or remove it"),
        ("environments.yaml", "approval_expires: 72h", "approval_expires: 72h\n    approvers: {alice: a@example.com, "
         "bob: A@example.com}", "approvers alice and bob share one email: each needs their own"),
        ("environments.yaml", "  dev:\n", "  dev:\n    verified_in: prod\n",
         "verified_in goes round in a circle (dev → prod → dev): no environment on it could ever take a release"),
        ("pulumi/Pulumi.prod.yaml", "10.2.0.0/16", "10.2.0.0/99", "code-remote:vpc_cidr"),
        ("pulumi/Pulumi.prod.yaml", 'az_count: "3"', "az_count: three", "code-remote:az_count"),
        ("pulumi/Pulumi.prod.yaml", "10.2.0.0/16", "10.0.0.1/32", "must be an IPv4 block from /16 to /24"),
        ("pulumi/Pulumi.prod.yaml", "10.2.0.0/16", "::/0", "must be an IPv4 block from /16 to /24"),
        ("pulumi/Pulumi.dev.yaml", "aws:region: us-east-1", "aws:region: mars-north-9x", "is not an AWS region name"),
        ("pulumi/Pulumi.dev.yaml", "aws:region: us-east-1", "aws:region: \"us-east-1; rm -rf /\"",
         "is not an AWS region name"),
        ("pulumi/Pulumi.prod.yaml", 'az_count: "3"', "az_count: 9", "between 1 and 6"),
        ("pulumi/Pulumi.dev.yaml", "aws:region: us-east-1", "aws:zone: us-east-1", "unknown key 'aws:zone' in config"),
        ("pulumi/Pulumi.dev.yaml", "gemini_model", "gemini_mdl", "did you mean 'code-remote:gemini_model'?"),
        ("pulumi/Pulumi.dev.yaml", "aws:region: us-east-1", "aws:region: us-east-1\n  aws:profile: work",
         "config.aws:profile: AWS credentials come from the environment, for the pipeline and the Pulumi program "
         "alike: remove it and set AWS_PROFILE where the pipeline runs"),
        ("pulumi/Pulumi.dev.yaml", "aws:region: us-east-1", "aws:region: us-east-1\n  aws:profle: work",
         "config.aws:profle (aws:profile?): AWS credentials come from the environment"),
        ("pulumi/Pulumi.dev.yaml", "aws:region: us-east-1", "aws:region: us-east-1\n  aws:assumeRole: {roleArn: x}",
         "assume the role in a profile (role_arn in ~/.aws/config) and set AWS_PROFILE"),
        ("pulumi/Pulumi.dev.yaml", "  aws:region: us-east-1\n", "", "config.aws:region is required"),
    ],
)
def test_bad_policy_names_file_and_key(infra_copy, file, old, new, message):
    _edit(infra_copy / file, old, new)
    with pytest.raises(PolicyError) as err:
        load_policies(infra_copy)
    assert str(infra_copy / file) in str(err.value)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("environments.yaml", "    approval: required", "    aproval: required",
         "unknown key 'aproval' in environments.prod; did you mean 'approval'?"),
        ("environments.yaml", "    auto_rollback: true", "    auto_rollbak: true", "did you mean 'auto_rollback'?"),
        ("environments.yaml", "    verified_in: dev", "    verifed_in: dev", "did you mean 'verified_in'?"),
        ("environments.yaml", "    approval_expires: 72h", "    approval_expire: 72h",
         "did you mean 'approval_expires'?"),
        ("environments.yaml", "environments:", "enviroments:",
         "unknown key 'enviroments'; did you mean 'environments'?"),
        ("environments.yaml", "trigger: stable_tag", "trigger: stable_tags", "did you mean 'stable_tag'?"),
        ("pulumi/Pulumi.prod.yaml", "code-remote:az_count", "code-remote:az_cout",
         "unknown key 'code-remote:az_cout' in config; did you mean 'code-remote:az_count'?"),
        ("pulumi/Pulumi.prod.yaml", "config:", "conifg:", "unknown key 'conifg'; did you mean 'config'?"),
    ],
)  # fmt: skip
def test_a_typo_is_refused_with_the_nearest_key_and_never_weakens_prod(infra_copy, file, old, new, message):
    _edit(infra_copy / file, old, new)
    with pytest.raises(PolicyError) as err:
        load_policies(infra_copy)
    text = str(err.value)
    assert text.startswith(f"{infra_copy / file}: ") and message in text and "\n" not in text
    # Nothing falls back to a weaker default: with the file mended, prod requires approval again.
    _edit(infra_copy / file, new, old)
    assert load_policies(infra_copy)["prod"].approval_required


def test_vpc_cidr_without_az_count_is_refused(infra_copy):
    path = infra_copy / "pulumi" / "Pulumi.prod.yaml"
    lines = [line for line in path.read_text().splitlines() if "az_count" not in line]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PolicyError, match="set both"):
        load_policies(infra_copy)


def test_missing_stack_file_is_named(infra_copy):
    (infra_copy / "pulumi" / "Pulumi.staging.yaml").unlink()
    with pytest.raises(PolicyError, match=r"Pulumi\.staging\.yaml: file not found"):
        load_policies(infra_copy)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("strategy: Canary10Percent5Minutes", "strategy: Canary10Percent5Minuts",
         "environments.prod.delivery: strategy 'Canary10Percent5Minuts' is neither"),
        ("strategy: Canary10Percent5Minutes", "strategy: canary\n      percent: 0\n      interval: 5m",
         "environments.prod.delivery.percent must be at least 1, got 0"),
        ("strategy: Canary10Percent5Minutes", "strategy: linear\n      percent: 100\n      interval: 1m",
         "environments.prod.delivery.percent must be at most 99, got 100"),
        ("bake: 15m", "bake: 15", "environments.prod.delivery.bake: '15' needs a unit: ms, s, m, h or d"),
        ("every: 30s", "every: 30 seconds", "environments.prod.delivery.analysis.every: '30 seconds' needs a unit"),
        ("strategy: Canary10Percent5Minutes", "strategy: canary", "strategy canary needs percent (1-99) and interval"),
        ("max_error_rate: 0.01", "max_eror_rate: 0.01", "did you mean 'max_error_rate'?"),
    ],
)  # fmt: skip
def test_a_bad_delivery_strategy_names_the_file_and_the_key(infra_copy, old, new, message):
    _edit(infra_copy / "environments.yaml", old, new)
    with pytest.raises(PolicyError) as err:
        load_policies(infra_copy)
    text = str(err.value)
    assert text.startswith(f"{infra_copy / 'environments.yaml'}: ") and message in text and "\n" not in text, text


def test_codedeploy_presets_and_explicit_steps_make_the_same_plans(infra_copy):
    prod = load_policies(infra_copy)["prod"].rollout
    assert prod.strategy == "canary" and [(s.weight, s.hold_s) for s in prod.steps] == [(10, 300.0)]
    assert prod.bake_s == 900.0 and prod.analysis.min_requests == 20
    _edit(infra_copy / "environments.yaml", "strategy: Canary10Percent5Minutes",
          "strategy: CodeDeployDefault.LambdaLinear10PercentEvery1Minute")  # fmt: skip
    linear = load_policies(infra_copy)["prod"].rollout
    assert [s.weight for s in linear.steps] == [10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert {s.hold_s for s in linear.steps} == {60.0} and linear.describe().startswith("linear 10% every 60 s")
    assert load_policies(infra_copy)["dev"].rollout.describe() == "all at once"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("    approvals_required: 1", "    approvals_required: 1\n    require_signed_tags: true",
         "require_signed_tags needs allowed_signers"),
        ("    approvals_required: 1", "    approvals_required: 3\n    approvers: {alice: a@example.com}",
         "approvals_required is 3 but only 1 approver(s) are listed"),
        ("    approvals_required: 1", "    require_signed_tags: true\n    allowed_signers: ../../etc/passwd",
         "environments.prod.allowed_signers: '../../etc/passwd' leaves infra/"),
        ("    approvals_required: 1", "    aprovers: {alice: a@example.com}", "did you mean 'approvers'?"),
        ("    approvals_required: 1", "    allowed_signers: allowed_signers",
         "environments.prod: allowed_signers is only read with require_signed_tags: true; set it, or remove "
         "allowed_signers"),
        ("    approvals_required: 1", "    approvers: {alice: not-an-email}",
         "environments.prod.approvers.alice must be an email address (name@domain)"),
        ("    approvals_required: 1", "    approvers: {'': a@example.com}",
         "environments.prod.approvers: an approver's name must be an account name, without spaces"),
        ("    approvals_required: 1", "    approvers: {1: a@example.com}",
         "environments.prod.approvers: keys must be names, got 1"),
    ],
)  # fmt: skip
def test_who_may_ship_is_validated_on_load(infra_copy, old, new, message):
    _edit(infra_copy / "environments.yaml", old, new)
    with pytest.raises(PolicyError) as err:
        load_policies(infra_copy)
    assert str(err.value).startswith(f"{infra_copy / 'environments.yaml'}: ") and message in str(err.value)
    assert "root:" not in str(err.value)  # no host file's content in a message


SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
GOOGLE_KEY = "AIzaSyA1bC2dE3fG4hI5jK6lM7nO8pQ9rS0tU1v"
PROD_ENTRY = "    approvals_required: 1"
DEV_REGION = "  aws:region: us-east-1\n"
# The line of prod's staging entry in the shipped file, which the message names (comments above it move it).
STAGING_LINE = (DEFAULT_INFRA_DIR / "environments.yaml").read_text().splitlines().index("  staging:") + 1


@pytest.mark.parametrize(
    ("file", "old", "new", "message", "secret"),
    [
        ("environments.yaml", PROD_ENTRY, f"{PROD_ENTRY}\n    notify: [{{webhook: {{url_env: {SLACK_URL}}}}}]",
         "environments.prod.notify[0].webhook.url_env must name an environment variable (e.g. SLACK_WEBHOOK_URL) "
         "that holds the URL, not the URL itself", "XXXXSECRET"),
        ("environments.yaml", PROD_ENTRY,
         f"{PROD_ENTRY}\n    notify: [{{github: {{repository: acme/app, token_env: {GITHUB_TOKEN}}}}}]",
         "environments.prod.notify[0].github.token_env must name an environment variable (e.g. GITHUB_TOKEN) that "
         "holds the token, not the token itself", GITHUB_TOKEN),
        ("environments.yaml", PROD_ENTRY, f"{PROD_ENTRY}\n    approvers: {{alice: [{AWS_KEY_ID}]}}",
         "environments.prod.approvers.alice must be text, got a list", AWS_KEY_ID),
        ("environments.yaml", PROD_ENTRY, f"{PROD_ENTRY}\n    approvers: {{alice: {AWS_KEY_ID}}}",
         "environments.prod.approvers.alice must be an email address (name@domain)", AWS_KEY_ID),
        ("environments.yaml", "auto_rollback: true", f"auto_rollback: {GOOGLE_KEY}",
         "environments.prod.auto_rollback must be true or false, got text", GOOGLE_KEY),
        ("environments.yaml", "trigger: stable_tag", f"trigger: {GOOGLE_KEY}",
         "environments.prod.trigger must be one of main_push, manual, stable_tag, got text", GOOGLE_KEY),
        ("environments.yaml", "  staging:", f"  {GOOGLE_KEY}:",
         f"unknown key in environments on line {STAGING_LINE} that is not a key name (is this the right file?); "
         "allowed: dev, staging, prod", GOOGLE_KEY),
        ("environments.yaml", "strategy: Canary10Percent5Minutes", f"strategy: {GOOGLE_KEY}",
         "environments.prod.delivery: strategy is neither all_at_once, canary, linear nor a CodeDeploy preset",
         GOOGLE_KEY),
        ("pulumi/Pulumi.dev.yaml", DEV_REGION,
         f"{DEV_REGION}  code-remote:gemini_api_key: {{secure: [{GOOGLE_KEY}]}}\n",
         "config.code-remote:gemini_api_key.secure must be text, got a list", GOOGLE_KEY),
        ("pulumi/Pulumi.dev.yaml", DEV_REGION, f"{DEV_REGION}  code-remote:gemini_api_key: {GOOGLE_KEY}\n",
         "config.code-remote:gemini_api_key must be a Pulumi secret ({secure: ...}): set it with `pulumi config set "
         "--secret gemini_api_key`, never as plain text", GOOGLE_KEY),
        ("pulumi/Pulumi.prod.yaml", "10.2.0.0/16", GOOGLE_KEY,
         "code-remote:vpc_cidr: the value is not a CIDR block, e.g. 10.2.0.0/16", GOOGLE_KEY),
        ("pulumi/Pulumi.dev.yaml", "us-east-1", f"[{GOOGLE_KEY}]", "config.aws:region must be text, got a list",
         GOOGLE_KEY),
    ],
)  # fmt: skip
def test_a_secret_written_in_the_wrong_place_is_never_echoed(infra_copy, file, old, new, message, secret):
    _edit(infra_copy / file, old, new)
    with pytest.raises(PolicyError) as err:
        load_policies(infra_copy)
    text = str(err.value)
    assert text.startswith(f"{infra_copy / file}: ") and message in text and "\n" not in text, text
    assert secret not in text and secret[:12] not in text


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("environments.yaml", PROD_ENTRY, "    approvals_required: true",
         "environments.prod.approvals_required must be a whole number, got true"),
        ("environments.yaml", PROD_ENTRY, "    approvals_required: '1'",
         "environments.prod.approvals_required must be a whole number, got the text '1'"),
        ("environments.yaml", "auto_rollback: true", "auto_rollback: 1",
         "environments.prod.auto_rollback must be true or false, got 1"),
        ("environments.yaml", "strategy: Canary10Percent5Minutes", "strategy: canary\n      percent: '10'\n      "
         "interval: 5m", "environments.prod.delivery.percent must be a whole number, got the text '10'"),
        ("environments.yaml", "min_requests: 20", "min_requests: true",
         "environments.prod.delivery.analysis.min_requests must be a whole number, got true"),
        ("environments.yaml", "max_error_rate: 0.01", "max_error_rate: '0.01'",
         "environments.prod.delivery.analysis.max_error_rate must be a number, got the text '0.01'"),
        ("pulumi/Pulumi.prod.yaml", 'az_count: "3"', "az_count: true",
         "config.code-remote:az_count: true must be a whole number of availability zones, 1 to 6"),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_type_is_refused_not_converted(infra_copy, file, old, new, message):
    _edit(infra_copy / file, old, new)
    with pytest.raises(PolicyError) as err:
        load_policies(infra_copy)
    assert str(err.value) == f"{infra_copy / file}: {message}"


DELIVERY = "strategy: Canary10Percent5Minutes"


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ("strategy: all_at_once\n      percent: 10\n      interval: 5m",
         "delivery: percent and interval mean nothing to a release taken all at once: remove percent and interval, "
         "or use strategy canary or linear"),
        ("strategy: AllAtOnce\n      percent: 10",
         "delivery: percent means nothing to a release taken all at once: remove percent, or use strategy canary or "
         "linear"),
        ("strategy: Canary150Percent5Minutes",
         "delivery: strategy 'Canary150Percent5Minutes': its percent must be 1-99"),
        ("strategy: Linear150PercentEvery1Minute",
         "delivery: strategy 'Linear150PercentEvery1Minute': its percent must be 1-99"),
        ("strategy: Canary0Percent5Minutes", "delivery: strategy 'Canary0Percent5Minutes': its percent must be 1-99"),
        ("strategy: Canary10Percent0Minutes",
         "delivery: strategy 'Canary10Percent0Minutes': its minutes must be 1-1440 (intervals are 1s to 24h)"),
        ("strategy: Canary10Percent99999999999999999999Minutes",
         "delivery: the strategy: its minutes must be 1-1440 (intervals are 1s to 24h)"),
        ("strategy: canary\n      percent: 10\n      interval: 0s", "delivery.interval must be between 1s and 24h"),
        ("strategy: linear\n      percent: 10\n      interval: 25h", "delivery.interval must be between 1s and 24h"),
        ("strategy: Canary10Percent5Minuts", "delivery: strategy 'Canary10Percent5Minuts' is neither all_at_once, "
         "canary, linear nor a CodeDeploy preset such as Canary10Percent5Minutes or Linear10PercentEvery1Minute; did "
         "you mean 'Canary10Percent5Minutes'?"),
    ],
)  # fmt: skip
def test_a_delivery_that_would_mean_something_else_is_refused(infra_copy, new, message):
    _edit(infra_copy / "environments.yaml", DELIVERY, new)
    with pytest.raises(PolicyError) as err:
        load_policies(infra_copy)
    assert str(err.value) == f"{infra_copy / 'environments.yaml'}: environments.prod.{message}"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("bake: 15m", "bake: 99999999999h", "delivery.bake must be between 0s and 7d"),
        ("bake: 15m", "bake: 169h", "delivery.bake must be between 0s and 7d"),
        ("every: 30s", "every: 0s", "delivery.analysis.every must be between 1ms and 1h"),
    ],
)
def test_durations_are_bounded(infra_copy, old, new, message):
    _edit(infra_copy / "environments.yaml", old, new)
    with pytest.raises(PolicyError) as err:
        load_policies(infra_copy)
    assert str(err.value) == f"{infra_copy / 'environments.yaml'}: environments.prod.{message}"


@pytest.mark.parametrize(("approvers", "by", "creator", "own"), [
    ({}, "alice", Creator("Alice Smith", "alice@corp.example", "tagger"), True),  # the account is the email's name
    ({}, "ALICE", Creator("Alice Smith", "alice@corp.example", "tagger"), True),
    ({}, "asmith", Creator("asmith", "a.smith@corp.example", "committer"), True),
    ({}, "bob", Creator("Alice Smith", "alice@corp.example", "tagger"), False),
    ({"alice": "alice@corp.example"}, "alice", Creator("A. S.", "Alice@Corp.example", "tagger"), True),
    ({"al": "al@corp.example", "alice": "x@corp.example"}, "al", Creator("Alice", "alice@corp.example", "tagger"),
     False),  # "al" is not alice
    ({}, "alice", Creator("A", "alice+git@corp.example", "tagger"), True),
    ({}, "alice", Creator("A", "12345+alice@users.noreply.github.com", "committer"), True),
    ({"alice": "alice@corp.example"}, "alice", Creator("A", "alice@laptop", "tagger"), True),  # git's default email
    ({"bob": "bob@corp.example"}, "bob", Creator("Alice", "alice+bob@corp.example", "tagger"), False),
])  # fmt: skip
def test_nobody_approves_their_own_release_even_with_no_approvers_listed(approvers, by, creator, own):
    rule = ApprovalRule("prod", approvers)
    assert rule.is_creator(by, creator) is own
    assert (rule.refusal(by, creator) is not None) is own


def test_durations_take_days_too(infra_copy):
    _edit(infra_copy / "environments.yaml", "approval_expires: 72h", "approval_expires: 3d")
    _edit(infra_copy / "environments.yaml", "bake: 15m", "bake: 1d")
    prod = load_policies(infra_copy)["prod"]
    assert (prod.approval_expires_s, prod.rollout.bake_s) == (3 * 86_400.0, 86_400.0)


def test_a_policy_file_that_links_out_of_infra_is_refused(infra_copy, tmp_path):
    outside = tmp_path / "elsewhere.yaml"
    stack = infra_copy / "pulumi" / "Pulumi.dev.yaml"
    outside.write_text(stack.read_text())
    stack.unlink()
    stack.symlink_to(outside)
    with pytest.raises(PolicyError, match=r"Pulumi\.dev\.yaml is a symbolic link out of infra/: keep the file itself"):
        load_policies(infra_copy)

"""Deploy windows as pure rules: weekly ranges in a time zone, over the week's end, allow or deny; bad entries
refused when the policy loads."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from coderemote_pipeline.rules.deploy_windows import DeployWindows, WindowPlan, week_minute
from coderemote_pipeline.rules.schema import ConfigError, validate

WEEKEND = DeployWindows.model_validate(
    {"timezone": "Europe/Paris", "deny": [{"from": "Fri 16:00", "to": "Mon 08:00", "reason": "weekend"}]}
)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("utc", "closed_until"),
    [
        ("2026-12-04 14:59", None),  # Friday 15:59 in Paris
        ("2026-12-04 15:00", "Mon 2026-12-07 08:00 CET"),  # Friday 16:00 in Paris
        ("2026-12-06 12:00", "Mon 2026-12-07 08:00 CET"),  # Sunday
        ("2026-12-07 06:59", "Mon 2026-12-07 08:00 CET"),  # Monday 07:59 in Paris
        ("2026-12-07 07:00", None),  # Monday 08:00 in Paris
    ],
)
def test_a_weekend_freeze_in_paris(utc, closed_until):
    closed = WindowPlan.of(WEEKEND).closed(_at(utc))
    if closed_until is None:
        assert closed is None
    else:
        assert closed is not None and f"{closed.opens_at:%a %Y-%m-%d %H:%M %Z}" == closed_until
        assert closed.describe("prod") == f"prod takes no deploys now (weekend); the window ends {closed_until}"


def test_allow_windows_say_the_only_times_a_deploy_may_start():
    plan = WindowPlan.of(DeployWindows.model_validate({"allow": [{"from": "Tue 10:00", "to": "Tue 12:00"}]}))
    assert plan.closed(_at("2026-12-01 11:00")) is None  # Tuesday 11:00 UTC
    closed = plan.closed(_at("2026-12-02 11:00"))
    assert closed is not None and f"{closed.opens_at:%a %H:%M}" == "Tue 10:00"
    assert "outside the allowed windows (Tue 10:00 to Tue 12:00)" in closed.reason


@pytest.mark.parametrize("day", ["Tue", "Tues", "Tuesday", "tuesday", "Thu", "Thur", "Thurs", "Thursday", "Weds"])
def test_a_day_is_written_as_people_write_it(day):
    assert week_minute(f"{day} 09:00") % (24 * 60) == 9 * 60


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"deny": [{"from": "Friday 4pm", "to": "Mon 08:00"}]}, "'Friday 4pm' is not a weekday and a time"),
        ({"deny": [{"from": "Fri 16:00", "until": "Mon 08:00"}]}, "until"),
        ({"timezone": "Europe"}, "unknown time zone 'Europe'"),  # a folder of zones, not one
        ({"deny": [{"from": "Frisbee 16:00", "to": "Mon 08:00"}]}, "'Frisbee 16:00' is not a weekday and a time"),
        ({"deny": [{"from": "Fri 1٦:00", "to": "Mon 08:00"}]}, "is not a weekday and a time"),
        ({"allow": [{"from": "Mon 00:00", "to": "Monday 00:00"}]}, "from and to are the same moment"),
        ({"deny": [{"from": "Fri 16:00", "to": "Mon 08:00"}], "allow": [{"from": "Tue 10:00", "to": "Tue 11:00"}]},
         "use deny or allow windows, not both"),
    ],
)  # fmt: skip
def test_bad_windows_are_refused(entry, message):
    with pytest.raises(ValidationError, match=message):
        DeployWindows.model_validate(entry)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"deny": {"from": "Fri 16:00", "to": "Mon 08:00"}}, "deny must be a list of mappings, got a mapping"),
        ({"deny": [{"from": 960, "to": "Mon 08:00"}]},
         "deny[0].from must be text, got 960 (quote it if it is meant as text)"),
        ({"timezone": "AIzaSyA1bC2dE3fG4hI5jK6lM7nO8pQ9rS0tU1v"},
         "timezone: unknown time zone: use an IANA name such as Europe/Paris or UTC"),
        ({"allow": [{"from": "ghp_a1B2c3D4e5a1B2c3D4e5a1B2c3D4e5f6G7h8", "to": "Mon 08:00"}]},
         "allow[0].from: the value is not a weekday and a time, e.g. 'Fri 16:00'"),
    ],
)  # fmt: skip
def test_a_bad_window_says_what_to_write_without_echoing_it(entry, message):
    with pytest.raises(ConfigError) as err:
        validate(DeployWindows, entry, source="deploy_windows")
    assert str(err.value) == f"deploy_windows: {message}"

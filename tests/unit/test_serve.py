"""`python -m sync serve`'s timers: NCRONTAB schedules and their app settings (no server)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devhost.serve import Schedule, discover, resolve_app_setting
from function_app import registered_functions


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 0 2 * * *", "2026-11-26T01:59:59", "2026-11-26T02:00:00"),
        ("0 0 2 * * *", "2026-11-26T02:00:00", "2026-11-27T02:00:00"),
        ("0 */5 * * * *", "2026-11-26T10:07:30", "2026-11-26T10:10:00"),
        ("30 15 9-17 * * 1-5", "2026-11-27T17:20:00", "2026-11-30T09:15:30"),  # Friday evening → Monday
        ("0 0 0 1 1 *", "2026-11-26T00:00:00", "2027-01-01T00:00:00"),
        ("0 0 12 * * 0", "2026-11-26T00:00:00", "2026-11-29T12:00:00"),  # Sunday
    ],
)
def test_ncrontab_next_firing(expression: str, after: str, expected: str) -> None:
    assert Schedule.parse(expression).next_after(_at(after)) == _at(expected)


def test_schedules_are_resolved_from_app_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_app_setting("%USER_SYNC_SCHEDULE%") == "0 0 2 * * *"  # the documented default
    monkeypatch.setenv("USER_SYNC_SCHEDULE", "0 30 3 * * *")
    assert resolve_app_setting("%USER_SYNC_SCHEDULE%") == "0 30 3 * * *"
    timers = {t.name: t for t in discover(registered_functions()).timers}
    assert set(timers) == {
        "user_sync_timer",
        "presence_timer",
        "subscription_timer",
        "contact_sync_timer",
        "poison_queue_check",  # a fixed schedule, not a setting
    }
    assert timers["poison_queue_check"].schedule.next_after(_at("2026-11-26T00:07:00")) == _at("2026-11-26T00:15:00")
    assert timers["user_sync_timer"].schedule.next_after(_at("2026-11-26T00:00:00")) == _at("2026-11-26T03:30:00")

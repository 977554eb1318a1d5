"""The next firing of a six-field NCRONTAB timer (`sec min hour day month weekday`), in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.settings import Settings
from sync.schedule import ScheduleError, next_firing

AT = datetime(2026, 12, 1, 21, 52, 4, tzinfo=UTC)  # a Tuesday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 0 2 * * *", datetime(2026, 12, 2, 2, 0, 0, tzinfo=UTC)),  # USER_SYNC_SCHEDULE's default
        ("0 * * * * *", datetime(2026, 12, 1, 21, 53, 0, tzinfo=UTC)),  # PRESENCE_SCHEDULE's default
        ("0 30 */6 * * *", datetime(2026, 12, 2, 0, 30, 0, tzinfo=UTC)),  # SUBSCRIPTION_SCHEDULE's default
        ("0 */15 * * * *", datetime(2026, 12, 1, 22, 0, 0, tzinfo=UTC)),  # CONTACT_SYNC_SCHEDULE's, the poison check's
        ("*/10 * * * * *", datetime(2026, 12, 1, 21, 52, 10, tzinfo=UTC)),
        ("0 0 9 * * 1-5", datetime(2026, 12, 2, 9, 0, 0, tzinfo=UTC)),  # weekdays
        ("0 0 9 * * 0", datetime(2026, 12, 6, 9, 0, 0, tzinfo=UTC)),  # Sundays: the 6th
        ("0 0 9 * * 6,0", datetime(2026, 12, 5, 9, 0, 0, tzinfo=UTC)),  # the weekend: Saturday the 5th
        ("0 15,45 8-10 1 * *", datetime(2027, 1, 1, 8, 15, 0, tzinfo=UTC)),
        ("0 0 0 29 2 *", datetime(2028, 2, 29, 0, 0, 0, tzinfo=UTC)),
        ("4 52 21 1 12 *", datetime(2027, 12, 1, 21, 52, 4, tzinfo=UTC)),  # strictly after
    ],
)
def test_the_next_firing_is_the_first_matching_second_after(expression: str, expected: datetime) -> None:
    assert next_firing(expression, AT) == expected


def test_the_defaults_all_parse() -> None:
    for expression in (
        Settings.model_fields["user_sync_schedule"].default,
        Settings.model_fields["presence_schedule"].default,
        Settings.model_fields["subscription_schedule"].default,
        Settings.model_fields["contact_sync_schedule"].default,
    ):
        assert next_firing(expression, AT) > AT


def test_a_naive_time_is_taken_as_utc() -> None:
    assert next_firing("0 */15 * * * *", AT.replace(tzinfo=None)) == datetime(2026, 12, 1, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "expression",
    ["", "0 * * * *", "0 0 25 * * *", "x * * * * *", "0 */0 * * * *", "0 5-1 * * * *", "0 0 0 31 2 *", "0 0 0 * * 7-9"],
)
def test_an_expression_it_cannot_read_is_refused(expression: str) -> None:
    with pytest.raises(ScheduleError):
        next_firing(expression, AT)

"""The console's chart data: run counts summed into hourly and daily buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sync.console.charts import STATUS_FIELDS, USER_FIELDS, bucketed
from sync.records import RunRecord

NOW = datetime(2026, 3, 10, 14, 25, tzinfo=UTC)


def _run(at: datetime, dry_run: bool = False, **counts: int) -> RunRecord:
    return RunRecord(kind="presence", run_id=at.isoformat(), started_at=at, counts=counts, dry_run=dry_run)


def test_runs_are_summed_into_the_hour_they_started_in() -> None:
    runs = [
        _run(NOW - timedelta(minutes=5), changed=2, reverted=1, unchanged=40),  # this hour (14:00)
        _run(NOW.replace(minute=0), changed=1),  # this hour too, at its first instant
        _run(NOW.replace(minute=0) - timedelta(seconds=1), changed=4),  # the hour before
        _run(NOW - timedelta(days=7), changed=100),  # older than the window
        _run(NOW - timedelta(minutes=1), dry_run=True, changed=50),
    ]
    series = bucketed("status", runs, STATUS_FIELDS, now=NOW, width=timedelta(hours=1), count=168)
    assert len(series.values) == 168
    assert series.starts[-1] == datetime(2026, 3, 10, 14, tzinfo=UTC)
    assert series.starts[0] == datetime(2026, 3, 3, 15, tzinfo=UTC)
    assert series.values[-1] == 4 and series.values[-2] == 4
    assert series.total == 8


def test_days_start_at_midnight_utc() -> None:
    runs = [
        _run(datetime(2026, 3, 10, 0, 0, tzinfo=UTC), created=1, updated=2, linked=1, deprovisioned=1, failed=9),
        _run(datetime(2026, 3, 9, 23, 59, tzinfo=UTC), created=3),
        _run(datetime(2026, 2, 9, 12, 0, tzinfo=UTC), created=7),  # 29 days before the window's end: kept
        _run(datetime(2026, 2, 8, 23, 0, tzinfo=UTC), created=70),  # before the window
    ]
    series = bucketed("users", runs, USER_FIELDS, now=NOW, width=timedelta(days=1), count=30)
    assert series.starts[0] == datetime(2026, 2, 9, tzinfo=UTC)
    assert (series.values[0], series.values[-2], series.values[-1]) == (7, 3, 5)
    assert series.total == 15

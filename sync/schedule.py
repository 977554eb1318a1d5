"""When a timer fires next: the six-field NCRONTAB expressions of the timers (`sec min hour day month weekday`).

Pure: an expression and a moment in, a moment out (UTC). It reads the forms the settings and the
guide use: numbers, `*`, `*/n`, lists `a,b`, ranges `a-b` and stepped ranges `a-b/n`; weekdays
are 0 (Sunday) to 6. Like the Functions host, a day must match both the day and the weekday field.
Anything else is a `ScheduleError`, which the console shows as "unknown".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# How often the poison queue is counted (a fixed schedule of `poison_queue_check`: not a setting of its own).
POISON_CHECK_SCHEDULE = "0 */15 * * * *"

# (lowest, highest) of each field, in order.
_FIELDS = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_YEARS_AHEAD = 5  # far enough for a 29 February; an expression that never matches is refused


class ScheduleError(ValueError):
    """An expression this module cannot read (or one that never fires)."""


def _values(field: str, low: int, high: int) -> frozenset[int]:
    chosen: set[int] = set()
    for part in field.split(","):
        body, _, step_text = part.partition("/")
        if step_text and not step_text.isdigit():
            raise ScheduleError(f"not a step: {part!r}")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ScheduleError(f"a step must be at least 1: {part!r}")
        if body == "*":
            start, end = low, high
        else:
            first, dash, last = body.partition("-")
            if not first.isdigit() or (dash and not last.isdigit()):
                raise ScheduleError(f"not a number or range: {part!r}")
            start = int(first)
            end = int(last) if dash else (high if step_text else start)
        if not low <= start <= end <= high:
            raise ScheduleError(f"out of range {low}-{high}: {part!r}")
        chosen.update(range(start, end + 1, step))
    return frozenset(chosen)


def parse(expression: str) -> tuple[frozenset[int], ...]:
    """The allowed values of each of the six fields; `ScheduleError` for anything else."""
    fields = expression.split()
    if len(fields) != len(_FIELDS):
        raise ScheduleError(f"six fields expected (sec min hour day month weekday), not {len(fields)}")
    return tuple(_values(field, low, high) for field, (low, high) in zip(fields, _FIELDS, strict=True))


def next_firing(expression: str, after: datetime) -> datetime:
    """The first second strictly after `after` that `expression` matches, in UTC (a naive `after` is UTC)."""
    seconds, minutes, hours, days, months, weekdays = parse(expression)
    moment = (after.replace(tzinfo=UTC) if after.tzinfo is None else after.astimezone(UTC)).replace(microsecond=0)
    moment += timedelta(seconds=1)
    day = moment.replace(hour=0, minute=0, second=0)
    last = day.replace(year=day.year + _YEARS_AHEAD)
    while day < last:
        # Python's Monday is 0; NCRONTAB's Sunday is.
        if day.month in months and day.day in days and (day.weekday() + 1) % 7 in weekdays:
            for hour in sorted(hours):
                for minute in sorted(minutes):
                    for second in sorted(seconds):
                        candidate = day.replace(hour=hour, minute=minute, second=second)
                        if candidate >= moment:
                            return candidate
        day += timedelta(days=1)
    raise ScheduleError(f"never fires within {_YEARS_AHEAD} years: {expression!r}")

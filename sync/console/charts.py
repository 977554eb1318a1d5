"""What the console's charts show: changes counted from the run records, in time buckets (no I/O).

Status changes are the presence runs' `changed` and `reverted`, per hour over 7 days; user changes
the user-sync runs' `created`, `linked`, `updated` and `deprovisioned`, and contact changes the
contacts runs' `created`, `updated` and `deleted`, per day over 30 days. Dry runs leave no record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sync.records import RunRecord

STATUS_FIELDS = ("changed", "reverted")
USER_FIELDS = ("created", "linked", "updated", "deprovisioned")
CONTACT_FIELDS = ("created", "updated", "deleted")


@dataclass(frozen=True)
class Series:
    """Consecutive buckets of equal width, oldest first, each with the sum of `fields`."""

    title: str
    width: timedelta
    starts: tuple[datetime, ...]
    values: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.values)


def bucketed(
    title: str, runs: Iterable[RunRecord], fields: tuple[str, ...], *, now: datetime, width: timedelta, count: int
) -> Series:
    """Sum `fields` of each run into the bucket its start falls in; the last bucket holds `now`."""
    end = _floor(now, width) + width
    first = end - width * count
    values = [0] * count
    for run in runs:
        if run.dry_run or not first <= run.started_at < end:
            continue
        index = int((run.started_at - first) / width)
        values[index] += sum(int(run.counts.get(name, 0)) for name in fields)
    starts = tuple(first + width * i for i in range(count))
    return Series(title, width, starts, tuple(values))


def _floor(moment: datetime, width: timedelta) -> datetime:
    """`moment` rounded down to a multiple of `width` since the epoch (whole hours or days, UTC)."""
    epoch = datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    return epoch + width * ((moment - epoch) // width)

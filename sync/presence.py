"""Calendar-driven 3CX status: the rules, as pure functions.

While an event shown as busy or working elsewhere runs, the user's 3CX status is Do Not
Disturb (`Out of office`); during an out-of-office event it is `Away` (STATUS_MAP changes
this). When the mapped stretch ends, the status the user had before comes back — but only
if 3CX still shows the status the connector set: a status the user chose by hand during
the meeting wins, and is left alone.

- Cancelled events, and events whose showAs maps to nothing (free, tentative, unknown by
  default), are ignored. All-day events count, as whole days in CALENDAR_TIME_ZONE.
- Overlapping mapped events: the event Outlook itself ranks busiest wins — out of office,
  then busy, then working elsewhere, then tentative (Outlook's free/busy precedence). So a
  meeting inside a day marked out of office leaves the user Away.
- Back-to-back events with the same status change nothing at the seam; with different
  statuses, the status switches directly (no restore in between). Decisions are taken at
  points in time, so neither flaps.
- With the calendar option off, the connector never changes that user's status.
- A write whose answer never came (3CX applied it, then answered 504) is remembered as
  pending: if 3CX shows that status at the next look, it is the connector's own, so it
  never becomes the user's "previous" status, and the one from before the meeting comes back.

`sync.presence_run` reads calendars and 3CX, calls these, and writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from shared.graph_models import GraphEvent
from sync.records import PresenceState, StatusInterval

FALLBACK_STATUS = "Available"  # restored when the status before the meeting was unknown
# Outlook's free/busy precedence: the busiest showAs wins where mapped events overlap.
SHOW_AS_RANK = {"oof": 4, "busy": 3, "workingElsewhere": 2, "tentative": 1, "free": 0, "unknown": 0}


@dataclass(frozen=True)
class StatusChange:
    """One write to 3CX: enter or switch a mapped status, or restore the one from before."""

    kind: Literal["set", "restore"]
    status: str


def event_span(event: GraphEvent, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The event's start and end in UTC; all-day events are whole local days in `zone`."""
    if not event.is_all_day:
        return event.start, event.end
    start_day, end_day = event.start.date(), event.end.date()
    if end_day <= start_day:
        end_day = start_day + timedelta(days=1)
    start = datetime.combine(start_day, time.min, zone).astimezone(UTC)
    end = datetime.combine(end_day, time.min, zone).astimezone(UTC)
    return start, end


def map_events(events: Iterable[GraphEvent], status_map: Mapping[str, str], zone: ZoneInfo) -> list[StatusInterval]:
    """The stretches of time that ask for a status, sorted by start."""
    intervals: list[StatusInterval] = []
    for event in events:
        status = status_map.get(event.show_as)
        if event.is_cancelled or not status:
            continue
        start, end = event_span(event, zone)
        if end <= start:
            continue
        intervals.append(StatusInterval(start=start, end=end, status=status, show_as=event.show_as, event_id=event.id))
    return sorted(intervals, key=lambda interval: (interval.start, interval.end))


def wanted_interval(intervals: Iterable[StatusInterval], at: datetime) -> StatusInterval | None:
    """The interval whose status applies at `at` (start inclusive, end exclusive), by precedence."""
    running = [interval for interval in intervals if interval.start <= at < interval.end]
    if not running:
        return None
    return max(running, key=lambda interval: (SHOW_AS_RANK.get(interval.show_as, 0), -interval.start.timestamp()))


def next_boundary(intervals: Iterable[StatusInterval], after: datetime) -> datetime | None:
    """The next moment after `after` at which the wanted status may change."""
    moments = [moment for interval in intervals for moment in (interval.start, interval.end) if moment > after]
    return min(moments, default=None)


def needs_attention(state: PresenceState, wanted: str | None) -> bool:
    """Whether 3CX must be looked at now; False means nothing can change, so no request is made."""
    if state.pending_status is not None:
        return True  # a write of ours may or may not have landed: look
    if wanted is None:
        return state.applied_status is not None or state.overridden
    if state.overridden:
        return False  # the user chose a status by hand; leave it until the stretch ends
    return state.applied_status != wanted


def decide(state: PresenceState, wanted: str | None, current: str | None) -> tuple[StatusChange | None, PresenceState]:
    """Given the wanted status and what 3CX shows now, the write to make and the new state."""
    if state.pending_status is not None:
        # Our last write's answer never came. If 3CX shows what we wrote, it landed: ours, as applied.
        landed = current == state.pending_status
        state = state.model_copy(
            update={"pending_status": None, "applied_status": current if landed else state.applied_status}
        )
    if wanted is None:
        change = None
        if state.applied_status is not None and current == state.applied_status:
            previous = state.previous_status or FALLBACK_STATUS
            if previous != current:
                change = StatusChange("restore", previous)
        return change, state.model_copy(update={"applied_status": None, "previous_status": None, "overridden": False})
    if state.applied_status is None:
        change = None if current == wanted else StatusChange("set", wanted)
        previous = current or FALLBACK_STATUS
        return change, state.model_copy(
            update={"applied_status": wanted, "previous_status": previous, "overridden": False}
        )
    if current == state.applied_status:
        change = None if current == wanted else StatusChange("set", wanted)
        return change, state.model_copy(update={"applied_status": wanted})
    # 3CX no longer shows what the connector set: the user changed it by hand, and that wins.
    return None, state.model_copy(update={"applied_status": None, "previous_status": None, "overridden": True})

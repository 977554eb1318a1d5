"""The calendar → status rules, table-driven over a controlled clock (no I/O).

A tiny simulator plays a user's day: at each moment it asks the rules what to do, applies
the write to a pretend 3CX status, and lets the user change their status by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.graph_models import GraphEvent
from shared.settings import DEFAULT_STATUS_MAP
from shared.state import PresenceState
from sync.presence import decide, map_events, needs_attention, next_boundary, wanted_interval

DAY = datetime(2026, 11, 26, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")


def at(hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return DAY + timedelta(hours=hours, minutes=minutes)


def event(eid: str, start: str, end: str, show_as: str = "busy", **extra) -> GraphEvent:
    def stamp(moment: datetime) -> dict[str, str]:
        return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}

    return GraphEvent.model_validate(
        {"id": eid, "showAs": show_as, "start": stamp(at(start)), "end": stamp(at(end)), **extra}
    )


@dataclass
class Day:
    """One user's day: the rules' decisions applied to a pretend 3CX status."""

    events: list[GraphEvent]
    status: str = "Available"
    state: PresenceState = field(default_factory=lambda: PresenceState(m365_id="u1", tcx_user_id=1))
    writes: list[tuple[str, str]] = field(default_factory=list)  # (time, status written)
    reads: int = 0

    def tick(self, hhmm: str) -> None:
        intervals = map_events(self.events, DEFAULT_STATUS_MAP, UTC_ZONE)
        self.state = self.state.model_copy(update={"intervals": intervals})
        wanted = wanted_interval(intervals, at(hhmm))
        status = wanted.status if wanted else None
        if not needs_attention(self.state, status):
            return
        self.reads += 1
        change, self.state = decide(self.state, status, self.status)
        if change is not None:
            self.status = change.status
            self.writes.append((hhmm, change.status))

    def run(self, *moments: str) -> list[tuple[str, str]]:
        for moment in moments:
            self.tick(moment)
        return self.writes


def test_a_meeting_sets_dnd_and_its_end_restores_the_previous_status() -> None:
    day = Day([event("m", "10:00", "11:00")], status="Custom 1")
    assert day.run("09:59", "10:00", "10:30", "11:00", "11:30") == [("10:00", "Out of office"), ("11:00", "Custom 1")]


@pytest.mark.parametrize(
    ("show_as", "expected"),
    [
        ("busy", "Out of office"),
        ("workingElsewhere", "Out of office"),
        ("oof", "Away"),
        ("free", None),
        ("tentative", None),
        ("unknown", None),
    ],
)
def test_default_mapping(show_as: str, expected: str | None) -> None:
    day = Day([event("m", "10:00", "11:00", show_as)])
    writes = day.run("10:00", "11:00")
    assert writes == ([("10:00", expected), ("11:00", "Available")] if expected else [])


def test_nothing_is_read_or_written_on_a_free_day() -> None:
    day = Day([event("m", "10:00", "11:00", "free")])
    day.run("09:00", "10:00", "10:30", "11:00")
    assert day.reads == 0 and day.writes == []


def test_a_cancelled_meeting_restores_at_once() -> None:
    day = Day([event("m", "10:00", "11:00")])
    day.run("10:00")
    day.events = [event("m", "10:00", "11:00", isCancelled=True)]
    assert day.run("10:20") == [("10:00", "Out of office"), ("10:20", "Available")]


def test_a_meeting_moved_away_restores_and_moved_back_sets_again() -> None:
    day = Day([event("m", "10:00", "11:00")])
    day.run("10:00")
    day.events = [event("m", "14:00", "15:00")]
    day.run("10:15")
    assert day.run("14:00", "15:00") == [
        ("10:00", "Out of office"),
        ("10:15", "Available"),
        ("14:00", "Out of office"),
        ("15:00", "Available"),
    ]


def test_back_to_back_meetings_do_not_flap() -> None:
    day = Day([event("a", "10:00", "11:00"), event("b", "11:00", "12:00")])
    assert day.run("10:00", "11:00", "12:00") == [("10:00", "Out of office"), ("12:00", "Available")]


def test_overlapping_meetings_keep_dnd_until_the_last_ends() -> None:
    day = Day([event("a", "10:00", "11:00"), event("b", "10:30", "11:30")])
    assert day.run("10:00", "10:30", "11:00", "11:30") == [("10:00", "Out of office"), ("11:30", "Available")]


def test_out_of_office_outranks_a_meeting_and_switching_needs_no_restore() -> None:
    day = Day([event("trip", "09:00", "17:00", "oof"), event("call", "10:00", "11:00", "busy")])
    assert day.run("09:00", "10:00", "11:00", "17:00") == [("09:00", "Away"), ("17:00", "Available")]
    day = Day([event("call", "10:00", "12:00", "busy"), event("trip", "11:00", "13:00", "oof")])
    assert day.run("10:00", "11:00", "12:00", "13:00") == [
        ("10:00", "Out of office"),
        ("11:00", "Away"),
        ("13:00", "Available"),
    ]


def test_a_status_set_by_hand_during_the_meeting_wins() -> None:
    day = Day([event("m", "10:00", "11:00")])
    day.run("10:00")
    day.status = "Custom 2"  # the user picks Business Trip by hand
    assert day.run("10:30", "11:00") == [("10:00", "Out of office")]
    assert day.status == "Custom 2"


def test_a_status_set_by_hand_wins_through_an_overlapping_switch() -> None:
    day = Day([event("a", "10:00", "12:00", "busy"), event("b", "11:00", "13:00", "oof")])
    day.run("10:00")
    day.status = "Available"
    assert day.run("11:00", "12:00", "13:00") == [("10:00", "Out of office")]
    assert day.status == "Available"
    assert day.run("14:00", "15:00") == [("10:00", "Out of office")]
    assert not day.state.overridden


def test_already_dnd_before_the_meeting_stays_dnd_after_it() -> None:
    day = Day([event("m", "10:00", "11:00")], status="Out of office")
    assert day.run("10:00", "11:00") == []
    assert day.status == "Out of office"


def test_duplicate_and_late_decisions_change_nothing() -> None:
    day = Day([event("m", "10:00", "11:00")])
    assert day.run("10:00", "10:00", "10:01", "10:00", "11:00", "11:00", "11:05") == [
        ("10:00", "Out of office"),
        ("11:00", "Available"),
    ]


def test_unknown_previous_status_restores_available() -> None:
    state = PresenceState(m365_id="u1", tcx_user_id=1)
    _, entered = decide(state, "Out of office", None)
    change, _ = decide(entered, None, "Out of office")
    assert change is not None and change.status == "Available"


def test_all_day_events_cover_the_local_day() -> None:
    allday = GraphEvent.model_validate(
        {
            "id": "d",
            "showAs": "oof",
            "isAllDay": True,
            "start": {"dateTime": "2026-11-26T00:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-27T00:00:00.0000000", "timeZone": "UTC"},
        }
    )
    (interval,) = map_events([allday], DEFAULT_STATUS_MAP, ZoneInfo("Europe/Berlin"))
    assert interval.start == datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    assert interval.end == datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
    day = Day([allday])
    assert day.run("00:00", "12:00") == [("00:00", "Away")]


def test_custom_status_map() -> None:
    (interval,) = map_events([event("m", "10:00", "11:00", "tentative")], {"tentative": "Custom 1"}, UTC_ZONE)
    assert interval.status == "Custom 1"


def test_next_boundary_is_the_next_start_or_end() -> None:
    intervals = map_events([event("a", "10:00", "11:00"), event("b", "10:30", "12:00")], DEFAULT_STATUS_MAP, UTC_ZONE)
    assert next_boundary(intervals, at("09:00")) == at("10:00")
    assert next_boundary(intervals, at("10:00")) == at("10:30")
    assert next_boundary(intervals, at("11:00")) == at("12:00")
    assert next_boundary(intervals, at("12:00")) is None

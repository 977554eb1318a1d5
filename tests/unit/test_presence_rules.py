"""The calendar → status rules, table-driven over a controlled clock (no I/O).

A tiny simulator plays a user's day: at each moment it asks the rules what to do, applies
the write to a pretend 3CX status, and lets the user change their status by hand.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import permutations
from zoneinfo import ZoneInfo

import pytest

from shared.graph_models import GraphEvent
from shared.settings import DEFAULT_STATUS_MAP
from sync.presence import StatusChange, decide, map_events, needs_attention, next_boundary, wanted_interval
from sync.records import PresenceState, StatusInterval

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


def all_day(eid: str, start_day: str, end_day: str, show_as: str = "oof") -> GraphEvent:
    return GraphEvent.model_validate(
        {
            "id": eid,
            "showAs": show_as,
            "isAllDay": True,
            "start": {"dateTime": f"{start_day}T00:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": f"{end_day}T00:00:00.0000000", "timeZone": "UTC"},
        }
    )


def test_all_day_events_cover_the_local_day() -> None:
    allday = all_day("d", "2026-11-26", "2026-11-27")
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


def test_an_all_day_event_ending_on_its_start_date_covers_that_local_day() -> None:
    """Graph can send an all-day event whose end date equals its start date: it still means that whole day."""
    (interval,) = map_events([all_day("d", "2026-11-26", "2026-11-26")], DEFAULT_STATUS_MAP, ZoneInfo("Europe/Berlin"))
    assert (interval.start, interval.end) == (
        datetime(2026, 11, 25, 23, 0, tzinfo=UTC),
        datetime(2026, 11, 26, 23, 0, tzinfo=UTC),
    )


@pytest.fixture
def machine_in_tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's own local time zone is neither UTC nor the calendar's zone."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("machine_in_tokyo")
def test_all_day_intervals_are_stored_in_utc_whatever_the_machines_zone() -> None:
    """Intervals are persisted with the presence state and their boundaries queued: always written as UTC."""
    (interval,) = map_events([all_day("d", "2026-11-26", "2026-11-27")], DEFAULT_STATUS_MAP, ZoneInfo("Europe/Berlin"))
    stored = interval.model_dump(mode="json")
    assert (stored["start"], stored["end"]) == ("2026-11-25T23:00:00Z", "2026-11-26T23:00:00Z")


@pytest.mark.parametrize(
    "ignored",
    [
        event("free", "09:00", "10:00", "free"),
        event("tentative", "09:00", "10:00", "tentative"),
        event("cancelled", "09:00", "10:00", isCancelled=True),
        event("instant", "09:00", "09:00"),
    ],
    ids=["free", "unmapped", "cancelled", "zero-length"],
)
def test_an_ignored_event_does_not_hide_the_mapped_events_after_it(ignored: GraphEvent) -> None:
    intervals = map_events([ignored, event("m", "10:00", "11:00")], DEFAULT_STATUS_MAP, UTC_ZONE)
    assert [(i.event_id, i.status, i.start, i.end) for i in intervals] == [
        ("m", "Out of office", at("10:00"), at("11:00"))
    ]


def test_a_zero_length_event_asks_for_nothing() -> None:
    assert map_events([event("instant", "10:00", "10:00")], DEFAULT_STATUS_MAP, UTC_ZONE) == []
    day = Day([event("instant", "10:00", "10:00")])
    day.run("09:59", "10:00", "10:01")
    assert day.reads == 0 and day.writes == []


# Outlook's free/busy precedence, busiest first: this order is the contract, not a copy of the code.
BUSIEST_FIRST = [["oof"], ["busy"], ["workingElsewhere"], ["tentative"], ["free", "unknown"]]
BUSYNESS = {show_as: level for level, show_as_values in enumerate(BUSIEST_FIRST) for show_as in show_as_values}
# Every showAs to its own status, so the winner of an overlap can be told from the status alone.
EVERY_SHOW_AS = {show_as: f"Status for {show_as}" for show_as in BUSYNESS}


@pytest.mark.parametrize(("first", "second"), list(permutations(BUSYNESS, 2)))
def test_the_busier_event_wins_where_events_overlap(first: str, second: str) -> None:
    """Of two overlapping events the busier showAs wins; between equally busy ones the first keeps its status."""
    intervals = map_events(
        [event("first", "10:00", "12:00", first), event("second", "11:00", "13:00", second)], EVERY_SHOW_AS, UTC_ZONE
    )
    winner = second if BUSYNESS[second] < BUSYNESS[first] else first
    assert [wanted_interval(intervals, at(hhmm)).status for hhmm in ("10:30", "11:30", "12:30")] == [
        EVERY_SHOW_AS[first],
        EVERY_SHOW_AS[winner],
        EVERY_SHOW_AS[second],
    ]


def test_equally_busy_overlapping_meetings_keep_the_one_that_started_first() -> None:
    """No switch mid-way: the interval that applies (and whose start a set is timed against) stays the first."""
    intervals = map_events([event("a", "10:00", "12:00"), event("b", "11:00", "13:00")], DEFAULT_STATUS_MAP, UTC_ZONE)
    assert wanted_interval(intervals, at("11:30")).event_id == "a"


def test_a_show_as_the_ranking_does_not_know_ranks_lowest() -> None:
    """A stored interval may carry a showAs value this version does not rank: even tentative outranks it."""

    def interval(eid: str, start: str, end: str, show_as: str, status: str) -> StatusInterval:
        return StatusInterval(start=at(start), end=at(end), status=status, show_as=show_as, event_id=eid)

    intervals = [
        interval("new", "10:00", "12:00", "someFutureShowAs", "Custom 3"),
        interval("maybe", "11:00", "13:00", "tentative", "Custom 1"),
    ]
    assert wanted_interval(intervals, at("11:30")).status == "Custom 1"


def presence(
    applied: str | None = None, previous: str | None = None, overridden: bool = False, pending: str | None = None
) -> PresenceState:
    return PresenceState(
        m365_id="u1",
        tcx_user_id=1,
        applied_status=applied,
        previous_status=previous,
        overridden=overridden,
        pending_status=pending,
    )


@pytest.mark.parametrize(
    ("before", "wanted", "current", "change", "after"),
    [
        pytest.param(
            presence(), "Out of office", "Custom 1",
            StatusChange("set", "Out of office"), presence("Out of office", "Custom 1"),
            id="entering a stretch sets the status and remembers the one before",
        ),
        pytest.param(
            presence(), "Out of office", "Out of office",
            None, presence("Out of office", "Out of office"),
            id="entering a stretch already showing its status writes nothing",
        ),
        pytest.param(
            presence(overridden=True), "Away", "Custom 2",
            StatusChange("set", "Away"), presence("Away", "Custom 2"),
            id="entering a stretch clears a stale override",
        ),
        pytest.param(
            presence("Out of office", "Custom 1"), "Away", "Out of office",
            StatusChange("set", "Away"), presence("Away", "Custom 1"),
            id="switching within a stretch sets the new status and keeps the one from before",
        ),
        pytest.param(
            presence("Out of office", "Custom 1"), "Out of office", "Custom 2",
            None, presence(overridden=True),
            id="a status changed by hand overrides and forgets the remembered statuses",
        ),
        pytest.param(
            presence("Out of office", "Custom 1"), None, "Out of office",
            StatusChange("restore", "Custom 1"), presence(),
            id="the end of a stretch restores the status from before and forgets it",
        ),
        pytest.param(
            presence("Out of office", "Custom 1"), None, "Custom 2",
            None, presence(),
            id="the end of a stretch leaves a status changed by hand alone",
        ),
        pytest.param(
            presence(overridden=True), None, "Custom 2",
            None, presence(),
            id="the end of an overridden stretch writes nothing and clears the override",
        ),
        # A write whose answer never came (504 after 3CX applied it) is pending until the next look.
        pytest.param(
            presence(None, "Custom 1", pending="Out of office"), "Out of office", "Out of office",
            None, presence("Out of office", "Custom 1"),
            id="an entering write that landed is ours: the status from before stays the one to restore",
        ),
        pytest.param(
            presence(None, "Custom 1", pending="Out of office"), "Out of office", "Custom 1",
            StatusChange("set", "Out of office"), presence("Out of office", "Custom 1"),
            id="an entering write that did not land is written again",
        ),
        pytest.param(
            presence("Out of office", "Custom 1", pending="Away"), "Away", "Away",
            None, presence("Away", "Custom 1"),
            id="a switch that landed is ours, not a status changed by hand",
        ),
        pytest.param(
            presence("Out of office", "Custom 1", pending="Away"), "Away", "Out of office",
            StatusChange("set", "Away"), presence("Away", "Custom 1"),
            id="a switch that did not land is written again",
        ),
        pytest.param(
            presence(None, "Custom 1", pending="Out of office"), None, "Out of office",
            StatusChange("restore", "Custom 1"), presence(),
            id="a write that landed after its stretch ended is restored from",
        ),
        pytest.param(
            presence("Out of office", "Custom 1", pending="Custom 1"), None, "Custom 1",
            None, presence(),
            id="a restore that landed leaves nothing to do",
        ),
        pytest.param(
            presence("Out of office", "Custom 1", pending="Away"), "Away", "Custom 2",
            None, presence(overridden=True),
            id="a status changed by hand while our write was pending still wins",
        ),
    ],
)  # fmt: skip
def test_decide_states_the_write_and_what_is_remembered(
    before: PresenceState, wanted: str | None, current: str | None, change: StatusChange | None, after: PresenceState
) -> None:
    assert decide(before, wanted, current) == (change, after)


@pytest.mark.parametrize(
    ("state", "wanted"),
    [
        (presence("Out of office", "Custom 1", pending="Out of office"), "Out of office"),
        (presence(overridden=True, pending="Away"), "Away"),
        (presence(pending="Available"), None),
    ],
)
def test_a_write_whose_answer_never_came_is_always_looked_at(state: PresenceState, wanted: str | None) -> None:
    """Without the pending write, none of these would need 3CX read: with it, every one does."""
    assert needs_attention(state.model_copy(update={"pending_status": None}), wanted) is False
    assert needs_attention(state, wanted) is True

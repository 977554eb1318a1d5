"""Applying a status decision through the presence ports, in memory: claim first, then write 3CX.

`reconcile_user` takes narrow ports (state, calendars, the PBX's statuses), so its
concurrency rules are checked here without storage; tests/integration/test_presence.py runs
the same code over Azurite and the fakes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from shared.graph import GraphUnavailable
from shared.graph_models import GraphEvent
from shared.settings import Settings, load_settings
from shared.state import ConcurrentUpdate
from shared.threecx import TcxUnavailable
from shared.threecx_models import TcxUser
from sync.presence_run import reconcile_user
from sync.records import Link, OptionOverrides, PresenceState

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
USER = "u-ann"
LINK = Link(m365_id=USER, upn="ann@contoso.com", tcx_user_id=7, extension="101", origin="created")


@dataclass
class MemoryStore:
    """Presence state with ETags, like the table: a save with a stale etag is refused."""

    states: dict[str, PresenceState] = field(default_factory=dict)
    etags: itertools.count[int] = field(default_factory=itertools.count)
    before_save: list[Callable[[], object]] = field(default_factory=list)  # run before the next save

    def get_link(self, m365_id: str) -> Link | None:
        return LINK if m365_id == USER else None

    def links(self) -> dict[str, Link]:
        return {USER: LINK}

    def option_overrides(self) -> dict[str, OptionOverrides]:
        return {}

    def get_presence(self, m365_id: str) -> PresenceState | None:
        return self.states.get(m365_id)

    def presence_states(self) -> dict[str, PresenceState]:
        return dict(self.states)

    def save_presence(self, state: PresenceState) -> PresenceState:
        while self.before_save:
            self.before_save.pop(0)()
        current = self.states.get(state.m365_id)
        if (current.etag if current else None) != state.etag:
            raise ConcurrentUpdate(state.m365_id)
        saved = state.model_copy(update={"etag": f"e{next(self.etags)}"})
        self.states[state.m365_id] = saved
        return saved

    def delete_presence(self, m365_id: str) -> None:
        self.states.pop(m365_id, None)

    brake: datetime | None = None

    def graph_brake_until(self) -> datetime | None:
        return self.brake

    def brake_graph(self, until: datetime) -> None:
        self.brake = until


@dataclass
class Pbx:
    status: str = "Available"
    writes: list[str] = field(default_factory=list)
    fail_writes: bool = False
    time_out_after_writing: bool = False  # 3CX applied the write but the answer never came (504)
    selects: list[tuple[str, ...] | None] = field(default_factory=list)  # what each read asked for

    def get_user(self, user_id: int, select: Sequence[str] | None = None) -> TcxUser | None:
        self.selects.append(None if select is None else tuple(select))
        return TcxUser.model_validate({"Id": user_id, "Number": "101", "CurrentProfileName": self.status})

    def set_status(self, user_id: int, profile_name: str) -> None:
        if self.fail_writes:
            raise TcxUnavailable("3CX at https://pbx answered 504 to PATCH /Users(7)", 504)
        self.writes.append(profile_name)
        self.status = profile_name
        if self.time_out_after_writing:
            raise TcxUnavailable("3CX at https://pbx answered 504 to PATCH /Users(7)", 504)


@dataclass
class Calendar:
    events: list[GraphEvent] = field(default_factory=list)

    def calendar_view(self, user_id: str, start: datetime, end: datetime) -> list[GraphEvent]:
        return list(self.events)


@dataclass
class Ports:
    state: MemoryStore = field(default_factory=MemoryStore)
    graph: Calendar = field(default_factory=Calendar)
    tcx: Pbx = field(default_factory=Pbx)
    settings: Settings = field(default_factory=load_settings)


def meeting(start: datetime, end: datetime) -> GraphEvent:
    def stamp(moment: datetime) -> dict[str, str]:
        return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}

    return GraphEvent.model_validate({"id": "m1", "showAs": "busy", "start": stamp(start), "end": stamp(end)})


@pytest.fixture
def ports() -> Ports:
    ports = Ports()
    ports.graph.events = [meeting(T0, T0 + timedelta(hours=1))]
    return ports


def test_a_meeting_is_claimed_in_state_then_written_to_3cx(ports: Ports) -> None:
    assert reconcile_user(ports, USER, now=T0, refresh=True) == "changed"
    assert ports.tcx.writes == ["Out of office"]
    state = ports.state.states[USER]
    assert (state.applied_status, state.previous_status) == ("Out of office", "Available")


def test_the_status_read_asks_3cx_for_the_status_alone_never_the_picture(ports: Ports) -> None:
    """A user's `ContactImage` can be a large data URI: a status read selects what it needs."""
    reconcile_user(ports, USER, now=T0, refresh=True)
    assert ports.tcx.selects == [("CurrentProfileName",)]


def test_each_status_the_connector_writes_is_remembered_for_the_user_newest_last(ports: Ports) -> None:
    """The console shows a user's recent calendar-driven changes: kept with the state, ten at most."""
    reconcile_user(ports, USER, now=T0, refresh=True)
    (entry,) = ports.state.states[USER].recent_changes
    assert (entry.at, entry.action, entry.status_from, entry.status_to) == (T0, "set", "Available", "Out of office")


def test_a_status_write_that_fails_leaves_no_history_behind(ports: Ports) -> None:
    ports.tcx.fail_writes = True
    with pytest.raises(TcxUnavailable):
        reconcile_user(ports, USER, now=T0, refresh=True)
    assert ports.state.states[USER].recent_changes == []


def test_only_the_last_ten_changes_are_kept() -> None:
    from sync.presence_run import remember_change
    from sync.records import PresenceState

    state = PresenceState(m365_id=USER, tcx_user_id=7)
    for minute in range(12):
        state = remember_change(state, T0 + timedelta(minutes=minute), "set", "Available", "Out of office")
    assert len(state.recent_changes) == 10
    assert state.recent_changes[0].at == T0 + timedelta(minutes=2)


def test_a_failed_3cx_write_undoes_the_claim_so_the_next_attempt_decides_again(ports: Ports) -> None:
    ports.tcx.fail_writes = True
    with pytest.raises(TcxUnavailable):
        reconcile_user(ports, USER, now=T0, refresh=True)
    assert ports.state.states[USER].applied_status is None  # no claim left behind
    ports.tcx.fail_writes = False
    assert reconcile_user(ports, USER, now=T0 + timedelta(seconds=5), refresh=False) == "changed"
    assert ports.tcx.writes == ["Out of office"]


def test_of_two_racing_deciders_only_the_one_whose_claim_lands_writes(ports: Ports) -> None:
    """Another instance claims the same decision between our read and our save: we re-read,
    find it decided, and write nothing."""
    reconcile_user(ports, USER, now=T0 - timedelta(minutes=30), refresh=True)  # state exists, nothing due
    other = Ports(state=ports.state, graph=ports.graph, tcx=ports.tcx)
    ports.state.before_save.append(lambda: reconcile_user(other, USER, now=T0, refresh=False))

    assert reconcile_user(ports, USER, now=T0, refresh=False) == "unchanged"
    assert ports.tcx.writes == ["Out of office"]  # once, by the other instance


def test_a_user_without_calendar_status_is_forgotten_and_never_written(ports: Ports) -> None:
    reconcile_user(ports, USER, now=T0, refresh=True)
    assert reconcile_user(ports, USER, now=T0, refresh=True, enabled=False) == "skipped"
    assert USER not in ports.state.states
    assert ports.tcx.writes == ["Out of office"]


def test_a_status_write_3cx_applied_but_answered_504_still_restores_the_status_from_before(ports: Ports) -> None:
    """The fault: the retry saw the connector's own status in 3CX, stored it as the user's
    "previous" one, and the user stayed in Do Not Disturb after the meeting."""
    ports.tcx.status = "Custom 1"  # Lunch, before the meeting
    ports.tcx.time_out_after_writing = True
    with pytest.raises(TcxUnavailable):
        reconcile_user(ports, USER, now=T0, refresh=True)
    ports.tcx.time_out_after_writing = False

    assert reconcile_user(ports, USER, now=T0 + timedelta(seconds=30), refresh=False) == "unchanged"
    state = ports.state.states[USER]
    assert (state.applied_status, state.previous_status) == ("Out of office", "Custom 1")

    assert reconcile_user(ports, USER, now=T0 + timedelta(hours=1), refresh=False) == "reverted"
    assert ports.tcx.status == "Custom 1"


def test_a_failed_calendar_read_is_reported_to_the_run_and_the_stored_calendar_decides(ports: Ports) -> None:
    """The fault (found by the chaos soak): a calendar read that failed was only a log line."""
    calendar = "https://graph.fake.test/v1.0/users/u-ann/calendarView"
    reconcile_user(ports, USER, now=T0, refresh=True)  # the meeting is stored and applied

    def outage(user_id: str, start: datetime, end: datetime) -> list[GraphEvent]:
        raise GraphUnavailable(f"Microsoft Graph unavailable: GET {calendar} answered 503")

    ports.graph.calendar_view = outage  # type: ignore[method-assign]
    read_errors: list[str] = []
    outcome = reconcile_user(ports, USER, now=T0 + timedelta(hours=1), refresh=True, read_errors=read_errors)
    assert outcome == "reverted"  # the stored meeting ended: decided without the read
    assert read_errors == [f"u-ann: calendar not read: Microsoft Graph unavailable: GET {calendar} answered 503"]

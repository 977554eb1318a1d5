"""Calendar-driven status: reading calendars, writing 3CX, scheduling the next boundary.

`reconcile_user` is the one level-triggered step everything uses: a change notification,
a scheduled boundary, a lifecycle `missed`, and the periodic presence pass all call it. It
reads what it needs, decides with `sync.presence`, makes at most two 3CX requests (read the
current status, write the new one), saves the user's state with optimistic concurrency
(another instance may be deciding for the same user; on conflict it re-reads and decides
again), and puts a message on the work queue that becomes visible at the next boundary.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from shared.errors import UpstreamUnavailable, one_line
from shared.graph import GraphApiError
from shared.graph_models import GraphEvent
from shared.queues import WorkQueue
from shared.settings import Settings
from shared.state import ConcurrentUpdate
from shared.telemetry import log_event, record_status_change
from shared.threecx_models import TcxUser
from shared.work_items import BoundaryWork, Work
from sync.eligibility import Audience, calendar_read_due
from sync.envelope import RunReport, RunStore, run_envelope
from sync.options import tenant_defaults
from sync.presence import StatusChange, decide, map_events, needs_attention, next_boundary, wanted_interval
from sync.records import Link, OptionOverrides, PresenceState, StatusChangeEntry, StatusInterval

# The calendar window read per refresh: a little before now (an event running now overlaps
# it anyway) to two days ahead; the periodic pass re-reads long before the window runs out.
WINDOW_BEFORE = timedelta(minutes=5)
WINDOW_AFTER = timedelta(days=2)
_CONFLICT_RETRIES = 4
PRESENCE_LOCK = "presence-pass"
# A calendar Graph refuses (403: outside an Exchange RBAC scope; 404: no mailbox) is read again
# this rarely; one that fails for an outage backs off from a minute, doubling, up to an hour;
# an outage holds every calendar read back for GRAPH_BRAKE.
UNREADABLE_RETRY = timedelta(hours=6)
READ_BACKOFF_MAX = timedelta(hours=1)
GRAPH_BRAKE = timedelta(minutes=15)

Outcome = Literal["changed", "reverted", "unchanged", "failed", "skipped"]


class PresenceStore(Protocol):
    """The state calendar-driven status reads and writes (Table Storage in production)."""

    def get_link(self, m365_id: str) -> Link | None: ...

    def links(self) -> dict[str, Link]: ...

    def option_overrides(self) -> dict[str, OptionOverrides]: ...

    def get_presence(self, m365_id: str) -> PresenceState | None: ...

    def presence_states(self) -> dict[str, PresenceState]: ...

    def save_presence(self, state: PresenceState) -> PresenceState:
        """Write if unchanged since read (its etag), else raise `ConcurrentUpdate`."""
        ...

    def delete_presence(self, m365_id: str) -> None: ...

    def graph_brake_until(self) -> datetime | None: ...

    def brake_graph(self, until: datetime) -> None: ...


class PassStore(PresenceStore, RunStore, Protocol):
    """A presence pass also runs in the envelope: leases and run records."""


class Calendars(Protocol):
    def calendar_view(self, user_id: str, start: datetime, end: datetime) -> list[GraphEvent]: ...


class StatusBoard(Protocol):
    """The two 3CX calls of a status change: read the current status, set a new one."""

    def get_user(self, user_id: int, select: Sequence[str] | None = None) -> TcxUser | None: ...

    def set_status(self, user_id: int, profile_name: str) -> None: ...


class PresencePorts(Protocol):
    """What `reconcile_user` needs: settings, state, calendars and the PBX's statuses."""

    @property
    def settings(self) -> Settings: ...

    @property
    def state(self) -> PresenceStore: ...

    @property
    def graph(self) -> Calendars: ...

    @property
    def tcx(self) -> StatusBoard: ...


class PassPorts(PresencePorts, Protocol):
    @property
    def state(self) -> PassStore: ...


class Scheduler:
    """Where boundary messages go: the work queue in Azure and under `serve`, nowhere in a one-off pass."""

    def schedule(self, item: Work, delay: timedelta) -> None:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class QueueScheduler(Scheduler):
    queue: WorkQueue

    def schedule(self, item: Work, delay: timedelta) -> None:
        self.queue.send(item, visible_after=max(delay, timedelta(0)))


@dataclass
class PresenceCounts:
    changed: int = 0
    reverted: int = 0
    unchanged: int = 0
    failed: int = 0
    refreshed: int = 0
    held: int = 0  # calendar reads held back while Graph is unavailable
    unreadable: int = 0  # calendars Graph refuses, read again only rarely
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    aborted: str | None = None  # an outage stopped the pass

    def add(self, outcome: Outcome) -> None:
        match outcome:
            case "changed":
                self.changed += 1
            case "reverted":
                self.reverted += 1
            case "unchanged":
                self.unchanged += 1
            case "failed":
                self.failed += 1
            case "skipped":
                pass

    def as_dict(self) -> dict[str, int]:
        return {
            "changed": self.changed,
            "reverted": self.reverted,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "refreshed": self.refreshed,
            "held": self.held,
            "unreadable": self.unreadable,
        }


def calendar_enabled(rt: PresencePorts, link: Link | None) -> bool:
    """Whether this linked user has calendar-driven status (see `sync.eligibility`)."""
    if link is None:
        return False
    audience = Audience({link.m365_id: link}, tenant_defaults(rt.settings), rt.state.option_overrides())
    return audience.has_calendar(link.m365_id)


def reconcile_user(
    rt: PresencePorts,
    m365_id: str,
    *,
    now: datetime,
    refresh: bool,
    scheduler: Scheduler | None = None,
    link: Link | None = None,
    enabled: bool | None = None,
    read_errors: list[str] | None = None,
) -> Outcome:
    """Bring one user's 3CX status in line with their calendar at `now`.

    A calendar read that fails (refused, or Graph out) does not stop the decision, which is
    taken on the stored calendar; it is logged and, one line each, appended to
    `read_errors`, so the run that tried it records it.
    """
    link = link if link is not None else rt.state.get_link(m365_id)
    enabled = calendar_enabled(rt, link) if enabled is None else enabled
    state = rt.state.get_presence(m365_id)
    if not enabled or link is None:
        if state is not None:
            rt.state.delete_presence(m365_id)  # forget; the status itself is never touched
        return "skipped"
    if state is None:
        state = PresenceState(m365_id=m365_id, tcx_user_id=link.tcx_user_id)
    elif state.tcx_user_id != link.tcx_user_id:  # its 3CX user was recreated: start afresh
        state = PresenceState(m365_id=m365_id, tcx_user_id=link.tcx_user_id, etag=state.etag)
    intervals = None
    if refresh and _braked(rt, now):
        refresh = False  # Graph was unavailable a moment ago: decide on what is stored
    if refresh:
        try:
            events = rt.graph.calendar_view(m365_id, now - WINDOW_BEFORE, now + WINDOW_AFTER)
            intervals = map_events(events, rt.settings.status_map, ZoneInfo(rt.settings.calendar_time_zone))
        except GraphApiError as error:  # refused: this calendar only, read again rarely
            state = _read_failed(state, now, unreadable=f"{error.status} {error.code}")
            log_event("calendar_unreadable", logging.WARNING, kind="presence", user=m365_id, error=one_line(error))
            _report_read_error(read_errors, m365_id, error)
        except UpstreamUnavailable as error:  # an outage: back off, and hold every read back for a while
            state = _read_failed(state, now, unreadable=None)
            rt.state.brake_graph(now + GRAPH_BRAKE)
            log_event("calendar_read_failed", logging.WARNING, kind="presence", user=m365_id, error=one_line(error))
            _report_read_error(read_errors, m365_id, error)
    for _attempt in range(_CONFLICT_RETRIES):
        if intervals is not None:
            state = state.model_copy(update={"intervals": intervals, "refreshed_at": now, **_READ_OK})
        decision = _decide(rt, state, now)
        # Claim the decision in state first (ETag): a conflict then costs nothing but a re-read,
        # because 3CX has not been written yet. Only the winner writes to 3CX.
        try:
            saved = rt.state.save_presence(decision.state)
        except ConcurrentUpdate:
            state = rt.state.get_presence(m365_id) or PresenceState(m365_id=m365_id, tcx_user_id=link.tcx_user_id)
            continue
        if decision.change is not None:
            try:
                rt.tcx.set_status(state.tcx_user_id, decision.change.status)
            except Exception:
                # Undo the claim so the next attempt (queue retry, presence pass) decides again,
                # remembering what was written: 3CX may have applied it before the answer failed,
                # and then it must not pass for the user's own status.
                undone = {
                    "etag": saved.etag,
                    "pending_status": decision.change.status,
                    "previous_status": state.previous_status or decision.state.previous_status,
                }
                with contextlib.suppress(ConcurrentUpdate):
                    rt.state.save_presence(state.model_copy(update=undone))
                raise
            _log_change(decision, link, now)
        if decision.scheduled is not None and scheduler is not None:
            due = decision.scheduled
            scheduler.schedule(BoundaryWork(user_id=m365_id, due=due), due - now)
        return decision.outcome
    raise ConcurrentUpdate(m365_id)


def _report_read_error(read_errors: list[str] | None, m365_id: str, error: Exception) -> None:
    if read_errors is not None:
        read_errors.append(f"{m365_id}: calendar not read: {one_line(error)}")


_READ_OK: dict[str, object] = {"refresh_queued_at": None, "read_failures": 0, "read_again_at": None, "unreadable": None}


def _read_failed(state: PresenceState, now: datetime, *, unreadable: str | None) -> PresenceState:
    """The state after a failed calendar read: when to try again, and why not sooner."""
    failures = state.read_failures + 1
    wait = UNREADABLE_RETRY if unreadable else min(READ_BACKOFF_MAX, timedelta(minutes=2 ** (failures - 1)))
    update = {"read_failures": failures, "read_again_at": now + wait, "unreadable": unreadable}
    return state.model_copy(update={**update, "refresh_queued_at": None})


def _mark_queued(rt: PassPorts, state: PresenceState, now: datetime) -> None:
    """Remember that a read is queued, so the next passes do not queue it again."""
    with contextlib.suppress(ConcurrentUpdate):  # someone else is deciding for this user: fine
        rt.state.save_presence(state.model_copy(update={"refresh_queued_at": now}))


def _braked(rt: PresencePorts, now: datetime) -> bool:
    until = rt.state.graph_brake_until()
    return until is not None and now < until


@dataclass
class _Decision:
    outcome: Outcome
    state: PresenceState  # the state after the change
    change: StatusChange | None = None
    current: str | None = None
    interval: StatusInterval | None = None
    scheduled: datetime | None = None  # a new boundary to put on the queue


def _decide(rt: PresencePorts, state: PresenceState, now: datetime) -> _Decision:
    interval = wanted_interval(state.intervals, now)
    wanted = interval.status if interval else None
    decision = _Decision("unchanged", state, interval=interval)
    if needs_attention(state, wanted):
        # The status alone: a user's `ContactImage` can be a large data URI.
        current_user = rt.tcx.get_user(state.tcx_user_id, select=("CurrentProfileName",))
        decision.current = current_user.current_profile_name if current_user else None
        decision.change, decision.state = decide(state, wanted, decision.current)
        if decision.change is not None:
            decision.outcome = "reverted" if decision.change.kind == "restore" else "changed"
            # Claimed with the decision: a write that fails undoes both.
            change = decision.change
            decision.state = remember_change(decision.state, now, change.kind, decision.current, change.status)
    boundary = next_boundary(decision.state.intervals, now)
    decision.scheduled = boundary if boundary is not None and boundary != state.next_boundary else None
    decision.state = decision.state.model_copy(update={"next_boundary": boundary})
    return decision


RECENT_CHANGES_KEPT = 10


def remember_change(
    state: PresenceState, at: datetime, action: str, status_from: str | None, status_to: str
) -> PresenceState:
    """`state` with this write added to the user's recent changes (the last ten, newest last)."""
    entry = StatusChangeEntry(at=at, action=action, status_from=status_from, status_to=status_to)
    return state.model_copy(update={"recent_changes": [*state.recent_changes, entry][-RECENT_CHANGES_KEPT:]})


def _log_change(decision: _Decision, link: Link, now: datetime) -> None:
    """One line per status change, with how late it came against the event's start or end."""
    change = decision.change
    assert change is not None
    if change.kind == "set" and decision.interval is not None:
        moment: datetime | None = decision.interval.start
    else:
        moment = _last_end(decision.state, now)
    lag_ms = int((now - moment).total_seconds() * 1000) if moment else None
    record_status_change(change.kind, change.status, lag_ms)
    log_event(
        "status_change",
        kind="presence",
        user=link.m365_id,
        upn=link.upn,
        extension=link.extension,
        action=change.kind,
        status_from=decision.current,
        status_to=change.status,
        lag_ms=lag_ms,
    )


def _last_end(state: PresenceState, now: datetime) -> datetime | None:
    """The most recent interval end at or before now: what a restore is late against."""
    ends = [interval.end for interval in state.intervals if interval.end <= now]
    return max(ends, default=None)


def run_presence_pass(
    rt: PassPorts,
    *,
    now: datetime | None = None,
    scheduler: Scheduler | None = None,
    enqueue_refresh: Callable[[str], None] | None = None,
    refresh_all: bool = False,
    trigger: str = "cli",
) -> PresenceCounts:
    """One presence pass: refresh calendars that are due, apply the status each user should have now.

    With `enqueue_refresh`, due calendars are handed to the queue (the worker reads them, in
    parallel); without it they are read here, one after the other. One user's failure never
    stops the pass; an outage (3CX or Graph unreachable) does, since every further user
    would fail the same way. `LockHeld` if another pass is still running.
    """
    now = now or datetime.now(UTC)
    counts = PresenceCounts()
    with run_envelope(rt.state, "presence", trigger=trigger, lock=PRESENCE_LOCK) as run:
        try:
            _pass(rt, counts, now, scheduler, enqueue_refresh, refresh_all)
        except UpstreamUnavailable as error:
            counts.aborted = one_line(error)
        finally:
            run.report = RunReport(
                counts=counts.as_dict(), failures=list(counts.errors), skipped=counts.skipped, aborted=counts.aborted
            )
    return counts


def _pass(
    rt: PassPorts,
    counts: PresenceCounts,
    now: datetime,
    scheduler: Scheduler | None,
    enqueue_refresh: Callable[[str], None] | None,
    refresh_all: bool,
) -> None:
    audience = Audience.of(rt.state, rt.settings)
    calendar_users = audience.calendar_users()
    states = rt.state.presence_states()
    # Users who left or turned the option off: forget their state (their status is never touched).
    for m365_id in set(states) - set(calendar_users):
        rt.state.delete_presence(m365_id)
    braked = _braked(rt, now)
    for m365_id, link in calendar_users.items():
        state = states.get(m365_id)
        if state is not None and state.unreadable:
            counts.unreadable += 1
            again = f"{state.read_again_at:%Y-%m-%d %H:%M} UTC" if state.read_again_at else "later"
            counts.skipped.append(f"{link.upn}: calendar unreadable ({state.unreadable}); read again after {again}")
        due = calendar_read_due(state, now, rt.settings.calendar_refresh_minutes, everyone=refresh_all)
        if due and braked:
            counts.held += 1  # Graph was unavailable a moment ago: no read now, the brake lifts by itself
            due = False
        if due and enqueue_refresh is not None:
            enqueue_refresh(m365_id)
            _mark_queued(rt, state or PresenceState(m365_id=m365_id, tcx_user_id=link.tcx_user_id), now)
            counts.refreshed += 1
            continue
        if not due:
            interval = wanted_interval(state.intervals, now) if state is not None else None
            if state is None or not needs_attention(state, interval.status if interval else None):
                counts.unchanged += 1
                continue
        try:
            outcome = reconcile_user(
                rt,
                m365_id,
                now=now,
                refresh=due,
                scheduler=scheduler,
                link=link,
                enabled=True,
                read_errors=counts.errors,
            )
        except UpstreamUnavailable:
            raise
        except Exception as error:  # one user's failure never stops the pass
            counts.failed += 1
            counts.errors.append(f"{link.upn}: {one_line(error)}")
            log_event("status_failed", logging.WARNING, kind="presence", user=m365_id, error=one_line(error)[:300])
            continue
        counts.refreshed += int(due)
        counts.add(outcome)

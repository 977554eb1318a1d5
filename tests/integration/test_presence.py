"""Calendar-driven status end to end in process: Graph notifications → webhook → worker → 3CX.

Graph and 3CX are the stateful fakes, storage is Azurite, the webhook is the real Function
handler; time is controlled (`now` is passed in), so boundaries are exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from shared.work_items import CalendarWork, Work
from sync.presence_run import Scheduler, reconcile_user, run_presence_pass
from sync.records import PresenceState
from sync.runtime import process_runtime
from sync.subscription_upkeep import reconcile_subscriptions
from sync.user_sync import run_user_sync
from sync.worker import Done, RequeueAfter, handle_work
from tests.conftest import Tenant

# Now, to the hour: the Graph fake checks subscription expiry against the real clock.
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class Recorder(Scheduler):
    """A scheduler that keeps boundary messages for the test to deliver when it likes."""

    items: list[tuple[Work, timedelta]] = field(default_factory=list)

    def schedule(self, item: Work, delay: timedelta) -> None:
        self.items.append((item, delay))


@pytest.fixture
def office(tenant_env: Tenant, monkeypatch: pytest.MonkeyPatch) -> Tenant:
    """Three synced users, the webhook connected, subscriptions made."""
    tenant_env.add_users(3)
    run_user_sync(tenant_env.runtime())
    tenant_env.queued = tenant_env.connect_webhook(monkeypatch)  # type: ignore[attr-defined]
    reconcile_subscriptions(process_runtime(), now=T0)
    return tenant_env


def _status(tenant: Tenant, upn: str) -> str:
    return next(u for u in tenant.pbx.users.values() if u["EmailAddress"] == upn)["CurrentProfileName"]


def _id(tenant: Tenant, upn: str) -> str:
    return next(uid for uid, u in tenant.graph.users.items() if u["userPrincipalName"] == upn)


def _drain(tenant: Tenant, scheduler: Recorder, now: datetime) -> list[str]:
    """Run every queued notification through the worker, as the queue trigger would; the outcomes."""
    results = []
    while tenant.queued:  # type: ignore[attr-defined]
        result = handle_work(process_runtime(), tenant.queued.pop(0), scheduler, now=now)  # type: ignore[attr-defined]
        assert isinstance(result, Done), result
        results.append(result.outcome)
    return results


def test_subscriptions_are_made_for_each_calendar_and_for_users(office: Tenant) -> None:
    resources = sorted(s.resource for s in office.graph.subscriptions.values())
    user_ids = sorted(office.state.links())
    assert resources == sorted(["/users", *[f"/users/{uid}/events" for uid in user_ids]])
    records = office.state.subscriptions()
    assert len(records) == 4
    assert len({r.client_state for r in records.values()}) == 4  # one secret each


def test_a_meeting_notification_sets_dnd_and_the_end_boundary_restores(office: Tenant) -> None:
    upn = "user001@contoso.com"
    uid = _id(office, upn)
    office.graph.add_event(uid, start=T0 - timedelta(minutes=5), end=T0 + timedelta(minutes=30))
    assert len(office.queued) == 1  # type: ignore[attr-defined]
    scheduler = Recorder()

    assert _drain(office, scheduler, T0) == ["changed"]
    assert _status(office, upn) == "Out of office"
    (boundary, delay) = scheduler.items[-1]
    assert boundary.kind == "boundary" and boundary.due == T0 + timedelta(minutes=30)
    assert delay == timedelta(minutes=30)

    assert handle_work(process_runtime(), boundary, scheduler, now=boundary.due) == Done("reverted")
    assert _status(office, upn) == "Available"
    assert [_status(office, f"user00{i}@contoso.com") for i in (0, 2)] == ["Available", "Available"]


def test_a_meeting_later_today_is_applied_at_its_start(office: Tenant) -> None:
    uid = _id(office, "user000@contoso.com")
    office.graph.add_event(uid, start=T0 + timedelta(hours=2), end=T0 + timedelta(hours=3), show_as="oof")
    scheduler = Recorder()
    assert _drain(office, scheduler, T0) == ["unchanged"]
    start_item, delay = scheduler.items[-1]
    assert delay == timedelta(hours=2)
    early = handle_work(process_runtime(), start_item, scheduler, now=T0 + timedelta(hours=1, minutes=59, seconds=58))
    assert isinstance(early, RequeueAfter)  # visible too early: back on the queue for the rest
    assert early.delay == timedelta(seconds=2)
    assert handle_work(process_runtime(), start_item, scheduler, now=T0 + timedelta(hours=2)) == Done("changed")
    assert _status(office, "user000@contoso.com") == "Away"


def test_a_cancelled_meeting_restores_the_status(office: Tenant) -> None:
    uid = _id(office, "user000@contoso.com")
    event_id = office.graph.add_event(uid, start=T0 - timedelta(minutes=1), end=T0 + timedelta(hours=1))
    scheduler = Recorder()
    _drain(office, scheduler, T0)
    office.graph.cancel_event(uid, event_id)
    assert _drain(office, scheduler, T0 + timedelta(minutes=10)) == ["reverted"]
    assert _status(office, "user000@contoso.com") == "Available"


def test_duplicate_and_out_of_order_notifications_are_harmless(office: Tenant) -> None:
    uid = _id(office, "user002@contoso.com")
    with office.graph.held_notifications():
        event_id = office.graph.add_event(uid, start=T0, end=T0 + timedelta(hours=1))
        office.graph.update_event(uid, event_id, end=T0 + timedelta(hours=2))
        pending = list(office.graph.pending_notifications)
        office.graph.pending_notifications.clear()
    for notification in [*reversed(pending), *pending]:
        office.graph.deliver_notification(notification)
    scheduler = Recorder()
    assert sorted(_drain(office, scheduler, T0 + timedelta(minutes=1))) == [
        "changed",
        "unchanged",
        "unchanged",
        "unchanged",
    ]
    state = office.state.get_presence(uid)
    assert state is not None and state.intervals[0].end == T0 + timedelta(hours=2)
    boundary = next(item for item, _ in reversed(scheduler.items) if item.kind == "boundary")
    assert handle_work(process_runtime(), boundary, scheduler, now=T0 + timedelta(hours=2)) == Done("reverted")


def test_at_most_two_graph_requests_per_notification_and_two_3cx_requests_per_change(office: Tenant) -> None:
    uid = _id(office, "user000@contoso.com")
    office.graph.add_event(uid, start=T0, end=T0 + timedelta(hours=1))
    office.graph.reset_counts()
    office.reset_pbx_counts()
    _drain(office, Recorder(), T0 + timedelta(minutes=1))
    graph_requests = sum(office.graph.request_counts.values())
    pbx_requests = sum(office.pbx.request_counts.values()) - (office.pbx.tokens_issued - office._tokens_at_reset)
    assert graph_requests <= 2
    assert office.graph.route_counts["GET /users/{key}/calendarView"] == 1
    assert pbx_requests == 2  # read the current status, write the new one


def test_a_status_changed_by_hand_during_the_meeting_wins(office: Tenant) -> None:
    upn = "user001@contoso.com"
    uid = _id(office, upn)
    office.graph.add_event(uid, start=T0, end=T0 + timedelta(hours=1))
    scheduler = Recorder()
    _drain(office, scheduler, T0)
    tcx_id = office.state.links()[uid].tcx_user_id
    office.pbx.set_status(tcx_id, "Custom 2")
    boundary = scheduler.items[-1][0]
    assert handle_work(process_runtime(), boundary, scheduler, now=T0 + timedelta(hours=1)) == Done("unchanged")
    assert _status(office, upn) == "Custom 2"


def test_calendar_option_off_never_changes_the_status(office: Tenant) -> None:
    from sync.option_admin import set_user_options

    upn = "user000@contoso.com"
    uid = _id(office, upn)
    set_user_options(process_runtime(), upn, {"calendar": False})
    office.graph.add_event(uid, start=T0, end=T0 + timedelta(hours=1))
    handle_work(process_runtime(), CalendarWork(user_id=uid), Recorder(), now=T0)
    assert _status(office, upn) == "Available"
    assert office.state.get_presence(uid) is None
    result = reconcile_subscriptions(process_runtime(), now=T0)
    assert result.deleted == 1
    assert f"/users/{uid}/events" not in {s.resource for s in office.graph.subscriptions.values()}


def test_a_pass_with_nothing_due_makes_no_requests(office: Tenant) -> None:
    rt = process_runtime()
    first = run_presence_pass(rt, now=T0, scheduler=Recorder())
    assert first.refreshed == 3
    office.graph.reset_counts()
    office.reset_pbx_counts()
    again = run_presence_pass(rt, now=T0 + timedelta(minutes=1), scheduler=Recorder())
    assert again.unchanged == 3 and again.refreshed == 0
    assert sum(office.graph.request_counts.values()) == 0
    assert sum(office.pbx.request_counts.values()) == 0


def test_the_pass_catches_what_a_lost_notification_missed(office: Tenant) -> None:
    uid = _id(office, "user000@contoso.com")
    rt = process_runtime()
    run_presence_pass(rt, now=T0, scheduler=Recorder())
    with office.graph.held_notifications():
        office.graph.add_event(uid, start=T0 + timedelta(minutes=5), end=T0 + timedelta(hours=1))
        office.graph.pending_notifications.clear()  # lost
    counts = run_presence_pass(rt, now=T0 + timedelta(minutes=16), scheduler=Recorder())
    assert counts.changed == 1
    assert _status(office, "user000@contoso.com") == "Out of office"


def test_lifecycle_events(office: Tenant) -> None:
    uid = _id(office, "user001@contoso.com")
    records = {r.user_id: r for r in office.state.subscriptions().values()}
    calendar_sub = records[uid]
    office.graph.add_event(uid, start=T0, end=T0 + timedelta(hours=1))
    office.queued.clear()  # type: ignore[attr-defined]
    scheduler = Recorder()

    office.graph.send_lifecycle(calendar_sub.id, "missed")
    assert _drain(office, scheduler, T0) == ["changed"]  # missed → the calendar is re-read

    office.graph.send_lifecycle(calendar_sub.id, "reauthorizationRequired")
    _drain(office, scheduler, T0)
    assert calendar_sub.id in office.graph.subscriptions

    office.graph.send_lifecycle(calendar_sub.id, "subscriptionRemoved")
    _drain(office, scheduler, T0)
    new = {r.user_id: r for r in office.state.subscriptions().values()}[uid]
    assert new.id != calendar_sub.id and new.id in office.graph.subscriptions
    assert calendar_sub.id not in office.state.subscriptions()


def test_a_forged_notification_is_dropped(office: Tenant) -> None:
    from devhost.serve import call_route, discover
    from function_app import registered_functions

    uid = _id(office, "user000@contoso.com")
    record = next(r for r in office.state.subscriptions().values() if r.user_id == uid)
    forged = {
        "subscriptionId": record.id,
        "clientState": "guess",
        "changeType": "created",
        "tenantId": office.env["GRAPH_TENANT_ID"],
        "resource": f"Users/{uid}/Events/x",
        "subscriptionExpirationDateTime": "2026-12-01T00:00:00Z",
    }
    body = json.dumps({"value": [forged]}).encode()
    route = next(r for r in discover(registered_functions()).routes if r.name == "graph_notifications")
    sent: list = []

    class Collect:
        def send(self, name, value):
            sent.append(value)

    response = call_route(route, "POST", "https://x/api/graph/notifications", {}, body, {}, Collect())
    assert response.status_code == 202
    assert sent == []


def test_user_changes_reach_3cx_through_the_users_subscription(office: Tenant) -> None:
    uid = _id(office, "user002@contoso.com")
    office.graph.update_user(uid, displayName="Promoted Person")
    items = [item for item in office.queued if item.kind == "user"]  # type: ignore[attr-defined]
    assert [item.user_id for item in items] == [uid]
    _drain(office, Recorder(), T0)
    assert (
        next(u for u in office.pbx.users.values() if u["EmailAddress"] == "user002@contoso.com")["DisplayName"]
        == "Promoted Person"
    )


def test_concurrent_writers_are_detected_by_etag(office: Tenant) -> None:
    from shared.state import ConcurrentUpdate

    state = office.state.save_presence(PresenceState(m365_id="x", tcx_user_id=1))
    office.state.save_presence(state.model_copy(update={"applied_status": "Away"}))
    with pytest.raises(ConcurrentUpdate):
        office.state.save_presence(state.model_copy(update={"applied_status": "Out of office"}))
    with pytest.raises(ConcurrentUpdate):
        office.state.save_presence(PresenceState(m365_id="x", tcx_user_id=1))


def test_a_conflicting_update_is_re_decided(office: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.state import ConcurrentUpdate, StateStore

    uid = _id(office, "user000@contoso.com")
    office.graph.add_event(uid, start=T0, end=T0 + timedelta(hours=1))
    original = StateStore.save_presence
    calls = {"n": 0}

    def flaky(self, state):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConcurrentUpdate(state.m365_id)
        return original(self, state)

    monkeypatch.setattr(StateStore, "save_presence", flaky)
    assert reconcile_user(process_runtime(), uid, now=T0, refresh=True) == "changed"
    assert calls["n"] == 2
    assert _status(office, "user000@contoso.com") == "Out of office"


def test_a_failed_3cx_write_is_retried_not_lost(office: Tenant) -> None:
    from shared.threecx import TcxApiError

    uid = _id(office, "user000@contoso.com")
    office.graph.add_event(uid, start=T0, end=T0 + timedelta(hours=1))
    office.pbx.inject(400, count=1, method="PATCH")
    with pytest.raises(TcxApiError):
        reconcile_user(process_runtime(), uid, now=T0, refresh=True)
    assert office.state.get_presence(uid).applied_status is None  # the claim was undone
    assert reconcile_user(process_runtime(), uid, now=T0 + timedelta(seconds=5), refresh=False) == "changed"
    assert _status(office, "user000@contoso.com") == "Out of office"


def test_a_boundary_message_a_moment_early_is_decided_as_of_the_boundary(office: Tenant) -> None:
    uid = _id(office, "user001@contoso.com")
    office.graph.add_event(uid, start=T0 + timedelta(minutes=10), end=T0 + timedelta(minutes=40))
    scheduler = Recorder()
    _drain(office, scheduler, T0)
    start_item = scheduler.items[-1][0]
    early = start_item.due - timedelta(milliseconds=600)  # e.g. clocks of two instances differ
    assert handle_work(process_runtime(), start_item, scheduler, now=early) == Done("changed")
    assert _status(office, "user001@contoso.com") == "Out of office"
    assert scheduler.items[-1][0].due == T0 + timedelta(minutes=40)


def test_paused_means_queued_work_changes_nothing(office: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    from sync.runtime import reset_process_runtime

    uid = _id(office, "user000@contoso.com")
    office.graph.add_event(uid, start=T0, end=T0 + timedelta(hours=1))
    monkeypatch.setenv("SYNC_PAUSED", "true")
    reset_process_runtime()
    assert _drain(office, Recorder(), T0) == ["paused"]
    assert _status(office, "user000@contoso.com") == "Available"


def _queued_pass(rt, now: datetime) -> tuple[list[str], object]:
    """A presence pass as the timer runs it: due calendars handed to the queue (recorded here)."""
    queued: list[str] = []
    counts = run_presence_pass(rt, now=now, scheduler=Recorder(), enqueue_refresh=queued.append)
    return queued, counts


def test_a_calendar_is_queued_for_a_refresh_at_most_once(office: Tenant) -> None:
    """The fault: every pass queued every stale calendar again, with no memory of what was queued."""
    rt = process_runtime()
    first, _ = _queued_pass(rt, T0)
    assert len(first) == 3
    again, _ = _queued_pass(rt, T0 + timedelta(minutes=1))
    assert again == []  # still queued: not again
    lost, _ = _queued_pass(rt, T0 + timedelta(minutes=16))
    assert sorted(lost) == sorted(first)  # queued long ago and never read: the message is taken as lost


def test_a_calendar_graph_refuses_is_marked_unreadable_and_read_rarely(office: Tenant) -> None:
    """The fault: a calendar answering 403 (an Exchange RBAC scope) was queued every minute and poisoned."""
    uid = _id(office, "user001@contoso.com")
    office.graph.inject(403, count=100, path_pattern=rf"/users/{uid}/calendarView")
    rt = process_runtime()
    queued, _ = _queued_pass(rt, T0)
    for user_id in queued:
        result = handle_work(rt, CalendarWork(user_id=user_id), Recorder(), now=T0)
        assert isinstance(result, Done)  # nothing raised: no retry, no poison queue

    queued, counts = _queued_pass(rt, T0 + timedelta(hours=1))
    assert uid not in queued and len(queued) == 2  # the others are simply due again
    (record,) = [r for r in office.state.recent_runs("presence", 10) if r.trigger == "cli"][:1]
    assert record.counts["unreadable"] == 1
    assert any(line.startswith("user001@contoso.com: calendar unreadable (403") for line in record.skipped)
    later, _ = _queued_pass(rt, T0 + timedelta(hours=7))
    assert uid in later  # tried again, rarely


def test_while_graph_is_unavailable_the_pass_queues_no_refresh(office: Tenant) -> None:
    """The fault: in a Graph outage every stale calendar was queued every minute (600,000 messages an
    hour for 10,000 users)."""
    office.graph.inject(503, count=1000, path_pattern=r"/calendarView")
    rt = process_runtime()
    queued, _ = _queued_pass(rt, T0)
    handle_work(rt, CalendarWork(user_id=queued[0]), Recorder(), now=T0)  # meets the outage

    braked, counts = _queued_pass(rt, T0 + timedelta(minutes=10))
    assert braked == []
    assert counts.held == 1  # due again after its backoff, held back by the brake (the others are still queued)
    office.graph.faults.clear()
    after, _ = _queued_pass(rt, T0 + timedelta(hours=2))
    assert len(after) == 3


def test_a_calendar_read_that_meets_an_outage_is_recorded_on_its_run(office: Tenant) -> None:
    """The fault (found by the chaos soak): a queued calendar read that met a Graph outage was
    recorded as a succeeded run with no error; only a log line said it failed."""
    uid = _id(office, "user000@contoso.com")
    office.graph.inject(503, count=10, retry_after=0, path_pattern=r"/calendarView")
    result = handle_work(process_runtime(), CalendarWork(user_id=uid), Recorder(), now=T0)
    assert result == Done("unchanged")  # decided on what is stored; the backoff says when to read again
    (record,) = [r for r in office.state.recent_runs("presence", 10) if r.trigger == "queue"][:1]
    assert record.status == "partial"
    assert len(record.errors) == 1 and record.errors[0].startswith(f"{uid}: calendar not read: Microsoft Graph")


def test_a_calendar_graph_refuses_is_recorded_on_the_run_that_read_it(office: Tenant) -> None:
    uid = _id(office, "user001@contoso.com")
    office.graph.inject(403, count=1, path_pattern=rf"/users/{uid}/calendarView")
    assert handle_work(process_runtime(), CalendarWork(user_id=uid), Recorder(), now=T0) == Done("unchanged")
    (record,) = [r for r in office.state.recent_runs("presence", 10) if r.trigger == "queue"][:1]
    assert record.status == "partial"
    assert record.errors[0].startswith(f"{uid}: calendar not read: ")
    assert "403" in record.errors[0]


def test_a_calendar_read_a_pass_makes_itself_that_fails_is_recorded_on_the_pass(office: Tenant) -> None:
    office.graph.inject(503, count=10, retry_after=0, path_pattern=r"/calendarView")
    run_presence_pass(process_runtime(), now=T0)  # `python -m sync presence`: reads calendars itself
    (record,) = [r for r in office.state.recent_runs("presence", 10) if r.trigger == "cli"][:1]
    assert record.status == "partial"
    # The first read met the outage; the brake kept the others from trying.
    assert len(record.errors) == 1 and ": calendar not read: Microsoft Graph unavailable" in record.errors[0]

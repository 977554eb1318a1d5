"""The Function App's triggers, called as the Functions host calls them."""

from __future__ import annotations

import json
import logging
import secrets
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

from sync.records import SubscriptionRecord
from sync.user_sync import LOCK_NAME
from tests.conftest import Tenant
from tests.function_app_support import call, function


class _Timer(func.TimerRequest):
    @property
    def past_due(self) -> bool:
        return False


def test_timer_runs_the_user_sync(tenant_env: Tenant) -> None:
    tenant_env.add_users(2)
    function("user_sync_timer").get_user_function()(_Timer())
    assert len(tenant_env.pbx.users) == 2
    assert tenant_env.state.recent_runs("users")[0].status == "succeeded"


def test_timer_skips_when_paused_or_busy(tenant_env: Tenant, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    tenant_env.add_users(1)
    monkeypatch.setenv("SYNC_PAUSED", "true")
    with caplog.at_level(logging.INFO):
        function("user_sync_timer").get_user_function()(_Timer())
    assert not tenant_env.pbx.users
    assert any("SYNC_PAUSED" in r.getMessage() for r in caplog.records)

    from sync.runtime import reset_process_runtime

    reset_process_runtime()
    monkeypatch.setenv("SYNC_PAUSED", "false")
    from sync import jobs

    monkeypatch.setattr(jobs, "NIGHTLY_LOCK_WAIT", timedelta(0))  # busy past the wait (waiting: tested below)
    with tenant_env.state.lock(LOCK_NAME, ttl=timedelta(minutes=1)), caplog.at_level(logging.INFO):
        function("user_sync_timer").get_user_function()(_Timer())
    assert not tenant_env.pbx.users
    assert any("run_skipped" in r.getMessage() for r in caplog.records)


def test_plan_route_returns_the_plan_and_writes_nothing(tenant_env: Tenant) -> None:
    tenant_env.add_users(2)
    response = call("admin_user_plan", "GET", "admin/users/plan")
    assert response.status_code == 200
    body = json.loads(response.get_body())
    assert body["created"] == 2 and len(body["actions"]) == 2
    assert not tenant_env.pbx.users


def test_run_route_runs_now_and_provisions_one_user_on_demand(tenant_env: Tenant) -> None:
    tenant_env.add_users(3)
    response = call("admin_user_run", "POST", "admin/users/run", params={"only": "user002@contoso.com"})
    assert response.status_code == 200
    assert json.loads(response.get_body())["created"] == 1
    assert [u["EmailAddress"] for u in tenant_env.pbx.users.values()] == ["user002@contoso.com"]
    missing = call("admin_user_run", "POST", "admin/users/run", params={"only": "ghost@contoso.com"})
    assert missing.status_code == 404


def test_run_route_answers_409_while_a_run_is_in_progress(tenant_env: Tenant) -> None:
    with tenant_env.state.lock(LOCK_NAME, ttl=timedelta(minutes=1)):
        response = call("admin_user_run", "POST", "admin/users/run")
    assert response.status_code == 409


def test_options_routes(tenant_env: Tenant) -> None:
    tenant_env.add_users(1)
    upn = {"upn": "user000@contoso.com"}
    put = call(
        "admin_options_user", "PUT", "admin/options/user000@contoso.com", route_params=upn, body=b'{"photo": true}'
    )
    assert put.status_code == 200
    assert json.loads(put.get_body())["user"]["effective"]["photo"] is True
    listing = json.loads(call("admin_options_list", "GET", "admin/options").get_body())
    assert [u["upn"] for u in listing["users"]] == ["user000@contoso.com"]
    reset = call("admin_options_user", "DELETE", "admin/options/user000@contoso.com", route_params=upn)
    assert json.loads(reset.get_body())["user"]["overrides"] == {}


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"not json", 400), (b"[]", 400), (b"{}", 400), (b'{"colour": true}', 400), (b'{"photo": "perhaps"}', 400)],
)
def test_options_route_rejects_bad_bodies(tenant_env: Tenant, body: bytes, status: int) -> None:
    tenant_env.add_users(1)
    response = call(
        "admin_options_user", "PUT", "admin/options/x", route_params={"upn": "user000@contoso.com"}, body=body
    )
    assert response.status_code == status
    assert "error" in json.loads(response.get_body())


def test_options_route_for_an_unknown_user_is_404(tenant_env: Tenant) -> None:
    response = call("admin_options_user", "GET", "admin/options/x", route_params={"upn": "ghost@contoso.com"})
    assert response.status_code == 404


class _Out(func.Out):
    def __init__(self) -> None:
        self.value = None

    def set(self, val) -> None:
        self.value = val

    def get(self):
        return self.value


def _webhook(name: str, body: bytes, params=None) -> tuple[func.HttpResponse, _Out]:
    request = func.HttpRequest(method="POST", url=f"http://localhost/api/graph/{name}", params=params or {}, body=body)
    out = _Out()
    response = function(f"graph_{name}").get_user_function()(request, work=out)
    return response, out


@pytest.mark.parametrize("route", ["notifications", "lifecycle"])
def test_webhook_handshake_echoes_the_decoded_token_as_plain_text(tenant_env: Tenant, route: str) -> None:
    token = "Validation: Testing client application reachability for subscription Request-Id: 1 <b>"
    response, out = _webhook(route, b"", params={"validationToken": token})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_body().decode() == token
    assert out.value is None


@pytest.mark.parametrize("body", [b"{not json", b'{"value": "nope"}', b"[]"])
def test_webhook_rejects_malformed_bodies_with_400(tenant_env: Tenant, body: bytes) -> None:
    response, out = _webhook("notifications", body)
    assert response.status_code == 400
    assert out.value is None


CALENDAR_USER = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"


def _stored_calendar_subscription(rt) -> SubscriptionRecord:
    record = SubscriptionRecord(
        id="sub-1",
        kind="calendar",
        resource=f"/users/{CALENDAR_USER}/events",
        user_id=CALENDAR_USER,
        client_state="s" * 40,
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    rt.state.save_subscription(record)
    return record


def _calendar_notification(tenant: Tenant, record: SubscriptionRecord) -> dict[str, str]:
    return {
        "subscriptionId": record.id,
        "clientState": record.client_state,
        "changeType": "updated",
        "tenantId": tenant.env["GRAPH_TENANT_ID"],
        "resource": f"Users/{CALENDAR_USER}/Events/e1",
        "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
    }


def _lifecycle_notification(tenant: Tenant, record: SubscriptionRecord) -> dict[str, str]:
    return {
        "subscriptionId": record.id,
        "clientState": record.client_state,
        "lifecycleEvent": "reauthorizationRequired",
        "tenantId": tenant.env["GRAPH_TENANT_ID"],
        "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
    }


def test_webhook_queues_a_valid_notification(tenant_env: Tenant) -> None:
    from shared.work_items import parse_work
    from sync.runtime import process_runtime

    record = _stored_calendar_subscription(process_runtime())
    body = {"value": [_calendar_notification(tenant_env, record)]}
    response, out = _webhook("notifications", json.dumps(body).encode())
    assert response.status_code == 202
    (message,) = out.value
    item = parse_work(message)
    assert (item.kind, item.user_id) == ("calendar", CALENDAR_USER)


@pytest.mark.parametrize("route", ["notifications", "lifecycle"])
def test_webhook_answers_503_when_storage_fails_the_lookup(
    tenant_env: Tenant, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storage failure is not "not ours": Graph must deliver again later, so nothing is lost."""
    from sync.runtime import process_runtime, reset_process_runtime
    from tests.integration.test_state import _with_wrong_key

    record = _stored_calendar_subscription(process_runtime())
    monkeypatch.setenv("AzureWebJobsStorage", _with_wrong_key(tenant_env.env["AzureWebJobsStorage"]))
    reset_process_runtime()  # a process whose storage refuses every request (403)
    notification = (_calendar_notification if route == "notifications" else _lifecycle_notification)(tenant_env, record)
    body = {"value": [notification]}
    response, out = _webhook(route, json.dumps(body).encode())
    assert response.status_code == 503
    assert out.value is None


def _queue_message(work: dict[str, object] | str) -> func.QueueMessage:
    body = work if isinstance(work, str) else json.dumps(work)
    return func.QueueMessage(id="m-1", body=body.encode("utf-8"))


def test_a_user_change_while_3cx_is_down_goes_back_to_the_host_for_a_retry(tenant_env: Tenant) -> None:
    """The fault: an unreachable 3CX made the worker answer "failed", the message was deleted,
    and the change waited for the nightly run. Now the outage propagates, so the host retries."""
    from shared.errors import UpstreamUnavailable

    (user_id,) = tenant_env.add_users(1)
    tenant_env.pbx.inject(503, count=100)
    with pytest.raises(UpstreamUnavailable):
        function("work_queue_worker").get_user_function()(_queue_message({"kind": "user", "user_id": user_id}))
    (record,) = tenant_env.state.recent_runs("users")
    assert (record.trigger, record.subject, record.status) == ("queue", user_id, "failed")


def test_work_that_must_wait_goes_back_on_the_queue(
    tenant_env: Tenant, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    from sync.runtime import process_runtime, reset_process_runtime

    monkeypatch.setenv("WORK_QUEUE", f"work-{secrets.token_hex(4)}")  # this test's own queue
    reset_process_runtime()
    (user_id,) = tenant_env.add_users(1)
    queue = process_runtime().queue
    with tenant_env.state.lock(LOCK_NAME, ttl=timedelta(minutes=1)), caplog.at_level(logging.INFO):
        function("work_queue_worker").get_user_function()(_queue_message({"kind": "user", "user_id": user_id}))
    assert not tenant_env.pbx.users
    assert queue.approximate_message_count() == 1  # invisible for now: LOCK_RETRY
    assert queue.peek() == []
    assert any(r.getMessage().startswith("work_requeued kind=user delay_s=60") for r in caplog.records)


@pytest.mark.parametrize(
    "text",
    [
        '{"kind": "reboot", "user_id": "u1"}',
        '{"kind": "boundary", "user_id": "u1"}',
        "not json",
        '{"kind": "user"}',
        '{"kind": "user", "user_id": ".."}',  # the fault: it became GET /v1.0/ and a poison message
    ],
)
def test_a_message_no_producer_writes_is_logged_and_dropped(tenant_env: Tenant, text: str, caplog) -> None:
    with caplog.at_level(logging.INFO):
        function("work_queue_worker").get_user_function()(_queue_message(text))
    assert any(r.getMessage().startswith("work_rejected ") for r in caplog.records)
    assert tenant_env.state.recent_runs("users") == []


@pytest.mark.parametrize("who", ["gone", "out_of_scope"])
def test_a_user_change_for_someone_never_linked_changes_nothing_and_fails_nothing(
    tenant_env: Tenant, monkeypatch: pytest.MonkeyPatch, who: str
) -> None:
    """The fault: a /users notification for a deleted guest or an out-of-scope account raised,
    recorded a failed run (which the alert watches) and ended in the poison queue."""
    tenant_env.add_users(1)
    function("user_sync_timer").get_user_function()(_Timer())
    if who == "gone":
        user_id = "6f0c5d1e-2a3b-4c4d-8e5f-7a8b9c0d1e2f"  # a deleted guest: Graph no longer knows it
    else:
        monkeypatch.setenv("USER_SYNC_SCOPE", "selected_users")
        monkeypatch.setenv("USER_SYNC_USERS", "user000@contoso.com")
        from sync.runtime import reset_process_runtime

        reset_process_runtime()
        user_id = tenant_env.graph.add_user("outsider@contoso.com")
    before = len(tenant_env.pbx.users)

    function("work_queue_worker").get_user_function()(_queue_message({"kind": "user", "user_id": user_id}))

    assert len(tenant_env.pbx.users) == before
    assert [run.status for run in tenant_env.state.recent_runs("users")] in (["succeeded"], ["succeeded", "succeeded"])


def test_the_nightly_run_waits_for_a_one_user_sync_and_still_runs(tenant_env: Tenant) -> None:
    """The fault: a one-user sync holding the lock made the nightly run skip, and with it the
    subscription upkeep and the nightly calendar re-read."""
    from sync import jobs
    from sync.runtime import process_runtime

    tenant_env.add_users(2)
    other = tenant_env.state.lease(LOCK_NAME, timedelta(minutes=5))
    other.acquire()  # a one-user sync in another instance
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        other.release()  # ...which ends while the nightly run waits

    jobs.nightly_sync(process_runtime(), sleep=sleep)

    assert len(tenant_env.pbx.users) == 2
    assert waits == [jobs.LOCK_POLL.total_seconds()]
    assert [run.trigger for run in tenant_env.state.recent_runs("presence")] == ["timer"]  # the re-read ran too


def test_a_nightly_run_that_cannot_get_the_lock_still_renews_subscriptions_and_calendars(
    tenant_env: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sync import jobs
    from sync.runtime import process_runtime

    tenant_env.add_users(1)
    monkeypatch.setattr(jobs, "NIGHTLY_LOCK_WAIT", timedelta(0))
    with tenant_env.state.lock(LOCK_NAME, ttl=timedelta(minutes=1)):
        jobs.nightly_sync(process_runtime(), sleep=lambda _: pytest.fail("no time left to wait"))
    assert not tenant_env.pbx.users
    assert [run.trigger for run in tenant_env.state.recent_runs("presence")] == ["timer"]


def test_an_old_queued_personal_contacts_message_is_logged_and_dropped_as_done(
    tenant_env: Tenant, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """Earlier versions queued contacts work for a user's own mailbox (personal phonebooks, which
    3CX now syncs itself): such a message still parses, and is dropped with one line, reading nothing."""
    from shared.work_items import parse_work
    from sync.runtime import process_runtime
    from sync.worker import Done, handle_work
    from tests.integration.test_presence import Recorder

    monkeypatch.setenv("SHARED_MAILBOXES", "sales@contoso.com")
    (user_id,) = tenant_env.add_users(1)
    message = {"kind": "contacts", "user_id": user_id, "subscription_id": "0c9e7a5b-3d1f-4e2a-8b6c-9d0e1f2a3b4c"}
    tenant_env.graph.reset_counts()
    tenant_env.reset_pbx_counts()

    with caplog.at_level(logging.INFO):
        assert handle_work(process_runtime(), parse_work(json.dumps(message)), Recorder()) == Done("dropped")
        function("work_queue_worker").get_user_function()(_queue_message(message))  # as the host calls it

    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("work_skipped kind=contacts")]
    assert len(skipped) == 2 and all(user_id in line for line in skipped)
    assert not any(r.getMessage().startswith("work_rejected ") for r in caplog.records)
    assert tenant_env.state.recent_runs("contacts") == []
    assert sum(tenant_env.graph.route_counts.values()) == 0
    assert sum(tenant_env.pbx.request_counts.values()) == 0

"""Telemetry through the real handlers, storage and fakes: one trace from Graph's POST to the 3CX write,
the structured fields of real runs and actions as log attributes, the metrics with their attributes.

Spans, log records and metrics are read from OpenTelemetry's in-memory exporters
(tests/telemetry_plugin.py), the records the Azure Monitor exporter sends in Azure.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from shared.work_items import parse_work
from sync.records import SubscriptionRecord
from sync.runtime import process_runtime
from tests.conftest import Tenant
from tests.function_app_support import function
from tests.telemetry_plugin import Telemetry


class _Out(func.Out):  # type: ignore[type-arg]
    def __init__(self) -> None:
        self.value: list[str] | None = None

    def set(self, val: list[str]) -> None:
        self.value = val

    def get(self) -> list[str] | None:
        return self.value


class _Timer(func.TimerRequest):
    @property
    def past_due(self) -> bool:
        return False


def _users_subscription(tenant: Tenant) -> SubscriptionRecord:
    record = SubscriptionRecord(
        id="sub-users",
        kind="users",
        resource="/users",
        client_state="c" * 40,
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    process_runtime().state.save_subscription(record)
    return record


def _notify_user_change(tenant: Tenant, record: SubscriptionRecord, user_id: str) -> tuple[func.HttpResponse, _Out]:
    body = {
        "value": [
            {
                "subscriptionId": record.id,
                "clientState": record.client_state,
                "changeType": "updated",
                "tenantId": tenant.env["GRAPH_TENANT_ID"],
                "resource": f"Users/{user_id}",
                "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
            }
        ]
    }
    request = func.HttpRequest(
        method="POST", url="http://localhost/api/graph/notifications", params={}, body=json.dumps(body).encode()
    )
    out = _Out()
    response = function("graph_notifications").get_user_function()(request, work=out)
    return response, out


def _ancestors(span: ReadableSpan, spans: dict[int, ReadableSpan]) -> list[str]:
    names = []
    parent = span.parent
    while parent is not None and parent.span_id in spans:
        names.append(spans[parent.span_id].name)
        parent = spans[parent.span_id].parent
    return names


def test_a_notifications_trace_continues_through_its_queue_message_to_the_3cx_write(
    tenant_env: Tenant, telemetry: Telemetry
) -> None:
    """Graph's POST → the queue message (its `traceparent`) → the worker → 3CX's POST /Users: one trace."""
    (user_id,) = tenant_env.add_users(1)
    record = _users_subscription(tenant_env)
    response, out = _notify_user_change(tenant_env, record, user_id)
    assert response.status_code == 202
    assert out.value is not None
    (message,) = out.value
    work = parse_work(message)
    assert work.traceparent is not None

    function("work_queue_worker").get_user_function()(func.QueueMessage(id="m-1", body=message.encode()))
    assert len(tenant_env.pbx.users) == 1

    spans = {span.context.span_id: span for span in telemetry.spans()}
    (webhook,) = [s for s in spans.values() if s.name == "graph_notifications"]
    (worker,) = [s for s in spans.values() if s.name == "work_queue_worker"]
    (write,) = [s for s in spans.values() if s.name == "POST /xapi/v1/Users"]
    assert webhook.context.trace_id == worker.context.trace_id == write.context.trace_id
    assert work.traceparent.split("-")[1:3] == [f"{webhook.context.trace_id:032x}", f"{webhook.context.span_id:016x}"]
    assert worker.parent is not None and worker.parent.span_id == webhook.context.span_id
    assert worker.kind == SpanKind.CONSUMER
    assert "work_queue_worker" in _ancestors(write, spans)
    assert write.kind == SpanKind.CLIENT
    assert write.attributes is not None
    assert write.attributes["http.response.status_code"] == 201
    assert write.attributes["server.address"] == "pbx.fake.test"
    # The user sync's own lines are in the same trace too (operation_Id in Application Insights).
    (action,) = telemetry.logs("user_action")
    assert action.log_record.trace_id == webhook.context.trace_id


def test_an_http_call_shows_its_url_without_the_query(tenant_env: Tenant, telemetry: Telemetry) -> None:
    tenant_env.add_users(2)
    function("user_sync_timer").get_user_function()(_Timer())
    graph_calls = [s for s in telemetry.spans() if (s.attributes or {}).get("server.address") == "graph.fake.test"]
    assert graph_calls
    for span in graph_calls:
        assert "?" not in str((span.attributes or {})["url.full"])
        assert span.kind == SpanKind.CLIENT


def test_the_dimensions_of_run_summary_and_user_action_arrive_as_attributes(
    tenant_env: Tenant, telemetry: Telemetry
) -> None:
    (ann,) = tenant_env.add_users(1, prefix="ann")
    function("user_sync_timer").get_user_function()(_Timer())

    users = [r for r in telemetry.logs("run_summary") if (r.log_record.attributes or {}).get("kind") == "users"]
    (summary,) = users
    attributes = dict(summary.log_record.attributes or {})
    assert {key: attributes[key] for key in ("kind", "trigger", "status", "created", "failed", "unchanged")} == {
        "kind": "users",
        "trigger": "timer",
        "status": "succeeded",
        "created": 1,
        "failed": 0,
        "unchanged": 0,
    }
    assert isinstance(attributes["run"], str) and attributes["duration_s"]

    (action,) = telemetry.logs("user_action")
    assert dict(action.log_record.attributes or {}) == {
        "event": "user_action",
        "run": attributes["run"],
        "kind": "users",
        "action": "create",
        "user": ann,
        "upn": "ann000@contoso.com",
        "outcome": "ok",
        "duration_ms": action.log_record.attributes["duration_ms"],  # type: ignore[index]
    }

    points = telemetry.metrics()
    assert [(p.attributes, p.value) for p in points if p.name == "connector.actions"] == [
        ({"kind": "users", "action": "create", "outcome": "ok"}, 1)
    ]
    runs = [(p.attributes, p.value) for p in points if p.name == "connector.runs"]
    assert ({"kind": "users", "trigger": "timer", "status": "succeeded"}, 1) in runs


def test_a_status_change_is_counted_with_its_lag(tenant_env: Tenant, telemetry: Telemetry) -> None:
    from sync.presence_run import reconcile_user
    from sync.user_sync import run_user_sync

    (user_id,) = tenant_env.add_users(1)
    run_user_sync(tenant_env.runtime())
    now = datetime.now(UTC).replace(microsecond=0)
    tenant_env.graph.add_event(user_id, start=now - timedelta(seconds=3), end=now + timedelta(hours=1))
    assert reconcile_user(process_runtime(), user_id, now=now, refresh=True) == "changed"

    (change,) = telemetry.logs("status_change")
    assert (change.log_record.attributes or {})["lag_ms"] == 3000
    points = telemetry.metrics()
    assert [(p.attributes, p.value) for p in points if p.name == "connector.status_changes"] == [
        ({"action": "set", "status": "Out of office"}, 1)
    ]
    assert [(p.attributes, p.count, p.value) for p in points if p.name == "connector.status_change.lag"] == [
        ({"action": "set"}, 1, 3000)
    ]


def test_a_timer_that_fails_before_its_run_is_said_and_its_span_failed(
    tenant_env: Tenant, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: a bad setting failed the timer before any run_summary; no alert read anything."""
    from sync.runtime import reset_process_runtime

    monkeypatch.setenv("USER_SYNC_SCOPE", "everyone")
    reset_process_runtime()
    with pytest.raises(Exception, match="USER_SYNC_SCOPE"):
        function("user_sync_timer").get_user_function()(_Timer())
    (line,) = telemetry.logs("invocation_failed")
    attributes = dict(line.log_record.attributes or {})
    assert attributes["function"] == "user_sync_timer"
    assert str(attributes["error"]).startswith("configuration error: USER_SYNC_SCOPE")
    (span,) = [s for s in telemetry.spans() if s.name == "user_sync_timer"]
    assert span.status.status_code == StatusCode.ERROR
    assert telemetry.logs("run_summary") == []


def test_the_webhooks_answer_time_is_a_metric_by_route_and_status(tenant_env: Tenant, telemetry: Telemetry) -> None:
    record = _users_subscription(tenant_env)
    _notify_user_change(tenant_env, record, "not-a-guid")
    request = func.HttpRequest(method="POST", url="http://localhost/api/graph/lifecycle", params={}, body=b"{")
    function("graph_lifecycle").get_user_function()(request, work=_Out())
    points = telemetry.metrics("connector.webhook.duration")
    assert sorted((p.attributes["route"], p.attributes["status_code"], p.count) for p in points) == [
        ("lifecycle", 400, 1),
        ("notifications", 202, 1),
    ]
    assert all(p.value > 0 for p in points)


def test_the_poison_check_counts_the_poison_queue_and_says_so_when_it_holds_messages(
    tenant_env: Tenant, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: messages the host gave up on piled up in `<queue>-poison` and no alert noticed."""
    from shared.queues import QueuedMessage
    from sync.runtime import reset_process_runtime

    queue_name = f"work-{secrets.token_hex(4)}"
    monkeypatch.setenv("WORK_QUEUE", queue_name)
    reset_process_runtime()
    queue = process_runtime().queue

    function("poison_queue_check").get_user_function()(_Timer())
    assert telemetry.logs("poison_messages") == []
    (empty,) = telemetry.metrics("connector.poison_messages")
    assert (empty.attributes, empty.value) == ({"queue": f"{queue_name}-poison"}, 0)

    queue.send_text('{"kind": "user", "user_id": "x"}')
    queue.send_text('{"kind": "user", "user_id": "y"}')
    for received in queue.receive(max_messages=2):
        queue.poison(QueuedMessage(received.id, received.pop_receipt, received.text, 5))
    function("poison_queue_check").get_user_function()(_Timer())
    (line,) = telemetry.logs("poison_messages")
    assert dict(line.log_record.attributes or {}) == {
        "event": "poison_messages",
        "queue": f"{queue_name}-poison",
        "count": 2,
    }
    assert [p.value for p in telemetry.metrics("connector.poison_messages")][-1] == 2

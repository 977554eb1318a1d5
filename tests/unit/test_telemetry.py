"""Telemetry: what an administrator and Application Insights may read, and that it really arrives.

The log records, spans and metrics are read back from OpenTelemetry's in-memory exporters
(tests/telemetry_plugin.py): the same records the Azure Monitor exporter turns into
`traces` (attributes → customDimensions), `requests`/`dependencies` and `customMetrics`.
"""

from __future__ import annotations

import logging
import threading

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from shared import telemetry as telemetry_module
from shared.telemetry import LOGGER_NAME, current_traceparent, invocation, log_event
from tests.telemetry_plugin import Telemetry


def test_a_logged_url_loses_its_query_and_credentials(caplog: pytest.LogCaptureFixture, telemetry: Telemetry) -> None:
    """Fault: a field holding a URL was logged whole, token query and user:password@ included."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    log_event(
        "subscription_failed",
        logging.WARNING,
        url="https://connector.example.com/api/graph/notifications?code=SECRETKEY",
        error="POST https://ops:pa55@pbx.example.com:5001/connect/token?x=1 refused",
        count=3,
    )
    [record] = caplog.records
    assert record.getMessage() == (
        "subscription_failed url=https://connector.example.com/api/graph/notifications"
        ' error="POST https://pbx.example.com:5001/connect/token refused" count=3'
    )
    [exported] = telemetry.logs("subscription_failed")
    assert dict(exported.log_record.attributes or {}) == {
        "event": "subscription_failed",
        "url": "https://connector.example.com/api/graph/notifications",
        "error": "POST https://pbx.example.com:5001/connect/token refused",
        "count": 3,
    }


def test_every_field_of_a_line_arrives_as_an_attribute_named_like_it(telemetry: Telemetry) -> None:
    """Fault: the fields went to `extra={"custom_dimensions": …}`, which the Python worker drops.

    Even names Python's LogRecord keeps for itself (`created`, a count of every run) arrive
    under their own name, and nothing empty is sent.
    """
    log_event(
        "run_summary",
        logging.ERROR,
        run="r1",
        kind="users",
        trigger="timer",
        subject=None,
        status="failed",
        error="3CX became unreachable",
        created=2,
        name="n",
        module="m",
        notice="",
    )
    [record] = telemetry.logs("run_summary")
    assert dict(record.log_record.attributes or {}) == {
        "event": "run_summary",
        "run": "r1",
        "kind": "users",
        "trigger": "timer",
        "status": "failed",
        "error": "3CX became unreachable",
        "created": 2,
        "name": "n",
        "module": "m",
    }
    assert record.log_record.body == (
        'run_summary run=r1 kind=users trigger=timer status=failed error="3CX became unreachable"'
        " created=2 name=n module=m"
    )
    assert record.log_record.severity_text == "ERROR"
    assert record.instrumentation_scope is not None and record.instrumentation_scope.name == LOGGER_NAME


def test_a_line_below_the_loggers_level_goes_nowhere(telemetry: Telemetry) -> None:
    logging.getLogger(LOGGER_NAME).setLevel(logging.INFO)
    try:
        log_event("webhook_received", logging.DEBUG, route="notifications", queued=1)
    finally:
        logging.getLogger(LOGGER_NAME).setLevel(logging.NOTSET)
    assert telemetry.logs("webhook_received") == []


def test_a_line_belongs_to_the_trace_it_was_written_in(telemetry: Telemetry) -> None:
    with trace.get_tracer("test").start_as_current_span("outer") as span:
        log_event("work_skipped", kind="user", reason="paused")
    [record] = telemetry.logs("work_skipped")
    assert record.log_record.trace_id == span.get_span_context().trace_id
    assert record.log_record.span_id == span.get_span_context().span_id


def test_an_invocation_is_a_span_and_one_that_fails_says_so_in_a_line(telemetry: Telemetry) -> None:
    """Fault: a timer whose setting is bad failed before any run_summary, and nothing of ours said so."""
    with invocation("presence_timer"):
        pass
    with pytest.raises(ValueError, match="USER_SYNC_SCOPE"), invocation("user_sync_timer"):
        raise ValueError("configuration error: USER_SYNC_SCOPE: unknown scope 'some'")
    ok, failed = telemetry.spans()
    assert (ok.name, ok.status.status_code) == ("presence_timer", StatusCode.UNSET)
    assert (failed.name, failed.status.status_code) == ("user_sync_timer", StatusCode.ERROR)
    assert [event.name for event in failed.events] == ["exception"]
    [line] = telemetry.logs("invocation_failed")
    assert dict(line.log_record.attributes or {}) == {
        "event": "invocation_failed",
        "function": "user_sync_timer",
        "error": "configuration error: USER_SYNC_SCOPE: unknown scope 'some'",
    }
    assert line.log_record.trace_id == failed.context.trace_id


def test_an_invocation_continues_the_trace_its_message_carries_and_links_the_hosts(telemetry: Telemetry) -> None:
    with trace.get_tracer("test").start_as_current_span("webhook") as webhook:
        carried = current_traceparent()
    assert carried is not None
    context = webhook.get_span_context()
    assert carried[:-3] == f"00-{context.trace_id:032x}-{context.span_id:016x}"  # then the flags: sampled
    with (
        trace.get_tracer("test").start_as_current_span("host invocation") as host,
        invocation("work_queue_worker", traceparent=carried, kind=SpanKind.CONSUMER),
    ):
        pass
    worker = next(s for s in telemetry.spans() if s.name == "work_queue_worker")
    assert worker.kind == SpanKind.CONSUMER
    assert worker.context.trace_id == webhook.get_span_context().trace_id
    assert worker.parent is not None and worker.parent.span_id == webhook.get_span_context().span_id
    assert [link.context.span_id for link in worker.links] == [host.get_span_context().span_id]


@pytest.mark.parametrize("carried", [None, "", "not a traceparent", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"])
def test_an_invocation_without_a_usable_traceparent_stays_in_the_current_trace(
    telemetry: Telemetry, carried: str | None
) -> None:
    with (
        trace.get_tracer("test").start_as_current_span("host invocation") as host,
        invocation("w", traceparent=carried),
    ):
        pass
    worker = next(s for s in telemetry.spans() if s.name == "w")
    assert worker.context.trace_id == host.get_span_context().trace_id
    assert worker.links == ()


def test_no_traceparent_outside_a_trace() -> None:
    assert current_traceparent() is None


def test_lines_written_on_another_thread_still_arrive_but_belong_to_no_trace(telemetry: Telemetry) -> None:
    """Why the envelope says `lock_lost` from the run's own thread (tests/unit/test_envelope.py)."""
    with trace.get_tracer("test").start_as_current_span("run"):
        thread = threading.Thread(target=log_event, args=("lock_lost",), kwargs={"kind": "users"})
        thread.start()
        thread.join()
    [record] = telemetry.logs("lock_lost")
    assert record.log_record.trace_id == 0


def test_metrics_are_recorded_with_their_attributes(telemetry: Telemetry) -> None:
    telemetry_module.record_run("users", "timer", "partial", 12.5)
    telemetry_module.record_run("users", "timer", "partial", 7.5)
    telemetry_module.count_action("users", "create", "ok")
    telemetry_module.count_action("users", "create", "failed")
    telemetry_module.record_status_change("set", "Out of office", 1500)
    telemetry_module.record_status_change("restore", "Available", None)
    telemetry_module.record_webhook("notifications", 202, 35.0)
    telemetry_module.record_poison_messages("tcx-work-poison", 3)
    points = {(p.name, tuple(sorted(p.attributes.items()))): p for p in telemetry.metrics()}
    run = points[("connector.runs", (("kind", "users"), ("status", "partial"), ("trigger", "timer")))]
    assert run.value == 2
    duration = points[("connector.run.duration", (("kind", "users"), ("status", "partial"), ("trigger", "timer")))]
    assert (duration.count, duration.value) == (2, 20.0)
    assert points[("connector.actions", (("action", "create"), ("kind", "users"), ("outcome", "ok")))].value == 1
    assert points[("connector.actions", (("action", "create"), ("kind", "users"), ("outcome", "failed")))].value == 1
    assert points[("connector.status_changes", (("action", "set"), ("status", "Out of office")))].value == 1
    assert points[("connector.status_changes", (("action", "restore"), ("status", "Available")))].value == 1
    lag = telemetry.metrics("connector.status_change.lag")
    assert [(p.attributes, p.count, p.value) for p in lag] == [({"action": "set"}, 1, 1500)]
    webhook = points[("connector.webhook.duration", (("route", "notifications"), ("status_code", 202)))]
    assert (webhook.count, webhook.value) == (1, 35.0)
    assert points[("connector.poison_messages", (("queue", "tcx-work-poison"),))].value == 3

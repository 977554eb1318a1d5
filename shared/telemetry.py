"""Telemetry the administrator and Application Insights can read: log lines, spans and metrics.

**Log lines.** One structured line per applied action and one summary line per run, written
by `log_event`. Each goes two ways:

- as plain `event key=value …` text to Python logging (the `connector` logger): what the
  command line, `serve` and the demo print to stderr;
- as an OpenTelemetry log record whose body is that text and whose attributes are the event
  name (`event`) and every field under its own name. In Azure the Azure Monitor exporter
  writes these to the `traces` table with the attributes as `customDimensions`, so queries
  read `customDimensions.kind` instead of parsing the text. (Fields passed through
  `logging`'s `extra` would not do: the Functions Python worker drops a nested
  `custom_dimensions`, and names such as `created` belong to `logging.LogRecord` itself.)

Only ids, UPNs and numbers appear at INFO; never tokens, secrets or contact details. Every
URL in a field value loses its query string and `user:password@` (shared/urls.py), in the
text and in the attributes alike. Nothing below the `connector` logger's level is sent.

**Spans.** Each Function invocation is a span (`invocation`); a queued message carries the
W3C `traceparent` of the code that queued it (shared/work_items.py), so the worker's span
continues the webhook's trace; each HTTP call to Graph or 3CX is a client span (`http_call`)
showing the URL without its query.

**Metrics.** Counters and histograms with attributes (`record_run`, `count_action`,
`record_status_change`, `record_webhook`, `record_poison_messages`), which Application
Insights stores in `customMetrics` with the attributes as `customDimensions`.

Without a configured SDK (tests install an in-memory one; the command line none) every
OpenTelemetry call here is a no-op. shared/azure_monitor.py sets up the Azure Monitor
exporters, and only where `APPLICATIONINSIGHTS_CONNECTION_STRING` is set, i.e. in Azure.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import _logs, metrics, trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.errors import one_line
from shared.urls import redact_url, redact_urls

LOGGER_NAME = "connector"
# The OpenTelemetry instrumentation scope of everything here (`logger_name` in customDimensions).
SCOPE = LOGGER_NAME

# Loggers of the libraries the connector uses. The Azure SDK's HTTP logging policy writes
# every Table and Queue request's and response's headers at INFO: far too much, and in Azure
# each would be a `traces` row. They speak from WARNING up.
SDK_LOGGERS = ("azure", "azure.core.pipeline.policies.http_logging_policy", "urllib3", "msal")

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer = trace.get_tracer(SCOPE)
_log_emitter = _logs.get_logger(SCOPE)
_meter = metrics.get_meter(SCOPE)

_runs = _meter.create_counter("connector.runs", unit="{run}", description="Runs ended, by kind, trigger and status")
_run_duration = _meter.create_histogram(
    "connector.run.duration", unit="s", description="How long runs took, by kind, trigger and status"
)
_actions = _meter.create_counter(
    "connector.actions", unit="{action}", description="Changes applied or failed, by kind, action and outcome"
)
_status_changes = _meter.create_counter(
    "connector.status_changes", unit="{change}", description="3CX status changes, by action (set/restore) and status"
)
_status_lag = _meter.create_histogram(
    "connector.status_change.lag", unit="ms", description="How late a status change was behind its event's start or end"
)
_webhook_duration = _meter.create_histogram(
    "connector.webhook.duration",
    unit="ms",
    description="How long the Graph webhooks took to answer, by route and status",
)
_poison_messages = _meter.create_gauge(
    "connector.poison_messages", unit="{message}", description="Messages in the work queue's poison queue"
)


# -- logging -------------------------------------------------------------------------------------------


def configure_logging(verbose: bool = False) -> None:
    """Log to stderr (stdout is reserved for plans and --json output)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    quiet_sdk_loggers(verbose)


def quiet_sdk_loggers(verbose: bool = False) -> None:
    """The libraries' loggers speak from WARNING up (DEBUG with --verbose)."""
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


def _rendered(value: Any) -> Any:
    """A field value as it may be logged: text with its URLs redacted; numbers and flags as they are."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_urls(str(value))


def _format(event: str, fields: Mapping[str, Any]) -> str:
    parts = [event]
    for key, value in fields.items():
        text = str(value)
        if any(ch.isspace() for ch in text) or '"' in text:
            text = '"' + text.replace('"', "'") + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


_SEVERITY = {
    logging.DEBUG: SeverityNumber.DEBUG,
    logging.INFO: SeverityNumber.INFO,
    logging.WARNING: SeverityNumber.WARN,
    logging.ERROR: SeverityNumber.ERROR,
    logging.CRITICAL: SeverityNumber.FATAL,
}


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Write one structured line; each field is an attribute of its log record too (see the module docstring)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.isEnabledFor(level):
        return
    shown = {key: _rendered(value) for key, value in fields.items()}
    shown = {key: value for key, value in shown.items() if value is not None and value != ""}
    line = _format(event, shown)
    logger.log(level, line, extra={"event_fields": {"event": event, **shown}})
    severity = _SEVERITY.get(level, SeverityNumber.INFO)
    _log_emitter.emit(
        body=line,
        severity_number=severity,
        severity_text=logging.getLevelName(level),
        attributes={"event": event, **shown},
    )


# -- traces --------------------------------------------------------------------------------------------


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the span in progress, to carry in a queue message; None outside a trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def invocation(function: str, *, traceparent: str | None = None, kind: SpanKind = SpanKind.INTERNAL) -> Iterator[Span]:
    """One Function invocation as a span; an exception escaping it is recorded and said in one line.

    With `traceparent` (what a queue message carries), the span continues that trace, and the
    trace in progress (the Functions host's own for this invocation) is kept as a link. The
    line, `invocation_failed`, is what the *failed invocations* alert reads: a timer whose
    setting is bad fails before any run is recorded.
    """
    parent = None
    links: list[Link] = []
    if traceparent:
        carried = _PROPAGATOR.extract({"traceparent": traceparent})
        if trace.get_current_span(carried).get_span_context().is_valid:
            current = trace.get_current_span().get_span_context()
            parent = carried
            if current.is_valid:
                links.append(Link(current))
    with _tracer.start_as_current_span(
        function,
        context=parent,
        kind=kind,
        links=links,
        attributes={"faas.name": function},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except Exception as error:
            _record_exception(span, error)
            log_event("invocation_failed", logging.ERROR, function=function, error=one_line(error))
            raise


def _record_exception(span: Span, error: BaseException) -> None:
    """The exception on the span as the log lines show it: its one line, URLs without their query."""
    shown = one_line(error)
    stack = "".join(traceback.format_tb(error.__traceback__)) + f"{type(error).__name__}: {shown}"
    span.record_exception(error, attributes={"exception.message": shown, "exception.stacktrace": stack})
    span.set_status(Status(StatusCode.ERROR, shown))


@dataclass
class HttpCall:
    """What `http_call` learns about the request it spans."""

    span: Span

    def answered(self, status: int, attempts: int) -> None:
        self.span.set_attribute("http.response.status_code", status)
        self.span.set_attribute("http.request.resend_count", attempts - 1)
        if status >= 400:
            self.span.set_status(Status(StatusCode.ERROR))


@contextmanager
def http_call(method: str, url: str) -> Iterator[HttpCall]:
    """A client span for one HTTP request to Graph or 3CX (its retries included), URL shown without its query."""
    shown = redact_url(url)
    parts = urlsplit(shown)
    attributes: dict[str, str | int] = {"http.request.method": method, "url.full": shown}
    if parts.hostname:
        attributes["server.address"] = parts.hostname
    if parts.port:
        attributes["server.port"] = parts.port
    with _tracer.start_as_current_span(
        f"{method} {parts.path or '/'}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield HttpCall(span)
        except Exception as error:  # no answer (network, timeout) or retries exhausted
            # Its type only: a connection error's text quotes the path with its query.
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise


# -- metrics -------------------------------------------------------------------------------------------


def record_run(kind: str, trigger: str, status: str, duration_s: float) -> None:
    """A run ended (the envelope's `run_summary`)."""
    attributes = {"kind": kind, "trigger": trigger, "status": status}
    _runs.add(1, attributes)
    _run_duration.record(duration_s, attributes)


def count_action(kind: str, action: str, outcome: str) -> None:
    """One change applied (`ok`) or failed: a user, a phonebook entry, a subscription."""
    _actions.add(1, {"kind": kind, "action": action, "outcome": outcome})


def record_status_change(action: str, status: str, lag_ms: int | None) -> None:
    """One 3CX status written: `set` at a meeting's start, `restore` at its end; its lag when known."""
    _status_changes.add(1, {"action": action, "status": status})
    if lag_ms is not None:
        _status_lag.record(lag_ms, {"action": action})


def record_webhook(route: str, status_code: int, duration_ms: float) -> None:
    """One answer of a Graph webhook route, and how long it took."""
    _webhook_duration.record(duration_ms, {"route": route, "status_code": status_code})


def record_poison_messages(queue: str, count: int) -> None:
    """How many messages the poison queue holds now."""
    _poison_messages.set(count, {"queue": queue})


@contextmanager
def timed_webhook(route: str) -> Iterator[WebhookTiming]:
    """Time one webhook answer; an exception escaping it counts as the 500 the host then answers."""
    timing = WebhookTiming()
    started = time.perf_counter()
    try:
        yield timing
    except Exception:
        timing.status_code = 500
        raise
    finally:
        record_webhook(route, timing.status_code, (time.perf_counter() - started) * 1000)


@dataclass
class WebhookTiming:
    status_code: int = 500

"""Pytest plugin: OpenTelemetry's SDK with in-memory exporters, for the whole suite.

In Azure the connector's spans, log records and metrics go to Application Insights through
the Azure Monitor distro (shared/telemetry.py `configure_telemetry`); here the same API calls
reach the SDK's own in-memory exporters (`InMemorySpanExporter`, `InMemoryLogRecordExporter`,
`InMemoryMetricReader`), installed once per process as the global providers (OpenTelemetry
allows that once). A test reads them through the `telemetry` fixture (tests/conftest.py),
which starts each test from empty exporters and a fresh metric window; the exporters keep
nothing while no test listens. Every span and log record is also handed to the secrets
canary's journal (tests/canary_plugin.py), so the canary scans what would reach Azure too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry import _logs, metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableGauge, UpDownCounter, _Gauge
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.canary_plugin import JOURNAL

_DELTA = {
    Counter: AggregationTemporality.DELTA,
    UpDownCounter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
    ObservableGauge: AggregationTemporality.DELTA,
    _Gauge: AggregationTemporality.DELTA,
}


class _GatedSpans(SpanProcessor):
    """Keeps finished spans only while a test listens; journals every span for the canary."""

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner
        self.listening = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        JOURNAL.add("otel span", f"{span.name} {dict(span.attributes or {})} {[e.attributes for e in span.events]}")
        if self.listening:
            self.inner.on_end(span)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _GatedLogs(LogRecordProcessor):
    """The same for log records."""

    def __init__(self, inner: LogRecordProcessor) -> None:
        self.inner = inner
        self.listening = False

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        record = log_record.log_record
        JOURNAL.add("otel log", f"{record.body} {dict(record.attributes or {})}")
        if self.listening:
            self.inner.on_emit(log_record)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@dataclass(frozen=True)
class MetricPoint:
    """One data point of one instrument: its attributes and value (a histogram's count and sum)."""

    name: str
    attributes: Mapping[str, Any]
    value: float
    count: int = 0


@dataclass
class Telemetry:
    """What the connector emitted during one test."""

    span_exporter: InMemorySpanExporter
    log_exporter: InMemoryLogRecordExporter
    metric_reader: InMemoryMetricReader
    _spans: _GatedSpans
    _logs: _GatedLogs
    _points: list[MetricPoint] = field(default_factory=list)

    def start(self) -> None:
        self.span_exporter.clear()
        self.log_exporter.clear()
        self.metric_reader.get_metrics_data()  # a fresh window: what earlier tests recorded is gone
        self._points.clear()
        self._spans.listening = self._logs.listening = True

    def stop(self) -> None:
        self._spans.listening = self._logs.listening = False
        self.span_exporter.clear()
        self.log_exporter.clear()

    def spans(self) -> Sequence[ReadableSpan]:
        return self.span_exporter.get_finished_spans()

    def logs(self, event: str | None = None) -> list[ReadableLogRecord]:
        found = list(self.log_exporter.get_finished_logs())
        if event is None:
            return found
        return [r for r in found if (r.log_record.attributes or {}).get("event") == event]

    def metrics(self, name: str | None = None) -> list[MetricPoint]:
        """Every data point recorded since the test began (or since the last call), by instrument."""
        data = self.metric_reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        if isinstance(point, NumberDataPoint):
                            self._points.append(MetricPoint(metric.name, dict(point.attributes or {}), point.value))
                        else:
                            self._points.append(
                                MetricPoint(metric.name, dict(point.attributes or {}), point.sum, point.count)
                            )
        return [p for p in self._points if name is None or p.name == name]


_INSTALLED: Telemetry | None = None


def installed() -> Telemetry:
    """The process's in-memory telemetry (installed at the start of the session)."""
    assert _INSTALLED is not None, "tests.telemetry_plugin is not loaded"
    return _INSTALLED


def pytest_configure(config: pytest.Config) -> None:
    global _INSTALLED
    if _INSTALLED is not None:
        return
    spans = InMemorySpanExporter()
    gated_spans = _GatedSpans(SimpleSpanProcessor(spans))
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(gated_spans)
    trace.set_tracer_provider(tracer_provider)

    logs = InMemoryLogRecordExporter()
    gated_logs = _GatedLogs(SimpleLogRecordProcessor(logs))
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(gated_logs)
    _logs.set_logger_provider(logger_provider)

    reader = InMemoryMetricReader(preferred_temporality=_DELTA)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    _INSTALLED = Telemetry(spans, logs, reader, gated_spans, gated_logs)


def listening() -> Iterator[Telemetry]:
    """Body of the `telemetry` fixture: empty exporters for this test, nothing kept after it."""
    telemetry = installed()
    telemetry.start()
    try:
        yield telemetry
    finally:
        telemetry.stop()

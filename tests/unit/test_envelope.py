"""The run envelope: lock, run record, summary line and status, the same for every kind of run."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from opentelemetry import trace

from shared.graph import GraphUnavailable
from shared.state import LockHeld
from sync.envelope import RunReport, run_envelope
from sync.records import RunRecord
from tests.telemetry_plugin import Telemetry


class FakeLease:
    def __init__(self, store: MemoryRuns, name: str) -> None:
        self.store = store
        self.name = name
        self.renewed = threading.Event()
        self.fail_renewal = False

    def acquire(self) -> None:
        if self.name in self.store.held:
            raise LockHeld(self.name, "other", self.store.now)
        self.store.held.add(self.name)

    def renew(self) -> None:
        self.renewed.set()
        if self.fail_renewal:
            raise RuntimeError("lease taken over")

    def release(self) -> None:
        self.store.held.discard(self.name)


class MemoryRuns:
    """The envelope's store port in memory: which locks are held, every record saved."""

    def __init__(self) -> None:
        from sync.envelope import _utcnow

        self.now = _utcnow()
        self.held: set[str] = set()
        self.saved: list[RunRecord] = []
        self.leases: list[FakeLease] = []

    def lease(self, name: str, ttl: timedelta) -> FakeLease:
        lease = FakeLease(self, name)
        self.leases.append(lease)
        return lease

    def save_run(self, run: RunRecord) -> None:
        self.saved.append(run.model_copy(deep=True))


@pytest.fixture
def runs() -> MemoryRuns:
    return MemoryRuns()


def summaries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("run_summary ")]


def test_a_clean_run_is_recorded_as_succeeded_with_its_counts_and_one_summary(
    runs: MemoryRuns, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with run_envelope(runs, "presence", trigger="timer", lock="presence") as run:
        assert runs.held == {"presence"}
        assert runs.saved[-1].status == "running"  # a locked run shows as running while it lives
        run.report.counts = {"changed": 2, "unchanged": 5}
    final = runs.saved[-1]
    assert (final.kind, final.trigger, final.status, final.counts) == (
        "presence",
        "timer",
        "succeeded",
        run.report.counts,
    )
    assert final.ended_at is not None and final.errors == []
    assert runs.held == set()
    (summary,) = summaries(caplog)
    assert summary.levelno == logging.INFO
    assert "kind=presence trigger=timer status=succeeded" in summary.getMessage()
    assert "changed=2 unchanged=5" in summary.getMessage()


@pytest.mark.parametrize(
    ("report", "status"),
    [
        (RunReport(failures=["ann@contoso.com: 3CX 400 rejected"]), "partial"),
        (RunReport(held=["disable bob@contoso.com"], guard="deletion guard: 30 of 100"), "partial"),
        (RunReport(aborted="3CX became unreachable after 3 of 9 changes"), "failed"),
        (RunReport(skipped=["carol@contoso.com: no Exchange mailbox"]), "succeeded"),
    ],
)
def test_the_status_says_what_happened(runs: MemoryRuns, report: RunReport, status: str) -> None:
    with run_envelope(runs, "users", trigger="cli") as run:
        run.report = report
    final = runs.saved[-1]
    assert final.status == status
    assert final.errors == report.failures + ([report.aborted] if report.aborted else [])
    assert (final.skipped, final.held, final.guard) == (report.skipped, report.held, report.guard)


def test_an_escaping_exception_fails_the_run_records_it_and_still_propagates(
    runs: MemoryRuns, caplog: pytest.LogCaptureFixture
) -> None:
    """The fault this fixes: a contacts run whose Graph calls failed was recorded as succeeded."""
    caplog.set_level(logging.INFO)

    def contacts_run() -> None:
        with run_envelope(runs, "contacts", trigger="timer", lock="contacts:company", subject="company") as run:
            run.report.counts = {"created": 1}
            raise GraphUnavailable("Microsoft Graph unavailable: GET /users/x/contacts/delta:\n still 503")

    with pytest.raises(GraphUnavailable):
        contacts_run()
    final = runs.saved[-1]
    assert final.status == "failed"
    assert final.errors == ["Microsoft Graph unavailable: GET /users/x/contacts/delta: still 503"]
    assert final.subject == "company"
    assert runs.held == set()  # released on the way out
    (summary,) = summaries(caplog)
    assert summary.levelno == logging.ERROR
    assert "status=failed" in summary.getMessage() and "still 503" in summary.getMessage()


def test_a_held_lock_raises_before_anything_is_recorded(runs: MemoryRuns) -> None:
    runs.held.add("user-sync")
    with pytest.raises(LockHeld), run_envelope(runs, "users", trigger="timer", lock="user-sync"):
        pytest.fail("the body must not run")
    assert runs.saved == []
    assert runs.held == {"user-sync"}  # the other holder's lock is left alone


def test_a_run_without_a_lock_is_recorded_once_when_it_ends(runs: MemoryRuns) -> None:
    with run_envelope(runs, "presence", trigger="queue", subject="calendar ann") as run:
        assert runs.saved == []
        run.report.counts = {"changed": 1}
    assert [r.status for r in runs.saved] == ["succeeded"]


def test_the_lease_is_renewed_by_time_while_the_run_lives(runs: MemoryRuns) -> None:
    with run_envelope(runs, "users", trigger="timer", lock="user-sync", lease_ttl=timedelta(milliseconds=30)):
        (lease,) = runs.leases
        assert lease.renewed.wait(timeout=10), "no renewal while the run was alive"


def test_a_lost_lease_is_said_once_and_marked_on_the_run(runs: MemoryRuns, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with run_envelope(runs, "users", trigger="timer", lock="user-sync", lease_ttl=timedelta(milliseconds=30)) as run:
        (lease,) = runs.leases
        lease.fail_renewal = True
        assert lease.renewed.wait(timeout=10), "no renewal was attempted"
    # Leaving the envelope joined the renewer, so what it concluded is visible now.
    assert run.lease_lost
    assert [r.getMessage().split()[0] for r in caplog.records] == ["lock_lost"]


def test_a_lost_lease_is_said_from_the_runs_own_thread_within_its_trace(
    runs: MemoryRuns, caplog: pytest.LogCaptureFixture, telemetry: Telemetry
) -> None:
    """Fault: `lock_lost` was logged from the renewer's thread, outside any invocation (the host dropped it)."""
    caplog.set_level(logging.WARNING)
    ttl = timedelta(milliseconds=30)
    with (
        trace.get_tracer("test").start_as_current_span("user_sync_timer") as invocation,
        run_envelope(runs, "users", trigger="timer", lock="user-sync", lease_ttl=ttl),
    ):
        (lease,) = runs.leases
        lease.fail_renewal = True
        assert lease.renewed.wait(timeout=10), "no renewal was attempted"
    (line,) = [r for r in caplog.records if r.getMessage().startswith("lock_lost ")]
    assert line.thread == threading.get_ident()
    assert "lease taken over" in line.getMessage()
    (record,) = telemetry.logs("lock_lost")
    assert record.log_record.trace_id == invocation.get_span_context().trace_id
    assert (record.log_record.attributes or {})["run"] == runs.saved[-1].run_id
    # Said before the summary, so the summary is the run's last word.
    assert [r.getMessage().split()[0] for r in caplog.records if r.levelno >= logging.WARNING][-1] == "lock_lost"


def test_the_summary_arrives_with_its_dimensions_and_counts_the_run(runs: MemoryRuns, telemetry: Telemetry) -> None:
    with run_envelope(runs, "contacts", trigger="timer", lock="contacts:company", subject="company") as run:
        run.report.counts = {"created": 2, "updated": 0, "failed": 1}
        run.report.failures.append("entry x: 3CX 400")
    (record,) = telemetry.logs("run_summary")
    attributes = dict(record.log_record.attributes or {})
    assert attributes.pop("duration_s")
    assert attributes == {
        "event": "run_summary",
        "run": run.run_id,
        "kind": "contacts",
        "trigger": "timer",
        "subject": "company",
        "status": "partial",
        "created": 2,
        "updated": 0,
        "failed": 1,
    }
    (counted,) = telemetry.metrics("connector.runs")
    assert (counted.attributes, counted.value) == ({"kind": "contacts", "trigger": "timer", "status": "partial"}, 1)
    (timed,) = telemetry.metrics("connector.run.duration")
    assert timed.count == 1

"""One envelope for every kind of run: the lock, the run record, one summary line, an honest status.

Every run — the nightly and the one-user user sync, a phonebook's contacts, the presence
pass, the subscription upkeep, and each queue work item — goes through `run_envelope`:

- It takes the run's lock, if it has one (`LockHeld` if another holder's lease is live),
  renews it by time from a background thread while the run lives, and releases it on any
  exit. A holder that crashed stops renewing, so its lease simply expires. A renewal that
  failed is said (`lock_lost`) from the run's own thread when the run ends.
- It writes one run record (kind, trigger, subject, started, ended, status, counts,
  errors, skipped items, held-back actions), logs one `run_summary` line and counts the
  run in the `connector.runs` metric.
- The status is `failed` whenever an exception escapes the run or an upstream outage
  stopped it (`report.aborted`), `partial` when some items failed or were held back, and
  `succeeded` otherwise. The exception itself still propagates to the caller.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from shared.errors import one_line
from shared.telemetry import log_event, record_run
from sync.records import HeldAction, RunRecord, digest_of_held

RunKind = Literal["users", "contacts", "presence", "subscriptions"]
RUN_KINDS: tuple[RunKind, ...] = ("users", "contacts", "presence", "subscriptions")
Status = Literal["succeeded", "partial", "failed"]

# A lease lives this long unless renewed; renewed every third of it while the run lives.
LEASE_TTL = timedelta(minutes=5)


class Lease(Protocol):
    def acquire(self) -> None: ...

    def renew(self) -> None: ...

    def release(self) -> None: ...


class RunStore(Protocol):
    """What the envelope needs from state: leases and run records."""

    def lease(self, name: str, ttl: timedelta) -> Lease: ...

    def save_run(self, run: RunRecord) -> None: ...


@dataclass
class RunReport:
    """What a run says about itself; the envelope turns it into the record and the summary."""

    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # items that failed; the rest went on
    skipped: list[str] = field(default_factory=list)  # left out on purpose, with why
    held: list[str] = field(default_factory=list)  # actions held back (the deletion guard)
    guard: str | None = None  # why they were held back
    aborted: str | None = None  # an upstream outage stopped the run
    notices: list[str] = field(default_factory=list)  # said once, in the summary line and the record
    held_actions: list[HeldAction] = field(default_factory=list)  # `held`, for an approval to re-check
    approves: str | None = None  # this run applied the held actions of that run

    @property
    def status(self) -> Status:
        if self.aborted:
            return "failed"
        if self.failures or self.held or self.guard:
            return "partial"
        return "succeeded"


@dataclass
class Run:
    """The run in progress, handed to its body."""

    kind: RunKind
    trigger: str
    run_id: str
    started_at: datetime
    subject: str | None = None
    dry_run: bool = False
    report: RunReport = field(default_factory=RunReport)
    lease_lost: bool = False


@contextmanager
def run_envelope(
    store: RunStore,
    kind: RunKind,
    *,
    trigger: str,
    lock: str | None = None,
    subject: str | None = None,
    run_id: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    lease_ttl: timedelta = LEASE_TTL,
) -> Iterator[Run]:
    """Run the body as one recorded run of `kind`; see the module docstring."""
    lease = store.lease(lock, lease_ttl) if lock else None
    if lease is not None:
        lease.acquire()  # LockHeld propagates: nothing was recorded, the caller decides
    run = Run(kind, trigger, run_id or uuid.uuid4().hex[:12], now or _utcnow(), subject, dry_run)
    record = RunRecord(
        kind=kind, run_id=run.run_id, started_at=run.started_at, trigger=trigger, subject=subject, dry_run=dry_run
    )
    renewer = _Renewer(lease, run, lease_ttl / 3) if lease is not None else None
    escaped: BaseException | None = None
    try:
        if lease is not None:
            store.save_run(record)  # a long run shows as running while it lives
        if renewer is not None:
            renewer.start()
        try:
            yield run
        except BaseException as error:
            escaped = error
            raise
        finally:
            if renewer is not None:
                renewer.stop()
                renewer.report_loss()  # from this thread, within the invocation's trace
            _finish(store, record, run, escaped=escaped)
    finally:
        if lease is not None:
            lease.release()


def _finish(store: RunStore, record: RunRecord, run: Run, escaped: BaseException | None) -> None:
    report = run.report
    errors = list(report.failures)
    if report.aborted:
        errors.append(report.aborted)
    if escaped is not None:
        errors.append(one_line(escaped))
    status: Status = "failed" if escaped is not None else report.status
    record.ended_at = _utcnow()
    record.status = status
    record.counts = dict(report.counts)
    record.errors = errors
    record.skipped = [*report.notices, *report.skipped]
    record.held = list(report.held)
    record.guard = report.guard
    record.held_actions = list(report.held_actions)
    record.held_digest = digest_of_held(report.held_actions) if report.held_actions else None
    record.approves = report.approves
    store.save_run(record)
    duration = (record.ended_at - record.started_at).total_seconds()
    record_run(run.kind, run.trigger, status, duration)
    log_event(
        "run_summary",
        logging.ERROR if status == "failed" else logging.INFO,
        run=run.run_id,
        kind=run.kind,
        trigger=run.trigger,
        subject=run.subject,
        status=status,
        duration_s=f"{duration:.1f}",
        error=errors[-1] if status == "failed" and errors else None,
        notice=" ".join(report.notices) or None,
        **report.counts,
    )


class _Renewer:
    """Renews the run's lease every `interval` from a daemon thread until stopped.

    The thread writes no log line: one written there belongs to no invocation (the Functions
    host drops those from its log) and to no trace. A renewal that fails is kept, and said by
    `report_loss` from the run's own thread once the run ends.
    """

    def __init__(self, lease: Lease, run: Run, interval: timedelta) -> None:
        self._lease = lease
        self._run = run
        self._interval = interval.total_seconds()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{run.kind}", daemon=True)
        self._lost: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)

    def report_loss(self) -> None:
        """Say `lock_lost` once if a renewal failed (call after `stop`, from the run's thread)."""
        if self._lost is not None:
            run = self._run
            log_event("lock_lost", logging.WARNING, run=run.run_id, kind=run.kind, error=self._lost)

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._lease.renew()
            except Exception as error:  # lost to another holder, or storage failing: stop renewing
                self._lost = one_line(error)
                self._run.lease_lost = True
                return


def _utcnow() -> datetime:
    return datetime.now(UTC)

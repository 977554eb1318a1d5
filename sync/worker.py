"""The queue-triggered worker: one typed piece of work in, the matching reconcile out.

Every kind of work is level-triggered, so a duplicate or late message only repeats a
reconcile that changes nothing. Each piece of work runs as one recorded run (the
envelope) of the capability it belongs to, and ends in one of three ways, like a
controller's `Reconcile`:

- `Done(outcome)` — finished (including "nothing to do" and a refusal recorded as a
  failure: retrying the same request cannot fix a 4xx);
- `RequeueAfter(delay)` — not yet: a boundary message that became visible early, or a run
  of the same kind holding the lock; the trigger puts the message back with that delay;
- an `UpstreamUnavailable` raised — Graph or 3CX is out: the Functions host retries the
  message with its backoff and, after `maxDequeueCount` tries, moves it to the poison queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import assert_never

from shared.errors import UpstreamRefused, one_line
from shared.state import LockHeld
from shared.telemetry import log_event
from shared.work_items import BoundaryWork, CalendarWork, ContactsWork, LifecycleWork, UserWork, Work
from sync.contact_sync import ContactRunAborted, run_contact_sync
from sync.eligibility import calendar_is_stale, is_paused
from sync.envelope import run_envelope
from sync.presence_run import Scheduler, reconcile_user
from sync.runtime import Runtime
from sync.subscription_upkeep import handle_lifecycle
from sync.user_sync import RunAborted, UserNotFound, run_user_sync

EARLY_TOLERANCE = timedelta(seconds=1)
LOCK_RETRY = timedelta(seconds=60)


@dataclass(frozen=True)
class Done:
    """The work is finished; `outcome` is a short word for logs and tests."""

    outcome: str


@dataclass(frozen=True)
class RequeueAfter:
    """Not yet: put the message back, visible again after `delay`."""

    delay: timedelta
    reason: str


WorkResult = Done | RequeueAfter


def handle_work(rt: Runtime, work: Work, scheduler: Scheduler, *, now: datetime | None = None) -> WorkResult:
    """Do one piece of work (see the module docstring for how it can end)."""
    now = now or datetime.now(UTC)
    if is_paused(rt.settings) and not isinstance(work, LifecycleWork):
        # Paused: nothing is changed in 3CX. Every reconcile is level-triggered, so the first
        # run after the pause catches up; subscriptions are still kept alive (lifecycle).
        log_event("work_skipped", kind=work.kind, reason="SYNC_PAUSED is true")
        return Done("paused")
    match work:
        case CalendarWork():
            return _presence(rt, work.kind, work.user_id, at=now, refresh=True, scheduler=scheduler)
        case BoundaryWork():
            if work.due - now > EARLY_TOLERANCE:
                return RequeueAfter(work.due - now, "the boundary is not due yet")
            # Within the tolerance, decide as of the boundary itself: deciding a moment before it
            # would see nothing to do, and the boundary would be lost until the next pass.
            at = max(now, work.due)
            stale = calendar_is_stale(rt.state.get_presence(work.user_id), at, rt.settings.calendar_refresh_minutes)
            return _presence(rt, work.kind, work.user_id, at=at, refresh=stale, scheduler=scheduler)
        case UserWork():
            return _user(rt, work.user_id)
        case ContactsWork():
            return _contacts(rt, work.user_id)
        case LifecycleWork():
            return _lifecycle(rt, work, now, scheduler)
        case _:
            assert_never(work)


def _presence(rt: Runtime, kind: str, user_id: str, *, at: datetime, refresh: bool, scheduler: Scheduler) -> Done:
    """One user's status, as one presence run; a refusal is recorded, an outage raised for a retry."""
    with run_envelope(rt.state, "presence", trigger="queue", subject=f"{kind} {user_id}") as run:
        try:
            outcome = reconcile_user(
                rt, user_id, now=at, refresh=refresh, scheduler=scheduler, read_errors=run.report.failures
            )
        except UpstreamRefused as error:
            run.report.failures.append(f"{user_id}: {one_line(error)}")
            log_event("status_failed", logging.WARNING, kind="presence", user=user_id, error=one_line(error)[:300])
            outcome = "failed"
        run.report.counts = {outcome: 1}
    return Done(outcome)


def _user(rt: Runtime, user_id: str) -> WorkResult:
    try:
        result = run_user_sync(rt, only_user_id=user_id, trigger="queue")
    except LockHeld:
        return RequeueAfter(LOCK_RETRY, "a user sync is running")
    except UserNotFound:
        # Neither in Graph nor linked (a deleted guest, an account never synced): nothing to do.
        log_event("work_skipped", kind="user", user=user_id, reason="not a Microsoft 365 user the connector knows")
        return Done("unknown user")
    if result.aborted:
        raise RunAborted(result.aborted)  # recorded as failed; the host retries the message
    if result.refused:
        return Done("refused")  # recorded as failed; a retry would be refused alike
    return Done(result.status)


def _contacts(rt: Runtime, mailbox: str) -> WorkResult:
    """Reconcile the company phonebook the notified shared mailbox feeds; while another run holds it: later.

    A mailbox outside SHARED_MAILBOXES feeds no phonebook: such work comes from an earlier
    version, which also synced each user's own contacts to a personal phonebook (3CX's own
    Microsoft 365 sync does that now), or from a mailbox taken off the list. Dropped, with a line.
    """
    if mailbox.lower() not in {shared.lower() for shared in rt.settings.shared_mailboxes}:
        log_event(
            "work_skipped",
            kind="contacts",
            user=mailbox,
            reason="not a mailbox in SHARED_MAILBOXES; personal contacts are synced by 3CX itself",
        )
        return Done("dropped")
    result = run_contact_sync(rt, mailbox=mailbox, trigger="queue")
    if result.aborted:
        raise ContactRunAborted(result.aborted)
    if result.busy:
        return RequeueAfter(LOCK_RETRY, f"another run holds {', '.join(result.busy)}")
    return Done(result.status)


def _lifecycle(rt: Runtime, work: LifecycleWork, now: datetime, scheduler: Scheduler) -> WorkResult:
    subject = f"{work.lifecycle_event} {work.subscription_id}"
    with run_envelope(rt.state, "subscriptions", trigger="queue", subject=subject) as run:
        try:
            target = handle_lifecycle(rt, work.subscription_id, work.lifecycle_event, now=now)
        except UpstreamRefused as error:
            # Recorded (and alerted on as subscription_failed); our record is kept, so the
            # next upkeep makes the subscription again. An outage propagates for a retry.
            run.report.failures.append(one_line(error))
            run.report.counts = {"failed": 1}
            return Done("failed")
        run.report.counts = {"handled": 1}
    if target is None:
        return Done("handled")
    kind, user_id = target
    # After any lifecycle event, changes may have been missed: reconcile what it watches now.
    if kind == "contacts":
        return _contacts(rt, user_id)
    return _presence(rt, "calendar", user_id, at=now, refresh=True, scheduler=scheduler)

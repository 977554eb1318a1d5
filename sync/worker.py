"""The queue-triggered worker: one WorkItem in, the matching reconcile out.

Every kind of work is level-triggered, so a duplicate or late message only repeats a
reconcile that changes nothing. Work that cannot be done yet (a boundary message that
became visible early, a user sync while a run holds the lock) goes back on the queue with
a delay instead of failing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.state import LockHeld
from shared.telemetry import log_event
from shared.work_items import WorkItem
from sync.contact_sync import run_contact_sync
from sync.eligibility import calendar_is_stale, is_paused
from sync.presence_run import Scheduler, reconcile_user
from sync.runtime import Runtime
from sync.subscriptions import handle_lifecycle
from sync.user_sync import run_user_sync

EARLY_TOLERANCE = timedelta(seconds=1)
LOCK_RETRY = timedelta(seconds=60)


def handle_work(rt: Runtime, item: WorkItem, scheduler: Scheduler, *, now: datetime | None = None) -> str:
    """Do one work item; returns a short word for logs and tests."""
    now = now or datetime.now(UTC)
    if is_paused(rt.settings) and item.kind != "lifecycle":
        # Paused: nothing is changed in 3CX. Every reconcile is level-triggered, so the first
        # run after the pause catches up; subscriptions are still kept alive (lifecycle).
        log_event("work_skipped", kind=item.kind, reason="SYNC_PAUSED is true")
        return "paused"
    if item.kind == "calendar" and item.user_id:
        return reconcile_user(rt, item.user_id, now=now, refresh=True, scheduler=scheduler)
    if item.kind == "boundary" and item.user_id:
        if item.due is not None and item.due - now > EARLY_TOLERANCE:
            scheduler.schedule(item, item.due - now)
            return "rescheduled"
        # Within the tolerance, decide as of the boundary itself: deciding a moment before it
        # would see nothing to do, and the boundary would be lost until the next pass.
        at = max(now, item.due) if item.due is not None else now
        state = rt.state.get_presence(item.user_id)
        stale = calendar_is_stale(state, at, rt.settings.calendar_refresh_minutes)
        return reconcile_user(rt, item.user_id, now=at, refresh=stale, scheduler=scheduler)
    if item.kind == "user" and item.user_id:
        try:
            result = run_user_sync(rt, only_user_id=item.user_id, trigger="queue")
        except LockHeld:
            scheduler.schedule(item, LOCK_RETRY)
            return "rescheduled"
        return result.status
    if item.kind == "contacts" and item.user_id:
        return _contacts(rt, item, scheduler)
    if item.kind == "lifecycle" and item.subscription_id and item.lifecycle_event:
        target = handle_lifecycle(rt, item.subscription_id, item.lifecycle_event, now=now)
        if target is None:
            return "handled"
        kind, user_id = target
        if kind == "contacts":
            return _contacts(rt, WorkItem(kind="contacts", user_id=user_id), scheduler)
        return reconcile_user(rt, user_id, now=now, refresh=True, scheduler=scheduler)
    log_event("work_ignored", kind=item.kind, reason="incomplete work item")
    return "ignored"


def _contacts(rt: Runtime, item: WorkItem, scheduler: Scheduler) -> str:
    """Reconcile the phonebook the notified mailbox feeds; a run in progress means: later."""
    result = run_contact_sync(rt, mailbox=item.user_id, phonebook=rt.phonebook, trigger="queue")
    if result.busy:
        scheduler.schedule(item, LOCK_RETRY)  # the book another run holds is looked at again later
        return "rescheduled"
    return result.status

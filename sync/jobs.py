"""What each trigger runs, as plain functions of a `Runtime`: the timers' jobs and the queue's work.

The triggers in `triggers/` only parse their input and call one of these; `python -m sync
serve` reaches them through the very same triggers. Each job says, in one line, why it did
nothing when it does nothing (paused, another run still going, nothing configured).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from shared.errors import one_line
from shared.state import LockHeld
from shared.telemetry import log_event, record_poison_messages
from shared.work_items import CalendarWork, parse_work
from sync.contact_sync import forget_personal_contacts, run_contact_sync
from sync.eligibility import is_paused
from sync.envelope import RunKind
from sync.presence_run import QueueScheduler, run_presence_pass
from sync.runtime import Runtime
from sync.subscription_upkeep import reconcile_subscriptions
from sync.user_sync import run_user_sync
from sync.worker import RequeueAfter, handle_work

T = TypeVar("T")

# How long the nightly run waits for a run holding the user-sync lock, and how often it looks.
NIGHTLY_LOCK_WAIT = timedelta(minutes=10)
LOCK_POLL = timedelta(seconds=15)


def nightly_sync(rt: Runtime, *, sleep: Callable[[float], None] = time.sleep) -> None:
    """The nightly sequence: users, then subscriptions for whoever is new, then every calendar re-read.

    A run holding the user-sync lock (usually a one-user sync from a notification, which takes
    seconds) is waited for, up to NIGHTLY_LOCK_WAIT; the subscriptions and the calendar re-read
    run in any case.
    """
    if is_paused(rt.settings):
        log_event("run_skipped", kind="users", reason="SYNC_PAUSED is true")
        return
    deadline = time.monotonic() + NIGHTLY_LOCK_WAIT.total_seconds()
    while True:
        try:
            run_user_sync(rt, trigger="timer")
            break
        except LockHeld as error:
            if time.monotonic() >= deadline:
                log_event("run_skipped", logging.WARNING, kind="users", reason=f"{error}; waited {NIGHTLY_LOCK_WAIT}")
                break
            sleep(LOCK_POLL.total_seconds())
    if rt.settings.webhook_url:
        _unless_running("subscriptions", lambda: reconcile_subscriptions(rt, trigger="timer"))
    _unless_running(
        "presence",
        lambda: run_presence_pass(
            rt,
            scheduler=QueueScheduler(rt.queue),
            enqueue_refresh=enqueue_calendar_refresh(rt),
            refresh_all=True,
            trigger="timer",
        ),
    )


def presence_pass(rt: Runtime) -> None:
    """The safety net for lost notifications and messages: due calendars re-read, due statuses applied."""
    if is_paused(rt.settings):
        return  # every minute: a line each time would only be noise; the nightly run says it
    _unless_running(
        "presence",
        lambda: run_presence_pass(
            rt, scheduler=QueueScheduler(rt.queue), enqueue_refresh=enqueue_calendar_refresh(rt), trigger="timer"
        ),
    )


def subscription_upkeep(rt: Runtime) -> None:
    """Create missing, renew expiring and delete orphaned Graph subscriptions."""
    if not rt.settings.webhook_url:
        log_event("subscriptions_skipped", kind="subscriptions", reason="WEBHOOK_URL is not set")
        return
    _unless_running("subscriptions", lambda: reconcile_subscriptions(rt, trigger="timer"))


def contacts_reconcile(rt: Runtime) -> None:
    """The company phonebook from its shared mailboxes' delta changes (catches what notifications missed)."""
    if is_paused(rt.settings):
        log_event("run_skipped", kind="contacts", reason="SYNC_PAUSED is true")
        return
    if not rt.settings.shared_mailboxes:
        forget_personal_contacts(rt)  # what earlier versions kept for personal phonebooks (once)
        return  # nothing to sync: no shared mailboxes
    run_contact_sync(rt, trigger="timer")


def queued_work(rt: Runtime, text: str) -> None:
    """One queue message: parse it, do it, put it back if it asked to wait; outages propagate for a retry."""
    try:
        work = parse_work(text)
    except ValueError as error:
        # A message no producer of ours writes: log and drop (retrying cannot fix it).
        log_event("work_rejected", logging.WARNING, reason=one_line(error)[:300])
        return
    result = handle_work(rt, work, QueueScheduler(rt.queue))
    if isinstance(result, RequeueAfter):
        rt.queue.send(work, visible_after=result.delay)
        log_event("work_requeued", kind=work.kind, delay_s=int(result.delay.total_seconds()), reason=result.reason)


def poison_check(rt: Runtime) -> None:
    """How many messages wait in the poison queue: the `connector.poison_messages` metric, and a line while any do.

    The Functions host moves a message there after `maxDequeueCount` failed tries (host.json)
    and nothing ever takes it off; the `poison_messages` line is what the alert reads.
    """
    count = rt.queue.poison_message_count()
    record_poison_messages(rt.queue.poison_name, count)
    if count:
        log_event("poison_messages", logging.WARNING, queue=rt.queue.poison_name, count=count)


def enqueue_calendar_refresh(rt: Runtime) -> Callable[[str], None]:
    """Hand a calendar re-read to the queue, so the worker reads calendars in parallel."""
    return lambda user_id: rt.queue.send(CalendarWork(user_id=user_id))


def _unless_running(kind: RunKind, run: Callable[[], T]) -> T | None:
    """The run's result, or None (and one line saying so) when a run of its kind is still going."""
    try:
        return run()
    except LockHeld as error:
        log_event("run_skipped", logging.WARNING, kind=kind, reason=str(error))
        return None

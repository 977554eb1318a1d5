"""Timer triggers: each runs one job of `sync.jobs` on its NCRONTAB schedule from the app settings.

Each invocation is a span (shared/telemetry.py `invocation`); one that fails, a bad setting
before any run began included, says so in an `invocation_failed` line.
"""

from __future__ import annotations

import azure.functions as func

from shared.telemetry import invocation
from sync import jobs
from sync.runtime import process_runtime
from sync.schedule import POISON_CHECK_SCHEDULE

bp = func.Blueprint()


@bp.function_name("user_sync_timer")
@bp.timer_trigger(arg_name="timer", schedule="%USER_SYNC_SCHEDULE%", run_on_startup=False, use_monitor=True)
def user_sync_timer(timer: func.TimerRequest) -> None:
    """The nightly user sync, then subscriptions for new users, then every calendar re-read."""
    with invocation("user_sync_timer"):
        jobs.nightly_sync(process_runtime())


@bp.function_name("presence_timer")
@bp.timer_trigger(arg_name="timer", schedule="%PRESENCE_SCHEDULE%", run_on_startup=False, use_monitor=False)
def presence_timer(timer: func.TimerRequest) -> None:
    """Safety net for lost notifications and messages: due calendars are re-read, due statuses applied."""
    with invocation("presence_timer"):
        jobs.presence_pass(process_runtime())


@bp.function_name("subscription_timer")
@bp.timer_trigger(arg_name="timer", schedule="%SUBSCRIPTION_SCHEDULE%", run_on_startup=False, use_monitor=True)
def subscription_timer(timer: func.TimerRequest) -> None:
    """Create missing, renew expiring and delete orphaned Graph subscriptions."""
    with invocation("subscription_timer"):
        jobs.subscription_upkeep(process_runtime())


@bp.function_name("contact_sync_timer")
@bp.timer_trigger(arg_name="timer", schedule="%CONTACT_SYNC_SCHEDULE%", run_on_startup=False, use_monitor=True)
def contact_sync_timer(timer: func.TimerRequest) -> None:
    """Reconcile every phonebook from its mailboxes' delta changes (catches what notifications missed)."""
    with invocation("contact_sync_timer"):
        jobs.contacts_reconcile(process_runtime())


@bp.function_name("poison_queue_check")
@bp.timer_trigger(arg_name="timer", schedule=POISON_CHECK_SCHEDULE, run_on_startup=False, use_monitor=False)
def poison_queue_check(timer: func.TimerRequest) -> None:
    """Count the messages the host gave up on (`<WORK_QUEUE>-poison`): a metric always, a line while any wait."""
    with invocation("poison_queue_check"):
        jobs.poison_check(process_runtime())

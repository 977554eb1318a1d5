"""Azure Functions entry point: triggers only.

Each trigger parses its input, calls one function in `sync/`, and maps the result to an
output. `python -m sync serve` serves these same handlers locally.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from shared.errors import one_line
from shared.settings import ConfigError
from shared.state import LockHeld
from shared.telemetry import log_event
from shared.work_items import WorkItem
from sync import admin_api
from sync.contact_sync import eligible_personal_users, run_contact_sync
from sync.eligibility import is_paused
from sync.notifications import WebhookAnswer, receive_lifecycle, receive_notifications
from sync.presence_run import QueueScheduler, run_presence_pass
from sync.runtime import Runtime, process_runtime
from sync.subscriptions import reconcile_subscriptions
from sync.user_sync import run_user_sync
from sync.worker import handle_work

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@functools.cache
def registered_functions() -> tuple[Any, ...]:
    """The app's functions, read once: `FunctionApp.get_functions()` refuses a second call."""
    return tuple(app.get_functions())


def _respond(result: admin_api.ApiResult) -> func.HttpResponse:
    return func.HttpResponse(result.text(), status_code=result.status, mimetype="application/json")


def _admin(call: Callable[[Runtime], admin_api.ApiResult]) -> func.HttpResponse:
    """Run an admin call; a bad setting answers 500 with its one line instead of a traceback."""
    try:
        rt = process_runtime()
    except ConfigError as error:
        log_event("config_error", logging.ERROR, error=str(error))
        return _respond(admin_api.ApiResult(500, {"error": str(error)}))
    return _respond(call(rt))


@app.function_name("user_sync_timer")
@app.timer_trigger(arg_name="timer", schedule="%USER_SYNC_SCHEDULE%", run_on_startup=False, use_monitor=True)
def user_sync_timer(timer: func.TimerRequest) -> None:
    """The nightly user sync. Skips (and says so) when paused or when a run is in progress."""
    rt = process_runtime()
    if is_paused(rt.settings):
        log_event("run_skipped", kind="users", reason="SYNC_PAUSED is true")
        return
    try:
        run_user_sync(rt, trigger="timer")
    except LockHeld as error:
        log_event("run_skipped", logging.WARNING, kind="users", reason=str(error))
        return
    # New users need their calendar subscriptions, and every calendar is re-read once a night.
    if rt.settings.webhook_url:
        reconcile_subscriptions(rt)
    run_presence_pass(rt, scheduler=QueueScheduler(rt.queue), enqueue_refresh=_enqueue_calendar(rt), refresh_all=True)


def _enqueue_calendar(rt: Runtime) -> Callable[[str], None]:
    return lambda user_id: rt.queue.send(WorkItem(kind="calendar", user_id=user_id))


@app.function_name("presence_timer")
@app.timer_trigger(arg_name="timer", schedule="%PRESENCE_SCHEDULE%", run_on_startup=False, use_monitor=False)
def presence_timer(timer: func.TimerRequest) -> None:
    """Safety net for lost notifications and messages: due calendars are re-read, due statuses applied."""
    rt = process_runtime()
    if is_paused(rt.settings):
        return
    run_presence_pass(rt, scheduler=QueueScheduler(rt.queue), enqueue_refresh=_enqueue_calendar(rt))


@app.function_name("subscription_timer")
@app.timer_trigger(arg_name="timer", schedule="%SUBSCRIPTION_SCHEDULE%", run_on_startup=True, use_monitor=True)
def subscription_timer(timer: func.TimerRequest) -> None:
    """Create missing, renew expiring and delete orphaned Graph subscriptions."""
    rt = process_runtime()
    if not rt.settings.webhook_url:
        log_event("subscriptions_skipped", kind="subscriptions", reason="WEBHOOK_URL is not set")
        return
    reconcile_subscriptions(rt)


@app.function_name("contact_sync_timer")
@app.timer_trigger(arg_name="timer", schedule="%CONTACT_SYNC_SCHEDULE%", run_on_startup=False, use_monitor=True)
def contact_sync_timer(timer: func.TimerRequest) -> None:
    """Reconcile every phonebook from its mailboxes' delta changes (catches what notifications missed)."""
    rt = process_runtime()
    if is_paused(rt.settings):
        log_event("run_skipped", kind="contacts", reason="SYNC_PAUSED is true")
        return
    if not rt.settings.shared_mailboxes and not eligible_personal_users(rt) and not rt.state.personal_books():
        return  # nothing to sync: no shared mailboxes, no user with personal contacts on
    run_contact_sync(rt, phonebook=rt.phonebook, trigger="timer")


@app.function_name("work_queue_worker")
@app.queue_trigger(arg_name="message", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
def work_queue_worker(message: func.QueueMessage) -> None:
    """Reconcile what a notification, boundary or lifecycle event points at."""
    try:
        item = WorkItem.from_message(message.get_body().decode("utf-8"))
    except ValueError as error:
        # A message no producer of ours writes: log and drop (retrying cannot fix it).
        log_event("work_rejected", logging.WARNING, reason=one_line(error)[:300])
        return
    rt = process_runtime()
    handle_work(rt, item, QueueScheduler(rt.queue))


def _webhook(answer: WebhookAnswer, work: func.Out[list[str]]) -> func.HttpResponse:
    if answer.work:
        work.set([item.to_message() for item in answer.work])
    return func.HttpResponse(answer.body, status_code=answer.status, mimetype=answer.content_type)


def _webhook_context() -> tuple[str, Callable[..., Any]] | None:
    try:
        rt = process_runtime()
    except ConfigError as error:
        log_event("config_error", logging.ERROR, error=str(error))
        return None
    return rt.settings.graph_tenant_id or "", rt.subscription_cache.get


@app.function_name("graph_notifications")
@app.route(route="graph/notifications", methods=["POST"])
@app.queue_output(arg_name="work", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
def graph_notifications(req: func.HttpRequest, work: func.Out[list[str]]) -> func.HttpResponse:
    """Graph change notifications: validate, queue one work item each, answer 202 at once."""
    context = _webhook_context()
    if context is None:
        return func.HttpResponse("service misconfigured", status_code=503)
    tenant_id, lookup = context
    answer = receive_notifications(dict(req.params), req.get_body(), tenant_id=tenant_id, lookup=lookup, now=_utcnow)
    return _webhook(answer, work)


@app.function_name("graph_lifecycle")
@app.route(route="graph/lifecycle", methods=["POST"])
@app.queue_output(arg_name="work", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
def graph_lifecycle(req: func.HttpRequest, work: func.Out[list[str]]) -> func.HttpResponse:
    """Graph lifecycle notifications (reauthorizationRequired, subscriptionRemoved, missed)."""
    context = _webhook_context()
    if context is None:
        return func.HttpResponse("service misconfigured", status_code=503)
    tenant_id, lookup = context
    answer = receive_lifecycle(dict(req.params), req.get_body(), tenant_id=tenant_id, lookup=lookup, now=_utcnow)
    return _webhook(answer, work)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@app.function_name("admin_user_plan")
@app.route(route="admin/users/plan", methods=["GET"])
def admin_user_plan(req: func.HttpRequest) -> func.HttpResponse:
    return _admin(lambda rt: admin_api.user_plan(rt, dict(req.params)))


@app.function_name("admin_user_run")
@app.route(route="admin/users/run", methods=["POST"])
def admin_user_run(req: func.HttpRequest) -> func.HttpResponse:
    return _admin(lambda rt: admin_api.user_run(rt, dict(req.params)))


@app.function_name("admin_options_list")
@app.route(route="admin/options", methods=["GET"])
def admin_options_list(req: func.HttpRequest) -> func.HttpResponse:
    return _admin(lambda rt: admin_api.options_get(rt, None))


@app.function_name("admin_options_user")
@app.route(route="admin/options/{upn}", methods=["GET", "PUT", "DELETE"])
def admin_options_user(req: func.HttpRequest) -> func.HttpResponse:
    upn = req.route_params["upn"]
    if req.method == "PUT":
        return _admin(lambda rt: admin_api.options_put(rt, upn, req.get_body()))
    if req.method == "DELETE":
        return _admin(lambda rt: admin_api.options_delete(rt, upn))
    return _admin(lambda rt: admin_api.options_get(rt, upn))

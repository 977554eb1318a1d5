"""Graph's webhook routes: authenticate, queue one piece of work per notification, answer at once.

The logic is `sync.notifications` (pure); here the request becomes its arguments and the
answer becomes the HTTP response plus the queue output binding's messages. Each queued
message carries this invocation's trace (`traceparent`), so the worker continues it; how
long each answer took is the `connector.webhook.duration` metric, by route and status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from shared.errors import ConfigError, one_line
from shared.telemetry import current_traceparent, invocation, log_event, timed_webhook
from sync.notifications import WebhookAnswer, receive_lifecycle, receive_notifications
from sync.runtime import process_runtime

bp = func.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)


def _webhook(answer: WebhookAnswer, work: func.Out[list[str]]) -> func.HttpResponse:
    if answer.work:
        traceparent = current_traceparent()
        work.set([item.traced(traceparent).to_message() for item in answer.work])
    return func.HttpResponse(
        answer.body, status_code=answer.status, mimetype=answer.content_type, headers=answer.headers
    )


def _webhook_context() -> tuple[str, Callable[..., Any]] | None:
    try:
        rt = process_runtime()
    except ConfigError as error:
        log_event("config_error", logging.ERROR, error=one_line(error))
        return None
    return rt.settings.graph_tenant_id or "", rt.subscription_cache.get


@bp.function_name("graph_notifications")
@bp.route(route="graph/notifications", methods=["POST"])
@bp.queue_output(arg_name="work", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
def graph_notifications(req: func.HttpRequest, work: func.Out[list[str]]) -> func.HttpResponse:
    """Graph change notifications: validate, queue one piece of work each, answer 202 at once."""
    return _receive("graph_notifications", "notifications", receive_notifications, req, work)


@bp.function_name("graph_lifecycle")
@bp.route(route="graph/lifecycle", methods=["POST"])
@bp.queue_output(arg_name="work", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
def graph_lifecycle(req: func.HttpRequest, work: func.Out[list[str]]) -> func.HttpResponse:
    """Graph lifecycle notifications (reauthorizationRequired, subscriptionRemoved, missed)."""
    return _receive("graph_lifecycle", "lifecycle", receive_lifecycle, req, work)


def _receive(
    function: str,
    route: str,
    receive: Callable[..., WebhookAnswer],
    req: func.HttpRequest,
    work: func.Out[list[str]],
) -> func.HttpResponse:
    """One webhook delivery, as a timed invocation: the answer `receive` gives, its work queued."""
    with invocation(function), timed_webhook(route) as timing:
        context = _webhook_context()
        if context is None:
            response = func.HttpResponse("service misconfigured", status_code=503)
        else:
            tenant_id, lookup = context
            answer = receive(dict(req.params), req.get_body(), tenant_id=tenant_id, lookup=lookup, now=_utcnow)
            response = _webhook(answer, work)
        timing.status_code = response.status_code
        return response


def _utcnow() -> datetime:
    return datetime.now(UTC)

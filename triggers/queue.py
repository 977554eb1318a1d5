"""The work-queue trigger: one message, one piece of work (`sync.jobs.queued_work`).

An outage raised from the work propagates, so the Functions host retries the message with
its backoff and moves it to `<queue>-poison` after `maxDequeueCount` tries (host.json).
The invocation's span continues the trace the message carries (its `traceparent`: the
webhook's, or the run's that scheduled it), linked to the host's own for this invocation.
"""

from __future__ import annotations

import azure.functions as func
from opentelemetry.trace import SpanKind

from shared.telemetry import invocation
from shared.work_items import traceparent_of
from sync import jobs
from sync.runtime import process_runtime

bp = func.Blueprint()


@bp.function_name("work_queue_worker")
@bp.queue_trigger(arg_name="message", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
def work_queue_worker(message: func.QueueMessage) -> None:
    """Reconcile what a notification, boundary or lifecycle event points at."""
    text = message.get_body().decode("utf-8")
    with invocation("work_queue_worker", traceparent=traceparent_of(text), kind=SpanKind.CONSUMER):
        jobs.queued_work(process_runtime(), text)

"""The work-queue trigger: one message, one piece of work (`sync.jobs.queued_work`).

An outage raised from the work propagates, so the Functions host retries the message with
its backoff and moves it to `<queue>-poison` after `maxDequeueCount` tries (host.json).
"""

from __future__ import annotations

import azure.functions as func

from sync import jobs
from sync.runtime import process_runtime

bp = func.Blueprint()


@bp.function_name("work_queue_worker")
@bp.queue_trigger(arg_name="message", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
def work_queue_worker(message: func.QueueMessage) -> None:
    """Reconcile what a notification, boundary or lifecycle event points at."""
    jobs.queued_work(process_runtime(), message.get_body().decode("utf-8"))

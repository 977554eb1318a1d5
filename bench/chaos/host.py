"""The Functions host on the simulated clock: timers when they are due, the queue trigger with its retries.

The Function App's own registered functions are run (`function_app.registered_functions()`,
read the way `devhost.serve` reads them), so a timer or a queue message goes through the
trigger code exactly as in Azure. What the host does around them is reproduced here on
the simulated clock:

- a timer fires once when its NCRONTAB schedule came due since it last fired (a step can
  cover many minutes: like a host that was busy, it does not fire the missed ones again);
- the queue trigger takes visible messages 16 at a time; a message is deleted when the
  function returns; when it raises, the host logs it and the message stays hidden until
  the next step (the host's `visibilityTimeout`), then is tried again, and after
  `maxDequeueCount` tries it goes to `<queue>-poison`;
- a lost message fault deletes the next received message unprocessed, as if it never came.

Each invocation begins with an `invoke <function>[: <kind> work]` log line, so the checks
can tell which log lines (and which run summaries) belong to which invocation.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError
from azure.storage.queue import QueueClient

from bench.chaos.clock import SimClock
from bench.chaos.faults import FaultBook
from devhost.serve import MAX_DEQUEUE_COUNT, TimerJob, discover
from shared.errors import one_line
from shared.queues import QueuedMessage, WorkQueue

log = logging.getLogger("soak.host")

RECEIVE_BATCH = 16  # host.json: batchSize
HIDDEN_SECONDS = 900  # real seconds a received message stays hidden; the soak shows a failed one again sooner


class _Timer(func.TimerRequest):
    @property
    def past_due(self) -> bool:
        return False


@dataclass(frozen=True)
class HostFailure:
    """A function that raised: what the host logged."""

    function: str
    error: str
    storage_down: bool  # Azurite was down: nothing could have recorded a run


@dataclass
class HostStats:
    timer_runs: Counter[str] = field(default_factory=Counter)
    messages_done: int = 0
    failed_tries: int = 0
    poisoned: int = 0
    lost: int = 0
    failures: list[HostFailure] = field(default_factory=list)


class SimulatedHost:
    """Timers and the work-queue trigger of the Function App, on `clock` (see the module docstring)."""

    def __init__(self, functions: Any, clock: SimClock, connection_string: str, faults: FaultBook) -> None:
        found = discover(functions)
        self.timers: dict[str, TimerJob] = {timer.name: timer for timer in found.timers}
        (self.worker,) = found.queue_jobs
        self.clock = clock
        self.faults = faults
        self.stats = HostStats()
        self.storage_down = False
        self._queue = WorkQueue.from_connection_string(connection_string, self.worker.queue_name)
        self._client = QueueClient.from_connection_string(connection_string, self.worker.queue_name)
        self._last_fired = {name: clock.now() for name in self.timers}
        self._waiting: list[QueuedMessage] = []
        self._lose = 0

    # -- timers ----------------------------------------------------------------------------
    def fire(self, name: str) -> None:
        """Run one timer function now (as at start-up, or in the quiet reconcile)."""
        timer = self.timers[name]
        self._last_fired[name] = self.clock.now()
        self.stats.timer_runs[name] += 1
        log.info("invoke %s", name)  # marks where one function's log lines begin (see checks)
        try:
            timer.handler(_Timer())
        except Exception as error:
            log.exception("timer %s failed%s", name, self._storage_note())
            self.stats.failures.append(HostFailure(name, one_line(error), self.storage_down))

    def fire_due_timers(self) -> list[str]:
        """Fire each timer whose schedule came due since it last fired, earliest first."""
        now = self.clock.now()
        due = sorted(
            (timer.schedule.next_after(self._last_fired[name]), name)
            for name, timer in self.timers.items()
            if timer.schedule.next_after(self._last_fired[name]) <= now
        )
        for _, name in due:
            self.fire(name)
        return [name for _, name in due]

    # -- the queue -------------------------------------------------------------------------
    def lose_next(self, count: int = 1) -> None:
        self._lose += count
        self.faults.injected_now("queue_message_lost", count)

    def disarm(self) -> None:
        self._lose = 0

    def retry_waiting(self) -> None:
        """Messages whose try failed become visible again (their visibility timeout passed)."""
        waiting, self._waiting = self._waiting, []
        for message in waiting:
            with suppress(AzureError):  # gone, or its receipt no longer valid: it reappears by itself
                self._client.update_message(message.id, message.pop_receipt, visibility_timeout=0)

    def drain(self, release_due: Callable[[], int]) -> int:
        """Handle visible messages until none is left (releasing delayed ones as they come due); how many."""
        handled = 0
        while True:
            release_due()
            batch = self._queue.receive(max_messages=RECEIVE_BATCH, visibility_timeout=HIDDEN_SECONDS)
            if not batch:
                return handled
            for message in batch:
                handled += 1
                self._handle(message)

    def _handle(self, message: QueuedMessage) -> None:
        if self._lose:
            self._lose -= 1
            self._queue.delete(message)
            self.stats.lost += 1
            self.faults.struck("queue_message_lost")
            return
        request = func.QueueMessage(id=message.id, body=message.text.encode("utf-8"), pop_receipt=message.pop_receipt)
        log.info("invoke %s: %s work", self.worker.name, _kind_of(message.text))
        try:
            self.worker.handler(**{self.worker.arg_name: request})
        except Exception as error:
            log.exception(
                "function %s failed on message %s (try %d)%s",
                self.worker.name,
                message.id,
                message.dequeue_count,
                self._storage_note(),
            )
            self.stats.failed_tries += 1
            self.stats.failures.append(HostFailure(self.worker.name, one_line(error), self.storage_down))
            if message.dequeue_count >= MAX_DEQUEUE_COUNT:
                self._queue.poison(message)
                self.stats.poisoned += 1
            else:
                self._waiting.append(message)
            return
        self._queue.delete(message)
        self.stats.messages_done += 1

    def _storage_note(self) -> str:
        return " (storage down)" if self.storage_down else ""


def _kind_of(text: str) -> str:
    """The work item's kind (`calendar`, `user`, ...), for the log; `unknown` if it is not one of ours."""
    try:
        kind = json.loads(text).get("kind")
    except (ValueError, AttributeError):
        return "unknown"
    return str(kind) if kind else "unknown"

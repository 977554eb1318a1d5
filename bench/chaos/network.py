"""Between the Graph fake and the connector's webhook: Graph's deliveries, as unreliable as the soak wants.

The Graph fake holds every change and lifecycle notification (`hold_notifications`); each
step, the soak hands them to the webhook over HTTPS (the real route of the local host,
which queues real work in Azurite), after dropping, duplicating or reordering some as the
faults say. Like Graph, it delivers again what the webhook did not accept (no answer, 5xx,
429), with backoff, for up to four hours, then gives up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from bench.chaos.clock import SimClock
from bench.chaos.faults import FaultBook
from fakes.graph import GraphFake
from fakes.graph_subscriptions import PendingNotification

REDELIVERY_WINDOW = timedelta(hours=4)  # Graph retries a failed delivery for up to four hours


@dataclass
class _Redelivery:
    notification: PendingNotification
    first_failed_at: float
    due_at: float
    attempts: int


@dataclass
class NetworkStats:
    delivered: int = 0  # POSTs the webhook accepted
    refused: int = 0  # POSTs it answered otherwise (or not at all): Graph delivers again
    given_up: int = 0  # notifications Graph stopped delivering after four hours
    statuses: dict[int, int] = field(default_factory=dict)


class Network:
    """Delivers what the Graph fake holds, with the faults armed here (see the module docstring)."""

    def __init__(self, graph: GraphFake, faults: FaultBook, rng: random.Random, clock: SimClock) -> None:
        self.graph = graph
        self.faults = faults
        self.rng = rng
        self.clock = clock
        self.stats = NetworkStats()
        self._drop = 0
        self._duplicate = 0
        self._reorder = 0
        self._retries: list[_Redelivery] = []

    # -- faults ------------------------------------------------------------------------------
    def drop_next(self, count: int = 1) -> None:
        self._drop += count
        self.faults.injected_now("notification_dropped", count)

    def duplicate_next(self, count: int = 1) -> None:
        self._duplicate += count
        self.faults.injected_now("notification_duplicated", count)

    def reorder_next(self) -> None:
        self._reorder += 1
        self.faults.injected_now("notifications_reordered")

    def disarm(self) -> None:
        """No more drops, duplicates or reordering (the quiet end)."""
        self._drop = self._duplicate = self._reorder = 0

    # -- delivery ------------------------------------------------------------------------------
    def deliver(self, *, limit: int | None = None, faults: bool = True) -> int:
        """Deliver what is due (held notifications, then due redeliveries); how many POSTs were made.

        `limit` delivers at most that many held notifications and leaves the rest held;
        `faults=False` leaves the armed drops, duplicates and reordering for later.
        """
        batch = self._take_held(limit)
        if faults:
            batch = self._with_faults(batch)
        posts = 0
        for notification in batch:
            self._post(notification, first_failed_at=None, attempts=0)
            posts += 1
        if limit is None:
            posts += self._redeliver_due()
        return posts

    def pending(self) -> int:
        return len(self.graph.pending_notifications) + len(self._retries)

    def _take_held(self, limit: int | None) -> list[PendingNotification]:
        # Only the soak's thread changes the tenant, so nothing is added to the list meanwhile.
        held = self.graph.pending_notifications
        count = len(held) if limit is None else min(limit, len(held))
        batch = held[:count]
        del held[:count]
        return batch

    def _with_faults(self, batch: list[PendingNotification]) -> list[PendingNotification]:
        while self._drop and batch:
            batch.pop(self.rng.randrange(len(batch)))
            self._drop -= 1
            self.faults.struck("notification_dropped")
        while self._duplicate and batch:
            twin = batch[self.rng.randrange(len(batch))]
            batch.insert(self.rng.randrange(len(batch) + 1), twin)
            self._duplicate -= 1
            self.faults.struck("notification_duplicated")
        if self._reorder and len({id(item) for item in batch}) > 1:
            before = [id(item) for item in batch]
            while [id(item) for item in batch] == before:
                self.rng.shuffle(batch)
            self._reorder -= 1
            self.faults.struck("notifications_reordered")
        return batch

    def _post(self, notification: PendingNotification, *, first_failed_at: float | None, attempts: int) -> None:
        delivery = self.graph.deliver_notification(notification)
        self.stats.statuses[delivery.status] = self.stats.statuses.get(delivery.status, 0) + 1
        if 200 <= delivery.status < 300:
            self.stats.delivered += 1
            return
        self.stats.refused += 1
        if delivery.status not in (0, 429) and delivery.status < 500:
            return  # a refusal Graph does not retry (e.g. 400); the webhook logged why
        now = self.clock()
        first = now if first_failed_at is None else first_failed_at
        if now - first >= REDELIVERY_WINDOW.total_seconds():
            self.stats.given_up += 1
            return
        backoff = min(3600.0, 60.0 * 2**attempts)
        self._retries.append(_Redelivery(notification, first, now + backoff, attempts + 1))

    def _redeliver_due(self) -> int:
        now = self.clock()
        due = [retry for retry in self._retries if retry.due_at <= now]
        self._retries = [retry for retry in self._retries if retry.due_at > now]
        for retry in due:
            self._post(retry.notification, first_failed_at=retry.first_failed_at, attempts=retry.attempts)
        return len(due)

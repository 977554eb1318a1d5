"""Simulated time, shared by the fakes and the connector inside the soak's process.

A week must pass in a minute or two, so nothing may wait for real: the clock moves when
the soak says (one step at a time) or when the connector sleeps (a Retry-After, a backoff),
which moves it by that much instead of waiting.

The connector reads the time in two ways, and both are pointed at this clock here, in this
process only (no product code changes for it):
- `datetime.now(...)` in its modules: each product module's `datetime` name is replaced,
  for the soak's duration, by a subclass whose `now` reads the clock (`product_time`);
- clocks and sleeps its clients and caches take as arguments: the soak builds the
  runtime's Graph and 3CX clients, work queue and subscription cache with this clock
  (`runner.install_simulated_clients`).

Azure Storage keeps real time, so a queue message's visibility delay is kept here instead
(`ClockQueue`): a delayed message waits in the soak until the clock reaches it, then goes
to Azurite visible at once — what the queue does, on the simulated clock.
"""

from __future__ import annotations

import heapq
import importlib
import itertools
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from shared.queues import WorkQueue, visibility_delay_seconds

# Packages whose modules read the time: the product (the fakes take the clock directly).
PRODUCT_PACKAGES = ("shared", "sync", "triggers", "function_app")
# Modules known to call datetime.now(); patching must reach each of them.
MUST_PATCH = (
    "shared.state",
    "sync.envelope",
    "sync.worker",
    "sync.presence_run",
    "sync.subscription_upkeep",
    "triggers.webhooks",
)


class SimClock:
    """Seconds since the epoch, moved by the soak (`advance_to`) and by sleeps (`sleep`)."""

    def __init__(self, start: datetime) -> None:
        self._now = start.timestamp()
        self._lock = threading.Lock()
        self.slept = 0.0  # simulated seconds the connector spent sleeping (Retry-After, backoff)

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def now(self) -> datetime:
        return datetime.fromtimestamp(self(), UTC)

    def sleep(self, seconds: float) -> None:
        """What the connector's `sleep` does here: the time passes, nobody waits."""
        with self._lock:
            self._now += max(0.0, seconds)
            self.slept += max(0.0, seconds)

    def advance_to(self, moment: datetime) -> None:
        """Move to `moment` (never backwards: a long sleep may already have passed it)."""
        with self._lock:
            self._now = max(self._now, moment.timestamp())


class _DatetimeType(type):
    """Lets `isinstance(x, datetime)` keep working in patched modules for every real datetime."""

    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, datetime)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, datetime)


def _clocked_datetime(clock: SimClock) -> type[datetime]:
    class ClockedDatetime(datetime, metaclass=_DatetimeType):
        """`datetime` whose `now` is the simulated clock's; everything else is datetime's own."""

        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:
            return datetime.fromtimestamp(clock(), tz)

    return ClockedDatetime


@contextmanager
def product_time(clock: SimClock) -> Iterator[list[str]]:
    """Point every loaded product module's `datetime` at `clock` while inside; yields the modules patched."""
    importlib.import_module("function_app")  # loads every module the Functions host would run
    importlib.import_module("sync.cli")
    clocked = _clocked_datetime(clock)
    patched: list[tuple[Any, str]] = []
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in PRODUCT_PACKAGES or module is None:
            continue
        for attribute, value in list(vars(module).items()):
            if value is datetime:
                setattr(module, attribute, clocked)
                patched.append((module, attribute))
    names = sorted({module.__name__ for module, _ in patched})
    missing = [name for name in MUST_PATCH if name not in names]
    try:
        if missing:
            raise RuntimeError(f"the soak could not put these modules on its clock: {', '.join(missing)}")
        yield names
    finally:
        for module, attribute in patched:
            setattr(module, attribute, datetime)


class ClockQueue(WorkQueue):
    """The work queue with visibility delays kept by the simulated clock (see the module docstring)."""

    clock: SimClock
    _parked: list[tuple[float, int, str]]
    _order: Iterator[int]

    @classmethod
    def connect(cls, connection_string: str, name: str, clock: SimClock) -> ClockQueue:
        queue = cls.from_connection_string(connection_string, name)
        assert isinstance(queue, ClockQueue)
        queue.clock = clock
        queue._parked = []
        queue._order = itertools.count()
        queue.ensure()
        return queue

    def send_text(self, text: str, *, visible_after: timedelta | None = None) -> None:
        delay = visibility_delay_seconds(visible_after)
        if delay == 0:
            super().send_text(text)
            return
        # Only the worker delays messages (boundaries, requeues), and it runs on the soak's thread.
        heapq.heappush(self._parked, (self.clock() + delay, next(self._order), text))

    def release_due(self) -> int:
        """Send every parked message whose delay has passed; how many."""
        released = 0
        while self._parked and self._parked[0][0] <= self.clock():
            _, _, text = heapq.heappop(self._parked)
            super().send_text(text)
            released += 1
        return released

    @property
    def parked(self) -> int:
        return len(self._parked)

    def next_due(self) -> datetime | None:
        return datetime.fromtimestamp(self._parked[0][0], UTC) if self._parked else None

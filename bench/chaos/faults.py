"""What the soak breaks, and the tally by kind: how many faults were injected, how many struck.

HTTP faults are armed on a fake ("the next N matching requests fail"); they strike only
when the connector sends such a request, so `served` counts what actually struck (the
armed count minus what is left when the soak settles). Every other fault (a dropped
notification, a lost message, a restart, a revoked token, an expired delta link, a
removed subscription) strikes when it is injected.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from fakes.transport import FakeService, Fault

# Every kind of fault the soak injects, in the order the report lists them.
KINDS = (
    "graph_5xx",
    "pbx_5xx",
    "throttle_storm_429",
    "connection_reset",
    "timeout_after_write",
    "photo_item_error",
    "notification_dropped",
    "notification_duplicated",
    "notifications_reordered",
    "queue_message_lost",
    "azurite_restart",
    "pbx_token_revoked",
    "users_delta_expired",
    "contacts_delta_expired",
    "subscription_removed",
)


@dataclass
class _Armed:
    kind: str
    fault: Fault
    count: int


@dataclass
class FaultBook:
    """The tally: injected and served, by kind."""

    injected: Counter[str] = field(default_factory=Counter)
    served: Counter[str] = field(default_factory=Counter)
    _armed: list[_Armed] = field(default_factory=list)
    _services: list[FakeService] = field(default_factory=list)

    def injected_now(self, kind: str, count: int = 1) -> None:
        """A fault armed outside the fakes (the network, the host): counted served as it strikes."""
        self.injected[kind] += count

    def struck(self, kind: str, count: int = 1) -> None:
        """A fault that struck (armed earlier with `injected_now`, or both at once with `happened`)."""
        self.served[kind] += count

    def happened(self, kind: str, count: int = 1) -> None:
        """A fault injected and suffered at once (a restart, a revoked token, an expired delta link)."""
        self.injected_now(kind, count)
        self.struck(kind, count)

    def arm(self, kind: str, service: FakeService, inject: Callable[[], None], count: int) -> None:
        """Arm an HTTP fault on `service` (`inject` adds exactly one Fault to it); served later."""
        before = len(service.faults)
        inject()
        if len(service.faults) != before + 1:
            raise RuntimeError(f"arming {kind} did not add exactly one fault")
        self._armed.append(_Armed(kind, service.faults[-1], count))
        if service not in self._services:
            self._services.append(service)
        self.injected[kind] += count

    def arm_batch_item(self, kind: str, faults: list[Fault], inject: Callable[[], None], count: int) -> None:
        """Arm a fault inside Graph's `$batch` (its own list of faults)."""
        before = len(faults)
        inject()
        if len(faults) != before + 1:
            raise RuntimeError(f"arming {kind} did not add exactly one fault")
        self._armed.append(_Armed(kind, faults[-1], count))
        self.injected[kind] += count

    def settle(self) -> None:
        """Count what struck of the armed faults (a fault's count goes down as it strikes)."""
        still = []
        for armed in self._armed:
            struck = armed.count - max(0, armed.fault.count)
            self.served[armed.kind] += struck
            armed.count -= struck
            if armed.count > 0:
                still.append(armed)
        self._armed = still

    def disarm(self, batch_faults: list[Fault]) -> int:
        """Settle, then remove every fault not yet struck (the quiet end); how many were left."""
        self.settle()
        left = sum(armed.count for armed in self._armed)
        for service in self._services:
            service.faults.clear()
        batch_faults.clear()
        self._armed = []
        return left

    def report(self) -> dict[str, dict[str, int]]:
        return {kind: {"injected": self.injected[kind], "served": self.served[kind]} for kind in KINDS}


@dataclass(frozen=True)
class FaultRates:
    """How often each kind is injected, per simulated day (each kind also once for sure)."""

    per_day: dict[str, float]

    @classmethod
    def default(cls, intensity: float) -> FaultRates:
        base = {
            "graph_5xx": 6,
            "pbx_5xx": 6,
            "throttle_storm_429": 2,
            "connection_reset": 4,
            "timeout_after_write": 3,
            "photo_item_error": 1,
            "notification_dropped": 3,
            "notification_duplicated": 3,
            "notifications_reordered": 3,
            "queue_message_lost": 3,
            "azurite_restart": 0.3,
            "pbx_token_revoked": 1,
            "users_delta_expired": 0.5,
            "contacts_delta_expired": 0.5,
            "subscription_removed": 1.5,
        }
        return cls({kind: rate * intensity for kind, rate in base.items()})


def schedule(rates: FaultRates, steps: int, steps_per_day: int, rng: random.Random) -> list[list[str]]:
    """Which kinds strike at each step: each kind once for sure, more at its rate.

    The sure one falls in the first half of the week, so that even a fault only a nightly
    run can meet (a photo failing inside the photo `$batch`) meets one before the end.
    """
    plan: list[list[str]] = [[] for _ in range(steps)]
    for kind in KINDS:
        plan[rng.randrange(1, max(2, steps // 2))].append(kind)
        chance = rates.per_day[kind] / steps_per_day
        for step in range(1, steps):
            whole, fraction = divmod(chance, 1.0)
            plan[step].extend([kind] * (int(whole) + (rng.random() < fraction)))
    return plan

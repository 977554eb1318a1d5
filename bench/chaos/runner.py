"""The chaos soak, start to report: a tenant's compressed week with faults, one quiet reconcile, the verdict.

Everything runs in this process: Azurite (real), the Graph and 3CX fakes over HTTPS, and
the Function App's handlers served by the local host (`devhost.serve`) for the webhook;
timers and the queue trigger are run by `host.SimulatedHost` on the simulated clock, and
Graph's deliveries by `network.Network`. One step of the week:

1. the clock moves on; messages whose try failed become visible again;
2. the faults planned for this step are injected;
3. the company lives (hires, leavers, renames, photos, meetings, contacts, hand-made 3CX changes);
4. Graph delivers what it holds to the webhook (with drops, duplicates, reordering) and
   redelivers what was refused;
5. the timers that came due fire; the queue is drained.

At the end every fault is lifted, Graph delivers what it still holds, and one quiet
reconcile runs (the nightly timer: users, subscriptions, every calendar re-read; the
contacts timer; the queue drained). Then the checks.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import secrets
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from azure.data.tables import TableServiceClient

from bench.chaos import checks
from bench.chaos.clock import ClockQueue, SimClock, product_time
from bench.chaos.faults import FaultBook, FaultRates, schedule
from bench.chaos.host import SimulatedHost
from bench.chaos.journal import Journal, journaled
from bench.chaos.known_gaps import KNOWN_GAPS
from bench.chaos.network import Network
from bench.chaos.tenant import SHARED_MAILBOXES, Company, LifeRates
from devhost.stack import GRAPH_SECRET, PBX_CLIENT_ID, PBX_SECRET, Stack, local_stack
from fakes.transport import ISSUED_CREDENTIALS, build_request
from function_app import registered_functions
from shared.entra import GraphTokenProvider
from shared.graph import GraphClient
from shared.state import SharedTcxToken
from shared.threecx import ThreeCXClient
from sync.envelope import RUN_KINDS
from sync.notifications import SubscriptionCache
from sync.runtime import Runtime, process_runtime, reset_process_runtime

FUNCTION_KEY = "soak-function-key-" + secrets.token_hex(6)  # planted in WEBHOOK_URL; must never show up
EXTENSION_START = 1000
# After the faults are lifted the connector runs on its own this long before the quiet reconcile:
# longer than its own hold-backs after an outage (calendar reads back off for up to an hour).
QUIET_PERIOD = timedelta(minutes=75)
QUIET_STEP = timedelta(minutes=15)


@dataclass(frozen=True)
class SoakConfig:
    seed: int = 1
    users: int = 250
    days: float = 7.0
    steps_per_day: int = 24
    fault_intensity: float = 1.0
    calendar_refresh_minutes: int = 720
    life_intensity: float = 1.0  # multiplies the company's event rates
    progress: bool = False  # a line on stderr per simulated day
    log_path: Path | None = None  # every log line the connector wrote, for reading afterwards
    start: datetime = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, 00:00 UTC

    @property
    def steps(self) -> int:
        return max(2, round(self.days * self.steps_per_day))

    @property
    def step(self) -> timedelta:
        return timedelta(days=1) / self.steps_per_day


def connector_settings(config: SoakConfig) -> dict[str, str]:
    """The Function App's settings for the soak (the rest come from the local stack)."""
    return {
        "STATE_TABLE_PREFIX": "soak",
        "WORK_QUEUE": "soak-work",
        "SHARED_MAILBOXES": ",".join(SHARED_MAILBOXES),
        "EXTENSION_START": str(EXTENSION_START),
        "SYNC_PHOTO": "true",
        "SYNC_OFFICE_PHONE": "true",
        "CALENDAR_REFRESH_MINUTES": str(config.calendar_refresh_minutes),
        "CALENDAR_TIME_ZONE": "UTC",
    }


def install_simulated_clients(rt: Runtime, clock: SimClock) -> None:
    """Build the runtime's clients, queue and cache on the simulated clock (cached properties, set first).

    The same clients `Runtime` builds, given the clock and sleep they take as arguments: a
    Retry-After or a backoff then passes in simulated time, and token and cache lifetimes
    count in it.
    """
    settings = rt.settings
    graph_secret = settings.graph_client_secret.get_secret_value() if settings.graph_client_secret else None
    tcx_secret = settings.tcx_client_secret.get_secret_value() if settings.tcx_client_secret else ""
    provider = GraphTokenProvider(
        settings.graph_tenant_id or "",
        settings.graph_client_id or "",
        client_secret=graph_secret,
        authority_host=settings.graph_authority_host,
    )
    rt.__dict__["graph"] = GraphClient(settings.graph_base_url, provider, sleep=clock.sleep)
    rt.__dict__["tcx"] = ThreeCXClient(
        settings.tcx_base_url or "",
        settings.tcx_client_id or "",
        tcx_secret,
        clock=clock,
        sleep=clock.sleep,
        shared_token=SharedTcxToken(rt.state, sleep=clock.sleep),
    )
    rt.__dict__["queue"] = ClockQueue.connect(settings.storage_connection, settings.work_queue, clock)
    rt.__dict__["subscription_cache"] = SubscriptionCache(rt.state, clock=clock)


class Chaos:
    """Injects one fault of a kind, by the rules of its kind (see faults.KINDS)."""

    def __init__(self, stack: Stack, host: SimulatedHost, network: Network, faults: FaultBook, rng: random.Random):
        self.stack = stack
        self.graph = stack.graph
        self.pbx = stack.pbx
        self.host = host
        self.network = network
        self.faults = faults
        self.rng = rng
        self.restart_due = False

    def inject(self, kind: str) -> None:
        getattr(self, f"_{kind}")()

    def _graph_5xx(self) -> None:
        status, count = self.rng.choice((500, 502, 503, 504)), self.rng.randint(1, 3)
        pattern = self.rng.choice(
            (r"/users/delta", r"/calendarView", r"/contactFolders", r"/contacts", r"/subscriptions", r"/\$batch", None)
        )
        self.faults.arm(
            "graph_5xx", self.graph, lambda: self.graph.inject(status, count=count, path_pattern=pattern), count
        )

    def _pbx_5xx(self) -> None:
        status, count = self.rng.choice((500, 502, 503, 504)), self.rng.randint(1, 3)
        pattern = self.rng.choice((r"/xapi/v1/Users", r"/xapi/v1/Contacts", r"/connect/token", None))
        method = self.rng.choice((None, "GET", "POST", "PATCH"))
        self.faults.arm(
            "pbx_5xx",
            self.pbx,
            lambda: self.pbx.inject(status, count=count, path_pattern=pattern, method=method),
            count,
        )

    def _throttle_storm_429(self) -> None:
        count, wait = self.rng.randint(4, 12), self.rng.choice((1, 2, 5, 10, 30, 120))
        self.faults.arm(
            "throttle_storm_429", self.graph, lambda: self.graph.inject(429, count=count, retry_after=wait), count
        )

    def _connection_reset(self) -> None:
        service = self.rng.choice((self.graph, self.pbx))
        count = self.rng.randint(1, 2)
        self.faults.arm("connection_reset", service, lambda: service.inject_drop(count=count), count)

    def _timeout_after_write(self) -> None:
        if self.rng.random() < 0.2:  # Graph made the subscription, the answer never came
            self.faults.arm(
                "timeout_after_write",
                self.graph,
                lambda: self.graph.inject_drop(after_handling=True, method="POST", path_pattern=r"/subscriptions$"),
                1,
            )
            return
        method = self.rng.choice(("POST", "PATCH", "DELETE"))
        pattern = self.rng.choice((r"/xapi/v1/Users", r"/xapi/v1/Contacts"))
        self.faults.arm(
            "timeout_after_write",
            self.pbx,
            lambda: self.pbx.inject_drop(after_handling=True, method=method, path_pattern=pattern),
            1,
        )

    def _photo_item_error(self) -> None:
        status, count = self.rng.choice((500, 403, 404)), self.rng.randint(1, 3)
        self.faults.arm_batch_item(
            "photo_item_error",
            self.graph.batch_item_faults,
            lambda: self.graph.inject_batch_item(status, count=count, url_pattern=r"/photo$"),
            count,
        )

    def _notification_dropped(self) -> None:
        self.network.drop_next(self.rng.randint(1, 3))

    def _notification_duplicated(self) -> None:
        self.network.duplicate_next(self.rng.randint(1, 3))

    def _notifications_reordered(self) -> None:
        self.network.reorder_next()

    def _queue_message_lost(self) -> None:
        self.host.lose_next(self.rng.randint(1, 2))

    def _azurite_restart(self) -> None:
        self.restart_due = True  # done after the company's step, so there is something to deliver meanwhile

    def restart_storage_if_due(self) -> None:
        """Storage goes away for a moment and comes back with its data; Graph delivers meanwhile.

        The webhook can neither look a subscription up nor queue work while it is down: it
        answers 5xx, and Graph delivers those notifications again later.
        """
        if not self.restart_due:
            return
        self.restart_due = False
        self.host.storage_down = True
        try:
            self.stack.azurite.restart(while_down=lambda: self.network.deliver(limit=1, faults=False))
        finally:
            self.host.storage_down = False
        self.faults.happened("azurite_restart")

    def _pbx_token_revoked(self) -> None:
        """Someone else uses the same 3CX API client: 3CX issues them a token and revokes the connector's.

        Their request reaches the PBX directly (past the faults armed for the connector's requests).
        """
        form = urlencode({"client_id": PBX_CLIENT_ID, "client_secret": PBX_SECRET, "grant_type": "client_credentials"})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        answer = self.pbx.route(build_request("POST", f"{self.pbx.base_url}/connect/token", headers, form))
        if answer.status != 200:
            raise RuntimeError(f"the PBX refused another token for the API client ({answer.status})")
        self.faults.happened("pbx_token_revoked")

    def _users_delta_expired(self) -> None:
        self.graph.expire_delta_tokens(status=self.rng.choice((410, 400)))
        self.faults.happened("users_delta_expired")

    def _contacts_delta_expired(self) -> None:
        self.graph.expire_contact_delta_tokens(status=self.rng.choice((410, 400)))
        self.faults.happened("contacts_delta_expired")

    def _subscription_removed(self) -> None:
        # By resource: subscription ids are random, so an order by id would differ from run to run.
        live = sorted(self.graph.subscriptions.values(), key=lambda subscription: subscription.resource)
        if not live:
            return
        self.graph.send_lifecycle(self.rng.choice(live).id, "subscriptionRemoved")  # held: delivered this step
        self.faults.happened("subscription_removed")


def run_soak(config: SoakConfig) -> dict[str, Any]:
    """Run the soak; the report (see bench/soak.py for its keys)."""
    started = time.perf_counter()
    saved_random = random.getstate()
    random.seed(config.seed)  # the connector's backoff jitter: part of "the same seed, the same week"
    clock = SimClock(config.start)
    journal = Journal(clock=clock)
    try:
        with journaled(journal), local_stack(connector_settings(config), clock=clock) as stack:
            soak = Soak(config, clock, journal, stack)
            report = soak.run()
    finally:
        random.setstate(saved_random)
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    leaks = checks.no_secrets(Journal(), [("soak report", json.dumps(report))], _planted(), set(ISSUED_CREDENTIALS))
    if not leaks.passed:
        report["checks"]["no_secrets"] = leaks.as_dict()
        report["passed"] = False
    return report


class Soak:
    """One soak over a running local stack (see the module docstring for the order of things)."""

    def __init__(self, config: SoakConfig, clock: SimClock, journal: Journal, stack: Stack) -> None:
        self.config = config
        self.clock = clock
        self.journal = journal
        self.stack = stack
        self.rng = random.Random(config.seed)
        self.faults = FaultBook()
        self.company = Company(stack.graph, stack.pbx, self.rng, LifeRates.busier(config.life_intensity))
        self.end = config.start + config.step * config.steps  # the last step of the week
        self.checked_at = self.end + QUIET_PERIOD  # when the verdict is taken

    def run(self) -> dict[str, Any]:
        self._prepare()
        with product_time(self.clock) as patched:
            self.rt = process_runtime()
            install_simulated_clients(self.rt, self.clock)
            queue = self.rt.queue
            assert isinstance(queue, ClockQueue)
            self.queue = queue
            self.host = SimulatedHost(
                registered_functions(), self.clock, self.stack.azurite.connection_string, self.faults
            )
            self.network = Network(self.stack.graph, self.faults, self.rng, self.clock)
            self.chaos = Chaos(self.stack, self.host, self.network, self.faults, self.rng)
            self._first_day()
            self._week()
            converge = self._quiet()
            verdict = self._verdict(final=True)
        if self.config.log_path is not None:
            _write_log(self.journal, self.config.log_path)
        return self._report(converge, verdict, patched)

    # -- the week ----------------------------------------------------------------------------
    def _prepare(self) -> None:
        """The company before the connector, and the connector's local host serving the webhook."""
        graph = self.stack.graph
        graph.hold_notifications = True  # the soak's network delivers them
        # MSAL caches a token by the real clock; Graph's tokens must outlive the simulated run.
        graph.token_lifetime_seconds = int((self.config.days + 2) * 86_400)
        self.company.seed(self.config.users, self.clock.now())
        self.stack.start_connector(queues=False)  # the soak's host drains the queue on the simulated clock
        webhook = f"{self.stack.settings['WEBHOOK_URL']}?code={FUNCTION_KEY}"
        self.stack.settings["WEBHOOK_URL"] = webhook
        os.environ["WEBHOOK_URL"] = webhook
        reset_process_runtime()

    def _first_day(self) -> None:
        """Start-up: the nightly sync (users, subscriptions, calendars) and the subscription timer, then the queue."""
        self.host.fire("user_sync_timer")
        self.host.fire("subscription_timer")
        self.host.drain(self.queue.release_due)
        self.company.remember_numbers()

    def _week(self) -> None:
        config = self.config
        plan = schedule(FaultRates.default(config.fault_intensity), config.steps + 1, config.steps_per_day, self.rng)
        self.company.plan_week(config.steps)
        for step in range(1, config.steps + 1):
            self.clock.advance_to(config.start + config.step * step)
            self.host.retry_waiting()
            for kind in plan[step]:
                self.chaos.inject(kind)
            self.company.live(self.clock.now(), config.step, step)
            if step == config.steps:  # meetings running when the verdict is taken, and some just over
                self.company.meetings_around(self.checked_at, max(3, config.users // 20))
            self.chaos.restart_storage_if_due()
            self._tick()
            self.faults.settle()
            if config.progress and step % config.steps_per_day == 0:
                print(f"soak: day {step // config.steps_per_day} done", file=sys.stderr, flush=True)

    def _tick(self) -> None:
        """Graph delivers what it holds, the timers that came due fire, the queue is drained."""
        self.network.deliver()
        self.host.fire_due_timers()
        self.host.drain(self.queue.release_due)

    # -- the end -----------------------------------------------------------------------------
    def _quiet(self) -> dict[str, Any]:
        """Lift every fault; let the connector run on its own a while; then one quiet reconcile.

        The quiet while lets what the connector holds back on purpose after an outage lapse
        (calendar reads back off up to an hour, and a Graph outage brakes them for 15 minutes);
        it is also when the connector may converge on its own, which is reported.
        """
        quiet_started = time.perf_counter()
        left = self.faults.disarm(self.stack.graph.batch_item_faults)
        self.network.disarm()
        self.host.disarm()
        lifted = self.clock.now()
        drift = self._verdict(final=False)
        before = {check.name: len(check.problems) for check in drift if check.problems}
        examples = [checks.shown(problem) for check in drift for problem in check.problems][: checks.EXAMPLES]
        on_its_own = None
        moment = lifted
        while moment < self.checked_at:
            moment = min(self.checked_at, moment + QUIET_STEP)
            self.clock.advance_to(moment)
            self.host.retry_waiting()
            self._tick()
            if on_its_own is None and all(check.passed for check in self._verdict(final=False)):
                on_its_own = self.clock.now()
        wall, simulated = time.perf_counter(), self.clock()
        self.host.retry_waiting()
        self.host.fire("user_sync_timer")  # users, then subscriptions, then every calendar re-read
        self.host.fire("contact_sync_timer")
        self._tick()
        return {
            "faults_left_unstruck": left,
            "problems_when_faults_lifted": sum(before.values()),
            "problems_when_faults_lifted_by_check": before,
            "problems_when_faults_lifted_examples": examples,
            "converged_on_its_own_after_simulated_minutes": (
                round((on_its_own - lifted).total_seconds() / 60) if on_its_own else None
            ),
            "quiet_reconcile_wall_seconds": round(time.perf_counter() - wall, 2),
            "quiet_reconcile_simulated_seconds": round(self.clock() - simulated, 1),
            # From the faults lifted to the verdict (made right after the quiet reconcile).
            "since_faults_lifted_simulated_minutes": round((self.clock.now() - lifted).total_seconds() / 60),
            "since_faults_lifted_wall_seconds": round(time.perf_counter() - quiet_started, 1),
        }

    def _verdict(self, *, final: bool) -> list[checks.Check]:
        graph, pbx, memory, settings = self.stack.graph, self.stack.pbx, self.company.memory, self.rt.settings
        state = [
            checks.users_match(graph, pbx, memory, photo=settings.sync_photo, office_phone=settings.sync_office_phone),
            checks.numbers_stable(graph, pbx, memory, self.rt.state.links()),
            checks.statuses_match(graph, pbx, memory, self.clock.now(), settings.status_map),
            checks.phonebook_matches(graph, pbx, self.company.mailbox_ids),
            checks.no_duplicates(graph, pbx, memory),
            checks.hand_made_untouched(pbx, memory),
        ]
        state.append(checks.no_changes_lost(memory, {check.name: check for check in state}))
        if not final:
            return state
        runs = {run.run_id: run for kind in RUN_KINDS for run in self.rt.state.recent_runs(kind, 1_000_000)}
        thread = threading.current_thread().name
        state.append(checks.failed_actions_recorded(self.journal, runs, self.host.stats.failures, thread))
        extra = [*_run_record_texts(self.stack), *_cli_texts()]
        state.append(checks.no_secrets(self.journal, extra, _planted(), set(ISSUED_CREDENTIALS)))
        return state

    def _report(self, converge: dict[str, Any], verdict: list[checks.Check], patched: list[str]) -> dict[str, Any]:
        config, host, network = self.config, self.host, self.network
        passed = all(check.passed for check in verdict)
        return {
            "benchmark": "soak",
            "config": {
                key: str(value) if isinstance(value, datetime | Path) else value
                for key, value in asdict(config).items()
            },
            "steps": config.steps,
            "simulated": {
                "start": config.start.isoformat(),
                "end": self.clock.now().isoformat(),
                "slept_seconds": round(self.clock.slept, 1),
            },
            "tenant": dict(sorted(self.company.events.items())),
            "faults": self.faults.report(),
            "faults_total": {
                "injected": sum(self.faults.injected.values()),
                "served": sum(self.faults.served.values()),
            },
            "traffic": {
                "notifications_accepted": network.stats.delivered,
                "notifications_refused": network.stats.refused,
                "notifications_given_up": network.stats.given_up,
                "webhook_statuses": {str(k): v for k, v in sorted(network.stats.statuses.items())},
                "timer_runs": dict(sorted(host.stats.timer_runs.items())),
                "queue_messages_done": host.stats.messages_done,
                "queue_tries_failed": host.stats.failed_tries,
                "queue_messages_poisoned": host.stats.poisoned,
            },
            "converge": {**converge, "problems_after": sum(len(c.problems) for c in verdict), "converged": passed},
            "checks": {check.name: check.as_dict() for check in verdict},
            "known_gaps": _known_gaps(verdict),
            "product_modules_on_the_simulated_clock": len(patched),
            "passed": passed,
        }


def _known_gaps(verdict: list[checks.Check]) -> dict[str, dict[str, Any]]:
    """What matched a known gap, across the checks: in which checks how often, what it is, examples."""
    found: dict[str, dict[str, Any]] = {}
    for check in verdict:
        for key, examples in check.known.items():
            gap = found.setdefault(key, {"what": KNOWN_GAPS[key].description, "seen_in": {}, "examples": []})
            gap["seen_in"][check.name] = len(examples)
            gap["examples"] = (gap["examples"] + examples)[:3]
    return dict(sorted(found.items()))


def _write_log(journal: Journal, path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        for line in journal.lines:
            at = datetime.fromtimestamp(line.at, UTC).strftime("%m-%d %H:%M:%S")
            out.write(f"{at} {line.thread} {line.logger} {logging.getLevelName(line.level)} {line.message}\n")


def _planted() -> dict[str, str]:
    return {"the Graph client secret": GRAPH_SECRET, "the 3CX API key": PBX_SECRET, "the function key": FUNCTION_KEY}


def _run_record_texts(stack: Stack) -> list[tuple[str, str]]:
    service = TableServiceClient.from_connection_string(stack.azurite.connection_string)
    entities = [
        entity
        for table in service.list_tables()
        if table.name.endswith("runs")
        for entity in service.get_table_client(table.name).list_entities()
    ]
    return checks.run_record_texts(entities)


def _cli_texts() -> list[tuple[str, str]]:
    """What `python -m sync runs` shows an administrator (text and JSON), for the secrets scan.

    Run in this process (a child would cost seconds of start-up each): the CLI's stdout and
    stderr are captured, and the logging it configures for itself is put back afterwards.
    """
    from sync.cli import main

    texts = []
    root = logging.getLogger()
    for arguments in (["runs", "--limit", "200"], ["runs", "--json", "--limit", "200"]):
        handlers, level = list(root.handlers), root.level
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(arguments)
        finally:
            for handler in list(root.handlers):
                root.removeHandler(handler)
            for handler in handlers:
                root.addHandler(handler)
            root.setLevel(level)
        texts.append((f"cli {' '.join(arguments)} (exit {code})", out.getvalue() + err.getvalue()))
    return texts

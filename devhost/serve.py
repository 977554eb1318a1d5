"""`python -m sync serve`: the Function App on one box, without Azure.

Reads the functions registered in `function_app.py` and serves the same handlers: HTTP
triggers under `/api/<route>` (like the Functions host, and like Core Tools, function keys
are not checked locally: bind to loopback), timer triggers fired on their NCRONTAB
schedules. Requests are turned into real `azure.functions.HttpRequest` objects, so what is
served here is exactly what Azure runs.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import azure.functions as func

log = logging.getLogger(__name__)


# -- NCRONTAB -------------------------------------------------------------------------------


def _field_values(spec: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in spec.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part in ("*", ""):
            start, end = low, high
        elif "-" in part:
            start_text, end_text = part.split("-", 1)
            start, end = int(start_text), int(end_text)
        else:
            start = end = int(part)
            if "/" in spec:
                end = high
        values.update(range(start, end + 1, step))
    return {value for value in values if low <= value <= high}


@dataclass(frozen=True)
class Schedule:
    """A six-field NCRONTAB schedule: second minute hour day month day-of-week."""

    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        fields = expression.split()
        if len(fields) != 6:
            raise ValueError(f"NCRONTAB needs 6 fields, got {expression!r}")
        limits = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]
        parsed = [frozenset(_field_values(spec, *limit)) for spec, limit in zip(fields, limits, strict=True)]
        return cls(*parsed)

    def next_after(self, moment: datetime) -> datetime:
        """The first firing time strictly after `moment` (UTC, second precision)."""
        candidate = moment.replace(microsecond=0) + timedelta(seconds=1)
        limit = candidate + timedelta(days=366 * 4)
        while candidate < limit:
            if candidate.month not in self.months:
                candidate = (candidate.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
                continue
            if candidate.day not in self.days or (candidate.isoweekday() % 7) not in self.weekdays:
                candidate = candidate.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if candidate.hour not in self.hours:
                candidate = candidate.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if candidate.minute not in self.minutes:
                candidate = candidate.replace(second=0) + timedelta(minutes=1)
                continue
            if candidate.second not in self.seconds:
                candidate += timedelta(seconds=1)
                continue
            return candidate
        raise ValueError("schedule never fires")


def resolve_app_setting(value: str) -> str:
    """Replace %NAME% with the app setting NAME, as the Functions host does."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            from shared.settings import Settings

            field = next((f for f in Settings.model_fields.values() if f.alias == name), None)
            if field is not None and isinstance(field.default, str):
                return field.default
            raise ValueError(f"app setting {name} is not set")
        return os.environ[name]

    return re.sub(r"%([A-Za-z0-9_]+)%", lookup, value)


# -- the registered functions --------------------------------------------------------------


@dataclass
class HttpRoute:
    name: str
    route: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    handler: Callable[..., Any]
    arg_name: str
    queue_outputs: dict[str, str] = field(default_factory=dict)  # argument name -> queue name


@dataclass
class TimerJob:
    name: str
    schedule: Schedule
    handler: Callable[..., Any]


@dataclass
class QueueJob:
    name: str
    queue_name: str
    handler: Callable[..., Any]
    arg_name: str


@dataclass
class Discovered:
    routes: list[HttpRoute] = field(default_factory=list)
    timers: list[TimerJob] = field(default_factory=list)
    queue_jobs: list[QueueJob] = field(default_factory=list)


def _route_pattern(route: str) -> re.Pattern[str]:
    regex = re.sub(r"\{(\w+)(?::[^}]*)?\}", r"(?P<\1>[^/]+)", route.strip("/"))
    return re.compile(f"^/api/{regex}/?$")


def discover(functions: Iterable[Any]) -> Discovered:
    """Routes, timers and queue triggers of the registered functions (`function_app.registered_functions()`)."""
    found = Discovered()
    for function in functions:
        trigger = function.get_trigger()
        handler = function.get_user_function()
        name = function.get_function_name()
        kind = trigger.get_binding_name()
        if kind == "httpTrigger":
            methods = frozenset(str(getattr(m, "value", m)).upper() for m in (trigger.methods or ["GET", "POST"]))
            outputs = {
                binding.name: resolve_app_setting(binding.queue_name)
                for binding in function.get_bindings()
                if binding.type == "queue"
            }
            route = (trigger.route or name).strip("/")
            found.routes.append(
                HttpRoute(name, f"/api/{route}", _route_pattern(route), methods, handler, trigger.name, outputs)
            )
        elif kind == "timerTrigger":
            found.timers.append(TimerJob(name, Schedule.parse(resolve_app_setting(trigger.schedule)), handler))
        elif kind == "queueTrigger":
            found.queue_jobs.append(QueueJob(name, resolve_app_setting(trigger.queue_name), handler, trigger.name))
    return found


class _Timer(func.TimerRequest):
    @property
    def past_due(self) -> bool:
        return False


class _Collector(func.Out[Any]):
    """What an output binding receives; the host (here: us) delivers it after the function returns."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, val: Any) -> None:
        self.value = val

    def get(self) -> Any:
        return self.value


class QueueSender:
    """Delivers output-binding messages to Storage queues (one client per queue name)."""

    def __init__(self, connection_string: str) -> None:
        self._connection_string = connection_string
        self._queues: dict[str, Any] = {}
        self._lock = threading.Lock()

    def queue(self, name: str) -> Any:
        from shared.queues import WorkQueue

        with self._lock:
            if name not in self._queues:
                queue = WorkQueue.from_connection_string(self._connection_string, name)
                queue.ensure()
                self._queues[name] = queue
            return self._queues[name]

    def send(self, name: str, value: Any) -> None:
        messages = value if isinstance(value, list) else [value]
        for message in messages:
            text = message.decode("utf-8") if isinstance(message, bytes) else str(message)
            self.queue(name).send_text(text)


def call_route(
    route: HttpRoute,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    params: dict[str, str],
    sender: QueueSender | None = None,
) -> func.HttpResponse:
    query = {key: values[0] for key, values in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}
    request = func.HttpRequest(method=method, url=url, headers=headers, params=query, route_params=params, body=body)
    outputs = {arg: _Collector() for arg in route.queue_outputs}
    response = route.handler(**{route.arg_name: request}, **outputs)
    for arg, collector in outputs.items():
        if collector.value is not None:
            if sender is None:
                raise RuntimeError(f"function {route.name} wrote to queue {route.queue_outputs[arg]} but no sender")
            sender.send(route.queue_outputs[arg], collector.value)
    return response


def make_server(
    functions: Iterable[Any],
    host: str,
    port: int,
    *,
    sender: QueueSender | None = None,
    tls: ssl.SSLContext | None = None,
    principal: str | None = None,
) -> ThreadingHTTPServer:
    """An HTTP(S) server for the functions' routes; queue outputs go through `sender`.

    As App Service authentication does, a client's own `X-MS-CLIENT-PRINCIPAL*` headers are
    dropped; `principal` (an encoded principal, see `local_principal`) is passed on instead.
    """
    routes = discover(functions).routes

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("%s %s", self.command, self.path.split("?", 1)[0])

        def _dispatch(self) -> None:
            path = urlsplit(self.path).path
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, payload, content_type = 404, b'{"error": "no such route"}', "application/json"
            headers: list[tuple[str, str]] = []
            for route in routes:
                match = route.pattern.match(path)
                if not match:
                    continue
                if self.command not in route.methods:
                    status, payload = 405, b'{"error": "method not allowed"}'
                    continue
                url = f"http://{self.headers.get('Host', 'localhost')}{self.path}"
                headers = {k: v for k, v in self.headers.items() if not k.lower().startswith("x-ms-client-principal")}
                if principal is not None:
                    headers["X-MS-CLIENT-PRINCIPAL"] = principal
                try:
                    response = call_route(route, self.command, url, headers, body, match.groupdict(), sender)
                    status = response.status_code
                    payload = response.get_body()
                    content_type = response.mimetype or "text/plain"
                    headers = [
                        (name, value)
                        for name, value in response.headers.items()
                        if name.lower() not in ("content-type", "content-length")
                    ]
                except Exception:
                    log.exception("function %s failed", route.name)
                    status, payload = 500, b'{"error": "internal error; see the log"}'
                break
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers:  # the function's own, as the Functions host passes them on
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    return server


def run_timers(
    functions: Iterable[Any], stop: threading.Event, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> None:
    """Fire each timer at its next scheduled time until `stop` is set."""
    timers = discover(functions).timers
    due = {timer.name: timer.schedule.next_after(clock()) for timer in timers}
    for timer in timers:
        log.info("timer %s next fires at %s UTC", timer.name, due[timer.name].strftime("%Y-%m-%d %H:%M:%S"))
    while timers and not stop.is_set():
        now = clock()
        for timer in timers:
            if now >= due[timer.name]:
                try:
                    timer.handler(_Timer())
                except Exception:
                    log.exception("timer %s failed", timer.name)
                due[timer.name] = timer.schedule.next_after(clock())
        wait = min((moment - clock()).total_seconds() for moment in due.values())
        stop.wait(max(0.2, min(wait, 30.0)))


MAX_DEQUEUE_COUNT = 5  # as the Functions host's default: then the message goes to <queue>-poison


def drain_queue_once(job: QueueJob, sender: QueueSender, *, visibility_timeout: int = 30) -> int:
    """Receive what is visible on the job's queue and run the function on each message.

    As the Functions host does: a message is deleted when the function returns, left to
    reappear when it raises, and moved to the poison queue after MAX_DEQUEUE_COUNT tries.
    Returns how many messages were handled.
    """
    queue = sender.queue(job.queue_name)
    handled = 0
    for message in queue.receive(max_messages=16, visibility_timeout=visibility_timeout):
        request = func.QueueMessage(id=message.id, body=message.text.encode("utf-8"), pop_receipt=message.pop_receipt)
        try:
            job.handler(**{job.arg_name: request})
        except Exception:
            log.exception("function %s failed on message %s (try %d)", job.name, message.id, message.dequeue_count)
            if message.dequeue_count >= MAX_DEQUEUE_COUNT:
                queue.poison(message)
            continue
        queue.delete(message)
        handled += 1
    return handled


def run_queue_workers(
    functions: Iterable[Any], sender: QueueSender, stop: threading.Event, poll_seconds: float = 0.5
) -> None:
    """Poll each queue-triggered function's queue until `stop` is set (the host polls likewise)."""
    jobs = discover(functions).queue_jobs
    while jobs and not stop.is_set():
        busy = False
        for job in jobs:
            try:
                busy = drain_queue_once(job, sender) > 0 or busy
            except Exception:
                log.exception("queue %s could not be read", job.queue_name)
        if not busy:
            stop.wait(poll_seconds)


@dataclass
class LocalHost:
    """Everything `serve` runs, startable and stoppable from tests and the demo."""

    server: ThreadingHTTPServer
    stop_event: threading.Event
    threads: list[threading.Thread]

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()
        for thread in self.threads:
            thread.join(timeout=10)


def start_local_host(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    timers: bool = True,
    queues: bool = True,
    tls: ssl.SSLContext | None = None,
    connection_string: str | None = None,
    principal: str | None = None,
) -> LocalHost:
    """Serve the routes, fire the timers and drain the queues on background threads."""
    from function_app import registered_functions
    from shared.settings import load_settings

    functions = registered_functions()
    sender = QueueSender(connection_string or load_settings().storage_connection)
    server = make_server(functions, host, port, sender=sender, tls=tls, principal=principal)
    stop = threading.Event()
    threads = [threading.Thread(target=server.serve_forever, name="serve-http", daemon=True)]
    if timers:
        threads.append(threading.Thread(target=run_timers, args=(functions, stop), name="serve-timers", daemon=True))
    if queues:
        threads.append(
            threading.Thread(target=run_queue_workers, args=(functions, sender, stop), name="serve-queues", daemon=True)
        )
    for thread in threads:
        thread.start()
    return LocalHost(server, stop, threads)


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def local_principal() -> str:
    """The administrator `serve` signs in on loopback: this machine's user, with the console's role."""
    import getpass

    from sync.console.security import ROLE, encode_principal

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "local"
    return encode_principal(f"local:{user}", f"{user}@localhost", (ROLE,))


def serve_forever(host: str, port: int, *, timers: bool = True) -> int:
    from function_app import registered_functions
    from sync.console.security import LOCAL_ENV

    principal = None
    if host in LOOPBACK:  # elsewhere the console refuses everyone: no sign-in runs here
        os.environ[LOCAL_ENV] = "1"
        principal = local_principal()
    local = start_local_host(host, port, timers=timers, principal=principal)
    found = discover(registered_functions())
    print(f"Serving {len(found.routes)} routes on http://{host}:{local.port}/api/ (Ctrl-C stops)")
    for route in found.routes:
        print(f"  {','.join(sorted(route.methods)):<16} {route.route}  ({route.name})")
    for job in found.timers if timers else []:
        print(f"  timer {job.name}")
    for queue_job in found.queue_jobs:
        print(f"  queue {queue_job.queue_name} → {queue_job.name}")
    if principal is not None:
        print(f"Console: http://{host}:{local.port}/api/console (signed in as this machine's user)")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        local.stop()
    return 0

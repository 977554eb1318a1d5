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
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


@dataclass
class TimerJob:
    name: str
    schedule: Schedule
    handler: Callable[..., Any]


def _route_pattern(route: str) -> re.Pattern[str]:
    regex = re.sub(r"\{(\w+)(?::[^}]*)?\}", r"(?P<\1>[^/]+)", route.strip("/"))
    return re.compile(f"^/api/{regex}/?$")


def discover(functions: Iterable[Any]) -> tuple[list[HttpRoute], list[TimerJob]]:
    """HTTP routes and timers of the registered functions (`function_app.registered_functions()`)."""
    routes: list[HttpRoute] = []
    timers: list[TimerJob] = []
    for function in functions:
        trigger = function.get_trigger()
        handler = function.get_user_function()
        name = function.get_function_name()
        if trigger.get_binding_name() == "httpTrigger":
            methods = frozenset(str(getattr(m, "value", m)).upper() for m in (trigger.methods or ["GET", "POST"]))
            routes.append(
                HttpRoute(
                    name,
                    f"/api/{(trigger.route or name).strip('/')}",
                    _route_pattern(trigger.route or name),
                    methods,
                    handler,
                    trigger.name,
                )
            )
        elif trigger.get_binding_name() == "timerTrigger":
            timers.append(TimerJob(name, Schedule.parse(resolve_app_setting(trigger.schedule)), handler))
    return routes, timers


class _Timer(func.TimerRequest):
    @property
    def past_due(self) -> bool:
        return False


def call_route(
    route: HttpRoute, method: str, url: str, headers: dict[str, str], body: bytes, params: dict[str, str]
) -> func.HttpResponse:
    query = {key: values[0] for key, values in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}
    request = func.HttpRequest(method=method, url=url, headers=headers, params=query, route_params=params, body=body)
    return route.handler(**{route.arg_name: request})


def make_server(functions: Iterable[Any], host: str, port: int) -> ThreadingHTTPServer:
    routes, _timers = discover(functions)

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
            for route in routes:
                match = route.pattern.match(path)
                if not match:
                    continue
                if self.command not in route.methods:
                    status, payload = 405, b'{"error": "method not allowed"}'
                    continue
                url = f"http://{self.headers.get('Host', 'localhost')}{self.path}"
                try:
                    response = call_route(route, self.command, url, dict(self.headers.items()), body, match.groupdict())
                    status = response.status_code
                    payload = response.get_body()
                    content_type = response.mimetype or "text/plain"
                except Exception:
                    log.exception("function %s failed", route.name)
                    status, payload = 500, b'{"error": "internal error; see the log"}'
                break
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def run_timers(
    functions: Iterable[Any], stop: threading.Event, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> None:
    """Fire each timer at its next scheduled time until `stop` is set."""
    _routes, timers = discover(functions)
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


def serve_forever(host: str, port: int, *, timers: bool = True) -> int:
    from function_app import registered_functions

    functions = registered_functions()
    server = make_server(functions, host, port)
    stop = threading.Event()
    routes, jobs = discover(functions)
    print(f"Serving {len(routes)} routes on http://{host}:{server.server_address[1]}/api/ (Ctrl-C stops)")
    for route in routes:
        print(f"  {','.join(sorted(route.methods)):<16} {route.route}  ({route.name})")
    if timers:
        threading.Thread(target=run_timers, args=(functions, stop), daemon=True).start()
        for job in jobs:
            print(f"  timer {job.name}")
    signal.signal(signal.SIGTERM, lambda *_: stop.set() or threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
    return 0

"""How a stateful fake is reached: in process through `responses`, or as an HTTPS server.

A fake service implements one method, `handle(FakeRequest) -> FakeResponse`, and knows
nothing about transport. This module adapts it to both worlds (the moto pattern) and adds
what every fake shares: fault injection (429 with Retry-After, 5xx, latency, a connection
dropped before or after the request took effect) and request counting, so tests and
benchmarks can drive both fakes the same way.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import requests


class Headers(dict[str, str]):
    """Case-insensitive header mapping (keys stored lower-case)."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__()
        for key, value in dict(items).items():
            self[key] = value

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


@dataclass
class FakeRequest:
    """One HTTP request as a fake sees it: the path is relative to the fake's root."""

    method: str
    path: str  # percent-decoded path, e.g. "/xapi/v1/Users(12)"
    query: dict[str, str]  # first value of each query parameter, decoded
    headers: Headers
    body: bytes = b""
    url: str = ""  # the full URL as sent

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError on malformed JSON."""
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def form(self) -> dict[str, str]:
        """The body parsed as application/x-www-form-urlencoded or multipart form data."""
        content_type = self.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            return _parse_multipart(self.body, content_type)
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {key: values[0] for key, values in parsed.items()}


@dataclass
class FakeResponse:
    """What a fake answers. A dict or list body is sent as JSON."""

    status: int
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, (dict, list)):
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
            return json.dumps(self.body).encode("utf-8"), headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode("utf-8"), headers
        return bytes(self.body), headers


# Every credential a fake hands out (access tokens), so a test can make sure none of them
# ever shows up where it must not (logs, run records, CLI output, HTTP answers).
ISSUED_CREDENTIALS: set[str] = set()


DropMoment = Literal["before", "after"]


class ConnectionDropped(Exception):
    """The fake hangs up without answering; both transports turn this into a dropped connection.

    To the client it is what a reset or a read timeout is: no answer. Whether the request
    took effect first is the fault's `drop` ("before" or "after" handling it).
    """


@dataclass
class Fault:
    """An injected failure: answer `status` for the next `count` matching requests.

    With `drop`, there is no answer at all: the connection is closed before the request is
    handled, or after it was handled (it took effect, only the answer is lost).
    """

    status: int
    count: int = 1
    retry_after: float | None = None
    path_pattern: str | None = None  # regex searched in the path; None = every request
    method: str | None = None
    drop: DropMoment | None = None

    def matches(self, request: FakeRequest) -> bool:
        if self.method and self.method.upper() != request.method:
            return False
        return self.path_pattern is None or re.search(self.path_pattern, request.path) is not None


class FakeService:
    """Base of every fake: dispatch with faults, latency and per-method request counts.

    Subclasses implement `route(request)`. `handle` is what transports call.
    """

    def __init__(self) -> None:
        self.request_counts: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.latency_seconds: float = 0.0
        # Where clients reach this fake; set by `install`/`serve`. Fakes build absolute
        # links from it (Graph's @odata.nextLink, the OIDC token endpoint).
        self.base_url: str = "http://fake.invalid"
        self._lock = threading.RLock()

    # -- fault injection -------------------------------------------------------------
    def inject(
        self,
        status: int,
        *,
        count: int = 1,
        retry_after: float | None = None,
        path_pattern: str | None = None,
        method: str | None = None,
    ) -> None:
        """Make the next `count` matching requests fail with `status` (e.g. 429, 503)."""
        with self._lock:
            self.faults.append(Fault(status, count, retry_after, path_pattern, method))

    def inject_drop(
        self,
        *,
        after_handling: bool = False,
        count: int = 1,
        path_pattern: str | None = None,
        method: str | None = None,
    ) -> None:
        """Hang up on the next `count` matching requests, without any answer.

        `after_handling=True` handles each request first, so it takes effect and only its
        answer is lost (what a client sees when a write times out after the server did it).
        """
        drop: DropMoment = "after" if after_handling else "before"
        with self._lock:
            self.faults.append(Fault(0, count, None, path_pattern, method, drop=drop))

    def reset_counts(self) -> None:
        with self._lock:
            self.request_counts.clear()

    def _take_fault(self, request: FakeRequest) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.count > 0 and fault.matches(request):
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def fault_response(self, fault: Fault) -> FakeResponse:
        """How this service words an injected failure; subclasses use their API's shape."""
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = _format_retry_after(fault.retry_after)
        return FakeResponse(fault.status, {"error": {"code": str(fault.status), "message": "injected"}}, headers)

    # -- dispatch ----------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        with self._lock:
            self.request_counts[request.method] += 1
        if self.latency_seconds:
            time.sleep(self.latency_seconds)
        fault = self._take_fault(request)
        if fault is None:
            return self.route(request)
        if fault.drop == "after":
            self.route(request)  # it takes effect; only the answer never leaves
        if fault.drop is not None:
            raise ConnectionDropped(f"{request.method} {request.path}: connection dropped {fault.drop} handling")
        return self.fault_response(fault)

    def route(self, request: FakeRequest) -> FakeResponse:  # pragma: no cover - abstract
        raise NotImplementedError


def _format_retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def build_request(method: str, url: str, headers: Any, body: bytes | str | None, root_path: str = "") -> FakeRequest:
    """Turn a raw request into a FakeRequest with the path relative to the fake's root."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :] or "/"
    query = {key: values[0] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
    if isinstance(body, str):
        body = body.encode("utf-8")
    return FakeRequest(method.upper(), path, query, Headers(headers or {}), body or b"", url)


# -- in process, through `responses` -------------------------------------------------------
def install(mock: Any, base_url: str, service: FakeService) -> None:
    """Route every request under `base_url` on a `responses.RequestsMock` to `service`."""
    service.base_url = base_url.rstrip("/")
    root = urlsplit(base_url)
    root_path = root.path.rstrip("/")
    pattern = re.compile(re.escape(f"{root.scheme}://{root.netloc}{root_path}") + r"(/.*)?(\?.*)?$")

    def callback(prepared: Any) -> tuple[int, dict[str, str], bytes]:
        request = build_request(prepared.method, prepared.url, prepared.headers, prepared.body, root_path)
        try:
            response = service.handle(request)
        except ConnectionDropped as dropped:
            # `responses` passes an exception raised here on to the client, as a dropped connection.
            raise requests.ConnectionError(str(dropped)) from None
        body, headers = response.encoded()
        return response.status, headers, body

    for method in ("GET", "POST", "PATCH", "PUT", "DELETE"):
        mock.add_callback(method, pattern, callback=callback)


# -- as an HTTPS server -------------------------------------------------------------------
@dataclass
class RunningServer:
    """A fake served over HTTP(S) on loopback; `url` is its root."""

    url: str
    server: ThreadingHTTPServer
    thread: threading.Thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is normal under benchmarks; stay quiet.
        pass


def serve(
    service: FakeService | Callable[[FakeRequest], FakeResponse],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: ssl.SSLContext | None = None,
) -> RunningServer:
    """Serve `service` on a background thread; port 0 picks a free port."""
    handle = service.handle if isinstance(service, FakeService) else service

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = build_request(self.command, f"http://host{self.path}", dict(self.headers.items()), body)
            try:
                response = handle(request)
            except ConnectionDropped:
                self.close_connection = True  # no status line, no body: the client sees the connection end
                return
            except Exception as error:  # a fake bug must surface as a 500, not a hang
                response = FakeResponse(500, {"error": {"code": "FakeError", "message": repr(error)}})
            payload, headers = response.encoded()
            self.send_response(response.status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _dispatch

    server = _QuietServer((host, port), Handler)
    scheme = "http"
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    bound_port = server.server_address[1]
    url = f"{scheme}://{host if host != '0.0.0.0' else '127.0.0.1'}:{bound_port}"
    if isinstance(service, FakeService):
        service.base_url = url
    thread = threading.Thread(target=server.serve_forever, name=f"fake-{type(service).__name__}", daemon=True)
    thread.start()
    return RunningServer(url, server, thread)


# -- TLS for the served fakes --------------------------------------------------------------
@dataclass
class LocalTLS:
    """A throw-away CA and a loopback server certificate (MSAL insists on https)."""

    server_context: ssl.SSLContext
    ca_bundle: Path


def local_tls(directory: Path) -> LocalTLS:
    """Create a CA with `trustme`, write its PEM to `directory`, return a server context.

    Clients trust it through REQUESTS_CA_BUNDLE, which `requests` (and so MSAL) honours.
    """
    import trustme  # test/dev dependency only: never imported by the deployed app

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1", "localhost", "::1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    bundle = directory / "fake-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return LocalTLS(context, bundle)


def _parse_multipart(body: bytes, content_type: str) -> dict[str, str]:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        return {}
    boundary = b"--" + match.group(1).encode()
    fields: dict[str, str] = {}
    for part in body.split(boundary):
        head, _, value = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]+)"', head)
        if name:
            fields[name.group(1).decode()] = value.rstrip(b"\r\n").decode("utf-8", "replace")
    return fields

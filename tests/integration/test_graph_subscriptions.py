"""Graph's real HTTP delivery: handshake and notification reach a webhook served over loopback.

The fixtures are those of tests/unit/test_graph_subscriptions.py, where `Webhook` stands in for
the connector's endpoint through the fake's pluggable `deliver`; the test here replaces it with
the default delivery over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from fakes.graph import GraphFake
from fakes.graph_subscriptions import post_over_http
from fakes.transport import FakeRequest, FakeResponse, install, serve
from shared.graph import GraphClient

ROOT = "https://graph.fake.test"
TENANT = "6f1c2b9e-0d7a-4c55-9d0e-3b1f2a4c5d6e"
CLIENT = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
SECRET = "s3cr3t-value~for.tests"
HOOK = "https://connector.example/api/graph/notifications?code=function-key-value"
LIFECYCLE = "https://connector.example/api/graph/lifecycle?code=function-key-value"
CLIENT_STATE = "client-state-" + "x" * 40


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = datetime(2026, 11, 23, 8, tzinfo=UTC).timestamp()) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta).total_seconds()

    @property
    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


@dataclass
class Webhook:
    """The connector's webhook as the fake reaches it: answers handshakes, records posts.

    `handshake` chooses the answer to validation requests: "echo" (correct), "encoded"
    (the token still URL-encoded), "html" (right body, wrong content type), "status:N",
    or "unreachable".
    """

    handshake: str = "echo"
    notification_status: int = 202
    handshakes: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # (url, token, headers)
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (url, body)
    on_post: Any = None  # called with (url, body) for each notification, e.g. to call Graph back

    def __call__(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        query = parse_qs(urlsplit(url).query)
        if "validationToken" in query:
            token = query["validationToken"][0]
            self.handshakes.append((url, token, headers))
            if self.handshake == "unreachable":
                raise requests.ConnectionError("connection refused")
            if self.handshake == "encoded":
                return 200, {"Content-Type": "text/plain"}, urlsplit(url).query.split("validationToken=")[1].encode()
            if self.handshake == "html":
                return 200, {"Content-Type": "text/html"}, token.encode()
            if self.handshake.startswith("status:"):
                return int(self.handshake.split(":")[1]), {"Content-Type": "text/plain"}, token.encode()
            return 200, {"Content-Type": "text/plain; charset=utf-8"}, token.encode()
        payload = json.loads(body)
        self.posts.append((url, payload))
        if self.on_post is not None:
            self.on_post(url, payload)
        return self.notification_status, {}, b""

    def notifications(self, url: str = HOOK) -> list[dict[str, Any]]:
        """Every changeNotification received at `url`, in arrival order."""
        return [item for posted_to, body in self.posts if posted_to == url for item in body["value"]]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def webhook() -> Webhook:
    return Webhook()


@pytest.fixture
def fake(clock: Clock, webhook: Webhook) -> Iterator[GraphFake]:
    graph = GraphFake(tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET, clock=clock, deliver=webhook)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru("http://127.0.0.1")  # the loopback webhook test serves a real one
        install(mock, ROOT, graph)
        yield graph


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(fake: GraphFake, sleeps: list[float]) -> GraphClient:
    # A fresh token per request: tests move the clock by days.
    return GraphClient(ROOT, fake.issue_token, sleep=sleeps.append)


@pytest.fixture
def ada(fake: GraphFake) -> str:
    return fake.add_user("ada@contoso.test")


def subscribe(
    client: GraphClient, clock: Clock, resource: str, change_type: str = "created,updated,deleted", **overrides: Any
) -> Any:
    arguments: dict[str, Any] = {
        "resource": resource,
        "change_type": change_type,
        "notification_url": HOOK,
        "lifecycle_url": LIFECYCLE,
        "expiration": clock.datetime + timedelta(days=2),
        "client_state": CLIENT_STATE,
        **overrides,
    }
    return client.create_subscription(**arguments)


def at(hour: int) -> datetime:
    return datetime(2026, 11, 23, hour, tzinfo=UTC)


def test_real_delivery_to_a_loopback_webhook(fake: GraphFake, client: GraphClient, clock: Clock, ada: str) -> None:
    """The default `deliver` POSTs over HTTP: handshake and notification reach a real server."""
    received: list[FakeRequest] = []

    def connector(request: FakeRequest) -> FakeResponse:
        received.append(request)
        if "validationToken" in request.query:
            return FakeResponse(200, request.query["validationToken"], {"Content-Type": "text/plain"})
        return FakeResponse(202, b"")

    fake.deliver = post_over_http
    fake.allow_http_loopback = True
    server = serve(connector)
    try:
        subscribe(client, clock, f"/users/{ada}/events", notification_url=f"{server.url}/api/hook", lifecycle_url=None)
        fake.add_event(ada, start=at(9), end=at(10))
    finally:
        server.stop()

    handshake, notification = received
    assert handshake.method == "POST"
    assert handshake.path == "/api/hook"
    assert handshake.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert handshake.query["validationToken"].startswith("Validation: ")
    assert notification.json()["value"][0]["changeType"] == "created"
    assert notification.json()["value"][0]["clientState"] == CLIENT_STATE
    assert [(d.kind, d.status) for d in fake.deliveries] == [("handshake", 200), ("notification", 202)]

"""Graph's real HTTP delivery: handshake and notification reach a webhook served over loopback.

The fixtures are those of tests/unit/test_graph_subscriptions.py, where `Webhook` stands in for
the connector's endpoint through the fake's pluggable `deliver`; the test here replaces it with
the default delivery over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from fakes.graph import GraphFake
from fakes.graph_subscriptions import post_over_http
from fakes.transport import FakeRequest, FakeResponse, install, serve
from shared.graph import GraphClient
from tests.graph_webhook_support import (
    CLIENT,
    CLIENT_STATE,
    ROOT,
    SECRET,
    TENANT,
    Clock,
    Webhook,
    at,
    subscribe,
)


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

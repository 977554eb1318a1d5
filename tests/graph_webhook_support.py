"""The simulated connector webhook and the hand-moved clock of the Graph fake's subscription tests
(shared by both tiers)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from shared.graph import GraphClient

ROOT = "https://graph.fake.test"
GRAPH = f"{ROOT}/v1.0"
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

"""shared.http.send: which failures are retried, how long it waits, and when it gives up."""

from __future__ import annotations

import email.utils
import time

import pytest
import requests
import responses

from fakes.transport import FakeRequest, FakeResponse, FakeService, install
from shared.http import RetriesExhausted, RetryPolicy, send

ROOT = "https://service.fake.test"


class Echo(FakeService):
    """A service that records what reached it (faults answer before it is reached)."""

    def __init__(self) -> None:
        super().__init__()
        self.reached: list[str] = []

    def route(self, request: FakeRequest) -> FakeResponse:
        self.reached.append(request.method)
        return FakeResponse(200, {"ok": True})


@pytest.fixture
def echo() -> Echo:
    service = Echo()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, ROOT, service)
        yield service


def test_429_is_retried_after_the_time_asked_even_for_a_post(echo: Echo) -> None:
    echo.inject(429, count=2, retry_after=7)
    waits: list[float] = []
    response = send(requests.Session(), "POST", f"{ROOT}/x", json={}, sleep=waits.append)
    assert response.status_code == 200
    assert waits == [7.0, 7.0]
    assert echo.reached == ["POST"]


def test_5xx_is_retried_for_reads_but_not_for_a_create(echo: Echo) -> None:
    echo.inject(503, count=1, retry_after=0)
    assert send(requests.Session(), "GET", f"{ROOT}/x", sleep=lambda _: None).status_code == 200
    echo.inject(503, count=1, retry_after=0)
    assert send(requests.Session(), "POST", f"{ROOT}/x", sleep=lambda _: None).status_code == 503
    assert echo.reached == ["GET"]


def test_backoff_without_retry_after_grows(echo: Echo) -> None:
    echo.inject(504, count=3)
    waits: list[float] = []
    send(requests.Session(), "GET", f"{ROOT}/x", policy=RetryPolicy(base_delay=1.0), sleep=waits.append)
    assert len(waits) == 3
    assert 1.0 <= waits[0] < 2.0 and 2.0 <= waits[1] < 3.0 and 4.0 <= waits[2] < 5.0


def test_gives_up_after_the_attempts_allowed(echo: Echo) -> None:
    echo.inject(503, count=10, retry_after=0)
    with pytest.raises(RetriesExhausted, match="still 503 after 3 attempts") as raised:
        send(
            requests.Session(),
            "GET",
            f"{ROOT}/x?token=secret",
            policy=RetryPolicy(max_attempts=3),
            sleep=lambda _: None,
        )
    assert "secret" not in str(raised.value)


def test_does_not_wait_longer_than_the_policy_allows(echo: Echo) -> None:
    echo.inject(429, count=1, retry_after=3600)
    with pytest.raises(RetriesExhausted, match="asked to wait 3600s"):
        send(requests.Session(), "GET", f"{ROOT}/x", sleep=lambda _: pytest.fail("must not wait"))


def test_retry_after_as_an_http_date(echo: Echo) -> None:
    class DatedThrottle(Echo):
        def fault_response(self, fault):  # type: ignore[no-untyped-def]
            when = email.utils.formatdate(time.time() + 30, usegmt=True)
            return FakeResponse(429, {"error": {}}, {"Retry-After": when})

    service = DatedThrottle()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, "https://dated.fake.test", service)
        service.inject(429, count=1)
        waits: list[float] = []
        send(requests.Session(), "GET", "https://dated.fake.test/x", sleep=waits.append)
    assert 25 <= waits[0] <= 31

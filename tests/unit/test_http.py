"""shared.http.send: which failures are retried, how long it waits, and when it gives up."""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Iterator
from typing import TypeVar

import pytest
import requests
import responses
from opentelemetry.trace import SpanKind, StatusCode

from fakes.transport import FakeRequest, FakeResponse, FakeService, install
from shared.http import RetriesExhausted, RetryPolicy, retry_after_seconds, send
from tests.telemetry_plugin import Telemetry

ROOT = "https://service.fake.test"
S = TypeVar("S", bound=FakeService)


class Echo(FakeService):
    """A service that records what reached it (faults answer before it is reached)."""

    def __init__(self) -> None:
        super().__init__()
        self.reached: list[str] = []

    def route(self, request: FakeRequest) -> FakeResponse:
        self.reached.append(request.method)
        return FakeResponse(200, {"ok": True})


class Dropping(Echo):
    """A service whose connection fails once per given error (in order), then answers 200.

    `responses` lets an exception raised in the callback propagate to the client, as a
    dropped connection or a timeout does. `request_counts` counts every attempt.
    """

    def __init__(self, *errors: type[requests.RequestException]) -> None:
        super().__init__()
        self.errors = list(errors)

    def route(self, request: FakeRequest) -> FakeResponse:
        if self.errors:
            raise self.errors.pop(0)("connection dropped")
        return super().route(request)


class Throttling(Echo):
    """A service whose injected faults carry this exact Retry-After header value."""

    def __init__(self, retry_after: str) -> None:
        super().__init__()
        self.retry_after = retry_after

    def fault_response(self, fault):  # type: ignore[no-untyped-def]
        return FakeResponse(fault.status, {"error": {}}, {"Retry-After": self.retry_after})


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def echo(mock: responses.RequestsMock) -> Echo:
    service = Echo()
    install(mock, ROOT, service)
    return service


def serving(mock: responses.RequestsMock, service: S) -> S:
    install(mock, ROOT, service)
    return service


def no_wait(seconds: float) -> None:
    pytest.fail(f"must not wait (asked to wait {seconds}s)")


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


@pytest.mark.parametrize(
    ("method", "idempotent", "status", "attempts"),
    [
        ("POST", True, 200, 2),  # a query action declared safe to repeat: the 503 is retried
        ("GET", False, 503, 1),  # a read declared unsafe: the 503 is the answer
    ],
)
def test_the_idempotent_flag_overrides_the_method_for_a_5xx(
    echo: Echo, method: str, idempotent: bool, status: int, attempts: int
) -> None:
    echo.inject(503, count=1, retry_after=0)
    response = send(requests.Session(), method, f"{ROOT}/x", idempotent=idempotent, sleep=lambda _: None)
    assert response.status_code == status
    assert echo.request_counts[method] == attempts


def test_backoff_without_retry_after_grows(echo: Echo) -> None:
    echo.inject(504, count=3)
    waits: list[float] = []
    send(requests.Session(), "GET", f"{ROOT}/x", policy=RetryPolicy(base_delay=1.0), sleep=waits.append)
    assert len(waits) == 3
    assert 1.0 <= waits[0] < 2.0 and 2.0 <= waits[1] < 3.0 and 4.0 <= waits[2] < 5.0


@pytest.mark.parametrize(
    ("method", "idempotent", "errors"),
    [
        ("GET", None, (requests.ConnectionError, requests.ConnectionError)),
        ("PUT", None, (requests.ReadTimeout, requests.ConnectionError)),
        ("DELETE", None, (requests.ConnectionError, requests.ReadTimeout)),
        ("POST", True, (requests.ConnectionError, requests.ConnectionError)),
    ],
)
def test_a_request_safe_to_repeat_is_retried_after_a_dropped_connection_or_timeout(
    mock: responses.RequestsMock, method: str, idempotent: bool | None, errors: tuple[type[Exception], ...]
) -> None:
    service = serving(mock, Dropping(*errors))
    waits: list[float] = []
    response = send(
        requests.Session(),
        method,
        f"{ROOT}/x",
        idempotent=idempotent,
        policy=RetryPolicy(base_delay=1.0),
        sleep=waits.append,
    )
    assert response.status_code == 200
    assert service.request_counts[method] == 3
    assert service.reached == [method]
    # the backoff between attempts grows: base, then twice the base (each plus up to one base of jitter)
    assert len(waits) == 2
    assert 1.0 <= waits[0] < 2.0 and 2.0 <= waits[1] < 3.0


@pytest.mark.parametrize(
    ("method", "idempotent"),
    [
        ("POST", None),  # the create may have been applied: repeating it could duplicate it
        ("PATCH", None),
        ("GET", False),
    ],
)
def test_a_write_whose_effect_is_unknown_is_not_repeated_after_a_dropped_connection(
    mock: responses.RequestsMock, method: str, idempotent: bool | None
) -> None:
    service = serving(mock, Dropping(requests.ConnectionError))
    with pytest.raises(requests.ConnectionError):
        send(requests.Session(), method, f"{ROOT}/x", idempotent=idempotent, sleep=no_wait)
    assert service.request_counts[method] == 1


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
    assert echo.request_counts["GET"] == 3  # attempts, not retries: the first try counts
    assert raised.value.response is not None and raised.value.response.status_code == 503


def test_a_connection_that_keeps_dropping_fails_after_the_attempts_allowed(mock: responses.RequestsMock) -> None:
    service = serving(mock, Dropping(*[requests.ConnectionError] * 10))
    waits: list[float] = []
    with pytest.raises(requests.ConnectionError):
        send(requests.Session(), "GET", f"{ROOT}/x", policy=RetryPolicy(max_attempts=3), sleep=waits.append)
    assert service.request_counts["GET"] == 3
    assert len(waits) == 2  # no wait after the last attempt


def test_does_not_wait_longer_than_the_policy_allows(echo: Echo) -> None:
    echo.inject(429, count=1, retry_after=3600)
    with pytest.raises(RetriesExhausted, match="asked to wait 3600s") as raised:
        send(requests.Session(), "GET", f"{ROOT}/x", sleep=no_wait)
    assert raised.value.response is not None and raised.value.response.status_code == 429


def test_a_retry_after_exactly_at_the_cap_is_waited_for(echo: Echo) -> None:
    echo.inject(429, count=1, retry_after=7)
    waits: list[float] = []
    response = send(requests.Session(), "GET", f"{ROOT}/x", policy=RetryPolicy(max_delay=7.0), sleep=waits.append)
    assert response.status_code == 200
    assert waits == [7.0]


def test_retry_after_as_an_http_date(mock: responses.RequestsMock) -> None:
    service = serving(mock, Throttling(email.utils.formatdate(time.time() + 30, usegmt=True)))
    service.inject(429, count=1)
    waits: list[float] = []
    send(requests.Session(), "GET", f"{ROOT}/x", sleep=waits.append)
    assert 25 <= waits[0] <= 31


def _answer_with_retry_after(value: str | None) -> requests.Response:
    response = requests.Response()
    response.status_code = 429
    if value is not None:
        response.headers["Retry-After"] = value
    return response


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        ("2.5", 2.5),
        ("0", 0.0),  # "now": no wait, not a minimum of one second
        ("-3", 0.0),  # a negative delay is no delay
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date already past: retry now
        ("soon", None),  # unreadable: the caller falls back to its backoff
        ("Wed, 32 Oct 2015 07:28:00 GMT", None),  # a date that does not exist
        ("", None),
        (None, None),  # absent
    ],
)
def test_retry_after_is_read_as_seconds_or_a_date(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(_answer_with_retry_after(header)) == seconds


@pytest.mark.parametrize("header", ["0", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_a_retry_after_of_now_or_the_past_is_retried_without_waiting(mock: responses.RequestsMock, header: str) -> None:
    service = serving(mock, Throttling(header))
    service.inject(429, count=1)
    waits: list[float] = []
    assert send(requests.Session(), "GET", f"{ROOT}/x", sleep=waits.append).status_code == 200
    assert waits == [0.0]


def test_an_unreadable_retry_after_falls_back_to_the_backoff(mock: responses.RequestsMock) -> None:
    """A malformed header once crashed the request (the date parser raises on Python 3.11+)."""
    service = serving(mock, Throttling("soon"))
    service.inject(503, count=1)
    waits: list[float] = []
    response = send(requests.Session(), "GET", f"{ROOT}/x", policy=RetryPolicy(base_delay=1.0), sleep=waits.append)
    assert response.status_code == 200
    assert len(waits) == 1 and 1.0 <= waits[0] < 2.0


def test_every_attempt_sends_the_same_body_and_options(mock: responses.RequestsMock, echo: Echo) -> None:
    echo.inject(503, count=1, retry_after=0)
    send(
        requests.Session(),
        "PUT",
        f"{ROOT}/x",
        json={"name": "Ada"},
        headers={"If-Match": "etag-1"},
        policy=RetryPolicy(timeout=12.5),
        sleep=lambda _: None,
    )
    assert len(mock.calls) == 2
    for call in mock.calls:
        assert json.loads(call.request.body) == {"name": "Ada"}
        assert call.request.headers["If-Match"] == "etag-1"
        assert call.request.req_kwargs["timeout"] == 12.5  # the policy's timeout when none is given


def test_a_timeout_given_for_one_request_overrides_the_policys(mock: responses.RequestsMock, echo: Echo) -> None:
    send(requests.Session(), "GET", f"{ROOT}/x", timeout=3, policy=RetryPolicy(timeout=12.5))
    assert [call.request.req_kwargs["timeout"] for call in mock.calls] == [3]


# The query string (here with a second '?' inside it) carries tokens: logs keep only the path.
SECRET_URL = f"{ROOT}/users?$filter=a?b&token=secret"


def test_every_retry_after_an_answer_is_logged_without_the_query_string(
    echo: Echo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="shared.http")
    echo.inject(503, count=1, retry_after=2)
    echo.inject(429, count=1, retry_after=0)
    send(requests.Session(), "get", SECRET_URL, sleep=lambda _: None)
    assert caplog.messages == [
        f"503 on GET {ROOT}/users; retry 1 in 2.0s",
        f"429 on GET {ROOT}/users; retry 2 in 0.0s",
    ]
    assert all(record.levelno == logging.DEBUG for record in caplog.records)


def test_every_retry_after_a_dropped_connection_is_logged_without_the_query_string(
    mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="shared.http")
    serving(mock, Dropping(requests.ConnectionError, requests.ReadTimeout))
    # the backoff never exceeds max_delay, which makes the logged wait exact here
    policy = RetryPolicy(base_delay=4.0, max_delay=2.5)
    send(requests.Session(), "DELETE", SECRET_URL, policy=policy, sleep=lambda _: None)
    assert caplog.messages == [
        f"network error on DELETE {ROOT}/users (ConnectionError); retry 1 in 2.5s",
        f"network error on DELETE {ROOT}/users (ReadTimeout); retry 2 in 2.5s",
    ]
    assert all(record.levelno == logging.DEBUG for record in caplog.records)


@pytest.mark.parametrize("attempts", [0, -1])
def test_a_policy_must_allow_at_least_one_attempt(attempts: int) -> None:
    """A policy that sends nothing would fail every call in a way no caller could read."""
    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        RetryPolicy(max_attempts=attempts)
    assert RetryPolicy(max_attempts=1).max_attempts == 1


def test_each_call_is_one_client_span_with_its_retries_and_no_query(echo: Echo, telemetry: Telemetry) -> None:
    echo.inject(429, count=2, retry_after=0)
    send(requests.Session(), "GET", f"{ROOT}/x?$filter=a&code=K", sleep=lambda _: None)
    echo.inject(400, count=1)
    send(requests.Session(), "PATCH", f"{ROOT}/y", json={}, sleep=no_wait)
    first, second = telemetry.spans()
    assert (first.name, first.kind) == ("GET /x", SpanKind.CLIENT)
    assert dict(first.attributes or {}) == {
        "http.request.method": "GET",
        "url.full": "https://service.fake.test/x",
        "server.address": "service.fake.test",
        "http.response.status_code": 200,
        "http.request.resend_count": 2,
    }
    assert first.status.status_code == StatusCode.UNSET
    assert (second.name, (second.attributes or {})["http.response.status_code"]) == ("PATCH /y", 400)
    assert (second.attributes or {})["http.request.resend_count"] == 0
    assert second.status.status_code == StatusCode.ERROR


def test_a_call_that_gets_no_answer_is_a_failed_span_naming_the_error_only(
    mock: responses.RequestsMock, telemetry: Telemetry
) -> None:
    # Nothing listens on that port: the connection is refused (responses raises ConnectionError).
    with pytest.raises(requests.ConnectionError):
        send(requests.Session(), "POST", f"{ROOT}:8443/z?token=T", sleep=no_wait)
    (span,) = telemetry.spans()
    assert (span.attributes or {})["error.type"] == "ConnectionError"
    assert (span.attributes or {})["server.port"] == 8443
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "ConnectionError"

"""Retrying HTTP for both API clients.

Graph throttles with 429 + Retry-After and has transient 503/504s; 3CX answers 504 on
long queries. Both clients send through `send`, which retries those answers a bounded
number of times, honouring Retry-After, and never retries a write whose effect is unknown
(a 5xx or dropped connection after a POST may have been applied; 429 was not).
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from shared.telemetry import http_call
from shared.urls import redact_url

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. Defaults follow the Graph SDK's retry handler."""

    max_attempts: int = 4  # first try + 3 retries
    retry_statuses: frozenset[int] = frozenset({429, 503, 504})
    base_delay: float = 0.5
    max_delay: float = 60.0  # a Retry-After beyond this is not waited for: we give up
    timeout: float = 30.0  # per request, seconds

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")


class RetriesExhausted(Exception):
    """The service kept failing; the last response (if any) is attached."""

    def __init__(self, message: str, response: requests.Response | None = None) -> None:
        super().__init__(message)
        self.response = response


def retry_after_seconds(response: requests.Response) -> float | None:
    """Parse Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except ValueError:  # not a date either (the parser raises rather than returning None)
        return None
    return max(0.0, parsed.timestamp() - time.time())


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    policy: RetryPolicy = RetryPolicy(),
    idempotent: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> requests.Response:
    """Send one request, retrying throttling and transient failures within `policy`.

    `idempotent` defaults from the method; a POST that is safe to repeat (a query action,
    a `$batch` of GETs) may pass True. Returns the final response, whatever its status,
    unless every attempt failed on the network or was throttled past the policy.
    """
    method = method.upper()
    with http_call(method, url) as call:
        response, attempts = _send(session, method, url, policy, idempotent, sleep, **kwargs)
        call.answered(response.status_code, attempts)
        return response


def _send(
    session: requests.Session,
    method: str,
    url: str,
    policy: RetryPolicy,
    idempotent: bool | None,
    sleep: Callable[[float], None],
    **kwargs: Any,
) -> tuple[requests.Response, int]:
    shown = redact_url(url)  # what logs and messages may show of it
    safe_to_repeat = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
    kwargs.setdefault("timeout", policy.timeout)
    response: requests.Response | None = None
    delay: float | None  # Retry-After may be absent or unreadable: then the backoff applies
    for attempt in range(1, policy.max_attempts + 1):
        try:
            response = session.request(method, url, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as error:
            if not safe_to_repeat or attempt == policy.max_attempts:
                raise
            delay = _backoff(policy, attempt)
            log.debug(
                "network error on %s %s (%s); retry %d in %.1fs",
                method,
                shown,
                type(error).__name__,
                attempt,
                delay,
            )
            sleep(delay)
            continue
        status = response.status_code
        if status not in policy.retry_statuses:
            return response, attempt
        # A 429 means the request was not processed, so even a write may be repeated.
        if status != 429 and not safe_to_repeat:
            return response, attempt
        if attempt == policy.max_attempts:
            break
        delay = retry_after_seconds(response)
        if delay is None:
            delay = _backoff(policy, attempt)
        if delay > policy.max_delay:
            raise RetriesExhausted(
                f"{method} {shown}: asked to wait {delay:.0f}s, more than the {policy.max_delay:.0f}s allowed",
                response,
            )
        log.debug("%s on %s %s; retry %d in %.1fs", status, method, shown, attempt, delay)
        sleep(delay)
    assert response is not None
    raise RetriesExhausted(
        f"{method} {shown}: still {response.status_code} after {policy.max_attempts} attempts", response
    )


def _backoff(policy: RetryPolicy, attempt: int) -> float:
    return min(policy.max_delay, policy.base_delay * 2.0 ** (attempt - 1) + random.uniform(0, policy.base_delay))

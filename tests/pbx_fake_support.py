"""What the tests of the 3CX fake and client share: where the simulated PBX answers, its API
client's credentials, a clock a test moves by hand, and plain HTTP to its /xapi/v1."""

from __future__ import annotations

from typing import Any

import requests

from fakes.threecx import DELIBERATELY_INVALID_HEADER

BASE = "https://pbx.example.com:5001"
CLIENT_ID = "connector"
SECRET = "s3cret-api-key"
START = 1_700_000_000.0


class Clock:
    """A settable clock shared by the fake and whatever the test drives with it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Xapi:
    """Plain HTTP to the fake's /xapi/v1 with one bearer token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, method: str, path: str, *, invalid: bool = False, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        if invalid:
            headers[DELIBERATELY_INVALID_HEADER] = "1"
        return requests.request(method, f"{BASE}/xapi/v1{path}", headers=headers, timeout=5, **kwargs)

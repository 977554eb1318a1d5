"""fakes.transport: a dropped connection, before or after the request took effect, in process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import responses

from fakes.transport import FakeRequest, FakeResponse, FakeService, install

ROOT = "https://service.fake.test"


class Counter(FakeService):
    """Counts the POSTs that took effect."""

    def __init__(self) -> None:
        super().__init__()
        self.applied = 0

    def route(self, request: FakeRequest) -> FakeResponse:
        self.applied += 1
        return FakeResponse(201, {"applied": self.applied})


@pytest.fixture
def counter() -> Iterator[Counter]:
    service = Counter()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, ROOT, service)
        yield service


def test_a_drop_before_handling_loses_the_request(counter: Counter) -> None:
    counter.inject_drop(count=1, method="POST")
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{ROOT}/things", json={}, timeout=5)
    assert counter.applied == 0
    assert requests.post(f"{ROOT}/things", json={}, timeout=5).status_code == 201  # only one was dropped


def test_a_drop_after_handling_applies_the_request_and_loses_the_answer(counter: Counter) -> None:
    counter.inject_drop(after_handling=True, count=1, path_pattern=r"^/things$")
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{ROOT}/things", json={}, timeout=5)
    assert counter.applied == 1
    assert requests.post(f"{ROOT}/things", json={}, timeout=5).json() == {"applied": 2}


def test_a_drop_only_hits_matching_requests(counter: Counter) -> None:
    counter.inject_drop(count=1, method="DELETE")
    assert requests.post(f"{ROOT}/things", json={}, timeout=5).status_code == 201
    assert counter.faults and counter.faults[0].count == 1

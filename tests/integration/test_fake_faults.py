"""Faults the chaos soak injects from outside the connector, checked on their own.

A served fake that hangs up (before or after handling the request) must look to a client
exactly like a reset or a read timeout; an Azurite restart must keep its data and ports.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from azure.data.tables import TableServiceClient

from fakes.azurite import start_azurite
from fakes.transport import FakeRequest, FakeResponse, FakeService, RunningServer, serve


class Counter(FakeService):
    def __init__(self) -> None:
        super().__init__()
        self.applied = 0

    def route(self, request: FakeRequest) -> FakeResponse:
        self.applied += 1
        return FakeResponse(201, {"applied": self.applied})


@pytest.fixture
def served() -> Iterator[tuple[Counter, RunningServer]]:
    service = Counter()
    server = serve(service)
    yield service, server
    server.stop()


@pytest.mark.parametrize(("after_handling", "applied"), [(False, 0), (True, 1)])
def test_a_served_fake_that_hangs_up_gives_the_client_no_answer(
    served: tuple[Counter, RunningServer], after_handling: bool, applied: int
) -> None:
    service, server = served
    session = requests.Session()
    assert session.post(f"{server.url}/things", json={}, timeout=5).status_code == 201  # a kept-alive connection
    service.inject_drop(after_handling=after_handling, count=1)
    with pytest.raises(requests.ConnectionError):
        session.post(f"{server.url}/things", json={}, timeout=5)
    assert service.applied == 1 + applied
    assert session.post(f"{server.url}/things", json={}, timeout=5).status_code == 201  # the next one is answered


@pytest.mark.azurite
def test_an_azurite_restart_keeps_its_data_and_its_ports(tmp_path) -> None:
    with start_azurite(tmp_path / "azurite") as azurite:
        connection = azurite.connection_string
        table = TableServiceClient.from_connection_string(connection).create_table("restarted")
        table.create_entity({"PartitionKey": "p", "RowKey": "r", "kept": True})
        azurite.restart()
        assert azurite.connection_string == connection
        client = TableServiceClient.from_connection_string(connection).get_table_client("restarted")
        assert client.get_entity("p", "r")["kept"] is True

"""Shared fixtures: Azurite for the whole session, and a simulated tenant + PBX per test.

Storage is real (Azurite, started here on free ports unless TEST_STORAGE_CONNECTION names
one already running); Graph and 3CX are the stateful fakes, reached in process through
`responses`, so the clients run their real HTTP code.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import responses

from fakes.graph import GraphFake
from fakes.threecx import ThreeCXFake
from fakes.transport import install
from shared.settings import Settings, load_settings
from shared.state import StateStore
from shared.work_items import Work, parse_work
from sync.runtime import Runtime, reset_process_runtime

if TYPE_CHECKING:
    from tests.telemetry_plugin import Telemetry

pytest_plugins = ["tests.conformance_plugin", "tests.canary_plugin", "tests.telemetry_plugin"]

# Telemetry goes to Application Insights only where a connection string says so (Azure);
# one on the machine running the tests must not send the suite's telemetry anywhere.
os.environ.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)

TENANT_ID = "8f2e6d4c-1b3a-4c5d-9e8f-0a1b2c3d4e5f"
CLIENT_ID = "3a7c9e1b-5d2f-4a6b-8c0d-e1f2a3b4c5d6"
GRAPH_SECRET = "canary-graph-secret-7f3a9c"  # planted: tests/canary_plugin.py looks for it everywhere
PBX_CLIENT_ID = "m365connector"
PBX_SECRET = "canary-pbx-key-91c2e4"  # planted, as above
GRAPH_ROOT = "https://graph.fake.test"
FUNCTION_KEY = "canary-function-key-5e1d08"  # planted, as above
WEBHOOK_URL = f"https://connector.fake.test/api/graph/notifications?code={FUNCTION_KEY}"
PBX_ROOT = "https://pbx.fake.test:5001"


# Every setting the commands need to reach the simulated Graph and 3CX (storage aside).
SERVICE_SETTINGS = {
    "GRAPH_TENANT_ID": TENANT_ID,
    "GRAPH_CLIENT_ID": CLIENT_ID,
    "GRAPH_CLIENT_SECRET": GRAPH_SECRET,
    "GRAPH_AUTHORITY_HOST": GRAPH_ROOT,
    "GRAPH_BASE_URL": f"{GRAPH_ROOT}/v1.0",
    "TCX_BASE_URL": PBX_ROOT,
    "TCX_CLIENT_ID": PBX_CLIENT_ID,
    "TCX_CLIENT_SECRET": PBX_SECRET,
}


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No setting from the machine running the tests may leak into them."""
    names = {f.alias for f in Settings.model_fields.values() if f.alias}
    for name in list(os.environ):
        if name in names or name.upper() in {n.upper() for n in names}:
            monkeypatch.delenv(name, raising=False)
    reset_process_runtime()
    yield
    reset_process_runtime()


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """The spans, log records and metrics the connector emits during this test (in memory)."""
    from tests.telemetry_plugin import listening

    yield from listening()


@pytest.fixture(scope="session")
def storage_connection() -> Iterator[str]:
    """A connection string to real Table/Queue storage: Azurite started for this session."""
    given = os.environ.get("TEST_STORAGE_CONNECTION")
    if given:
        yield given
        return
    from fakes.azurite import start_azurite

    with start_azurite() as azurite:
        yield azurite.connection_string


@pytest.fixture
def table_prefix() -> str:
    """Each test gets its own tables, so tests never see each other's state."""
    return "t" + secrets.token_hex(5)


@pytest.fixture
def state(storage_connection: str, table_prefix: str) -> StateStore:
    return StateStore.from_connection_string(storage_connection, table_prefix)


@dataclass
class Tenant:
    """A simulated Microsoft 365 tenant and 3CX PBX, with settings that reach them."""

    graph: GraphFake
    pbx: ThreeCXFake
    state: StateStore
    env: dict[str, str]
    mock: responses.RequestsMock
    _runtimes: list[Runtime] = field(default_factory=list)
    _tokens_at_reset: int = 0

    def settings(self, **overrides: Any) -> Settings:
        values = {**self.env, **{key: str(value) for key, value in overrides.items()}}
        return load_settings(**values)

    def runtime(self, **overrides: Any) -> Runtime:
        """A runtime as a fresh process would build it, on this test's state tables."""
        rt = Runtime(self.settings(**overrides), _state=self.state)
        self._runtimes.append(rt)
        return rt

    def add_users(self, count: int, prefix: str = "user", **fields: Any) -> list[str]:
        return [
            self.graph.add_user(
                f"{prefix}{i:03d}@contoso.com", given_name=f"{prefix.capitalize()}{i}", surname="Example", **fields
            )
            for i in range(count)
        ]

    def reset_pbx_counts(self) -> None:
        self.pbx.reset_counts()
        self._tokens_at_reset = self.pbx.tokens_issued

    def connect_webhook(self, monkeypatch: pytest.MonkeyPatch) -> list[Work]:
        """Let the simulated Graph reach the connector's webhook routes in process.

        Graph's deliveries (handshakes, notifications, lifecycle events) are handed to the
        real Function handlers; the work items they put on the queue output binding are
        collected in the returned list instead of a Storage queue.
        """
        from devhost.serve import call_route, discover
        from function_app import registered_functions

        monkeypatch.setenv("WEBHOOK_URL", WEBHOOK_URL)
        self.env["WEBHOOK_URL"] = WEBHOOK_URL
        reset_process_runtime()
        routes = discover(registered_functions()).routes
        queued: list[Work] = []

        class Collect:
            def send(self, name: str, value: Any) -> None:
                queued.extend(parse_work(text) for text in value)

        def deliver(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
            path = url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]
            for route in routes:
                match = route.pattern.match(f"/{path}")
                if match:
                    response = call_route(route, "POST", url, headers, body, match.groupdict(), Collect())
                    return response.status_code, {"Content-Type": response.mimetype}, response.get_body()
            return 404, {}, b""

        self.graph.deliver = deliver
        return queued

    def pbx_writes(self) -> int:
        """XAPI writes since the last reset (token requests are POSTs too, but not writes)."""
        counts = self.pbx.request_counts
        tokens = self.pbx.tokens_issued - self._tokens_at_reset
        return counts["POST"] + counts["PATCH"] + counts["DELETE"] - tokens


@pytest.fixture
def tenant(
    state: StateStore, storage_connection: str, table_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Tenant]:
    graph = GraphFake(tenant_id=TENANT_ID, client_id=CLIENT_ID, client_secret=GRAPH_SECRET)
    pbx = ThreeCXFake(client_id=PBX_CLIENT_ID, client_secret=PBX_SECRET)
    env = {
        **SERVICE_SETTINGS,
        "AzureWebJobsStorage": storage_connection,
        "STATE_TABLE_PREFIX": table_prefix,
    }
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(re.compile(r"https?://(127\.0\.0\.1|localhost)(:\d+)?/"))  # Azurite is real
        install(mock, GRAPH_ROOT, graph)
        install(mock, PBX_ROOT, pbx)
        yield Tenant(graph, pbx, state, env, mock)


@pytest.fixture
def tenant_env(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> Tenant:
    """The tenant's settings exported to the environment, for the CLI and the Function handlers."""
    for key, value in tenant.env.items():
        monkeypatch.setenv(key, value)
    return tenant

"""The whole product on one box: Azurite, simulated Microsoft 365 and 3CX, and `serve`.

Used by the demo, the end-to-end tests and the benchmarks. Everything talks HTTPS with a
throw-away CA (MSAL and Graph insist on https): the fakes are served with it, and so is
the connector's own local host, so the simulated Graph can validate and call the webhook
exactly as Microsoft does.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakes.azurite import Azurite, start_azurite
from fakes.graph import GraphFake
from fakes.threecx import ThreeCXFake
from fakes.transport import LocalTLS, RunningServer, local_tls, serve

TENANT_ID = "0d3f6a1e-7c2b-4e59-a8d1-3b6c9f2e4a70"
CLIENT_ID = "5e8b2c4d-1a3f-4b6e-9d7c-2f1a0e3b5c8d"
GRAPH_SECRET = "local-graph-secret"
PBX_CLIENT_ID = "m365connector"
PBX_SECRET = "local-pbx-secret"


@dataclass
class Stack:
    graph: GraphFake
    pbx: ThreeCXFake
    azurite: Azurite
    tls: LocalTLS
    graph_server: RunningServer
    pbx_server: RunningServer
    settings: dict[str, str]
    workdir: Path
    local_host: Any = None  # devhost.serve.LocalHost once started

    def start_connector(self, *, timers: bool = False, queues: bool = True) -> Any:
        """Serve the Function App over HTTPS (routes; the queue worker unless told not to; timers if asked).

        Without `queues`, the caller drains the work queue itself (the chaos soak does, by its
        simulated clock).
        """
        from devhost.serve import start_local_host

        self.local_host = start_local_host(
            timers=timers, queues=queues, tls=self.tls.server_context, connection_string=self.azurite.connection_string
        )
        webhook = f"https://127.0.0.1:{self.local_host.port}/api/graph/notifications"
        self.settings["WEBHOOK_URL"] = webhook
        os.environ["WEBHOOK_URL"] = webhook
        return self.local_host


@contextmanager
def local_stack(
    extra_settings: dict[str, str] | None = None,
    *,
    journal: bool = False,
    clock: Callable[[], float] = time.time,
) -> Iterator[Stack]:
    """Start everything; the connector's settings are exported to this process's environment.

    `clock` is the simulated services' time (token and subscription expiry, timestamps).
    """
    workdir = Path(tempfile.mkdtemp(prefix="tcx-stack-"))
    tls = local_tls(workdir)
    saved = dict(os.environ)
    os.environ["REQUESTS_CA_BUNDLE"] = str(tls.ca_bundle)
    os.environ.pop("CURL_CA_BUNDLE", None)
    graph = GraphFake(tenant_id=TENANT_ID, client_id=CLIENT_ID, client_secret=GRAPH_SECRET, clock=clock)
    pbx = ThreeCXFake(client_id=PBX_CLIENT_ID, client_secret=PBX_SECRET, journal=journal, clock=clock)
    with start_azurite(workdir / "azurite") as azurite:
        graph_server = serve(graph, tls=tls.server_context)
        pbx_server = serve(pbx, tls=tls.server_context)
        settings = {
            "GRAPH_TENANT_ID": TENANT_ID,
            "GRAPH_CLIENT_ID": CLIENT_ID,
            "GRAPH_CLIENT_SECRET": GRAPH_SECRET,
            "GRAPH_AUTHORITY_HOST": graph_server.url,
            "GRAPH_BASE_URL": f"{graph_server.url}/v1.0",
            "TCX_BASE_URL": pbx_server.url,
            "TCX_CLIENT_ID": PBX_CLIENT_ID,
            "TCX_CLIENT_SECRET": PBX_SECRET,
            "AzureWebJobsStorage": azurite.connection_string,
            **(extra_settings or {}),
        }
        os.environ.update(settings)
        stack = Stack(graph, pbx, azurite, tls, graph_server, pbx_server, settings, workdir)
        try:
            yield stack
        finally:
            if stack.local_host is not None:
                stack.local_host.stop()
            graph_server.stop()
            pbx_server.stop()
            os.environ.clear()
            os.environ.update(saved)
            from sync.runtime import reset_process_runtime

            reset_process_runtime()

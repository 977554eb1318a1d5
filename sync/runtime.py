"""The composition root: settings in, clients and state out, built once per process.

Domain code receives a `Runtime` and never imports clients as globals; tests build one
around fakes, Azure builds one per worker process (MSAL keeps its token cache in the app
object, 3CX keeps one valid token per API client, so both clients must live long).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from azure.data.tables import TableServiceClient

from shared.entra import GraphTokenProvider
from shared.graph import GraphClient
from shared.queues import WorkQueue
from shared.settings import Settings
from shared.state import SharedTcxToken, StateStore
from shared.threecx import ThreeCXClient


@dataclass
class Runtime:
    settings: Settings
    _state: StateStore | None = field(default=None, repr=False)

    @cached_property
    def state(self) -> StateStore:
        if self._state is not None:
            return self._state
        settings = self.settings
        if settings.storage_by_identity:
            service = TableServiceClient(
                endpoint=settings.storage_endpoint("table"), credential=self.storage_credential
            )
            return StateStore(service, settings.state_table_prefix)
        return StateStore.from_connection_string(settings.storage_connection, settings.state_table_prefix)

    @cached_property
    def storage_credential(self) -> Any:
        """The managed identity that reaches storage when shared keys are off (Azure)."""
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential(managed_identity_client_id=self.settings.storage_client_id)

    @cached_property
    def graph(self) -> GraphClient:
        self.settings.require_graph()
        # A certificate wins over a secret when both are set (e.g. mid-rotation to a certificate).
        certificate = self.settings.graph_client_certificate_path
        secret = self.settings.graph_client_secret if certificate is None else None
        plain = secret.get_secret_value() if secret else None
        provider = GraphTokenProvider(
            self.settings.graph_tenant_id or "",
            self.settings.graph_client_id or "",
            client_secret=plain,
            certificate_path=certificate,
            authority_host=self.settings.graph_authority_host,
        )
        return GraphClient(self.settings.graph_base_url, provider)

    @cached_property
    def queue(self) -> WorkQueue:
        """The work queue: notifications, boundaries and refreshes for the worker."""
        settings = self.settings
        if settings.storage_by_identity:
            queue = WorkQueue.from_account(
                settings.storage_endpoint("queue"), settings.work_queue, self.storage_credential
            )
        else:
            queue = WorkQueue.from_connection_string(settings.storage_connection, settings.work_queue)
        queue.ensure()
        return queue

    @cached_property
    def subscription_cache(self) -> SubscriptionCache:
        """Subscription records for the webhook, cached briefly: it must answer fast."""
        from sync.notifications import SubscriptionCache

        return SubscriptionCache(self.state)

    @cached_property
    def tcx(self) -> ThreeCXClient:
        self.settings.require_tcx()
        secret = self.settings.tcx_client_secret
        return ThreeCXClient(
            self.settings.tcx_base_url or "",
            self.settings.tcx_client_id or "",
            secret.get_secret_value() if secret else "",
            shared_token=SharedTcxToken(self.state),
        )


if TYPE_CHECKING:
    from sync.notifications import SubscriptionCache

_runtime: Runtime | None = None


def process_runtime() -> Runtime:
    """The process-wide runtime used by the Function triggers (built on first use)."""
    global _runtime
    if _runtime is None:
        from shared.settings import load_settings

        _runtime = Runtime(load_settings())
    return _runtime


def reset_process_runtime() -> None:
    """Forget the process runtime (tests change the environment between cases)."""
    global _runtime
    _runtime = None

"""Subscription upkeep against the simulated tenant: the awkward answers Graph gives (409, 403, 404)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sync.runtime import process_runtime
from sync.subscription_upkeep import reconcile_subscriptions
from sync.user_sync import run_user_sync
from tests.conftest import Tenant

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def synced(tenant_env: Tenant, monkeypatch: pytest.MonkeyPatch) -> Tenant:
    tenant_env.add_users(2)
    run_user_sync(tenant_env.runtime())
    tenant_env.connect_webhook(monkeypatch)
    return tenant_env


def test_lost_state_meets_409_and_recovers(synced: Tenant) -> None:
    rt = process_runtime()
    first = reconcile_subscriptions(rt, now=NOW)
    assert first.created == 3
    for record_id in list(synced.state.subscriptions()):
        synced.state.delete_subscription(record_id)  # state lost; Graph still has them
    again = reconcile_subscriptions(rt, now=NOW)
    assert again.failed == 0
    assert len(synced.graph.subscriptions) == 3
    assert set(synced.graph.subscriptions) == set(synced.state.subscriptions())


def test_quota_refusal_is_recorded_and_the_rest_goes_on(synced: Tenant) -> None:
    synced.graph.subscription_quota_per_resource = 0
    result = reconcile_subscriptions(process_runtime(), now=NOW)
    assert result.failed == 3
    assert all("403" in error for error in result.errors)
    synced.graph.subscription_quota_per_resource = 1000
    assert reconcile_subscriptions(process_runtime(), now=NOW).created == 3


def test_a_subscription_graph_forgot_is_recreated(synced: Tenant) -> None:
    rt = process_runtime()
    reconcile_subscriptions(rt, now=NOW)
    victim = next(r for r in synced.state.subscriptions().values() if r.kind == "calendar")
    synced.graph.expire_subscription(victim.id)  # Graph dropped it (e.g. renewal came too late)
    result = reconcile_subscriptions(rt, now=NOW)
    assert result.failed == 0
    resources = sorted(s.resource for s in synced.graph.subscriptions.values())
    assert resources.count(victim.resource) == 1
    assert victim.id not in synced.state.subscriptions()


def test_a_new_function_key_in_webhook_url_remakes_the_subscriptions(
    synced: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sync.runtime import reset_process_runtime

    reconcile_subscriptions(process_runtime(), now=NOW)
    new_url = "https://connector.fake.test/api/graph/notifications?code=rotated-key"
    monkeypatch.setenv("WEBHOOK_URL", new_url)
    reset_process_runtime()

    result = reconcile_subscriptions(process_runtime(), now=NOW)

    assert (result.deleted, result.created, result.failed) == (3, 3, 0)
    assert {s.notification_url for s in synced.graph.subscriptions.values()} == {new_url}
    assert len(synced.state.subscriptions()) == 3

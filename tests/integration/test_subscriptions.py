"""Subscription upkeep and lifecycle events against the simulated tenant: the awkward answers Graph gives."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import UpstreamUnavailable
from shared.work_items import Work
from sync.presence_run import Scheduler
from sync.records import SubscriptionRecord
from sync.runtime import process_runtime
from sync.subscription_upkeep import reconcile_subscriptions
from sync.subscriptions import CHANGE_TYPES, calendar_resource, contacts_resource
from sync.user_sync import run_user_sync
from sync.worker import Done, handle_work
from tests.conftest import Tenant

# Now, to the hour: the Graph fake checks subscription expiry against the real clock.
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


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


# -- lifecycle events whose replacement subscription cannot be made at once -----------------------


class _Boundaries(Scheduler):
    def schedule(self, item: Work, delay: timedelta) -> None:
        pass  # the status boundaries of the calendar re-read are not what these tests look at


@pytest.fixture
def subscribed(tenant_env: Tenant, monkeypatch: pytest.MonkeyPatch) -> tuple[Tenant, list[Work]]:
    """Two synced users with their subscriptions made; the list collects what the webhook queues."""
    tenant_env.add_users(2)
    run_user_sync(tenant_env.runtime())
    queued = tenant_env.connect_webhook(monkeypatch)
    reconcile_subscriptions(process_runtime(), now=NOW)
    queued.clear()
    return tenant_env, queued


def _lifecycle_work(tenant: Tenant, queued: list[Work], event: str) -> tuple[SubscriptionRecord, Work]:
    """Graph sends `event` for a calendar subscription (after a 404 renewal, Graph no longer knows it)."""
    record = next(r for r in tenant.state.subscriptions().values() if r.kind == "calendar")
    tenant.graph.send_lifecycle(record.id, event)
    if event == "reauthorizationRequired":
        tenant.graph.expire_subscription(record.id)  # renewing it will answer 404
    (work,) = queued
    return record, work


def _records_for(tenant: Tenant, resource: str) -> list[SubscriptionRecord]:
    return [r for r in tenant.state.subscriptions().values() if r.resource == resource]


@pytest.mark.parametrize("event", ["subscriptionRemoved", "reauthorizationRequired"])
def test_a_replacement_graph_fails_to_create_is_retried_by_the_queue(
    subscribed: tuple[Tenant, list[Work]], event: str
) -> None:
    """The record survives until its replacement exists, so the host's retry of the message makes it."""
    tenant, queued = subscribed
    old, work = _lifecycle_work(tenant, queued, event)
    tenant.graph.inject(503, path_pattern=r"/subscriptions$", method="POST")

    with pytest.raises(UpstreamUnavailable):
        handle_work(process_runtime(), work, _Boundaries(), now=NOW)
    assert [r.id for r in _records_for(tenant, old.resource)] == [old.id]

    handle_work(process_runtime(), work, _Boundaries(), now=NOW)  # the host delivers the message again
    (new,) = _records_for(tenant, old.resource)
    assert new.id != old.id
    assert new.id in tenant.graph.subscriptions
    assert tenant.graph.subscriptions[new.id].client_state == new.client_state


@pytest.mark.parametrize("event", ["subscriptionRemoved", "reauthorizationRequired"])
def test_a_replacement_graph_refuses_is_recorded_and_the_upkeep_makes_it_later(
    subscribed: tuple[Tenant, list[Work]], event: str, caplog: pytest.LogCaptureFixture
) -> None:
    tenant, queued = subscribed
    old, work = _lifecycle_work(tenant, queued, event)
    tenant.graph.inject(403, path_pattern=r"/subscriptions$", method="POST")

    with caplog.at_level(logging.ERROR, logger="connector"):
        result = handle_work(process_runtime(), work, _Boundaries(), now=NOW)

    assert result == Done("failed")  # retrying the same refused request cannot help
    (run,) = tenant.state.recent_runs("subscriptions", limit=1)
    assert run.subject == f"{event} {old.id}"
    assert run.counts == {"failed": 1} and any("403" in error for error in run.errors)
    assert any(r.getMessage().startswith("subscription_failed ") for r in caplog.records)  # the alert's line
    assert [r.id for r in _records_for(tenant, old.resource)] == [old.id]

    assert reconcile_subscriptions(process_runtime(), now=NOW).created == 1  # the next upkeep
    (new,) = _records_for(tenant, old.resource)
    assert new.id in tenant.graph.subscriptions


# -- a 409: Graph already has a subscription on that resource ---------------------------------------

OTHER_DEPLOYMENT = "https://staging.fake.test/api/graph/notifications"


def _graph_now(tenant: Tenant) -> datetime:
    return datetime.fromtimestamp(tenant.graph.clock(), UTC)


def test_a_409_from_another_deployments_subscription_leaves_it_alone_and_is_recorded(synced: Tenant) -> None:
    """Only subscriptions that notify our own webhook are ours to delete and replace."""
    rt = process_runtime()
    user_id = next(iter(synced.state.links()))
    # Another deployment of the connector, with the same app registration, watches the same calendar.
    theirs = rt.graph.create_subscription(
        resource=calendar_resource(user_id),
        change_type=CHANGE_TYPES["calendar"],
        notification_url=f"{OTHER_DEPLOYMENT}?code=their-function-key",
        expiration=_graph_now(synced) + timedelta(days=2),
        client_state="their-secret",
    )

    result = reconcile_subscriptions(rt, now=NOW)

    assert theirs.id in synced.graph.subscriptions
    assert synced.graph.subscriptions[theirs.id].client_state == "their-secret"
    assert (result.created, result.failed) == (2, 1)
    (error,) = result.errors
    assert "409" in error and OTHER_DEPLOYMENT in error
    assert "their-function-key" not in error  # the other webhook's key is never repeated
    assert calendar_resource(user_id) not in {r.resource for r in synced.state.subscriptions().values()}


def test_a_409_from_our_own_subscription_made_with_an_older_function_key_replaces_it(synced: Tenant) -> None:
    rt = process_runtime()
    user_id = next(iter(synced.state.links()))
    base = synced.env["WEBHOOK_URL"].split("?", 1)[0]
    ours_unknown = rt.graph.create_subscription(  # ours (our webhook), but its record was lost
        resource=calendar_resource(user_id),
        change_type=CHANGE_TYPES["calendar"],
        notification_url=f"{base}?code=retired-key",
        expiration=_graph_now(synced) + timedelta(days=2),
        client_state="lost-secret",
    )

    result = reconcile_subscriptions(rt, now=NOW)

    assert (result.created, result.failed) == (3, 0)
    assert ours_unknown.id not in synced.graph.subscriptions
    (record,) = _records_for(synced, calendar_resource(user_id))
    assert synced.graph.subscriptions[record.id].notification_url == synced.env["WEBHOOK_URL"]


# -- contact subscriptions earlier versions made for personal phonebooks ------------------------------

SALES = "sales@contoso.com"


def _contacts_subscription(rt, tenant: Tenant, user_id: str, webhook: str, *, remember: bool) -> str:
    """A `/users/{id}/contacts` subscription as an earlier version made it for a personal phonebook."""
    subscription = rt.graph.create_subscription(
        resource=contacts_resource(user_id),
        change_type=CHANGE_TYPES["contacts"],
        notification_url=webhook,
        lifecycle_url=webhook.replace("/graph/notifications", "/graph/lifecycle"),
        expiration=_graph_now(tenant) + timedelta(days=5),
        client_state="personal-contacts-secret",
    )
    if remember:
        tenant.state.save_subscription(
            SubscriptionRecord(
                id=subscription.id,
                kind="contacts",
                resource=contacts_resource(user_id),
                user_id=user_id,
                client_state="personal-contacts-secret",
                expires_at=subscription.expiration,
            )
        )
    return subscription.id


@pytest.fixture
def personal_era(tenant_env: Tenant, monkeypatch: pytest.MonkeyPatch) -> tuple[Tenant, list[str], dict[str, str]]:
    """Three synced users with the personal-contacts option on, a shared mailbox, and the contact
    subscriptions an earlier version left: one ours and remembered, one ours whose record was lost,
    one another deployment's (same app registration, another webhook)."""
    monkeypatch.setenv("SYNC_PERSONAL_CONTACTS", "true")  # the option stays: it now means 3CX's own sync
    monkeypatch.setenv("SHARED_MAILBOXES", SALES)
    tenant_env.graph.add_user(SALES, account_enabled=False)
    ids = tenant_env.add_users(3)
    run_user_sync(tenant_env.runtime())
    tenant_env.connect_webhook(monkeypatch)
    rt = process_runtime()
    ours = tenant_env.env["WEBHOOK_URL"]
    made = {
        "remembered": _contacts_subscription(rt, tenant_env, ids[0], ours, remember=True),
        "forgotten": _contacts_subscription(rt, tenant_env, ids[1], ours, remember=False),
        "theirs": _contacts_subscription(
            rt, tenant_env, ids[2], f"{OTHER_DEPLOYMENT}?code=their-function-key", remember=False
        ),
    }
    return tenant_env, ids, made


def test_the_upkeep_deletes_our_personal_contact_subscriptions_and_leaves_another_deployments(
    personal_era: tuple[Tenant, list[str], dict[str, str]],
) -> None:
    tenant, ids, made = personal_era

    result = reconcile_subscriptions(process_runtime(), now=NOW)

    assert result.failed == 0, result.errors
    assert made["remembered"] not in tenant.graph.subscriptions
    assert made["forgotten"] not in tenant.graph.subscriptions
    assert made["theirs"] in tenant.graph.subscriptions  # another deployment's is never ours to delete
    ours = {s.resource for s in tenant.graph.subscriptions.values() if s.id != made["theirs"]}
    assert ours == {"/users", contacts_resource(SALES), *(calendar_resource(user_id) for user_id in ids)}
    assert {r.resource for r in tenant.state.subscriptions().values()} == ours


@pytest.mark.parametrize("event", ["reauthorizationRequired", "subscriptionRemoved", "missed"])
def test_a_lifecycle_event_for_a_personal_contact_subscription_ends_it(
    personal_era: tuple[Tenant, list[str], dict[str, str]], monkeypatch: pytest.MonkeyPatch, event: str
) -> None:
    tenant, ids, made = personal_era
    queued = tenant.connect_webhook(monkeypatch)
    tenant.graph.send_lifecycle(made["remembered"], event)
    (work,) = queued

    result = handle_work(process_runtime(), work, _Boundaries(), now=NOW)

    assert result == Done("handled")
    assert made["remembered"] not in tenant.state.subscriptions()
    assert made["remembered"] not in tenant.graph.subscriptions
    assert not [s for s in tenant.graph.subscriptions.values() if s.resource == contacts_resource(ids[0])]
    assert tenant.state.recent_runs("contacts") == []  # nothing reconciled for a personal phonebook

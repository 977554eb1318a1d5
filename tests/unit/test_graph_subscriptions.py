"""Subscriptions and change notifications: the Graph fake's rules and GraphClient's calls.

A `Webhook` stands in for the connector's endpoint through the fake's pluggable `deliver`:
it answers the validation handshake (correctly, or in one of the ways Graph rejects) and
records the notifications it receives. The real HTTP delivery over loopback is tested in
tests/integration/test_graph_subscriptions.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
import responses

from fakes.graph import GraphFake
from fakes.transport import install
from shared.graph import GraphApiError, GraphClient, GraphUnavailable
from tests.graph_webhook_support import (
    CLIENT,
    CLIENT_STATE,
    GRAPH,
    HOOK,
    LIFECYCLE,
    ROOT,
    SECRET,
    TENANT,
    Clock,
    Webhook,
    at,
    subscribe,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def webhook() -> Webhook:
    return Webhook()


@pytest.fixture
def fake(clock: Clock, webhook: Webhook) -> Iterator[GraphFake]:
    graph = GraphFake(tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET, clock=clock, deliver=webhook)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, ROOT, graph)
        yield graph


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(fake: GraphFake, sleeps: list[float]) -> GraphClient:
    # A fresh token per request: tests move the clock by days.
    return GraphClient(ROOT, fake.issue_token, sleep=sleeps.append)


@pytest.fixture
def ada(fake: GraphFake) -> str:
    return fake.add_user("ada@contoso.test")


# -- creation and the validation handshake ---------------------------------------------------------
def test_create_proves_both_webhooks_then_answers_the_subscription(
    fake: GraphFake, client: GraphClient, clock: Clock, webhook: Webhook, ada: str
) -> None:
    expiration = clock.datetime + timedelta(days=3)
    subscription = subscribe(client, clock, f"/users/{ada}/events", expiration=expiration)

    assert subscription.resource == f"/users/{ada}/events"
    assert subscription.change_types == {"created", "updated", "deleted"}
    assert subscription.expiration == expiration
    assert subscription.client_state == CLIENT_STATE
    assert subscription.notification_url == HOOK
    assert subscription.lifecycle_notification_url == LIFECYCLE
    assert subscription.id in fake.subscriptions

    [(first_url, token, headers), (second_url, _, _)] = webhook.handshakes
    assert first_url.startswith(HOOK + "&validationToken=")  # the function key query survives
    assert second_url.startswith(LIFECYCLE + "&validationToken=")
    assert " " in token and ":" in token  # the decoded token needs encoding in a URL...
    assert "%20" in first_url and "%3A" in first_url  # ...and was encoded
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert [(d.kind, d.status) for d in fake.deliveries] == [("handshake", 200), ("handshake", 200)]


@pytest.mark.parametrize("answer", ["encoded", "html", "status:202", "status:500"])
def test_a_wrong_handshake_answer_fails_creation(
    fake: GraphFake, client: GraphClient, clock: Clock, webhook: Webhook, ada: str, answer: str
) -> None:
    webhook.handshake = answer
    with pytest.raises(GraphApiError) as raised:
        subscribe(client, clock, f"users/{ada}/events")
    assert (raised.value.status, raised.value.code) == (400, "ValidationError")
    assert raised.value.message.startswith("Subscription validation request failed")
    assert fake.subscriptions == {}


def test_an_unreachable_webhook_fails_creation(
    fake: GraphFake, client: GraphClient, clock: Clock, webhook: Webhook, ada: str
) -> None:
    webhook.handshake = "unreachable"
    with pytest.raises(GraphApiError, match="timed out") as raised:
        subscribe(client, clock, f"users/{ada}/events")
    assert raised.value.status == 400
    assert fake.deliveries[0].status == 0
    assert fake.subscriptions == {}


def test_a_failing_lifecycle_url_fails_creation(
    fake: GraphFake, client: GraphClient, clock: Clock, webhook: Webhook, ada: str
) -> None:
    original = webhook.__call__

    def lifecycle_refuses(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if url.startswith(LIFECYCLE):
            return 404, {}, b""
        return original(url, headers, body)

    fake.deliver = lifecycle_refuses
    with pytest.raises(GraphApiError, match="validation request failed"):
        subscribe(client, clock, f"users/{ada}/events")
    assert fake.subscriptions == {}


def test_the_handshake_does_not_block_other_graph_requests(
    fake: GraphFake, client: GraphClient, clock: Clock, webhook: Webhook, ada: str
) -> None:
    """A webhook may call Graph while Graph waits for its handshake answer (another thread)."""
    seen_by_webhook: list[int] = []
    original = webhook.__call__

    def webhook_that_reads_graph(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        worker = threading.Thread(target=lambda: seen_by_webhook.append(len(client.list_users())))
        worker.start()
        worker.join(timeout=5)
        assert not worker.is_alive(), "Graph was locked during the handshake"
        return original(url, headers, body)

    fake.deliver = webhook_that_reads_graph
    subscribe(client, clock, f"users/{ada}/events")
    assert seen_by_webhook == [1, 1]


# -- what Graph refuses --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("resource", "change_type", "fragment"),
    [
        ("/users", "created", "changeType"),  # users: only updated and deleted
        ("/users/{ada}/events", "moved", "changeType"),
        ("/users/{ada}/events", "created,,updated", "changeType"),
        ("/groups/0000/conversations", "created", "not supported"),
        ("/me/events", "created", "delegated"),
        ("/users/{ada}/messages", "created", "not supported"),
    ],
)
def test_invalid_resources_and_change_types(
    client: GraphClient, clock: Clock, ada: str, resource: str, change_type: str, fragment: str
) -> None:
    with pytest.raises(GraphApiError, match=fragment) as raised:
        subscribe(client, clock, resource.format(ada=ada), change_type)
    assert raised.value.status == 400


@pytest.mark.parametrize("url", ["http://connector.example/api/graph/notifications", "ftp://connector.example/x"])
def test_webhooks_must_be_https(client: GraphClient, clock: Clock, webhook: Webhook, ada: str, url: str) -> None:
    with pytest.raises(GraphApiError, match="https") as raised:
        subscribe(client, clock, f"/users/{ada}/events", notification_url=url)
    assert raised.value.status == 400
    with pytest.raises(GraphApiError, match="https"):
        subscribe(client, clock, f"/users/{ada}/events", lifecycle_url=url)
    assert webhook.handshakes == []


def test_client_state_is_bounded_and_never_echoed_in_errors(client: GraphClient, clock: Clock, ada: str) -> None:
    too_long = "s" * 129
    with pytest.raises(GraphApiError) as raised:
        subscribe(client, clock, f"/users/{ada}/events", client_state=too_long)
    assert raised.value.status == 400
    assert too_long not in str(raised.value)
    assert subscribe(client, clock, f"/users/{ada}/events", client_state="s" * 128).client_state == "s" * 128


def test_unknown_users_and_mailboxless_users_cannot_be_watched(
    fake: GraphFake, client: GraphClient, clock: Clock
) -> None:
    with pytest.raises(GraphApiError) as unknown:
        subscribe(client, clock, "/users/nobody@contoso.test/events")
    assert unknown.value.status == 404
    kiosk = fake.add_user("kiosk@contoso.test", has_mailbox=False)
    with pytest.raises(GraphApiError) as no_mailbox:
        subscribe(client, clock, f"/users/{kiosk}/contacts")
    assert (no_mailbox.value.status, no_mailbox.value.code) == (404, "MailboxNotEnabledForRESTAPI")
    assert subscribe(client, clock, f"/users/{kiosk}", "updated").resource == f"/users/{kiosk}"  # directory is fine


def test_expiration_is_required_raw(fake: GraphFake, ada: str) -> None:
    answer = requests.post(
        f"{GRAPH}/subscriptions",
        json={"changeType": "created", "notificationUrl": HOOK, "resource": f"users/{ada}/events"},
        headers={"Authorization": f"Bearer {fake.issue_token()}"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert "expirationDateTime" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("resource", "maximum_minutes"),
    [("/users/{ada}/events", 10_080), ("/users/{ada}/contacts", 10_080), ("/users", 41_760)],
)
def test_expiration_maximum_per_resource(
    client: GraphClient, clock: Clock, ada: str, resource: str, maximum_minutes: int
) -> None:
    path = resource.format(ada=ada)
    change_type = "updated" if path == "/users" else "created"
    with pytest.raises(GraphApiError, match=str(maximum_minutes)) as raised:
        subscribe(client, clock, path, change_type, expiration=clock.datetime + timedelta(minutes=maximum_minutes + 1))
    assert raised.value.status == 400
    at_most = subscribe(
        client, clock, path, change_type, expiration=clock.datetime + timedelta(minutes=maximum_minutes)
    )
    assert at_most.expiration == clock.datetime + timedelta(minutes=maximum_minutes)


def test_short_expirations_are_raised_to_45_minutes_and_past_ones_refused(
    client: GraphClient, clock: Clock, ada: str
) -> None:
    short = subscribe(client, clock, f"/users/{ada}/events", expiration=clock.datetime + timedelta(minutes=5))
    assert short.expiration == clock.datetime + timedelta(minutes=45)
    with pytest.raises(GraphApiError) as raised:
        subscribe(client, clock, "/users", "updated", expiration=clock.datetime - timedelta(minutes=1))
    assert raised.value.status == 400


def test_duplicates_conflict_whatever_the_spelling(
    fake: GraphFake, client: GraphClient, clock: Clock, ada: str
) -> None:
    first = subscribe(client, clock, f"/users/{ada}/events", "created,updated")
    for resource, change_type in [
        (f"users/{ada}/events", "created,updated"),  # without the leading slash
        ("/users/ada@contoso.test/events", "updated,created"),  # UPN, other order
        (f"/Users/{ada}/Events", "created,updated"),  # case
    ]:
        with pytest.raises(GraphApiError) as raised:
            subscribe(client, clock, resource, change_type)
        assert raised.value.status == 409
        assert first.id in raised.value.message
    other_types = subscribe(client, clock, f"users/{ada}/events", "deleted")
    assert set(fake.subscriptions) == {first.id, other_types.id}


def test_mailbox_quota_gives_403(fake: GraphFake, client: GraphClient, clock: Clock, ada: str) -> None:
    fake.subscription_quota_per_resource = 2
    subscribe(client, clock, f"/users/{ada}/events", "created")
    subscribe(client, clock, f"/users/{ada}/contacts", "created")
    with pytest.raises(GraphApiError) as raised:
        subscribe(client, clock, f"/users/{ada}/events", "deleted")
    assert raised.value.status == 403
    bob = fake.add_user("bob@contoso.test")
    subscribe(client, clock, f"/users/{bob}/events", "created")  # another mailbox has its own quota
    subscribe(client, clock, "/users", "updated")  # and so do directory resources


def test_create_is_not_retried_on_server_errors(
    fake: GraphFake, client: GraphClient, clock: Clock, sleeps: list[float], ada: str
) -> None:
    fake.inject(503, path_pattern="/subscriptions$", method="POST")
    with pytest.raises(GraphUnavailable):
        subscribe(client, clock, f"/users/{ada}/events")
    assert fake.request_counts["POST"] == 1
    assert sleeps == []


def test_create_is_retried_when_throttled(
    fake: GraphFake, client: GraphClient, clock: Clock, sleeps: list[float], ada: str
) -> None:
    fake.inject(429, retry_after=2, path_pattern="/subscriptions$", method="POST")
    subscribe(client, clock, f"/users/{ada}/events")
    assert sleeps == [2.0]
    assert len(fake.subscriptions) == 1


# -- list, renew, reauthorize, delete, expiry ------------------------------------------------------------
def test_list_follows_paging(fake: GraphFake, client: GraphClient, clock: Clock) -> None:
    fake.subscription_page_size = 2
    users = [fake.add_user(f"user{number}@contoso.test") for number in range(5)]
    created = {subscribe(client, clock, f"/users/{user}/events").id for user in users}
    fake.reset_counts()
    listed = client.list_subscriptions()
    assert {subscription.id for subscription in listed} == created
    assert fake.request_counts == {"GET": 3}
    assert all(subscription.client_state == CLIENT_STATE for subscription in listed)


def test_renew_moves_the_expiration_within_the_maximum(
    fake: GraphFake, client: GraphClient, clock: Clock, ada: str
) -> None:
    subscription = subscribe(client, clock, f"/users/{ada}/events")
    clock.advance(days=1)
    renewed = client.renew_subscription(subscription.id, clock.datetime + timedelta(days=6))
    assert renewed.expiration == clock.datetime + timedelta(days=6)
    assert fake.subscriptions[subscription.id].expiration == renewed.expiration
    with pytest.raises(GraphApiError) as beyond:
        client.renew_subscription(subscription.id, clock.datetime + timedelta(days=8))
    assert (beyond.value.status, beyond.value.code) == (400, "ExtensionError")
    assert fake.subscriptions[subscription.id].expiration == renewed.expiration  # unchanged


def test_expired_subscriptions_vanish(fake: GraphFake, client: GraphClient, clock: Clock, ada: str) -> None:
    subscription = subscribe(client, clock, f"/users/{ada}/events", expiration=clock.datetime + timedelta(hours=2))
    clock.advance(hours=2)
    assert client.list_subscriptions() == []
    assert fake.subscriptions == {}
    with pytest.raises(GraphApiError) as raised:
        client.renew_subscription(subscription.id, clock.datetime + timedelta(days=1))
    assert (raised.value.status, raised.value.code) == (404, "ResourceNotFound")
    # With the old one gone, the same resource can be subscribed again.
    assert subscribe(client, clock, f"/users/{ada}/events").id != subscription.id


def test_delete_and_already_gone(fake: GraphFake, client: GraphClient, clock: Clock, ada: str) -> None:
    subscription = subscribe(client, clock, f"/users/{ada}/events")
    assert client.delete_subscription(subscription.id) is True
    assert subscription.id not in fake.subscriptions
    assert client.delete_subscription(subscription.id) is False  # already gone is fine


def test_lifecycle_url_cannot_be_patched_in(fake: GraphFake, client: GraphClient, clock: Clock, ada: str) -> None:
    subscription = subscribe(client, clock, f"/users/{ada}/events", lifecycle_url=None)
    answer = requests.patch(
        f"{GRAPH}/subscriptions/{subscription.id}",
        json={"lifecycleNotificationUrl": LIFECYCLE},
        headers={"Authorization": f"Bearer {fake.issue_token()}"},
        timeout=5,
    )
    assert answer.status_code == 400


def test_subscription_repr_hides_secrets(client: GraphClient, clock: Clock, ada: str) -> None:
    subscription = subscribe(client, clock, f"/users/{ada}/events")
    assert CLIENT_STATE not in repr(subscription)
    assert "function-key-value" not in repr(subscription)
    assert subscription.id in repr(subscription)


# -- change notifications ------------------------------------------------------------------------------
def test_event_changes_notify_matching_subscriptions(
    fake: GraphFake, client: GraphClient, clock: Clock, webhook: Webhook, ada: str
) -> None:
    bob = fake.add_user("bob@contoso.test")
    everything = subscribe(client, clock, f"/users/{ada}/events")
    deletions_only = subscribe(
        client, clock, f"/users/{ada}/events", "deleted", notification_url=HOOK + "&only=deleted"
    )
    subscribe(client, clock, f"/users/{bob}/events")

    meeting = fake.add_event(ada, start=at(9), end=at(10))
    fake.update_event(ada, meeting, show_as="free")
    fake.cancel_event(ada, meeting)
    fake.delete_event(ada, meeting)

    received = webhook.notifications()
    assert [item["changeType"] for item in received] == ["created", "updated", "updated", "deleted"]
    first = received[0]
    assert first["subscriptionId"] == everything.id
    assert first["clientState"] == CLIENT_STATE
    assert first["tenantId"] == TENANT
    assert first["resource"] == f"Users/{ada}/Events/{meeting}"
    assert first["resourceData"]["id"] == meeting
    assert first["resourceData"]["@odata.type"] == "#Microsoft.Graph.Event"
    assert first["resourceData"]["@odata.id"] == f"Users/{ada}/Events/{meeting}"
    assert first["resourceData"]["@odata.etag"].startswith('W/"')
    assert (
        datetime.fromisoformat(first["subscriptionExpirationDateTime"].replace("Z", "+00:00")) == everything.expiration
    )
    assert len({item["id"] for item in received}) == 4

    [deleted] = webhook.notifications(HOOK + "&only=deleted")
    assert (deleted["subscriptionId"], deleted["changeType"]) == (deletions_only.id, "deleted")
    assert len(webhook.posts) == 5  # one POST per subscription and change; nothing for bob's subscription
    assert [d.kind for d in fake.deliveries if d.kind != "handshake"] == ["notification"] * 5


def test_held_notifications_can_be_reordered_and_duplicated(
    fake: GraphFake, client: GraphClient, clock: Clock, webhook: Webhook, ada: str
) -> None:
    subscribe(client, clock, f"/users/{ada}/events")
    fake.hold_notifications = True
    meeting = fake.add_event(ada, start=at(9), end=at(10))
    fake.update_event(ada, meeting, show_as="oof")
    fake.delete_event(ada, meeting)
    assert webhook.posts == []
    assert [item.payload["value"][0]["changeType"] for item in fake.pending_notifications] == [
        "created",
        "updated",
        "deleted",
    ]

    created, updated, deleted = fake.pending_notifications
    fake.pending_notifications[:] = [deleted, updated, updated, created]
    deliveries = fake.flush_notifications()

    assert [item["changeType"] for item in webhook.notifications()] == ["deleted", "updated", "updated", "created"]
    assert [delivery.status for delivery in deliveries] == [202] * 4
    assert fake.pending_notifications == []
    fake.hold_notifications = False
    fake.add_event(ada, start=at(11), end=at(12))
    assert len(webhook.notifications()) == 5  # delivered at once again


def test_held_notifications_context_flushes_on_exit(
    fake: GraphFake, client: GraphClient, clock: Clock, webhook: Webhook, ada: str
) -> None:
    subscribe(client, clock, f"/users/{ada}/events")
    with fake.held_notifications() as pending:
        fake.add_event(ada, start=at(9), end=at(10))
        assert len(pending) == 1
        assert webhook.posts == []
    assert [item["changeType"] for item in webhook.notifications()] == ["created"]
    assert not fake.hold_notifications


def test_expired_or_deleted_subscriptions_hear_nothing(
    fake: GraphFake, client: GraphClient, clock: Clock, webhook: Webhook, ada: str
) -> None:
    short = subscribe(client, clock, f"/users/{ada}/events", expiration=clock.datetime + timedelta(hours=1))
    clock.advance(hours=1)
    fake.add_event(ada, start=at(9), end=at(10))
    assert webhook.posts == []
    again = subscribe(client, clock, f"/users/{ada}/events")
    client.delete_subscription(again.id)
    fake.add_event(ada, start=at(11), end=at(12))
    assert webhook.posts == []
    assert short.id not in fake.subscriptions


def test_failed_deliveries_are_recorded(
    fake: GraphFake, client: GraphClient, clock: Clock, webhook: Webhook, ada: str
) -> None:
    subscribe(client, clock, f"/users/{ada}/events")
    webhook.notification_status = 500
    fake.add_event(ada, start=at(9), end=at(10))
    last = fake.deliveries[-1]
    assert (last.kind, last.status, last.url) == ("notification", 500, HOOK)
    assert last.seconds >= 0


def test_delivery_does_not_hold_the_fake(
    fake: GraphFake, client: GraphClient, clock: Clock, webhook: Webhook, ada: str
) -> None:
    """A webhook that reads the calendar from another thread while answering must not deadlock."""
    subscribe(client, clock, f"/users/{ada}/events")
    read: list[int] = []

    def read_calendar(_url: str, _payload: dict[str, Any]) -> None:
        worker = threading.Thread(target=lambda: read.append(len(client.calendar_view(ada, at(0), at(23)))))
        worker.start()
        worker.join(timeout=5)
        assert not worker.is_alive(), "the fake held its lock while delivering"

    webhook.on_post = read_calendar
    fake.add_event(ada, start=at(9), end=at(10))
    assert read == [1]


# -- user notifications -------------------------------------------------------------------------------------
def test_user_changes_notify_users_subscriptions(
    fake: GraphFake, client: GraphClient, clock: Clock, webhook: Webhook, ada: str
) -> None:
    updates = subscribe(client, clock, "/users", "updated")
    deletions = subscribe(client, clock, "users", "deleted", notification_url=HOOK + "&only=deleted")
    one_user = subscribe(client, clock, f"/users/{ada}", "updated,deleted", notification_url=HOOK + "&only=ada")

    bob = fake.add_user("bob@contoso.test")
    fake.update_user(bob, displayName="Bob B.")
    fake.update_user(bob, displayName="Bob B.")  # no change, no notification
    fake.soft_delete_user(bob)
    fake.restore_user(bob)
    fake.hard_delete_user(bob)
    fake.update_user(ada, mobilePhone="+49 171 1234567")

    updated = webhook.notifications()
    assert [(item["changeType"], item["resource"]) for item in updated] == [
        ("updated", f"Users/{bob}"),  # created
        ("updated", f"Users/{bob}"),  # renamed
        ("updated", f"Users/{bob}"),  # soft-deleted
        ("updated", f"Users/{bob}"),  # restored
        ("updated", f"Users/{ada}"),
    ]
    assert {item["subscriptionId"] for item in updated} == {updates.id}
    assert updated[0]["resourceData"]["@odata.type"] == "#Microsoft.Graph.User"
    assert updated[0]["resourceData"]["id"] == bob

    [permanent] = webhook.notifications(HOOK + "&only=deleted")
    assert (permanent["subscriptionId"], permanent["resource"]) == (deletions.id, f"Users/{bob}")
    [ada_only] = webhook.notifications(HOOK + "&only=ada")
    assert (ada_only["subscriptionId"], ada_only["changeType"]) == (one_user.id, "updated")


# -- lifecycle --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("event", ["reauthorizationRequired", "missed", "subscriptionRemoved"])
def test_lifecycle_notifications(
    fake: GraphFake, client: GraphClient, clock: Clock, webhook: Webhook, ada: str, event: str
) -> None:
    subscription = subscribe(client, clock, f"/users/{ada}/events")
    fake.send_lifecycle(subscription.id, event)

    [notice] = webhook.notifications(LIFECYCLE)
    assert notice == {
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": notice["subscriptionExpirationDateTime"],
        "tenantId": TENANT,
        "clientState": CLIENT_STATE,
        "lifecycleEvent": event,
    }
    assert fake.deliveries[-1].kind == "lifecycle"
    assert (subscription.id in fake.subscriptions) is (event != "subscriptionRemoved")
    if event == "subscriptionRemoved":
        with pytest.raises(GraphApiError) as raised:
            client.renew_subscription(subscription.id, clock.datetime + timedelta(days=1))
        assert raised.value.status == 404


def test_lifecycle_needs_a_known_event_and_url(fake: GraphFake, client: GraphClient, clock: Clock, ada: str) -> None:
    subscription = subscribe(client, clock, f"/users/{ada}/events", lifecycle_url=None)
    with pytest.raises(ValueError, match="lifecycleNotificationUrl"):
        fake.send_lifecycle(subscription.id, "missed")
    with pytest.raises(ValueError, match="lifecycle event"):
        fake.send_lifecycle(subscription.id, "subscriptionPaused")


def test_held_lifecycle_notifications_wait_for_flush(
    fake: GraphFake, client: GraphClient, clock: Clock, webhook: Webhook, ada: str
) -> None:
    subscription = subscribe(client, clock, f"/users/{ada}/events")
    with fake.held_notifications():
        fake.send_lifecycle(subscription.id, "missed")
        assert webhook.posts == []
    assert webhook.notifications(LIFECYCLE)[0]["lifecycleEvent"] == "missed"


# -- real delivery over loopback http ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("allow_http_loopback", "url"),
    [(False, "http://127.0.0.1:8080/api/graph/notifications"), (True, "http://connector.example/api/hook")],
)
def test_plain_http_needs_loopback_and_permission(
    fake: GraphFake, client: GraphClient, clock: Clock, webhook: Webhook, allow_http_loopback: bool, url: str
) -> None:
    fake.allow_http_loopback = allow_http_loopback
    with pytest.raises(GraphApiError, match="https"):
        subscribe(client, clock, "/users", "updated", notification_url=url, lifecycle_url=None)
    assert webhook.handshakes == []

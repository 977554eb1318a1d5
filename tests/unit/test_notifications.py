"""The Graph webhook routes' logic: handshake, authentication of notifications, work items, cache."""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections import Counter
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError, ServiceRequestError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.notification_models import MAX_NOTIFICATIONS_PER_POST
from shared.state import StateStore
from shared.work_items import CalendarWork, LifecycleWork
from sync.notifications import (
    MAX_BODY_BYTES,
    MAX_DROP_LINES_PER_POST,
    MAX_VALIDATION_TOKEN_CHARS,
    SubscriptionCache,
    WebhookAnswer,
    receive_lifecycle,
    receive_notifications,
)
from sync.records import SubscriptionRecord
from tests.conftest import TENANT_ID
from tests.notifications_support import (
    NOW,
    RECORDS,
    USER_A,
    USER_B,
    change_notification,
    lifecycle_notification,
    notification_body,
    post_to_webhook,
    subscription_record,
)

OTHER_TENANT = "0c9e7a5b-3d1f-4e2a-8b6c-9d0e1f2a3b4c"
ROUTES = [receive_notifications, receive_lifecycle]


USER_C = "d1b2c3d4-0000-4000-8000-00000000000d"


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="connector")
    return caplog


def _lines(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


# -- the validation handshake ------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_handshake_echoes_the_decoded_token_as_plain_text(route) -> None:
    token = "Validation: Token with spaces/+&=<script>alert(1)</script> %20 ü"  # as the query layer decoded it
    answer = post_to_webhook(b"", route, {"validationToken": token})
    assert (answer.status, answer.body, answer.content_type, answer.work) == (200, token, "text/plain", [])


@pytest.mark.parametrize("route", ROUTES)
def test_handshake_does_not_decode_twice(route) -> None:
    answer = post_to_webhook(b"", route, {"validationToken": "a%2Bb+c"})
    assert answer.body == "a%2Bb+c"


@pytest.mark.parametrize("route", ROUTES)
def test_handshake_tokens_are_bounded(route, log: pytest.LogCaptureFixture) -> None:
    assert post_to_webhook(b"", route, {"validationToken": "x" * MAX_VALIDATION_TOKEN_CHARS}).status == 200
    for bad in ["x" * (MAX_VALIDATION_TOKEN_CHARS + 1), "", "lone \ud800 surrogate"]:
        answer = post_to_webhook(b"", route, {"validationToken": bad})
        assert answer.status == 400
        assert answer.content_type == "application/json"
        assert bad[:20] not in answer.body or bad == ""
    assert len(_lines(log)) == 3


# -- accepted notifications -------------------------------------------------------------------


def test_a_calendar_notification_becomes_calendar_work() -> None:
    answer = post_to_webhook(notification_body(change_notification(RECORDS["sub-cal-a"], change_type="created")))
    assert (answer.status, answer.body, answer.content_type) == (202, "{}", "application/json")
    assert answer.work == [
        CalendarWork(user_id=USER_A, subscription_id="sub-cal-a", change_type="created", received_at=NOW)
    ]


USER_GUID = "9f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c"


@pytest.mark.parametrize(
    "resource",
    [f"Users/{USER_GUID}", f"users/{USER_GUID}", f"Users('{USER_GUID}')", f"Users/{USER_GUID}@{TENANT_ID}"],
)
def test_a_users_notification_names_the_user_from_its_resource(resource: str) -> None:
    notification = change_notification(RECORDS["sub-users"], item="other-id", resource=resource)
    (item,) = post_to_webhook(notification_body(notification)).work
    assert (item.kind, item.user_id, item.change_type) == ("user", USER_GUID, "updated")


def test_a_users_notification_without_a_user_is_dropped(log: pytest.LogCaptureFixture) -> None:
    notification = change_notification(RECORDS["sub-users"], resource="Users", resourceData={"id": "../etc"})
    answer = post_to_webhook(notification_body(notification))
    assert (answer.status, answer.work) == (202, [])
    assert "resource names no user" in _lines(log)[0]


def test_contacts_notifications_queue_the_mailbox(log: pytest.LogCaptureFixture) -> None:
    answer = post_to_webhook(notification_body(change_notification(RECORDS["sub-contacts"])))
    assert answer.status == 202
    assert [(w.kind, w.user_id) for w in answer.work] == [("contacts", USER_A)]
    assert _lines(log) == []


def test_several_subscriptions_in_one_post() -> None:
    body = notification_body(
        change_notification(RECORDS["sub-cal-a"]),
        change_notification(RECORDS["sub-users"], item=USER_C),
        change_notification(RECORDS["sub-cal-b"], change_type="deleted"),
        change_notification(RECORDS["sub-contacts"]),
        change_notification(subscription_record("sub-rogue")),
    )
    work = post_to_webhook(body).work
    assert [(w.kind, w.user_id, w.change_type) for w in work] == [
        ("calendar", USER_A, "updated"),
        ("user", USER_C, "updated"),
        ("calendar", USER_B, "deleted"),
        ("contacts", USER_A, "updated"),
    ]


@pytest.mark.parametrize("item", ["..", ".", "not-a-guid"])
def test_a_users_notification_naming_a_malformed_user_is_dropped(item: str, log: pytest.LogCaptureFixture) -> None:
    """Fault: `Users/..` became user work for "..", then GET /v1.0/ in the worker and a poison message."""
    answer = post_to_webhook(notification_body(change_notification(RECORDS["sub-users"], item=item)))
    assert (answer.status, answer.work) == (202, [])
    assert _lines(log) == [
        'notification_dropped route=notifications subscription_id=sub-users reason="does not fit a work item"'
    ]


def test_identical_work_within_one_post_collapses() -> None:
    a = RECORDS["sub-cal-a"]
    body = notification_body(
        *[change_notification(a, item=f"ev{i}") for i in range(5)],
        change_notification(a, change_type="deleted"),
        change_notification(a),
    )
    work = post_to_webhook(body).work
    assert Counter(w.change_type for w in work) == {"updated": 1, "deleted": 1}


def test_unknown_extra_fields_are_tolerated() -> None:
    notification = change_notification(RECORDS["sub-cal-a"], encryptedContent={"data": "..."}, futureField=[1, 2])
    notification["resourceData"]["newProperty"] = True
    assert len(post_to_webhook(json.dumps({"value": [notification], "extra": 1}).encode()).work) == 1


# -- dropped notifications ---------------------------------------------------------------------


def _assert_dropped(answer: WebhookAnswer, caplog: pytest.LogCaptureFixture, sub_id: str, reason: str) -> None:
    assert (answer.status, answer.body, answer.work) == (202, "{}", [])
    (line,) = _lines(caplog)
    assert f"subscription_id={sub_id}" in line
    assert reason in line


def test_client_state_mismatch_is_dropped_and_logged_without_the_secret(log: pytest.LogCaptureFixture) -> None:
    record = RECORDS["sub-cal-a"]
    answer = post_to_webhook(notification_body(change_notification(record, clientState="guessed-secret")))
    _assert_dropped(answer, log, "sub-cal-a", "clientState mismatch")
    assert "guessed-secret" not in log.text and record.client_state not in log.text


def test_missing_client_state_is_dropped(log: pytest.LogCaptureFixture) -> None:
    notification = change_notification(RECORDS["sub-cal-a"])
    del notification["clientState"]
    _assert_dropped(post_to_webhook(notification_body(notification)), log, "sub-cal-a", "clientState mismatch")


def test_an_empty_stored_secret_authenticates_nothing(log: pytest.LogCaptureFixture) -> None:
    record = subscription_record("sub-empty").model_copy(update={"client_state": ""})
    answer = post_to_webhook(notification_body(change_notification(record)), lookup={record.id: record}.get)
    _assert_dropped(answer, log, "sub-empty", "clientState mismatch")


def test_unknown_subscription_is_dropped(log: pytest.LogCaptureFixture) -> None:
    _assert_dropped(
        post_to_webhook(notification_body(change_notification(subscription_record("sub-gone")))),
        log,
        "sub-gone",
        "unknown subscription",
    )


def test_foreign_tenant_is_dropped(log: pytest.LogCaptureFixture) -> None:
    answer = post_to_webhook(notification_body(change_notification(RECORDS["sub-cal-a"], tenantId=OTHER_TENANT)))
    _assert_dropped(answer, log, "sub-cal-a", "foreign tenant")


def test_tenant_ids_compare_as_guids() -> None:
    for spelling in [TENANT_ID.upper(), "{" + TENANT_ID + "}", TENANT_ID.replace("-", "")]:
        assert (
            len(post_to_webhook(notification_body(change_notification(RECORDS["sub-cal-a"], tenantId=spelling))).work)
            == 1
        )
    assert (
        post_to_webhook(notification_body(change_notification(RECORDS["sub-cal-a"], tenantId="not-a-guid"))).work == []
    )


def test_client_state_is_compared_in_constant_time_as_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []
    original = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    record = RECORDS["sub-cal-b"]
    post_to_webhook(
        notification_body(change_notification(record), change_notification(record, clientState="wrong", item="x"))
    )
    assert calls == [
        (record.client_state.encode(), record.client_state.encode()),
        (b"wrong", record.client_state.encode()),
    ]


def test_a_rogue_sender_learns_nothing_from_the_answer() -> None:
    genuine = post_to_webhook(notification_body(change_notification(RECORDS["sub-cal-a"])))
    rogue = post_to_webhook(
        notification_body(
            change_notification(RECORDS["sub-cal-a"], clientState="x"),
            change_notification(subscription_record("sub-nope")),
        )
    )
    assert (genuine.status, genuine.body) == (rogue.status, rogue.body)


@pytest.mark.parametrize("sub_id", ["a/b", "sub#1", "x?y=1", "s" * 129, "tab\there", "sub-é"])
def test_ids_that_cannot_be_subscription_ids_are_dropped_without_a_lookup(
    sub_id: str, log: pytest.LogCaptureFixture
) -> None:
    looked_up: list[str] = []
    answer = post_to_webhook(
        notification_body(change_notification(subscription_record(sub_id))), lookup=lambda s: looked_up.append(s)
    )
    assert (answer.status, answer.work, looked_up) == (202, [], [])
    assert "not a subscription id" in _lines(log)[0]


def test_a_flood_of_forged_notifications_does_not_flood_the_log(log: pytest.LogCaptureFixture) -> None:
    forged = [change_notification(RECORDS["sub-cal-a"], clientState=f"guess-{i}", item=f"e{i}") for i in range(999)]
    answer = post_to_webhook(notification_body(*forged, change_notification(RECORDS["sub-cal-b"])))
    assert (answer.status, [w.user_id for w in answer.work]) == (202, [USER_B])
    lines = _lines(log)
    assert len(lines) == MAX_DROP_LINES_PER_POST + 1
    assert "count=979" in lines[-1] and "clientState mismatch: 979" in lines[-1]


def test_fields_too_long_for_a_work_item_are_dropped_not_raised(log: pytest.LogCaptureFixture) -> None:
    record = subscription_record("sub-long", user_id="u" * 129)
    answer = post_to_webhook(notification_body(change_notification(record)), lookup={record.id: record}.get)
    _assert_dropped(answer, log, "sub-long", "does not fit a work item")


def _failing_lookup(subscription_id: str) -> SubscriptionRecord | None:
    raise ConnectionError("table storage unreachable")


def test_a_storage_outage_asks_graph_to_retry(log: pytest.LogCaptureFixture) -> None:
    answer = post_to_webhook(notification_body(change_notification(RECORDS["sub-cal-a"])), lookup=_failing_lookup)
    assert (answer.status, answer.work) == (503, [])
    assert _lines(log, logging.ERROR)


# -- lifecycle notifications -------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("event", ["reauthorizationRequired", "subscriptionRemoved", "missed"])
def test_lifecycle_events_become_lifecycle_work(route, event: str) -> None:
    answer = post_to_webhook(notification_body(lifecycle_notification(RECORDS["sub-cal-b"], event)), route)
    assert answer.status == 202
    assert answer.work == [
        LifecycleWork(subscription_id="sub-cal-b", lifecycle_event=event, user_id=USER_B, received_at=NOW)
    ]


def test_lifecycle_events_of_users_and_contacts_subscriptions_are_queued_too() -> None:
    body = notification_body(
        lifecycle_notification(RECORDS["sub-users"], "reauthorizationRequired"),
        lifecycle_notification(RECORDS["sub-contacts"], "missed"),
    )
    work = post_to_webhook(body, receive_lifecycle).work
    assert [(w.subscription_id, w.lifecycle_event, w.user_id) for w in work] == [
        ("sub-users", "reauthorizationRequired", None),
        ("sub-contacts", "missed", USER_A),
    ]


def test_lifecycle_notifications_are_authenticated_like_changes(log: pytest.LogCaptureFixture) -> None:
    record = RECORDS["sub-cal-a"]
    body = notification_body(
        lifecycle_notification(record, "subscriptionRemoved", clientState="forged"),
        lifecycle_notification(record, "missed", tenantId=OTHER_TENANT),
        lifecycle_notification(subscription_record("sub-unknown"), "missed"),
    )
    answer = post_to_webhook(body, receive_lifecycle)
    assert (answer.status, answer.work) == (202, [])
    assert len(_lines(log)) == 3


def test_an_unknown_lifecycle_event_is_dropped_not_refused(log: pytest.LogCaptureFixture) -> None:
    answer = post_to_webhook(
        notification_body(lifecycle_notification(RECORDS["sub-cal-a"], "somethingNew")), receive_lifecycle
    )
    _assert_dropped(answer, log, "sub-cal-a", "unsupported lifecycle event")


# -- malformed bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe binary", "not JSON"),
        (b"", "not JSON"),
        (b'{"value": {}}', "not the notification schema"),
        (b"[]", "not the notification schema"),
        (b'{"value": [{"changeType": "updated", "resource": "Users/x"}]}', "not the notification schema"),
        (b'{"value": [{"subscriptionId": "s", "tenantId": "t"}]}', "not the notification schema"),
        (b'{"value": [{"subscriptionId": "", "lifecycleEvent": "missed"}]}', "not the notification schema"),
    ],
)
def test_malformed_bodies_are_refused_with_400(route, body: bytes, reason: str, log: pytest.LogCaptureFixture) -> None:
    answer = post_to_webhook(body, route)
    assert answer.status == 400
    assert answer.content_type == "application/json"
    assert "error" in json.loads(answer.body)
    assert answer.work == []
    (line,) = _lines(log)
    assert reason in line and f"body_bytes={len(body)}" in line


def test_the_log_never_carries_payload_contents(log: pytest.LogCaptureFixture) -> None:
    secret_looking = change_notification(RECORDS["sub-cal-a"], clientState="Z" * 300)  # too long: schema error
    post_to_webhook(notification_body(secret_looking))
    assert "ZZZZ" not in log.text
    assert "Events" not in log.text


def test_overlong_fields_are_refused() -> None:
    record = RECORDS["sub-cal-a"]
    assert post_to_webhook(notification_body(change_notification(record, clientState="s" * 256))).status == 400
    assert post_to_webhook(notification_body(change_notification(record, subscriptionId="s" * 257))).status == 400
    assert (
        post_to_webhook(notification_body(change_notification(record, clientState="s" * 255))).status == 202
    )  # dropped, not refused


def test_too_many_notifications_in_one_post_are_refused() -> None:
    record = RECORDS["sub-cal-a"]
    assert post_to_webhook(notification_body(*[change_notification(record)] * MAX_NOTIFICATIONS_PER_POST)).status == 202
    assert (
        post_to_webhook(notification_body(*[change_notification(record)] * (MAX_NOTIFICATIONS_PER_POST + 1))).status
        == 400
    )


@pytest.mark.parametrize("route", ROUTES)
def test_oversized_bodies_are_refused_with_413(route, log: pytest.LogCaptureFixture) -> None:
    answer = post_to_webhook(b" " * (MAX_BODY_BYTES + 1), route)
    assert (answer.status, answer.content_type, answer.work) == (413, "application/json", [])
    assert f"body_bytes={MAX_BODY_BYTES + 1}" in _lines(log)[0]
    assert post_to_webhook(b" " * MAX_BODY_BYTES, route).status == 400  # at the limit: parsed (and refused as not JSON)


# -- no input makes the routes fail ------------------------------------------------------------

_known = st.sampled_from([*RECORDS, "sub-unknown", ""])
_anything = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=40))
_notification = st.fixed_dictionaries(
    {},
    optional={
        "subscriptionId": st.one_of(_known, _anything),
        "clientState": st.one_of(st.sampled_from([r.client_state for r in RECORDS.values()]), _anything),
        "tenantId": st.one_of(st.sampled_from([TENANT_ID, TENANT_ID.upper(), OTHER_TENANT]), _anything),
        "changeType": st.one_of(st.sampled_from(["created", "updated", "deleted"]), _anything),
        "resource": st.one_of(st.sampled_from(["Users/u1", "Users/u1/Events/e1", "users('x')"]), _anything),
        "lifecycleEvent": st.one_of(st.sampled_from(["missed", "subscriptionRemoved", "other"]), _anything),
        "resourceData": st.one_of(st.fixed_dictionaries({}, optional={"id": _anything}), _anything),
        "subscriptionExpirationDateTime": st.one_of(st.just("2026-11-27T10:00:00Z"), _anything),
    },
)
_json_body = st.one_of(
    st.fixed_dictionaries({"value": st.lists(_notification, max_size=5)}),
    st.recursive(_anything, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3)),
).map(lambda payload: json.dumps(payload).encode())
_query = st.one_of(
    st.dictionaries(st.text(max_size=20), st.text(max_size=50), max_size=3),
    st.builds(lambda token: {"validationToken": token}, st.text(max_size=1100)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=_query, body=st.one_of(st.binary(max_size=300), _json_body))
def test_no_input_makes_the_routes_raise_or_fail(query: dict[str, str], body: bytes) -> None:
    for route in ROUTES:
        answer = post_to_webhook(body, route, query)
        assert answer.status < 500
        assert answer.content_type in ("text/plain", "application/json")
        answer.body.encode("utf-8")  # the HTTP layer can always send it
        if answer.status != 202:
            assert answer.work == []


# -- the subscription cache ---------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _CountingStore:
    def __init__(self, records: dict[str, SubscriptionRecord]) -> None:
        self.records = records
        self.reads: Counter[str] = Counter()

    def get_subscription(self, subscription_id: str) -> SubscriptionRecord | None:
        self.reads[subscription_id] += 1
        return self.records.get(subscription_id)


def test_cache_serves_hits_from_memory_until_they_expire() -> None:
    store, clock = _CountingStore(dict(RECORDS)), _Clock()
    cache = SubscriptionCache(store, clock=clock)
    assert cache.get("sub-cal-a") == RECORDS["sub-cal-a"]
    clock.now += 59
    assert cache.get("sub-cal-a") == RECORDS["sub-cal-a"]
    assert store.reads["sub-cal-a"] == 1
    clock.now += 2  # past 60 s
    store.records["sub-cal-a"] = RECORDS["sub-cal-a"].model_copy(update={"client_state": "rotated"})
    assert cache.get("sub-cal-a").client_state == "rotated"
    assert store.reads["sub-cal-a"] == 2


def test_cache_remembers_misses_briefly() -> None:
    store, clock = _CountingStore({}), _Clock()
    cache = SubscriptionCache(store, clock=clock)
    for _ in range(100):
        assert cache.get("sub-flood") is None
    assert store.reads["sub-flood"] == 1
    store.records["sub-flood"] = subscription_record("sub-flood")  # created meanwhile
    clock.now += 4.9
    assert cache.get("sub-flood") is None
    clock.now += 0.2  # past 5 s
    assert cache.get("sub-flood") == store.records["sub-flood"]
    assert store.reads["sub-flood"] == 2


def test_cache_is_bounded_and_drops_the_oldest() -> None:
    store = _CountingStore({})
    cache = SubscriptionCache(store, max_entries=3, clock=_Clock())
    for sub_id in ["a", "b", "c", "d"]:
        cache.get(sub_id)
    assert len(cache) == 3
    cache.get("b")
    cache.get("a")  # evicted, so read again
    assert (store.reads["a"], store.reads["b"]) == (2, 1)


def test_cache_is_safe_under_concurrent_lookups() -> None:
    store = _CountingStore(dict(RECORDS))
    cache = SubscriptionCache(store, max_entries=4, clock=_Clock())
    ids = [*RECORDS, "x1", "x2", "x3"]
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(2000):
                sub_id = ids[(i + offset) % len(ids)]
                assert cache.get(sub_id) == RECORDS.get(sub_id)
        except BaseException as error:  # reported below, from the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) <= 4


def test_the_cache_plugs_into_the_route_as_lookup() -> None:
    store = _CountingStore(dict(RECORDS))
    cache = SubscriptionCache(store, clock=_Clock())
    record = RECORDS["sub-cal-a"]
    for _ in range(3):
        assert (
            len(
                post_to_webhook(
                    notification_body(change_notification(record), change_notification(record, item="e2")),
                    lookup=cache.get,
                ).work
            )
            == 1
        )
    assert store.reads["sub-cal-a"] == 1


def test_the_cache_also_wraps_a_plain_lookup() -> None:
    reads: list[str] = []

    def lookup(subscription_id: str) -> SubscriptionRecord | None:
        reads.append(subscription_id)
        return RECORDS.get(subscription_id)

    cache = SubscriptionCache(lookup, clock=_Clock())
    assert cache.get("sub-users") == cache.get("sub-users") == RECORDS["sub-users"]
    assert reads == ["sub-users"]


# -- the real state store under the cache, with Table Storage failing ------------------------------


class _SubscriptionsTable:
    """The one Table Storage table `StateStore.get_subscription` reads, answering as told.

    `error` set: every read raises it (the way azure-data-tables reports the answer);
    otherwise rows are found or missing (404) as `save_subscription` left them.
    """

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.error: Exception | None = None
        self.reads = 0

    def get_table_client(self, _name: str) -> _SubscriptionsTable:
        return self

    def create_table(self) -> None:
        raise ResourceExistsError("TableAlreadyExists")

    def upsert_entity(self, entity: dict[str, Any], mode: object = None) -> None:
        self.rows[entity["RowKey"]] = dict(entity)

    def get_entity(self, partition_key: str, row_key: str) -> dict[str, Any]:
        self.reads += 1
        if self.error is not None:
            raise self.error
        if row_key not in self.rows:
            raise ResourceNotFoundError("ResourceNotFound")
        return self.rows[row_key]


def _storage_answer(status: int) -> HttpResponseError:
    error = HttpResponseError(f"Table Storage answered {status}")
    error.status_code = status
    return error


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "failure",
    [_storage_answer(503), _storage_answer(500), _storage_answer(403), ServiceRequestError("connection refused")],
    ids=["503", "500", "403", "unreachable"],
)
def test_a_storage_failure_while_looking_up_the_subscription_answers_503_and_is_not_cached(
    route, failure: Exception, log: pytest.LogCaptureFixture
) -> None:
    """Storage failing is not "not ours": Graph is asked to deliver again, and the next try reads again."""
    table = _SubscriptionsTable()
    state = StateStore(table)  # type: ignore[arg-type]  # the double stands for the TableServiceClient
    record = RECORDS["sub-cal-a"]
    state.save_subscription(record)
    cache = SubscriptionCache(state, clock=_Clock())
    notification = (
        lifecycle_notification(record, "missed") if route is receive_lifecycle else change_notification(record)
    )

    table.error = failure
    answer = post_to_webhook(notification_body(notification), route, lookup=cache.get)
    assert (answer.status, answer.work) == (503, [])
    assert any("webhook_lookup_failed" in line for line in _lines(log, logging.ERROR))

    table.error = None  # storage is back: Graph's redelivery is read afresh, not answered from a cached miss
    answer = post_to_webhook(notification_body(notification), route, lookup=cache.get)
    assert answer.status == 202
    assert [work.user_id for work in answer.work] == [USER_A]
    assert table.reads == 2


def test_an_id_table_storage_refuses_as_a_key_is_still_not_ours(log: pytest.LogCaptureFixture) -> None:
    table = _SubscriptionsTable()
    table.error = _storage_answer(400)  # Table Storage's answer to a key it cannot use
    cache = SubscriptionCache(StateStore(table), clock=_Clock())  # type: ignore[arg-type]
    answer = post_to_webhook(notification_body(change_notification(subscription_record("sub-odd"))), lookup=cache.get)
    _assert_dropped(answer, log, "sub-odd", "unknown subscription")


# -- what browsers are told -------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_the_handshake_echo_tells_browsers_not_to_sniff_its_type(route) -> None:
    """The echoed token is attacker-chosen text: it must never be taken for HTML or script."""
    answer = post_to_webhook(b"", route, {"validationToken": "<script>alert(1)</script>"})
    assert (answer.status, answer.content_type) == (200, "text/plain")
    assert answer.headers == {"X-Content-Type-Options": "nosniff"}


@pytest.mark.parametrize(
    ("body", "lookup", "status"),
    [
        (notification_body(change_notification(RECORDS["sub-cal-a"])), RECORDS.get, 202),
        (b"{not json", RECORDS.get, 400),
        (b"x" * (MAX_BODY_BYTES + 1), RECORDS.get, 413),
        (notification_body(change_notification(RECORDS["sub-cal-a"])), _failing_lookup, 503),
    ],
)
def test_every_json_answer_tells_browsers_not_to_sniff_its_type(body: bytes, lookup, status: int) -> None:
    answer = post_to_webhook(body, lookup=lookup)
    assert (answer.status, answer.content_type) == (status, "application/json")
    assert answer.headers == {"X-Content-Type-Options": "nosniff"}

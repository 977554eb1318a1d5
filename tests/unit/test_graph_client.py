"""GraphClient against the stateful Graph fake: paging, delta, throttling, $batch, groups."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import responses

from fakes.graph import GraphFake, exchange_plan
from fakes.transport import FakeRequest, FakeResponse, install
from shared.graph import AVATAR_SIZE, GraphApiError, GraphClient, GraphUnavailable
from shared.graph_models import PhotoInfo, PhotoUnreadable
from shared.http import RetryPolicy
from shared.urls import same_origin

ROOT = "https://graph.fake.test"
TENANT = "6f1c2b9e-0d7a-4c55-9d0e-3b1f2a4c5d6e"
CLIENT = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
SECRET = "s3cr3t-value~for.tests"


@pytest.fixture
def transport() -> Iterator[responses.RequestsMock]:
    """Every request the client sends, answered by the fake under ROOT (and recorded, wherever it went)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def fake(transport: responses.RequestsMock) -> GraphFake:
    graph = GraphFake(tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET)
    install(transport, ROOT, graph)
    return graph


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(fake: GraphFake, sleeps: list[float]) -> GraphClient:
    token = fake.issue_token()
    return GraphClient(ROOT, lambda: token, sleep=sleeps.append)


def seed(fake: GraphFake, count: int, prefix: str = "user") -> list[str]:
    return [
        fake.add_user(
            f"{prefix}{number}@contoso.test",
            given_name="User",
            surname=str(number),
            business_phones=[f"+49 30 1234{number:04d}"],
        )
        for number in range(count)
    ]


# -- paging and users ------------------------------------------------------------------------
def test_list_users_pages_at_999(fake: GraphFake, client: GraphClient) -> None:
    ids = seed(fake, 2500)
    fake.reset_counts()
    users = client.list_users()
    assert fake.request_counts == {"GET": 3}
    assert sorted(user.id for user in users) == sorted(ids)
    first = next(user for user in users if user.id == ids[7])
    assert first.user_principal_name == "user7@contoso.test"
    assert first.business_phones == ["+49 30 12340007"]
    assert first.account_enabled is True
    assert first.has_exchange_mailbox()


@pytest.mark.parametrize("base_url", [ROOT, f"{ROOT}/v1.0", f"{ROOT}/v1.0/"])
def test_base_url_with_or_without_version(fake: GraphFake, base_url: str) -> None:
    fake.add_user("ada@contoso.test")
    token = fake.issue_token()
    assert [user.mail for user in GraphClient(base_url, lambda: token).list_users()] == ["ada@contoso.test"]


def test_get_user_by_id_or_upn(fake: GraphFake, client: GraphClient) -> None:
    ada = fake.add_user("ada@contoso.test", display_name="Ada Lovelace", has_mailbox=False)
    assert client.get_user(ada).display_name == "Ada Lovelace"  # type: ignore[union-attr]
    by_upn = client.get_user("ada@contoso.test")
    assert by_upn is not None
    assert by_upn.id == ada
    assert not by_upn.has_exchange_mailbox()
    assert client.get_user("nobody@contoso.test") is None


MALFORMED_IDS = ["..", ".", "", "ada", "../groups@contoso.test", "ada@contoso.test/../..", "ada@contoso"]


@pytest.mark.parametrize("bad", MALFORMED_IDS)
@pytest.mark.parametrize(
    "call",
    [
        lambda client, bad: client.get_user(bad),
        lambda client, bad: client.photo(bad),
        lambda client, bad: client.photo_infos([bad]),
        lambda client, bad: client.calendar_view(
            bad, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
        ),
        lambda client, bad: client.contact_folders(bad),
        lambda client, bad: client.contacts_delta(bad, None, None),
        lambda client, bad: client.group_member_user_ids(bad),
    ],
    ids=["get_user", "photo", "photo_infos", "calendar_view", "contact_folders", "contacts_delta", "group_members"],
)
def test_a_malformed_id_never_becomes_a_graph_url(
    fake: GraphFake, client: GraphClient, transport: responses.RequestsMock, call, bad: str
) -> None:
    """Fault: get_user("..") became GET /v1.0/ (quote() leaves dots alone); ids must be GUIDs or addresses."""
    fake.add_user("ada@contoso.test")
    with pytest.raises(GraphApiError) as raised:
        call(client, bad)
    assert list(transport.calls) == []
    assert "\n" not in str(raised.value)


def test_users_tolerate_nulls_and_judge_mailboxes(fake: GraphFake, client: GraphClient) -> None:
    plain = fake.add_user("plain@contoso.test")
    fake.update_user(plain, businessPhones=None, assignedPlans=None)  # Graph sends null collections
    suspended = fake.add_user("suspended@contoso.test")
    fake.update_user(suspended, assignedPlans=[exchange_plan("2024-01-01T00:00:00Z", capability_status="Suspended")])
    upn_only = fake.add_user("upn-only@contoso.test")
    fake.update_user(upn_only, mail=None)
    grace = fake.add_user("grace@contoso.test")  # a lapsed licence in its grace period
    fake.update_user(grace, assignedPlans=[exchange_plan("2024-01-01T00:00:00Z", capability_status="Warning")])

    users = {user.id: user for user in client.list_users()}
    assert users[plain].business_phones == []
    assert users[plain].assigned_plans == []
    assert users[plain].given_name is None
    assert not users[plain].has_exchange_mailbox()
    assert not users[suspended].has_exchange_mailbox()
    assert users[grace].has_exchange_mailbox()
    assert users[upn_only].has_exchange_mailbox()  # the UPN reaches the mailbox when mail is empty
    assert not users[plain].is_removed

    only_ids = client.list_users(select=("id",))
    assert {user.id for user in only_ids} == set(users)
    assert all(user.user_principal_name is None for user in only_ids)  # unselected = absent, tolerated


def test_client_errors_carry_graph_code(fake: GraphFake, client: GraphClient) -> None:
    with pytest.raises(GraphApiError) as raised:
        client.list_users(select=("id", "shoeSize"))
    assert raised.value.status == 400
    assert raised.value.code == "Request_BadRequest"
    assert "shoeSize" in raised.value.message


# -- delta -----------------------------------------------------------------------------------
def test_delta_round_then_changes_then_removals(fake: GraphFake, client: GraphClient) -> None:
    fake.delta_page_size = 40
    ids = seed(fake, 100)

    initial = client.users_delta(None)
    assert initial.full
    assert sorted(user.id for user in initial.users) == sorted(ids)

    fake.update_user(ids[0], displayName="Renamed", mobilePhone="+49 171 0000000")
    newcomer = fake.add_user("new@contoso.test")
    changes = client.users_delta(initial.delta_link)
    assert not changes.full
    by_id = {user.id: user for user in changes.users}
    assert set(by_id) == {ids[0], newcomer}
    assert by_id[ids[0]].display_name == "Renamed"
    assert by_id[ids[0]].mobile_phone == "+49 171 0000000"
    assert by_id[ids[0]].user_principal_name == "user0@contoso.test"  # whole selected set, not just the change

    fake.soft_delete_user(ids[1])
    fake.hard_delete_user(ids[2])
    removals = client.users_delta(changes.delta_link)
    assert {user.id: user.removal_reason for user in removals.users} == {ids[1]: "changed", ids[2]: "deleted"}
    assert all(user.is_removed for user in removals.users)

    assert client.users_delta(removals.delta_link).users == []


@pytest.mark.parametrize("status", [410, 400])
def test_delta_reset_starts_a_full_round(fake: GraphFake, client: GraphClient, status: int) -> None:
    ids = seed(fake, 30)
    first = client.users_delta(None)
    fake.hard_delete_user(ids[0])
    fake.expire_delta_tokens(status=status)

    reset = client.users_delta(first.delta_link)
    assert reset.full
    assert sorted(user.id for user in reset.users) == sorted(ids[1:])  # absent = gone
    fake.update_user(ids[5], displayName="After reset")
    assert [user.id for user in client.users_delta(reset.delta_link).users] == [ids[5]]


def test_delta_other_errors_are_not_resets(fake: GraphFake, client: GraphClient) -> None:
    seed(fake, 3)
    first = client.users_delta(None)
    fake.inject(403, path_pattern="/users/delta")
    with pytest.raises(GraphApiError) as raised:
        client.users_delta(first.delta_link)
    assert raised.value.status == 403


def test_delta_merges_a_user_seen_twice_in_one_round(
    fake: GraphFake, client: GraphClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.delta_page_size = 1
    ada, bob, cy = seed(fake, 3)
    original_route = fake.route

    def route_with_admin_edits(request: FakeRequest) -> FakeResponse:
        response = original_route(request)
        if request.path == "/v1.0/users/delta" and "$skiptoken" not in request.query:
            # Someone edits the tenant while the first page is on its way.
            fake.update_user(ada, displayName="Ada, edited mid-round")
            fake.soft_delete_user(bob)
        return response

    monkeypatch.setattr(fake, "route", route_with_admin_edits)
    result = client.users_delta(None)
    by_id = {user.id: user for user in result.users}
    assert len(result.users) == 3
    assert by_id[ada].display_name == "Ada, edited mid-round"
    assert by_id[bob].removal_reason == "changed"
    assert not by_id[cy].is_removed


# -- links: the token goes to Graph's host only ---------------------------------------------------
FOREIGN_ROOTS = [
    "https://attacker.test",  # another host
    "http://graph.fake.test",  # Graph's host, another scheme
    "https://graph.fake.test:8443",  # Graph's host, another port
    "https://graph.fake.test@attacker.test",  # looks like Graph's host, is the attacker's
]


def _links_moved_to(fake: GraphFake, monkeypatch: pytest.MonkeyPatch, foreign_root: str, key: str) -> None:
    """Make the fake's answers name `foreign_root` instead of its own root in their `key` link."""
    original_route = fake.route

    def route(request: FakeRequest) -> FakeResponse:
        response = original_route(request)
        if isinstance(response.body, dict) and key in response.body:
            response.body[key] = response.body[key].replace(ROOT, foreign_root, 1)
        return response

    monkeypatch.setattr(fake, "route", route)


def _sent_elsewhere(transport: responses.RequestsMock) -> list[str]:
    return [call.request.url for call in transport.calls if not same_origin(call.request.url, ROOT)]


@pytest.mark.parametrize("foreign_root", FOREIGN_ROOTS)
def test_a_next_link_to_another_host_is_not_followed(
    fake: GraphFake,
    client: GraphClient,
    transport: responses.RequestsMock,
    sleeps: list[float],
    monkeypatch: pytest.MonkeyPatch,
    foreign_root: str,
) -> None:
    """Fault: the client sent its bearer token to whatever host an @odata.nextLink named."""
    fake.delta_page_size = 1
    seed(fake, 2)
    _links_moved_to(fake, monkeypatch, foreign_root, "@odata.nextLink")
    with pytest.raises(GraphApiError) as raised:
        client.users_delta(None)
    assert _sent_elsewhere(transport) == []
    assert sleeps == []  # a refusal, not an outage: nothing to retry
    assert "\n" not in str(raised.value)
    assert "skiptoken" not in str(raised.value)  # the link is named without its query


def test_a_next_link_of_a_plain_listing_is_checked_too(
    fake: GraphFake, client: GraphClient, transport: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(fake, 1000)  # two pages of 999
    _links_moved_to(fake, monkeypatch, "https://attacker.test", "@odata.nextLink")
    with pytest.raises(GraphApiError, match="attacker.test"):
        client.list_users()
    assert _sent_elsewhere(transport) == []


def test_a_stored_delta_link_to_another_host_is_not_followed(
    fake: GraphFake, client: GraphClient, transport: responses.RequestsMock, sleeps: list[float]
) -> None:
    """Fault: a delta link read back from state was followed to any host, the token with it."""
    seed(fake, 2)
    link = client.users_delta(None).delta_link
    transport.calls.reset()
    with pytest.raises(GraphApiError):
        client.users_delta(link.replace(ROOT, "https://attacker.test", 1))
    assert list(transport.calls) == []
    assert sleeps == []


def test_a_delta_link_to_another_host_is_refused_when_it_arrives(
    fake: GraphFake, client: GraphClient, transport: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused on arrival, so it is never handed back to be stored and followed next time."""
    seed(fake, 2)
    _links_moved_to(fake, monkeypatch, "https://attacker.test", "@odata.deltaLink")
    with pytest.raises(GraphApiError, match="attacker.test"):
        client.users_delta(None)
    assert _sent_elsewhere(transport) == []


# -- throttling --------------------------------------------------------------------------------
def test_throttled_request_waits_retry_after(fake: GraphFake, client: GraphClient, sleeps: list[float]) -> None:
    seed(fake, 5)
    fake.inject(429, retry_after=7, path_pattern="/users$")
    assert len(client.list_users()) == 5
    assert sleeps == [7.0]
    assert fake.request_counts["GET"] == 2


def test_persistent_unavailability_is_one_line(fake: GraphFake, client: GraphClient, sleeps: list[float]) -> None:
    fake.inject(503, count=10, retry_after=1)
    with pytest.raises(GraphUnavailable) as raised:
        client.list_users()
    assert sleeps == [1.0, 1.0, 1.0]  # four attempts, bounded
    assert "\n" not in str(raised.value)


def test_retry_after_beyond_policy_gives_up(fake: GraphFake, sleeps: list[float]) -> None:
    token = fake.issue_token()
    client = GraphClient(ROOT, lambda: token, policy=RetryPolicy(max_delay=30), sleep=sleeps.append)
    fake.inject(429, retry_after=120)
    with pytest.raises(GraphUnavailable, match="120s"):
        client.list_users()
    assert sleeps == []


def test_tokens_never_reach_the_log(fake: GraphFake, client: GraphClient, caplog: pytest.LogCaptureFixture) -> None:
    token = fake.issue_token()
    client = GraphClient(ROOT, lambda: token, sleep=lambda _: None)
    fake.inject(429, retry_after=1)
    fake.inject(503, count=2)
    caplog.set_level(logging.DEBUG)
    client.list_users()  # succeeds on the fourth attempt
    fake.inject(503, count=4)
    with pytest.raises(GraphUnavailable) as raised:
        client.list_users()
    assert caplog.records  # the retries were logged...
    assert token not in caplog.text
    assert token not in str(raised.value)


# -- photos and $batch -------------------------------------------------------------------------
def test_photo_infos_batch_twenty_at_a_time(fake: GraphFake, client: GraphClient) -> None:
    ids = seed(fake, 45)
    for user_id in ids[::2]:
        fake.set_photo(user_id, f"photo of {user_id}".encode())
    fake.reset_counts()

    infos = client.photo_infos(ids)
    assert fake.request_counts == {"POST": 3}
    assert fake.batch_item_counts["GET"] == 45
    assert set(infos) == set(ids)
    assert infos[ids[0]].etag == fake.photo_etag(ids[0])
    assert infos[ids[0]].content_type == "image/jpeg"
    assert infos[ids[1]].etag is None


def test_throttled_batch_items_are_retried_in_a_later_batch(
    fake: GraphFake, client: GraphClient, sleeps: list[float]
) -> None:
    ids = seed(fake, 10)
    for user_id in ids:
        fake.set_photo(user_id, b"jpeg")
    fake.inject_batch_item(429, count=3, retry_after=2)
    fake.reset_counts()

    infos = client.photo_infos(ids)
    assert all(info.etag for info in infos.values())
    assert len(infos) == 10
    assert sleeps == [2.0]
    assert fake.request_counts == {"POST": 2}
    assert fake.batch_item_counts["GET"] == 13  # 10, then the 3 throttled ones again


@pytest.mark.parametrize("status", [500, 502, 403])
def test_one_photo_failing_inside_the_batch_is_that_users_alone(
    fake: GraphFake, client: GraphClient, sleeps: list[float], status: int
) -> None:
    """Graph answers the batch 200 and that one item with an error: the others are read as usual."""
    ids = seed(fake, 5)
    for user_id in ids:
        fake.set_photo(user_id, b"jpeg")
    fake.inject_batch_item(status, url_pattern=f"/users/{ids[2]}/photo$")
    fake.reset_counts()

    infos = client.photo_infos(ids)

    assert infos[ids[2]] == PhotoUnreadable(
        user_id=ids[2], reason=f"Graph answered {status} generalException: Injected failure {status}."
    )
    assert {user_id: info.etag for user_id, info in infos.items() if isinstance(info, PhotoInfo)} == {
        user_id: fake.photo_etag(user_id) for user_id in ids if user_id != ids[2]
    }
    assert fake.request_counts == {"POST": 1}  # not a throttle: not asked again in this call
    assert sleeps == []


def test_a_photo_is_fetched_at_the_avatar_size_with_its_content_type(fake: GraphFake, client: GraphClient) -> None:
    [user_id] = seed(fake, 1)
    fake.set_photo(user_id, b"full-size png", width=648, height=648, content_type="image/png")
    fake.reset_counts()

    image = client.photo(user_id)

    assert image is not None
    assert image.content == fake.photo_content(user_id, AVATAR_SIZE)
    assert image.content != b"full-size png"
    assert image.content_type == "image/png"
    assert fake.request_counts == {"GET": 1}


def test_a_photo_smaller_than_the_avatar_size_is_fetched_as_it_is(fake: GraphFake, client: GraphClient) -> None:
    """Graph has no 96x96 version of a 48-pixel photo: the original is taken instead."""
    [user_id] = seed(fake, 1)
    fake.set_photo(user_id, b"tiny jpeg", width=48, height=48)

    image = client.photo(user_id)

    assert image is not None and (image.content, image.content_type) == (b"tiny jpeg", "image/jpeg")


def test_no_photo_is_none(fake: GraphFake, client: GraphClient) -> None:
    [user_id] = seed(fake, 1)
    assert client.photo(user_id) is None


def test_a_failing_batch_request_is_an_outage(fake: GraphFake, client: GraphClient, sleeps: list[float]) -> None:
    """The `$batch` POST itself failing says nothing about one user: the call fails as a whole."""
    ids = seed(fake, 3)
    fake.inject(500, path_pattern=r"/\$batch$")
    with pytest.raises(GraphUnavailable, match="500"):
        client.photo_infos(ids)


def test_batch_item_throttled_forever_fails(fake: GraphFake, client: GraphClient, sleeps: list[float]) -> None:
    [user_id] = seed(fake, 1)
    fake.inject_batch_item(503, count=100, retry_after=1)
    with pytest.raises(GraphUnavailable, match=user_id):
        client.photo_infos([user_id])
    assert sleeps == [1.0, 1.0, 1.0]


# -- groups --------------------------------------------------------------------------------------
def test_group_members_are_transitive(fake: GraphFake, client: GraphClient) -> None:
    ada, bob, cy, dan = seed(fake, 4)
    many = seed(fake, 1200, prefix="bulk")
    leaf = fake.add_group("Leaf", [cy, *many])
    branch = fake.add_group("Branch", [bob, leaf])
    root = fake.add_group("Root", [ada, branch])
    fake.add_group("Other", [dan])
    fake.reset_counts()

    assert client.group_member_user_ids(root) == {ada, bob, cy, *many}
    assert fake.request_counts == {"GET": 2}  # 1203 members at 999 a page


def test_unknown_group_names_the_group(fake: GraphFake, client: GraphClient) -> None:
    unknown = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"  # group ids are GUIDs (USER_SYNC_GROUPS says so too)
    with pytest.raises(GraphApiError, match=unknown) as raised:
        client.group_member_user_ids(unknown)
    assert raised.value.status == 404

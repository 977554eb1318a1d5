"""The Entra + Graph fake enforces what the real services enforce, and keeps tenant state.

These tests talk to the fake with plain `requests`, so they pin down the fake's own
contract (the client tests then rely on it).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from fakes.graph import DEFAULT_USER_PROPERTIES, GraphFake
from fakes.transport import install

ROOT = "https://graph.fake.test"
GRAPH = f"{ROOT}/v1.0"
TENANT = "6f1c2b9e-0d7a-4c55-9d0e-3b1f2a4c5d6e"
CLIENT = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
SECRET = "s3cr3t-value~for.tests"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[GraphFake]:
    graph = GraphFake(tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET, clock=clock)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, ROOT, graph)
        yield graph


@pytest.fixture
def http(fake: GraphFake) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {fake.issue_token()}"
    return session


def token_request(**overrides: str) -> requests.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": CLIENT,
        "client_secret": SECRET,
        "scope": "https://graph.microsoft.com/.default",
    }
    form.update(overrides)
    form = {key: value for key, value in form.items() if value}
    return requests.post(f"{ROOT}/{TENANT}/oauth2/v2.0/token", data=form, timeout=5)


def skiptoken(link: str) -> str:
    return parse_qs(urlsplit(link).query)["$skiptoken"][0]


def delta_all(http: requests.Session, url: str, **params: str) -> tuple[list[dict], str, int]:
    """Follow a delta round to its end: (entries, deltaLink, pages)."""
    entries: list[dict] = []
    pages = 0
    next_url: str | None = url
    while next_url:
        page = http.get(next_url, params=params if pages == 0 else None, timeout=5)
        assert page.status_code == 200, page.text
        body = page.json()
        entries += body["value"]
        pages += 1
        next_url = body.get("@odata.nextLink")
        if not next_url:
            return entries, body["@odata.deltaLink"], pages
    raise AssertionError("unreachable")


# -- Entra ---------------------------------------------------------------------------------
def test_openid_configuration_points_at_the_fake_root(fake: GraphFake) -> None:
    config = requests.get(f"{ROOT}/{TENANT}/v2.0/.well-known/openid-configuration", timeout=5).json()
    assert config["token_endpoint"] == f"{ROOT}/{TENANT}/oauth2/v2.0/token"
    assert config["authorization_endpoint"] == f"{ROOT}/{TENANT}/oauth2/v2.0/authorize"
    assert config["issuer"] == f"{ROOT}/{TENANT}/v2.0"

    unknown = requests.get(f"{ROOT}/other-tenant/v2.0/.well-known/openid-configuration", timeout=5)
    assert unknown.status_code == 400
    assert unknown.json()["error_description"].startswith("AADSTS90002")


def test_token_endpoint_issues_tokens_for_the_right_secret_only(fake: GraphFake) -> None:
    good = token_request()
    assert good.status_code == 200
    assert good.json()["token_type"] == "Bearer"
    assert good.json()["expires_in"] == 3599

    wrong = token_request(client_secret="not-the-secret")
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.json()["error_description"].startswith("AADSTS7000215")
    assert wrong.json()["error_codes"] == [7000215]

    missing = token_request(client_secret="")
    assert missing.status_code == 401
    assert "AADSTS7000218" in missing.json()["error_description"]

    bad_scope = token_request(scope="User.Read")
    assert bad_scope.status_code == 400
    assert bad_scope.json()["error"] == "invalid_scope"

    stranger = token_request(client_id="00000000-0000-0000-0000-000000000000")
    assert "AADSTS700016" in stranger.json()["error_description"]
    assert fake.tokens_issued == 1


def test_graph_requires_a_valid_unexpired_bearer_token(fake: GraphFake, clock: Clock) -> None:
    fake.add_user("ada@contoso.test")
    anonymous = requests.get(f"{GRAPH}/users", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "innerError" in anonymous.json()["error"]

    forged = requests.get(f"{GRAPH}/users", headers={"Authorization": "Bearer made-up"}, timeout=5)
    assert forged.status_code == 401

    token = token_request().json()["access_token"]
    authorized = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{GRAPH}/users", headers=authorized, timeout=5).status_code == 200
    clock.advance(3600)
    expired = requests.get(f"{GRAPH}/users", headers=authorized, timeout=5)
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]


# -- users ---------------------------------------------------------------------------------
def test_users_default_page_and_property_set(fake: GraphFake, http: requests.Session) -> None:
    for number in range(150):
        fake.add_user(f"user{number}@contoso.test", given_name="User", surname=str(number))
    first = http.get(f"{GRAPH}/users", timeout=5).json()
    assert len(first["value"]) == 100
    assert set(first["value"][0]) == set(DEFAULT_USER_PROPERTIES)  # accountEnabled etc. need $select
    assert first["@odata.nextLink"].startswith(f"{GRAPH}/users?")
    assert skiptoken(first["@odata.nextLink"])

    second = http.get(first["@odata.nextLink"], timeout=5).json()
    assert len(second["value"]) == 50
    assert "@odata.nextLink" not in second
    ids = [user["id"] for user in first["value"] + second["value"]]
    assert sorted(ids) == sorted(fake.users)


def test_users_select_and_page_size_limits(fake: GraphFake, http: requests.Session) -> None:
    fake.add_user("ada@contoso.test", given_name="Ada", surname="Lovelace")
    selected = http.get(f"{GRAPH}/users", params={"$select": "id,accountEnabled,assignedPlans"}, timeout=5).json()
    assert set(selected["value"][0]) == {"id", "accountEnabled", "assignedPlans"}
    assert selected["value"][0]["assignedPlans"][0]["service"] == "exchange"

    for top in ("1000", "0", "ten"):
        refused = http.get(f"{GRAPH}/users", params={"$top": top}, timeout=5)
        assert refused.status_code == 400
        assert refused.json()["error"]["message"].startswith("Invalid page size specified")

    unknown = http.get(f"{GRAPH}/users", params={"$select": "id,shoeSize"}, timeout=5)
    assert unknown.status_code == 400
    assert "shoeSize" in unknown.json()["error"]["message"]


def test_users_filter_by_upn_and_id(fake: GraphFake, http: requests.Session) -> None:
    obrien = fake.add_user("o'brien@contoso.test")
    other = fake.add_user("other@contoso.test")

    by_upn = http.get(f"{GRAPH}/users", params={"$filter": "userPrincipalName eq 'O''Brien@contoso.test'"}, timeout=5)
    assert [user["id"] for user in by_upn.json()["value"]] == [obrien]

    by_ids = http.get(f"{GRAPH}/users", params={"$filter": f"id eq '{obrien}' or id eq '{other}'"}, timeout=5)
    assert {user["id"] for user in by_ids.json()["value"]} == {obrien, other}

    unsupported = http.get(f"{GRAPH}/users", params={"$filter": "startswith(displayName,'o')"}, timeout=5)
    assert unsupported.status_code == 400


def test_get_user_by_id_or_upn(fake: GraphFake, http: requests.Session) -> None:
    user_id = fake.add_user("ada@contoso.test", display_name="Ada Lovelace")
    by_id = http.get(f"{GRAPH}/users/{user_id}", params={"$select": "id,displayName"}, timeout=5).json()
    by_upn = http.get(f"{GRAPH}/users/ADA@contoso.test", params={"$select": "id,displayName"}, timeout=5).json()
    assert by_id["displayName"] == by_upn["displayName"] == "Ada Lovelace"
    assert by_upn["id"] == user_id

    fake.soft_delete_user(user_id)
    gone = http.get(f"{GRAPH}/users/{user_id}", timeout=5)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "Request_ResourceNotFound"


def test_mailbox_flag_decides_exchange_plan_and_mail(fake: GraphFake) -> None:
    with_mailbox = fake.users[fake.add_user("ada@contoso.test")]
    without = fake.users[fake.add_user("room@contoso.test", has_mailbox=False)]
    assert with_mailbox["mail"] == "ada@contoso.test"
    assert with_mailbox["assignedPlans"][0]["capabilityStatus"] == "Enabled"
    assert without["mail"] is None
    assert without["assignedPlans"] == []
    with pytest.raises(ValueError, match="already exists"):
        fake.add_user("ADA@contoso.test")


def test_seeding_ten_thousand_users_is_fast(fake: GraphFake, http: requests.Session) -> None:
    started = time.perf_counter()
    for number in range(10_000):
        fake.add_user(f"user{number}@contoso.test", given_name="User", surname=str(number))
    assert time.perf_counter() - started < 2.0

    pages = 0
    url: str | None = f"{GRAPH}/users?$top=999&$select=id"
    while url:
        url = http.get(url, timeout=5).json().get("@odata.nextLink")
        pages += 1
    assert pages == 11


# -- delta ---------------------------------------------------------------------------------
def test_delta_rounds_report_changes_then_removals(fake: GraphFake, http: requests.Session) -> None:
    fake.delta_page_size = 2
    ada = fake.add_user("ada@contoso.test")
    bob = fake.add_user("bob@contoso.test")
    cy = fake.add_user("cy@contoso.test")

    entries, delta_link, pages = delta_all(http, f"{GRAPH}/users/delta", **{"$select": "id,displayName"})
    assert {entry["id"] for entry in entries} == {ada, bob, cy}
    assert pages == 2
    assert "$deltatoken=" in delta_link

    fake.update_user(ada, displayName="Ada L.")
    dan = fake.add_user("dan@contoso.test")
    entries, delta_link, _ = delta_all(http, delta_link)
    assert {entry["id"] for entry in entries} == {ada, dan}
    # $select travels inside the token: the whole selected set, nothing else.
    assert all(set(entry) == {"id", "displayName"} for entry in entries)

    fake.soft_delete_user(bob)
    fake.hard_delete_user(cy)
    entries, delta_link, _ = delta_all(http, delta_link)
    assert {entry["id"]: entry["@removed"]["reason"] for entry in entries} == {bob: "changed", cy: "deleted"}

    fake.restore_user(bob)
    entries, delta_link, _ = delta_all(http, delta_link)
    assert entries == [{"id": bob, "displayName": "bob"}]

    entries, _, _ = delta_all(http, delta_link)
    assert entries == []


def test_delta_ignores_changes_to_unselected_properties(fake: GraphFake, http: requests.Session) -> None:
    ada = fake.add_user("ada@contoso.test")
    _, delta_link, _ = delta_all(http, f"{GRAPH}/users/delta", **{"$select": "id,displayName"})
    fake.update_user(ada, mobilePhone="+44 20 7946 0000")
    assert delta_all(http, delta_link)[0] == []
    fake.update_user(ada, displayName="Ada")
    assert [entry["id"] for entry in delta_all(http, delta_link)[0]] == [ada]


def test_delta_latest_token_starts_from_now(fake: GraphFake, http: requests.Session) -> None:
    fake.add_user("ada@contoso.test")
    latest = http.get(f"{GRAPH}/users/delta", params={"$deltatoken": "latest", "$select": "id"}, timeout=5).json()
    assert latest["value"] == []
    bob = fake.add_user("bob@contoso.test")
    entries, _, _ = delta_all(http, latest["@odata.deltaLink"])
    assert entries == [{"id": bob}]


def test_a_user_changed_during_a_round_comes_again(fake: GraphFake, http: requests.Session) -> None:
    fake.delta_page_size = 1
    ada = fake.add_user("ada@contoso.test")
    fake.add_user("bob@contoso.test")
    first = http.get(f"{GRAPH}/users/delta", params={"$select": "id,displayName"}, timeout=5).json()
    assert first["value"][0]["id"] == ada
    fake.update_user(ada, displayName="Ada, renamed mid-round")
    rest, _, _ = delta_all(http, first["@odata.nextLink"])
    assert rest[-1] == {"id": ada, "displayName": "Ada, renamed mid-round"}


@pytest.mark.parametrize(("status", "code"), [(410, "resyncRequired"), (400, "syncStateNotFound")])
def test_expired_delta_tokens_fail_as_chosen(fake: GraphFake, http: requests.Session, status: int, code: str) -> None:
    fake.delta_page_size = 1
    fake.add_user("ada@contoso.test")
    fake.add_user("bob@contoso.test")
    _, delta_link, _ = delta_all(http, f"{GRAPH}/users/delta", **{"$select": "id"})
    half_round = http.get(f"{GRAPH}/users/delta", timeout=5).json()["@odata.nextLink"]

    fake.expire_delta_tokens(status=status)
    for link in (delta_link, half_round):
        refused = http.get(link, timeout=5)
        assert refused.status_code == status
        assert refused.json()["error"]["code"] == code
    if status == 410:
        location = http.get(delta_link, timeout=5).headers["Location"]
        entries, _, _ = delta_all(http, location)  # the Location restarts a full round
        assert len(entries) == 2
        assert all(set(entry) == {"id"} for entry in entries)


# -- groups --------------------------------------------------------------------------------
def test_transitive_members_need_the_advanced_query_header(fake: GraphFake, http: requests.Session) -> None:
    group = fake.add_group("Sales", [fake.add_user("ada@contoso.test")])
    url = f"{GRAPH}/groups/{group}/transitiveMembers/microsoft.graph.user"
    without_header = http.get(url, params={"$count": "true"}, timeout=5)
    without_count = http.get(url, headers={"ConsistencyLevel": "eventual"}, timeout=5)
    for refused in (without_header, without_count):
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "Request_UnsupportedQuery"

    missing = http.get(
        f"{GRAPH}/groups/no-such-group/transitiveMembers/microsoft.graph.user",
        params={"$count": "true"},
        headers={"ConsistencyLevel": "eventual"},
        timeout=5,
    )
    assert missing.status_code == 404


def test_transitive_members_resolve_nesting_and_page(fake: GraphFake, http: requests.Session) -> None:
    ada, bob, cy, dan = (fake.add_user(f"{name}@contoso.test") for name in ("ada", "bob", "cy", "dan"))
    inner = fake.add_group("Inner", [cy])
    middle = fake.add_group("Middle", [bob, inner])
    outer = fake.add_group("Outer", [ada, middle])
    fake.add_group_member(inner, outer)  # a cycle must not loop
    fake.add_group("Unrelated", [dan])

    headers = {"ConsistencyLevel": "eventual"}
    url = f"{GRAPH}/groups/{outer}/transitiveMembers/microsoft.graph.user"
    first = http.get(url, params={"$count": "true", "$select": "id", "$top": "2"}, headers=headers, timeout=5).json()
    assert first["@odata.count"] == 3
    assert len(first["value"]) == 2
    assert http.get(first["@odata.nextLink"], timeout=5).status_code == 400  # header not carried over
    second = http.get(first["@odata.nextLink"], headers=headers, timeout=5).json()
    assert {user["id"] for user in first["value"] + second["value"]} == {ada, bob, cy}

    fake.soft_delete_user(bob)
    assert set(fake.transitive_user_ids(outer)) == {ada, cy}


# -- photos --------------------------------------------------------------------------------
def test_photo_metadata_and_bytes(fake: GraphFake, http: requests.Session) -> None:
    ada = fake.add_user("ada@contoso.test")
    none_yet = http.get(f"{GRAPH}/users/{ada}/photo", timeout=5)
    assert none_yet.status_code == 404
    assert none_yet.json()["error"]["code"] == "ImageNotFound"
    assert http.get(f"{GRAPH}/users/{ada}/photo/$value", timeout=5).status_code == 404

    fake.set_photo(ada, b"\xff\xd8first")
    first = http.get(f"{GRAPH}/users/{ada}/photo", timeout=5).json()
    assert first["@odata.mediaContentType"] == "image/jpeg"
    assert (first["width"], first["height"]) == (648, 648)
    value = http.get(f"{GRAPH}/users/{ada}/photo/$value", timeout=5)
    assert value.content == b"\xff\xd8first"
    assert value.headers["Content-Type"] == "image/jpeg"

    fake.set_photo(ada, b"\xff\xd8first")  # same bytes uploaded again: still a new etag
    assert http.get(f"{GRAPH}/users/{ada}/photo", timeout=5).json()["@odata.mediaEtag"] != first["@odata.mediaEtag"]
    fake.set_photo(ada, None)
    assert http.get(f"{GRAPH}/users/{ada}/photo", timeout=5).status_code == 404


# -- $batch --------------------------------------------------------------------------------
def test_batch_dispatches_items_and_counts_one_post(fake: GraphFake, http: requests.Session) -> None:
    ada = fake.add_user("ada@contoso.test")
    fake.set_photo(ada, b"jpeg-bytes")
    fake.reset_counts()
    batch = {
        "requests": [
            {"id": "meta", "method": "GET", "url": f"/users/{ada}/photo"},
            {"id": "bytes", "method": "GET", "url": f"users/{ada}/photo/$value"},
            {"id": "user", "method": "GET", "url": f"/users/{ada}?$select=id,mail"},
            {"id": "nobody", "method": "GET", "url": "/users/nobody/photo"},
        ]
    }
    answer = http.post(f"{GRAPH}/$batch", json=batch, timeout=5)
    assert answer.status_code == 200
    items = {item["id"]: item for item in answer.json()["responses"]}
    assert items["meta"]["status"] == 200
    assert items["meta"]["body"]["@odata.mediaEtag"]
    assert base64.b64decode(items["bytes"]["body"]) == b"jpeg-bytes"
    assert items["user"]["body"]["mail"] == "ada@contoso.test"
    assert items["nobody"]["status"] == 404
    assert fake.request_counts == {"POST": 1}
    assert fake.batch_item_counts["GET"] == 4


def test_batch_limits(fake: GraphFake, http: requests.Session) -> None:
    too_many = {"requests": [{"id": str(n), "method": "GET", "url": "/users"} for n in range(21)]}
    assert http.post(f"{GRAPH}/$batch", json=too_many, timeout=5).status_code == 400
    duplicated = {"requests": [{"id": "1", "method": "GET", "url": "/users"}] * 2}
    assert http.post(f"{GRAPH}/$batch", json=duplicated, timeout=5).status_code == 400
    anonymous = requests.post(f"{GRAPH}/$batch", json={"requests": too_many["requests"][:1]}, timeout=5)
    assert anonymous.status_code == 401


def test_injected_throttling_uses_graph_error_shape(fake: GraphFake, http: requests.Session) -> None:
    ada = fake.add_user("ada@contoso.test")
    fake.inject_batch_item(429, retry_after=7, url_pattern="/photo$")
    batch = {
        "requests": [
            {"id": "1", "method": "GET", "url": f"/users/{ada}/photo"},
            {"id": "2", "method": "GET", "url": f"/users/{ada}"},
            {"id": "3", "method": "GET", "url": f"/users/{ada}/photo"},
        ]
    }
    items = {item["id"]: item for item in http.post(f"{GRAPH}/$batch", json=batch, timeout=5).json()["responses"]}
    assert items["1"]["status"] == 429
    assert items["1"]["headers"]["Retry-After"] == "7"
    assert items["1"]["body"]["error"]["code"] == "TooManyRequests"
    assert items["2"]["status"] == 200
    assert items["3"]["status"] == 404  # count=1: only the first matching item was throttled

    fake.inject(429, retry_after=3, path_pattern="/users$")
    throttled = http.get(f"{GRAPH}/users", timeout=5)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "3"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert http.get(f"{GRAPH}/users", timeout=5).status_code == 200

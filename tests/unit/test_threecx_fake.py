"""The 3CX fake enforces what the PBX enforces; these tests pin those rules down.

They talk HTTP to the fake (through `responses`), not through the client, so that a rule
the client happens to respect is still proven to be enforced. Requests that are invalid on
purpose carry the `X-Test-Deliberately-Invalid` header so the conformance check skips them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from fakes.threecx import (
    DELIBERATELY_INVALID_HEADER,
    PROFILE_NAMES,
    USER_PROPERTIES,
    XAPI_JOURNAL,
    ThreeCXFake,
    clear_journal,
)
from fakes.transport import install
from tests.pbx_fake_support import BASE, CLIENT_ID, SECRET, START, Clock, Xapi


def request_token(secret: str = SECRET, grant_type: str = "client_credentials", **kwargs: Any) -> requests.Response:
    form = {"client_id": CLIENT_ID, "client_secret": secret, "grant_type": grant_type}
    return requests.post(f"{BASE}/connect/token", data=form, timeout=5, **kwargs)


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def error_of(response: requests.Response) -> tuple[str, str | None]:
    """(warning or message, target) of an OData error answer."""
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "details"}
    detail = error["details"][0] if error["details"] else {"message": error["message"], "target": None}
    return detail["message"], detail["target"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pbx(clock: Clock) -> Iterator[ThreeCXFake]:
    fake = ThreeCXFake(client_id=CLIENT_ID, client_secret=SECRET, clock=clock)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, BASE, fake)
        yield fake


@pytest.fixture
def xapi(pbx: ThreeCXFake) -> Xapi:
    return Xapi(request_token().json()["access_token"])


# -- token endpoint -----------------------------------------------------------------------------
def test_token_is_a_jwt_with_expiry_in_seconds(pbx: ThreeCXFake) -> None:
    answer = request_token()

    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["refresh_token"] is None
    claims = claims_of(body["access_token"])
    assert claims["client_id"] == CLIENT_ID
    assert claims["iat"] == int(START)
    assert claims["exp"] - claims["iat"] == 3600
    assert pbx.tokens_issued == 1


def test_token_expiry_in_minutes_like_20_0_8(clock: Clock) -> None:
    fake = ThreeCXFake(client_id=CLIENT_ID, client_secret=SECRET, clock=clock, expires_in_unit="minutes")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, BASE, fake)
        body = request_token().json()

    assert body["expires_in"] == 60
    claims = claims_of(body["access_token"])
    assert claims["exp"] - claims["iat"] == 3600


def test_token_accepts_multipart_form_data_like_the_official_sample(pbx: ThreeCXFake) -> None:
    fields = {
        "client_id": (None, CLIENT_ID),
        "client_secret": (None, SECRET),
        "grant_type": (None, "client_credentials"),
    }
    answer = requests.post(f"{BASE}/connect/token", files=fields, timeout=5)

    assert answer.status_code == 200
    assert answer.json()["access_token"]


@pytest.mark.parametrize(("secret", "grant_type"), [("wrong", "client_credentials"), (SECRET, "password")])
def test_token_refused_with_oauth_error(pbx: ThreeCXFake, secret: str, grant_type: str) -> None:
    answer = request_token(secret=secret, grant_type=grant_type)

    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    assert pbx.tokens_issued == 0


def test_a_new_token_revokes_the_previous_one(pbx: ThreeCXFake) -> None:
    first = Xapi(request_token().json()["access_token"])
    second = Xapi(request_token().json()["access_token"])

    assert first("GET", "/Users").status_code == 401
    assert second("GET", "/Users").status_code == 200
    assert pbx.tokens_issued == 2
    assert pbx.rejected_tokens == 1


def test_expired_token_is_refused(pbx: ThreeCXFake, xapi: Xapi, clock: Clock) -> None:
    clock.advance(3599)
    assert xapi("GET", "/Users").status_code == 200
    clock.advance(1)
    assert xapi("GET", "/Users").status_code == 401


def test_missing_bearer_is_refused(pbx: ThreeCXFake) -> None:
    answer = requests.get(f"{BASE}/xapi/v1/Users", timeout=5)

    assert answer.status_code == 401
    assert "Bearer" in answer.headers["WWW-Authenticate"]


# -- schema rules ---------------------------------------------------------------------------------
def test_user_property_list_matches_the_official_schema_size() -> None:
    # Pbx.User of 20.0.10 = Pbx.DN (4) + Pbx.ClickToCall (5) + 71 own properties.
    assert len(USER_PROPERTIES) == 80
    assert {"FirstName", "EmailAddress", "MS365SignInEnabled", "ContactImage", "CurrentProfileName"} <= USER_PROPERTIES
    assert "UserPrincipalName" not in USER_PROPERTIES


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_unknown_property_is_rejected_in_odata_shape(pbx: ThreeCXFake, xapi: Xapi, method: str) -> None:
    user = pbx.add_user(FirstName="Ada")
    path = "/Users" if method == "POST" else f"/Users({user['Id']})"

    answer = xapi(method, path, json={"FirstName": "Ada", "UserPrincipalName": "ada@example.com"}, invalid=True)

    assert answer.status_code == 400
    message, target = error_of(answer)
    assert target == "UserPrincipalName"
    assert "does not exist on type 'Pbx.User'" in message
    assert len(pbx.users) == 1


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("Enabled", "yes"),
        ("MS365SignInEnabled", 1),
        ("FirstName", 5),
        ("EmailAddress", ["a@example.com"]),
        ("Mobile", True),
        ("OutboundCallerID", 4930123),
        ("ContactImage", {"url": "x"}),
        ("CurrentProfileName", 2),
        ("PrimaryGroupId", True),
        ("PrimaryGroupId", 2**31),
        ("Id", None),
        ("Tags", None),
        ("Hours", "OfficeHours"),
    ],
)
def test_wrong_json_type_is_rejected(pbx: ThreeCXFake, xapi: Xapi, prop: str, value: Any) -> None:
    answer = xapi("POST", "/Users", json={prop: value}, invalid=True)

    assert answer.status_code == 400
    assert error_of(answer)[1] == prop
    assert pbx.users == {}


def test_nullable_properties_accept_null(pbx: ThreeCXFake, xapi: Xapi) -> None:
    user = pbx.add_user(FirstName="Ada", Mobile="+49301234")

    answer = xapi("PATCH", f"/Users({user['Id']})", json={"Mobile": None})

    assert answer.status_code == 204
    assert pbx.users[user["Id"]]["Mobile"] is None


def test_body_that_is_not_an_object_is_rejected(pbx: ThreeCXFake, xapi: Xapi) -> None:
    assert xapi("POST", "/Users", data="not json", invalid=True).status_code == 400
    assert xapi("POST", "/Users", json=["FirstName"], invalid=True).status_code == 400


# -- users --------------------------------------------------------------------------------------------
def test_create_with_empty_body_gets_number_and_defaults(pbx: ThreeCXFake, xapi: Xapi) -> None:
    answer = xapi("POST", "/Users", json={})

    assert answer.status_code == 201
    created = answer.json()
    assert created["Number"] == "100"
    assert created["Enabled"] is True
    assert created["CurrentProfileName"] == "Available"
    assert answer.headers["Location"].endswith(f"/xapi/v1/Users({created['Id']})")
    assert pbx.users[created["Id"]]["Number"] == "100"


def test_create_fills_display_name_from_first_and_last(pbx: ThreeCXFake, xapi: Xapi) -> None:
    created = xapi("POST", "/Users", json={"FirstName": "Ada", "LastName": "Lovelace", "Id": 0}).json()

    assert created["DisplayName"] == "Ada Lovelace"
    assert created["Id"] != 0


def test_duplicate_number_is_already_in_use(pbx: ThreeCXFake, xapi: Xapi) -> None:
    pbx.add_user(Number="101")

    answer = xapi("POST", "/Users", json={"Number": "101", "FirstName": "Bob"})

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["message"] == "Number:\nWARNINGS.XAPI.ALREADY_IN_USE"
    assert error["details"] == [{"code": "", "message": "WARNINGS.XAPI.ALREADY_IN_USE", "target": "Number"}]
    assert len(pbx.users) == 1


def test_duplicate_email_is_allowed(pbx: ThreeCXFake, xapi: Xapi) -> None:
    pbx.add_user(EmailAddress="ada@example.com")

    assert xapi("POST", "/Users", json={"EmailAddress": "ada@example.com"}).status_code == 201


def test_number_is_immutable_but_may_be_repeated(pbx: ThreeCXFake, xapi: Xapi) -> None:
    user = pbx.add_user(Number="105", FirstName="Ada")

    changed = xapi("PATCH", f"/Users({user['Id']})", json={"Number": "106"})
    same = xapi("PATCH", f"/Users({user['Id']})", json={"Number": "105", "FirstName": "Augusta"})

    assert changed.status_code == 400
    assert error_of(changed) == ("WARNINGS.XAPI.FORBIDDEN_CHANGE", "Number")
    assert same.status_code == 204
    assert pbx.users[user["Id"]]["Number"] == "105"
    assert pbx.users[user["Id"]]["FirstName"] == "Augusta"


def test_get_patch_delete_by_id(pbx: ThreeCXFake, xapi: Xapi) -> None:
    user = pbx.add_user(FirstName="Ada")
    path = f"/Users({user['Id']})"

    assert xapi("GET", path).json()["FirstName"] == "Ada"
    assert xapi("PATCH", path, json={"LastName": "Lovelace"}).status_code == 204
    assert xapi("GET", path).json()["LastName"] == "Lovelace"
    assert xapi("DELETE", path).status_code == 204
    missing = xapi("GET", path)
    assert missing.status_code == 404
    assert error_of(missing)[0] == "WARNINGS.XAPI.NOT_FOUND"
    assert xapi("DELETE", path).status_code == 404


def test_get_by_number_alternate_key(pbx: ThreeCXFake, xapi: Xapi) -> None:
    user = pbx.add_user(Number="101", FirstName="Ada")

    assert xapi("GET", "/Users(Number='101')").json()["Id"] == user["Id"]
    assert xapi("GET", "/Users(Number='999')").status_code == 404


def test_first_available_extension_fills_gaps(clock: Clock) -> None:
    fake = ThreeCXFake(client_id=CLIENT_ID, client_secret=SECRET, clock=clock, first_extension="200")
    for number in ("200", "201", "203", "150"):
        fake.add_user(Number=number)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, BASE, fake)
        xapi = Xapi(request_token().json()["access_token"])
        answer = xapi("GET", "/Users/Pbx.GetFirstAvailableExtensionNumber()")
        created = xapi("POST", "/Users", json={}).json()

    assert answer.json()["Number"] == "202"
    assert created["Number"] == "202"


def test_batch_delete_reports_what_it_could_not_delete(pbx: ThreeCXFake, xapi: Xapi) -> None:
    keep, drop = pbx.add_user(), pbx.add_user()

    answer = xapi("POST", "/Users/Pbx.BatchDelete", json={"ids": [drop["Id"], 9999]})

    assert answer.status_code == 200
    assert [error["Error"] for error in answer.json()["value"]] == ["WARNINGS.XAPI.NOT_FOUND"]
    assert set(pbx.users) == {keep["Id"]}


# -- listing --------------------------------------------------------------------------------------------
def test_paging_with_top_skip_and_count_has_no_next_link(pbx: ThreeCXFake, xapi: Xapi) -> None:
    for _ in range(25):
        pbx.add_user()

    page = xapi("GET", "/Users", params={"$top": 10, "$skip": 20, "$count": "true", "$orderby": "Id"}).json()
    plain = xapi("GET", "/Users", params={"$top": 10}).json()

    assert page["@odata.context"].endswith("/$metadata#Users")
    assert page["@odata.count"] == 25
    assert len(page["value"]) == 5
    assert "@odata.nextLink" not in page
    assert "@odata.count" not in plain
    assert len(plain["value"]) == 10


def test_server_side_page_cap(clock: Clock) -> None:
    fake = ThreeCXFake(client_id=CLIENT_ID, client_secret=SECRET, clock=clock, max_page_size=7)
    for _ in range(10):
        fake.add_user()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, BASE, fake)
        xapi = Xapi(request_token().json()["access_token"])
        page = xapi("GET", "/Users", params={"$top": 100, "$count": "true"}).json()

    assert len(page["value"]) == 7
    assert page["@odata.count"] == 10


def test_orderby_number_and_id(pbx: ThreeCXFake, xapi: Xapi) -> None:
    for number in ("300", "100", "200"):
        pbx.add_user(Number=number)

    by_number = xapi("GET", "/Users", params={"$orderby": "Number desc"}).json()["value"]
    by_id = xapi("GET", "/Users", params={"$orderby": "Id"}).json()["value"]

    assert [user["Number"] for user in by_number] == ["300", "200", "100"]
    assert [user["Number"] for user in by_id] == ["300", "100", "200"]


def test_select_returns_only_those_properties(pbx: ThreeCXFake, xapi: Xapi) -> None:
    pbx.add_user(FirstName="Ada", EmailAddress="ada@example.com")

    users = xapi("GET", "/Users", params={"$select": "Id,EmailAddress"}).json()["value"]
    unknown = xapi("GET", "/Users", params={"$select": "Id,Upn"})

    assert set(users[0]) == {"Id", "EmailAddress"}
    assert unknown.status_code == 400


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("tolower(EmailAddress) eq 'o''brien@example.com'", ["101"]),
        ("EmailAddress eq 'O''Brien@Example.com'", ["101"]),
        ("EmailAddress eq 'o''brien@example.com'", []),
        ("Number eq '102'", ["102"]),
        ("Enabled eq false", ["102"]),
    ],
)
def test_filters(pbx: ThreeCXFake, xapi: Xapi, expression: str, expected: list[str]) -> None:
    pbx.add_user(Number="101", EmailAddress="O'Brien@Example.com")
    pbx.add_user(Number="102", EmailAddress="ada@example.com", Enabled=False)

    users = xapi("GET", "/Users", params={"$filter": expression}).json()["value"]

    assert [user["Number"] for user in users] == expected


def test_filter_by_id(pbx: ThreeCXFake, xapi: Xapi) -> None:
    pbx.add_user()
    second = pbx.add_user()

    users = xapi("GET", "/Users", params={"$filter": f"Id eq {second['Id']}"}).json()["value"]

    assert [user["Id"] for user in users] == [second["Id"]]


@pytest.mark.parametrize(
    "expression",
    ["startswith(EmailAddress,'a')", "Number eq 101", "Upn eq 'x'", "EmailAddress eq 'unterminated"],
)
def test_unsupported_or_ill_typed_filter_is_400(pbx: ThreeCXFake, xapi: Xapi, expression: str) -> None:
    assert xapi("GET", "/Users", params={"$filter": expression}).status_code == 400


def test_bad_query_values_are_400(pbx: ThreeCXFake, xapi: Xapi) -> None:
    assert xapi("GET", "/Users", params={"$top": "ten"}, invalid=True).status_code == 400
    assert xapi("GET", "/Users", params={"$count": "yes"}, invalid=True).status_code == 400
    assert xapi("GET", "/Users", params={"$orderby": "Id sideways"}).status_code == 400


# -- status profiles ---------------------------------------------------------------------------------------
def test_forwarding_profiles_are_the_five(pbx: ThreeCXFake, xapi: Xapi) -> None:
    user = pbx.add_user()

    profiles = xapi("GET", f"/Users({user['Id']})/ForwardingProfiles").json()["value"]

    assert [profile["Name"] for profile in profiles] == list(PROFILE_NAMES)


def test_current_profile_name_takes_only_profile_names(pbx: ThreeCXFake, xapi: Xapi) -> None:
    user = pbx.add_user()
    path = f"/Users({user['Id']})"

    assert xapi("PATCH", path, json={"CurrentProfileName": "Out of office"}).status_code == 204
    refused = xapi("PATCH", path, json={"CurrentProfileName": "Lunch"})

    assert refused.status_code == 400
    assert error_of(refused)[1] == "CurrentProfileName"
    assert pbx.users[user["Id"]]["CurrentProfileName"] == "Out of office"


def test_set_status_helper_is_seen_over_http(pbx: ThreeCXFake, xapi: Xapi) -> None:
    user = pbx.add_user()

    pbx.set_status(user["Id"], "Away")

    assert xapi("GET", f"/Users({user['Id']})").json()["CurrentProfileName"] == "Away"
    with pytest.raises(ValueError, match="Lunch"):
        pbx.set_status(user["Id"], "Lunch")


# -- version ----------------------------------------------------------------------------------------------------
def test_version_from_system_status_and_defs_header(pbx: ThreeCXFake, xapi: Xapi) -> None:
    status = xapi("GET", "/SystemStatus", params={"$select": "Version"}).json()
    defs = xapi("GET", "/Defs", params={"$select": "Id"})

    assert status["Version"] == pbx.version
    assert defs.headers["X-3CX-Version"] == pbx.version


# -- helpers, faults, journal ----------------------------------------------------------------------------------
def test_seed_helpers_enforce_the_same_rules(pbx: ThreeCXFake) -> None:
    ada = pbx.add_user(Number="101", FirstName="Ada")

    with pytest.raises(ValueError, match="does not exist"):
        pbx.add_user(Upn="x")
    with pytest.raises(ValueError, match="in use"):
        pbx.add_user(Number="101")
    assert pbx.user_by_number("101")["Id"] == ada["Id"]
    pbx.delete_user(ada["Id"])
    assert pbx.user_by_number("101") is None
    with pytest.raises(KeyError):
        pbx.delete_user(ada["Id"])


def test_seeded_user_may_have_a_chosen_id(pbx: ThreeCXFake, xapi: Xapi) -> None:
    pbx.add_user(Id=40, FirstName="Ada")

    created = xapi("POST", "/Users", json={}).json()

    assert xapi("GET", "/Users(40)").json()["FirstName"] == "Ada"
    assert created["Id"] == 41
    with pytest.raises(ValueError, match="already in use"):
        pbx.add_user(Id=40)


def test_helpers_return_copies(pbx: ThreeCXFake) -> None:
    ada = pbx.add_user(FirstName="Ada")
    ada["FirstName"] = "changed outside"
    pbx.users[ada["Id"]]["FirstName"] = "changed outside"

    assert pbx.users[ada["Id"]]["FirstName"] == "Ada"


def test_injected_throttling_uses_odata_shape_and_retry_after(pbx: ThreeCXFake, xapi: Xapi) -> None:
    pbx.inject(429, retry_after=3, path_pattern=r"/Users$")

    throttled = xapi("GET", "/Users")
    after = xapi("GET", "/Users")

    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "3"
    assert "message" in throttled.json()["error"]
    assert after.status_code == 200


def test_injected_token_failure_uses_oauth_shape(pbx: ThreeCXFake) -> None:
    pbx.inject(503, path_pattern="/connect/token")

    answer = request_token()

    assert answer.status_code == 503
    assert answer.json()["error"] == "server_error"
    assert pbx.tokens_issued == 0


def test_journal_records_xapi_requests_even_rejected_ones(pbx: ThreeCXFake, xapi: Xapi) -> None:
    before = len(XAPI_JOURNAL)

    xapi("POST", "/Users", json={"Bogus": 1}, invalid=True)
    request_token()
    xapi("GET", "/Nowhere", invalid=True)

    recorded = XAPI_JOURNAL[before:]
    assert [(r.method, r.path) for r in recorded] == [("POST", "/xapi/v1/Users"), ("GET", "/xapi/v1/Nowhere")]
    assert recorded[0].json() == {"Bogus": 1}
    assert recorded[0].headers[DELIBERATELY_INVALID_HEADER] == "1"


def test_clear_journal_empties_it() -> None:
    saved = list(XAPI_JOURNAL)  # other tests' requests belong to the conformance check
    try:
        clear_journal()
        assert XAPI_JOURNAL == []
    finally:
        XAPI_JOURNAL.extend(saved)


def test_journal_can_be_switched_off(clock: Clock) -> None:
    fake = ThreeCXFake(client_id=CLIENT_ID, client_secret=SECRET, clock=clock, journal=False)
    before = len(XAPI_JOURNAL)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, BASE, fake)
        Xapi(request_token().json()["access_token"])("GET", "/Users")

    assert len(XAPI_JOURNAL) == before


def test_secret_is_not_in_repr(pbx: ThreeCXFake) -> None:
    assert SECRET not in repr(pbx)

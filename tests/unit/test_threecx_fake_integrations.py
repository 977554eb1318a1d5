"""The 3CX fake's Microsoft 365 integration, its API client record and the users' MS365 switches.

Plain HTTP to the fake, as in tests/unit/test_threecx_fake.py; every answer the connector
reads is also held against the official document's schema, so the fake cannot drift from
what 3CX publishes. Requests sent wrong on purpose carry `X-Test-Deliberately-Invalid: 1`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from fakes.threecx import ThreeCXFake
from fakes.transport import install
from tests.unit.test_threecx_fake import BASE, CLIENT_ID, SECRET, START, Clock, Xapi, error_of, request_token
from tests.xapi_spec import XapiSpec, locate_spec, missing_spec_reason

SPEC = locate_spec()
needs_spec = pytest.mark.skipif(SPEC is None, reason=missing_spec_reason())
TENANT = "8f2e6d4c-1b3a-4c5d-9e8f-0a1b2c3d4e5f"
APPLICATION = "3a7c9e1b-5d2f-4a6b-8c0d-e1f2a3b4c5d6"
MS365_SWITCHES = ("MS365ContactsEnabled", "MS365CalendarEnabled", "MS365SignInEnabled", "MS365TeamsEnabled")


def _pbx(**options: Any) -> Iterator[ThreeCXFake]:
    fake = ThreeCXFake(client_id=CLIENT_ID, client_secret=SECRET, clock=Clock(START), **options)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, BASE, fake)
        yield fake


@pytest.fixture
def pbx() -> Iterator[ThreeCXFake]:
    yield from _pbx()


@pytest.fixture
def xapi(pbx: ThreeCXFake) -> Xapi:
    return Xapi(request_token().json()["access_token"])


def _entity(response: requests.Response) -> dict[str, Any]:
    """An entity answer without its OData annotations."""
    return {name: value for name, value in response.json().items() if not name.startswith("@odata.")}


def _spec_problems(schema: str, value: Any) -> list[str]:
    assert SPEC is not None
    return XapiSpec.load(SPEC).check_component(schema, value)


# -- GET /Microsoft365Integration ------------------------------------------------------------------------
@needs_spec
def test_a_pbx_never_connected_to_microsoft_365_says_so_in_the_documents_shape(xapi: Xapi) -> None:
    answer = xapi("GET", "/Microsoft365Integration")

    assert answer.status_code == 200
    assert answer.json()["@odata.context"].endswith("/$metadata#Microsoft365Integration")
    integration = _entity(answer)
    assert _spec_problems("Pbx.Microsoft365Integration", integration) == []
    assert (integration["ApplicationId"], integration["TenantId"]) == ("", "")
    ad_users = integration["AdUsers"]
    assert (ad_users["IsEnabled"], ad_users["SyncPersonalContacts"], ad_users["SyncEvents"]) == (False, False, False)
    assert integration["SharedMailboxesSync"]["IsEnabled"] is False


def test_select_cuts_the_answer_and_there_is_nothing_to_expand(xapi: Xapi) -> None:
    answer = xapi("GET", "/Microsoft365Integration", params={"$select": "TenantId,AdUsers"})
    assert set(_entity(answer)) == {"TenantId", "AdUsers"}
    assert xapi("GET", "/Microsoft365Integration", params={"$select": "Secret"}, invalid=True).status_code == 400
    assert xapi("GET", "/Microsoft365Integration", params={"$expand": "AdUsers"}, invalid=True).status_code == 400
    assert xapi("GET", "/Microsoft365Integration", params={"$top": "1"}, invalid=True).status_code == 400


def test_the_integration_needs_the_api_clients_live_token(pbx: ThreeCXFake) -> None:
    assert Xapi("not-a-token")("GET", "/Microsoft365Integration").status_code == 401


# -- PATCH /Microsoft365Integration ----------------------------------------------------------------------
@needs_spec
def test_a_patch_is_kept_and_merges_into_nested_settings(pbx: ThreeCXFake, xapi: Xapi) -> None:
    connect = {"ApplicationId": APPLICATION, "TenantId": TENANT, "AdUsers": {"SyncPersonalContacts": True}}
    assert xapi("PATCH", "/Microsoft365Integration", json=connect).status_code == 204
    assert xapi("PATCH", "/Microsoft365Integration", json={"AdUsers": {"SyncEvents": True}}).status_code == 204

    integration = _entity(xapi("GET", "/Microsoft365Integration"))

    assert (integration["ApplicationId"], integration["TenantId"]) == (APPLICATION, TENANT)
    ad_users = integration["AdUsers"]
    assert (ad_users["SyncPersonalContacts"], ad_users["SyncEvents"], ad_users["IsEnabled"]) == (True, True, False)
    assert ad_users["SyncType"] == "SyncAllUsers"  # untouched by either PATCH
    assert pbx.microsoft365 == integration
    assert _spec_problems("Pbx.Microsoft365Integration", integration) == []


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"Secret": "x"}, "Secret"),
        ({"AdUsers": {"SyncContacts": True}}, "AdUsers.SyncContacts"),  # not a property of ADUsersSyncConfiguration
        ({"AdUsers": {"IsEnabled": "yes"}}, "AdUsers.IsEnabled"),
        ({"AdUsers": {"SyncType": "SyncEveryone"}}, "AdUsers.SyncType"),
        ({"AdUsers": {"SelectedUsers": "ada@contoso.com"}}, "AdUsers.SelectedUsers"),
        ({"TenantId": None}, "TenantId"),  # a string the document does not let be null
        ({"AdUsers": {"StatusSyncConfiguration": {"M365ToPbxBindings": [{"From": "Busy", "To": "Custom 1"}]}}}, None),
        ({"SharedMailboxesSync": {"IsEnabled": 1}}, "SharedMailboxesSync.IsEnabled"),
        ({"Id": 2}, "Id"),
    ],
)
def test_a_patch_the_document_does_not_allow_is_refused_and_changes_nothing(
    pbx: ThreeCXFake, xapi: Xapi, body: dict[str, Any], target: str | None
) -> None:
    before = pbx.microsoft365

    refused = xapi("PATCH", "/Microsoft365Integration", json=body, invalid=True)

    assert refused.status_code == 400
    if target is not None:
        assert error_of(refused)[1] == target
    assert pbx.microsoft365 == before


def test_other_methods_are_not_allowed(xapi: Xapi) -> None:
    assert xapi("POST", "/Microsoft365Integration", json={}, invalid=True).status_code == 405
    assert xapi("DELETE", "/Microsoft365Integration", invalid=True).status_code == 405


def test_the_console_helper_follows_the_same_rules(pbx: ThreeCXFake) -> None:
    changed = pbx.configure_microsoft365(TenantId=TENANT, AdUsers={"IsEnabled": True})
    assert changed["AdUsers"]["IsEnabled"] is True and changed["TenantId"] == TENANT
    with pytest.raises(ValueError, match="does not exist"):
        pbx.configure_microsoft365(AdUsers={"Bogus": True})
    assert pbx.microsoft365["AdUsers"]["IsEnabled"] is True


# -- GET /ServicePrincipals ---------------------------------------------------------------------------------
@needs_spec
def test_the_api_client_is_a_service_principal_whose_number_is_its_client_id(xapi: Xapi) -> None:
    answer = xapi(
        "GET",
        "/ServicePrincipals",
        params={"$filter": f"Number eq '{CLIENT_ID}'", "$select": "Id,Number", "$expand": "Groups($expand=Rights)"},
    )

    assert answer.status_code == 200
    (principal,) = answer.json()["value"]
    assert principal["Number"] == CLIENT_ID
    assert [group["Rights"]["RoleName"] for group in principal["Groups"]] == ["system_admins"]
    assert _spec_problems("Pbx.ServicePrincipal", principal) == []


def test_rights_come_only_when_expanded_and_the_role_is_the_fakes_setting() -> None:
    for _fake in _pbx(api_client_role="users"):
        xapi = Xapi(request_token().json()["access_token"])
        groups_only = xapi("GET", "/ServicePrincipals", params={"$expand": "Groups"}).json()["value"]
        with_rights = xapi("GET", "/ServicePrincipals", params={"$expand": "Groups($expand=Rights)"}).json()["value"]
        nobody = xapi("GET", "/ServicePrincipals", params={"$filter": "Number eq 'someone-else'"}).json()["value"]
        bare = xapi("GET", "/ServicePrincipals").json()["value"]

    assert [set(group) for group in groups_only[0]["Groups"]] == [{"GroupId", "Name", "Number"}]
    assert with_rights[0]["Groups"][0]["Rights"]["RoleName"] == "users"
    assert nobody == []
    assert "Groups" not in bare[0]  # a navigation property: only on $expand


@pytest.mark.parametrize(
    "params",
    [{"$filter": "startswith(Number,'x')"}, {"$expand": "Peers"}, {"$select": "Secret"}, {"$orderby": "Number"}],
)
def test_service_principal_queries_the_fake_cannot_answer_are_refused(xapi: Xapi, params: dict[str, str]) -> None:
    assert xapi("GET", "/ServicePrincipals", params=params, invalid=True).status_code == 400


# -- the users' Microsoft 365 switches ------------------------------------------------------------------------
@needs_spec
def test_the_ms365_switches_round_trip_on_create_patch_and_get(xapi: Xapi) -> None:
    created = xapi("POST", "/Users", json={"FirstName": "Ada", **dict.fromkeys(MS365_SWITCHES, True)})
    assert created.status_code == 201
    user_id = created.json()["Id"]
    assert {name: created.json()[name] for name in MS365_SWITCHES} == dict.fromkeys(MS365_SWITCHES, True)

    changes = {"MS365ContactsEnabled": False, "MS365CalendarEnabled": False}
    assert xapi("PATCH", f"/Users({user_id})", json=changes).status_code == 204

    read = xapi("GET", f"/Users({user_id})", params={"$select": ",".join(MS365_SWITCHES)})
    assert _entity(read) == {
        "MS365ContactsEnabled": False,
        "MS365CalendarEnabled": False,
        "MS365SignInEnabled": True,
        "MS365TeamsEnabled": True,
    }
    full = _entity(xapi("GET", f"/Users({user_id})"))
    assert _spec_problems("Pbx.User", {name: full[name] for name in MS365_SWITCHES}) == []
    listed = xapi("GET", "/Users", params={"$filter": "MS365TeamsEnabled eq true", "$select": "Id"}).json()["value"]
    assert listed == [{"Id": user_id}]


def test_a_new_user_has_every_ms365_switch_off(xapi: Xapi) -> None:
    created = xapi("POST", "/Users", json={"FirstName": "Bob"}).json()
    assert {name: created[name] for name in MS365_SWITCHES} == dict.fromkeys(MS365_SWITCHES, False)


@pytest.mark.parametrize("name", MS365_SWITCHES)
def test_an_ms365_switch_takes_a_boolean_only(pbx: ThreeCXFake, xapi: Xapi, name: str) -> None:
    user_id = xapi("POST", "/Users", json={"FirstName": "Cy"}).json()["Id"]
    refused = xapi("PATCH", f"/Users({user_id})", json={name: "true"}, invalid=True)
    assert refused.status_code == 400
    assert error_of(refused)[1] == name
    assert pbx.users[user_id][name] is False

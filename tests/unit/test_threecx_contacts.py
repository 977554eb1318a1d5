"""3CX phonebooks: the fake's contact rules, the client's contact calls, the personal-phonebook port.

The fake's rules are proven over plain HTTP (so a rule the client happens to respect is still
enforced); the client and the port run their real HTTP code against the same fake through
`responses`. Requests sent wrong on purpose carry `X-Test-Deliberately-Invalid: 1`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from pydantic import ValidationError

from fakes.threecx import XAPI_JOURNAL, ThreeCXFake
from fakes.threecx_contacts import CONTACT_PROPERTIES, NUMBER_PROPERTIES
from fakes.transport import install
from shared.threecx import BULK_DELETE_CHUNK, TcxApiError, ThreeCXClient
from shared.threecx_models import CONTACT_FIELDS, ContactChanges, TcxContact
from tests.pbx_fake_support import BASE, CLIENT_ID, SECRET, Clock, Xapi
from tests.xapi_spec import XapiSpec, default_spec_path

OLD_VERSION = "20.0.8.1109"  # before the bulk delete action was renamed


def service_token() -> str:
    form = {"client_id": CLIENT_ID, "client_secret": SECRET, "grant_type": "client_credentials"}
    return requests.post(f"{BASE}/connect/token", data=form, timeout=5).json()["access_token"]


def warning_of(response: requests.Response) -> str:
    """The WARNINGS key (or message) of an OData error answer."""
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "details"}
    return error["details"][0]["message"] if error["details"] else error["message"]


def journal_since(mark: int) -> list[tuple[str, str]]:
    return [(request.method, request.path) for request in XAPI_JOURNAL[mark:]]


def person(first: str, number: str = "+4930123456", **fields: Any) -> dict[str, Any]:
    return {"FirstName": first, "PhoneNumber": number, **fields}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as requests_mock:
        yield requests_mock


def make_pbx(mock: responses.RequestsMock, clock: Clock, **options: Any) -> ThreeCXFake:
    fake = ThreeCXFake(client_id=CLIENT_ID, client_secret=SECRET, clock=clock, **options)
    install(mock, BASE, fake)
    return fake


def make_client(clock: Clock, **options: Any) -> ThreeCXClient:
    return ThreeCXClient(BASE, CLIENT_ID, SECRET, clock=clock, sleep=lambda _seconds: None, **options)


@pytest.fixture
def pbx(mock: responses.RequestsMock, clock: Clock) -> ThreeCXFake:
    return make_pbx(mock, clock)


@pytest.fixture
def xapi(pbx: ThreeCXFake) -> Xapi:
    return Xapi(service_token())


@pytest.fixture
def client(pbx: ThreeCXFake, clock: Clock) -> ThreeCXClient:
    return make_client(clock)


# == the fake: company phonebook rules ==================================================================
def test_contact_property_list_is_pbx_contact() -> None:
    assert len(CONTACT_PROPERTIES) == 17
    assert {"Id", "ContactType", "Tag", "PhoneNumber", "Mobile2"} <= CONTACT_PROPERTIES
    assert "Mobile" not in CONTACT_PROPERTIES
    assert set(CONTACT_FIELDS) == CONTACT_PROPERTIES - {"Id", "ContactType"}


def test_created_contact_gets_an_id_and_contact_type_3cx(pbx: ThreeCXFake, xapi: Xapi) -> None:
    answer = xapi("POST", "/Contacts", json=person("Nikolai", "1234567890"))

    assert answer.status_code == 201
    created = answer.json()
    assert created["ContactType"] == "3CX"
    assert answer.headers["Location"].endswith(f"/xapi/v1/Contacts({created['Id']})")
    assert pbx.company_contacts[created["Id"]]["FirstName"] == "Nikolai"
    assert xapi("GET", f"/Contacts({created['Id']})").json()["PhoneNumber"] == "1234567890"


def test_contact_type_given_in_the_body_is_kept(pbx: ThreeCXFake, xapi: Xapi) -> None:
    created = xapi("POST", "/Contacts", json=person("Ada", ContactType="M365")).json()

    assert pbx.company_contacts[created["Id"]]["ContactType"] == "M365"


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_property_not_in_pbx_contact_is_400(pbx: ThreeCXFake, xapi: Xapi, method: str) -> None:
    existing = pbx.add_contact(**person("Ada"))
    path = "/Contacts" if method == "POST" else f"/Contacts({existing['Id']})"

    answer = xapi(method, path, json={**person("Ada"), "Mobile": "+4930999"}, invalid=True)

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["details"][0]["target"] == "Mobile"
    assert "does not exist on type 'Pbx.Contact'" in error["details"][0]["message"]
    assert list(pbx.company_contacts.values()) == [existing]


@pytest.mark.parametrize(("prop", "value"), [("FirstName", 5), ("Tag", ["m365:x"]), ("ContactType", "Outlook")])
def test_wrong_json_type_or_enum_is_400(pbx: ThreeCXFake, xapi: Xapi, prop: str, value: Any) -> None:
    answer = xapi("POST", "/Contacts", json={**person("Ada"), prop: value}, invalid=True)

    assert answer.status_code == 400
    assert answer.json()["error"]["details"][0]["target"] == prop
    assert pbx.company_contacts == {}


@pytest.mark.parametrize("body", [{"PhoneNumber": "123"}, {"FirstName": " ", "LastName": None, "PhoneNumber": "1"}])
def test_contact_without_any_name_is_refused(pbx: ThreeCXFake, xapi: Xapi, body: dict[str, Any]) -> None:
    answer = xapi("POST", "/Contacts", json=body)

    assert answer.status_code == 400
    assert warning_of(answer) == "WARNINGS.CONTACTS_SPECIFY_NAME_SURNAME_COMPANY"
    assert pbx.company_contacts == {}


@pytest.mark.parametrize("name", ["FirstName", "LastName", "CompanyName"])
def test_any_one_name_is_enough(pbx: ThreeCXFake, xapi: Xapi, name: str) -> None:
    assert xapi("POST", "/Contacts", json={name: "Contoso", "Pager": "555"}).status_code == 201


def test_contact_without_any_number_is_refused(pbx: ThreeCXFake, xapi: Xapi) -> None:
    answer = xapi("POST", "/Contacts", json={"FirstName": "Ada", "Email": "ada@example.com", "PhoneNumber": ""})

    assert answer.status_code == 400
    assert warning_of(answer) == "WARNINGS.CONTACTS_SPECIFY_PHONE_NUMBER"


@pytest.mark.parametrize("number_field", NUMBER_PROPERTIES)
def test_any_one_number_is_enough(pbx: ThreeCXFake, xapi: Xapi, number_field: str) -> None:
    assert xapi("POST", "/Contacts", json={"LastName": "Lovelace", number_field: "+4930123"}).status_code == 201


def test_patch_may_not_leave_a_contact_without_name_or_number(pbx: ThreeCXFake, xapi: Xapi) -> None:
    contact = pbx.add_contact(FirstName="Ada", PhoneNumber="+4930123", Home="+4930456")

    no_name = xapi("PATCH", f"/Contacts({contact['Id']})", json={"FirstName": None})
    one_number_left = xapi("PATCH", f"/Contacts({contact['Id']})", json={"PhoneNumber": ""})
    no_number = xapi("PATCH", f"/Contacts({contact['Id']})", json={"Home": None})

    assert warning_of(no_name) == "WARNINGS.CONTACTS_SPECIFY_NAME_SURNAME_COMPANY"
    assert one_number_left.status_code == 204
    assert warning_of(no_number) == "WARNINGS.CONTACTS_SPECIFY_PHONE_NUMBER"
    assert pbx.company_contacts[contact["Id"]]["Home"] == "+4930456"


def test_company_limit_is_limit_reached(mock: responses.RequestsMock, clock: Clock) -> None:
    pbx = make_pbx(mock, clock, max_company_contacts=2)
    xapi = Xapi(service_token())
    pbx.add_contact(**person("One"))
    assert xapi("POST", "/Contacts", json=person("Two")).status_code == 201

    answer = xapi("POST", "/Contacts", json=person("Three"))

    assert answer.status_code == 400
    assert warning_of(answer) == "WARNINGS.LIMIT_REACHED"
    assert len(pbx.company_contacts) == 2
    with pytest.raises(ValueError, match="LIMIT_REACHED"):
        pbx.add_contact(**person("By hand"))


def test_get_patch_delete_by_id_and_404_shape(pbx: ThreeCXFake, xapi: Xapi) -> None:
    contact = pbx.add_contact(**person("Ada", Tag="m365:a"))
    path = f"/Contacts({contact['Id']})"

    assert xapi("PATCH", path, json={"LastName": "Lovelace", "Tag": "m365:b"}).status_code == 204
    assert xapi("GET", path, params={"$select": "LastName,Tag"}).json() == {
        "@odata.context": f"{BASE}/xapi/v1/$metadata#Contacts/$entity",
        "LastName": "Lovelace",
        "Tag": "m365:b",
    }
    assert xapi("DELETE", path).status_code == 204
    for method in ("GET", "PATCH", "DELETE"):
        gone = xapi(method, path, json={"LastName": "x"} if method == "PATCH" else None)
        assert gone.status_code == 404
        assert warning_of(gone) == "WARNINGS.XAPI.NOT_FOUND"
    assert pbx.company_contacts == {}


def test_id_cannot_be_changed(pbx: ThreeCXFake, xapi: Xapi) -> None:
    contact = pbx.add_contact(**person("Ada"))

    answer = xapi("PATCH", f"/Contacts({contact['Id']})", json={"Id": contact["Id"] + 1})

    assert warning_of(answer) == "WARNINGS.XAPI.FORBIDDEN_CHANGE"


# -- listing ---------------------------------------------------------------------------------------------
@pytest.fixture
def tagged(pbx: ThreeCXFake) -> dict[str, int]:
    """Entries of two mailboxes, one with a quote in its tag, and one made by hand."""
    entries = {
        "ada": pbx.add_contact(**person("Ada", Tag="m365:sales:1")),
        "bob": pbx.add_contact(**person("Bob", Tag="m365:sales:2")),
        "sean": pbx.add_contact(**person("Seán", Tag="m365:o'brien:1")),
        "hand": pbx.add_contact(**person("Hand")),
    }
    return {name: contact["Id"] for name, contact in entries.items()}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("Tag eq 'm365:sales:1'", ["ada"]),
        ("startswith(Tag,'m365:')", ["ada", "bob", "sean"]),
        ("startswith(Tag, 'm365:sales:')", ["ada", "bob"]),
        ("Tag eq 'm365:o''brien:1'", ["sean"]),
        ("startswith(Tag,'m365:') and FirstName ne 'Bob'", ["ada", "sean"]),
        ("Tag eq 'm365:sales:2' or Tag eq ''", ["bob", "hand"]),
        ("not startswith(Tag,'m365:')", ["hand"]),
        ("(FirstName eq 'Ada' or FirstName eq 'Bob') and endswith(Tag,':2')", ["bob"]),
        ("contains(tolower(FirstName),'se')", ["sean"]),
        ("startswith(Tag,'M365:')", []),
    ],
)
def test_filters(xapi: Xapi, tagged: dict[str, int], expression: str, expected: list[str]) -> None:
    found = xapi("GET", "/Contacts", params={"$filter": expression, "$orderby": "Id"}).json()["value"]

    names = {contact_id: name for name, contact_id in tagged.items()}
    assert [names[contact["Id"]] for contact in found] == expected


def test_filter_by_id(xapi: Xapi, tagged: dict[str, int]) -> None:
    found = xapi("GET", "/Contacts", params={"$filter": f"Id eq {tagged['bob']}"}).json()["value"]

    assert [contact["FirstName"] for contact in found] == ["Bob"]


@pytest.mark.parametrize(
    "expression",
    [
        "Tag eq 'unterminated",
        "Shoe eq 'x'",
        "startswith(Id,'1')",
        "Tag eq 5",
        "Id eq '5'",
        "Tag gt 'm365:'",
        "startswith(Tag,'m365:'",
        "Tag eq 'a' and",
        "substringof('x',Tag)",
    ],
)
def test_unsupported_or_ill_typed_filter_is_400(xapi: Xapi, tagged: dict[str, int], expression: str) -> None:
    assert xapi("GET", "/Contacts", params={"$filter": expression}).status_code == 400


def test_paging_with_top_skip_count_and_orderby(pbx: ThreeCXFake, xapi: Xapi) -> None:
    for index in range(25):
        pbx.add_contact(**person(f"Person{index:02d}"))

    page = xapi("GET", "/Contacts", params={"$top": 10, "$skip": 20, "$count": "true", "$orderby": "Id"}).json()
    plain = xapi("GET", "/Contacts", params={"$top": 3, "$orderby": "FirstName desc"}).json()

    assert page["@odata.context"].endswith("/$metadata#Contacts")
    assert page["@odata.count"] == 25
    assert [contact["FirstName"] for contact in page["value"]] == [f"Person{i:02d}" for i in range(20, 25)]
    assert "@odata.nextLink" not in page
    assert "@odata.count" not in plain
    assert [contact["FirstName"] for contact in plain["value"]] == ["Person24", "Person23", "Person22"]


def test_select_returns_only_those_properties(pbx: ThreeCXFake, xapi: Xapi) -> None:
    pbx.add_contact(**person("Ada", Tag="m365:x"))

    [contact] = xapi("GET", "/Contacts", params={"$select": "Id,Tag"}).json()["value"]

    assert set(contact) == {"Id", "Tag"}
    assert xapi("GET", "/Contacts", params={"$select": "Id,Mobile"}).status_code == 400


def test_bad_query_options_are_400(xapi: Xapi) -> None:
    assert xapi("GET", "/Contacts", params={"$top": "ten"}, invalid=True).status_code == 400
    assert xapi("GET", "/Contacts", params={"$count": "yes"}, invalid=True).status_code == 400
    assert xapi("GET", "/Contacts", params={"$orderby": "Id sideways"}).status_code == 400
    assert xapi("GET", "/Contacts", params={"$orderby": "Mobile"}).status_code == 400


def test_server_side_page_cap_applies_to_contacts(mock: responses.RequestsMock, clock: Clock) -> None:
    pbx = make_pbx(mock, clock, max_page_size=4)
    for index in range(6):
        pbx.add_contact(**person(f"P{index}"))
    xapi = Xapi(service_token())

    page = xapi("GET", "/Contacts", params={"$top": 100, "$count": "true"}).json()

    assert (len(page["value"]), page["@odata.count"]) == (4, 6)


# -- bulk delete, by version -----------------------------------------------------------------------------
def test_delete_contacts_by_id_on_20_0_10(pbx: ThreeCXFake, xapi: Xapi) -> None:
    keep, drop_one, drop_two = (pbx.add_contact(**person(name)) for name in ("Keep", "Drop1", "Drop2"))

    answer = xapi("POST", "/Contacts/Pbx.DeleteContactsById", json={"ids": [drop_one["Id"], drop_two["Id"], 9999]})

    assert answer.status_code == 204
    assert list(pbx.company_contacts) == [keep["Id"]]


def test_the_old_bulk_name_is_404_on_20_0_10(pbx: ThreeCXFake, xapi: Xapi) -> None:
    contact = pbx.add_contact(**person("Ada"))

    # Not in the 20.0.10 document at all, hence marked for the conformance check.
    answer = xapi("POST", "/Contacts/Pbx.BatchContactsDelete", json={"ids": [contact["Id"]]}, invalid=True)

    assert answer.status_code == 404
    assert list(pbx.company_contacts) == [contact["Id"]]


def test_before_20_0_9_only_the_old_bulk_name_exists(mock: responses.RequestsMock, clock: Clock) -> None:
    pbx = make_pbx(mock, clock, version=OLD_VERSION)
    first, second = pbx.add_contact(**person("Ada")), pbx.add_contact(**person("Bob"))
    xapi = Xapi(service_token())

    new_name = xapi("POST", "/Contacts/Pbx.DeleteContactsById", json={"ids": [first["Id"]]})
    old_name = xapi("POST", "/Contacts/Pbx.BatchContactsDelete", json={"ids": [second["Id"]]}, invalid=True)

    assert new_name.status_code == 404
    assert old_name.status_code == 204
    assert list(pbx.company_contacts) == [first["Id"]]


def test_the_old_bulk_request_fits_the_20_0_8_document(mock: responses.RequestsMock, clock: Clock) -> None:
    old_spec = default_spec_path().with_name("3cx-xapi-20.0.8.yaml")
    if not old_spec.is_file():
        pytest.skip(f"the 20.0.8 OpenAPI document is not at {old_spec}")
    pbx = make_pbx(mock, clock, version=OLD_VERSION)
    contact = pbx.add_contact(**person("Ada"))
    mark = len(XAPI_JOURNAL)

    answer = Xapi(service_token())(
        "POST", "/Contacts/Pbx.BatchContactsDelete", json={"ids": [contact["Id"]]}, invalid=True
    )

    assert answer.status_code == 204
    [request] = XAPI_JOURNAL[mark:]
    assert XapiSpec.load(old_spec).check(request) == []


@pytest.mark.parametrize("body", [{"ids": "1,2"}, {"ids": [1, "2"]}, {"Ids": [1]}, {"ids": [1], "more": True}])
def test_bulk_delete_takes_only_a_list_of_integer_ids(pbx: ThreeCXFake, xapi: Xapi, body: dict[str, Any]) -> None:
    contact = pbx.add_contact(**person("Ada"))

    answer = xapi("POST", "/Contacts/Pbx.DeleteContactsById", json=body, invalid=True)

    assert answer.status_code == 400
    assert contact["Id"] in pbx.company_contacts


# -- helpers ---------------------------------------------------------------------------------------------
def test_add_contact_enforces_the_api_rules_and_returns_copies(pbx: ThreeCXFake) -> None:
    with pytest.raises(ValueError, match="does not exist on type 'Pbx.Contact'"):
        pbx.add_contact(**person("Ada", Mobile="123"))
    with pytest.raises(ValueError, match="CONTACTS_SPECIFY_PHONE_NUMBER"):
        pbx.add_contact(FirstName="Ada")

    contact = pbx.add_contact(**person("Ada"))
    contact["FirstName"] = "changed"
    pbx.company_contacts[contact["Id"]]["FirstName"] = "changed too"

    assert pbx.company_contacts[contact["Id"]]["FirstName"] == "Ada"
    assert pbx.company_contacts[contact["Id"]]["ContactType"] == "3CX"


def test_hand_edits_follow_the_same_rules(pbx: ThreeCXFake) -> None:
    company = pbx.add_contact(**person("Ada"))

    edited = pbx.update_contact(company["Id"], Title="Countess")
    with pytest.raises(ValueError, match="CONTACTS_SPECIFY_PHONE_NUMBER"):
        pbx.update_contact(company["Id"], PhoneNumber=None)
    with pytest.raises(ValueError, match="No contact"):
        pbx.update_contact(company["Id"] + 1, Title="no such entry")

    assert edited["Title"] == pbx.company_contacts[company["Id"]]["Title"] == "Countess"
    pbx.delete_contact(company["Id"])
    with pytest.raises(KeyError):
        pbx.delete_contact(company["Id"])
    assert pbx.company_contacts == {}


# == the fake: no MyPhone session ======================================================================
def test_the_myphone_session_route_answers_like_an_unknown_route(pbx: ThreeCXFake, xapi: Xapi) -> None:
    """The fake offers only what 3CX publishes: no session that impersonates a user, no personal book."""
    pbx.add_user(Number="101")
    body = {"name": "test", "version": "1.0", "isHuman": False, "impersonate": "101"}
    headers = {"Authorization": f"Bearer {xapi.token}"}
    mark = len(XAPI_JOURNAL)

    session = requests.post(f"{BASE}/webclient/api/MyPhone/session", json=body, headers=headers, timeout=5)
    unknown = requests.post(f"{BASE}/webclient/api/NoSuchThing", json=body, headers=headers, timeout=5)

    assert session.status_code == unknown.status_code == 404
    assert (session.headers.get("Content-Type"), session.content) == (
        unknown.headers.get("Content-Type"),
        unknown.content,
    )
    assert journal_since(mark) == []


# == the client: company phonebook ======================================================================
def test_list_contacts_pages_in_id_order(pbx: ThreeCXFake, clock: Clock) -> None:
    for index in range(250):
        pbx.add_contact(**person(f"P{index}", Tag=f"m365:x:{index}"))
    mark = len(XAPI_JOURNAL)

    contacts = make_client(clock, page_size=100).list_contacts()

    assert [contact.id for contact in contacts] == sorted(pbx.company_contacts)
    pages = XAPI_JOURNAL[mark:]
    assert [request.query["$skip"] for request in pages] == ["0", "100", "200"]
    assert {(request.query["$orderby"], request.query["$top"]) for request in pages} == {("Id", "100")}
    assert all(isinstance(contact, TcxContact) for contact in contacts)


def test_list_contacts_survives_a_server_that_caps_pages(mock: responses.RequestsMock, clock: Clock) -> None:
    pbx = make_pbx(mock, clock, max_page_size=40)
    for index in range(90):
        pbx.add_contact(**person(f"P{index}"))

    contacts = make_client(clock, page_size=1000).list_contacts()

    assert len({contact.id for contact in contacts}) == 90


def test_list_contacts_sends_the_filter(pbx: ThreeCXFake, client: ThreeCXClient, tagged: dict[str, int]) -> None:
    mark = len(XAPI_JOURNAL)

    mine = client.list_contacts("startswith(Tag,'m365:')")
    quoted = client.list_contacts("Tag eq 'm365:o''brien:1'")

    assert [contact.id for contact in mine] == [tagged["ada"], tagged["bob"], tagged["sean"]]
    assert [contact.first_name for contact in quoted] == ["Seán"]
    assert XAPI_JOURNAL[mark].query["$filter"] == "startswith(Tag,'m365:')"
    assert "%20" in XAPI_JOURNAL[mark + 1].url  # spaces as %20, not '+'


def test_create_update_and_read_back(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    created = client.create_contact({"FirstName": "Ada", "LastName": "Lovelace", "Business": "+4930123", "Tag": "t"})

    assert created.contact_type == "3CX"
    assert created.model_dump(by_alias=True)["Business"] == "+4930123"
    client.update_contact(created.id, {"Title": "Countess", "Business": None, "Mobile2": "+4917012"})
    stored = pbx.company_contacts[created.id]
    assert (stored["Title"], stored["Business"], stored["Mobile2"]) == ("Countess", None, "+4917012")
    assert stored["LastName"] == "Lovelace"  # not sent, not touched


def test_update_sends_only_the_given_fields(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    contact = pbx.add_contact(**person("Ada"))
    mark = len(XAPI_JOURNAL)

    client.update_contact(contact["Id"], {"Email": "ada@example.com"})

    assert json.loads(XAPI_JOURNAL[mark].body) == {"Email": "ada@example.com"}


@pytest.mark.parametrize(
    "fields", [{"FirstName": "Ada", "Mobile": "1"}, {"FirstName": "Ada", "ContactType": "M365"}, {"PhoneNumber": 49}]
)
def test_contact_changes_refuse_unwritable_or_ill_typed_fields(
    pbx: ThreeCXFake, client: ThreeCXClient, fields: dict[str, Any]
) -> None:
    mark = len(XAPI_JOURNAL)

    with pytest.raises(ValidationError):
        client.create_contact(fields)

    assert XAPI_JOURNAL[mark:] == []
    assert set(ContactChanges.model_validate({"Tag": "x"}).body()) == {"Tag"}


def test_pbx_refusal_surfaces_its_warning(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    with pytest.raises(TcxApiError) as raised:
        client.create_contact({"Email": "nobody@example.com", "PhoneNumber": "1"})

    assert raised.value.status == 400
    assert raised.value.code == "WARNINGS.CONTACTS_SPECIFY_NAME_SURNAME_COMPANY"


def test_delete_contact_treats_404_as_done(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    contact = pbx.add_contact(**person("Ada"))

    client.delete_contact(contact["Id"])
    client.delete_contact(contact["Id"])

    assert pbx.company_contacts == {}


def test_delete_contacts_in_bulk_on_20_0_10(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    contacts = [pbx.add_contact(**person(f"P{index}")) for index in range(BULK_DELETE_CHUNK + 5)]
    keep = pbx.add_contact(**person("Keep"))
    mark = len(XAPI_JOURNAL)

    client.delete_contacts([contact["Id"] for contact in contacts])

    assert journal_since(mark) == [("POST", "/xapi/v1/Contacts/Pbx.DeleteContactsById")] * 2
    assert [len(json.loads(request.body)["ids"]) for request in XAPI_JOURNAL[mark:]] == [BULK_DELETE_CHUNK, 5]
    assert list(pbx.company_contacts) == [keep["Id"]]


def test_delete_contacts_falls_back_to_one_by_one_before_20_0_9(mock: responses.RequestsMock, clock: Clock) -> None:
    pbx = make_pbx(mock, clock, version=OLD_VERSION)
    first, second, third = (pbx.add_contact(**person(name)) for name in ("A", "B", "C"))
    client = make_client(clock)
    mark = len(XAPI_JOURNAL)

    client.delete_contacts([first["Id"], second["Id"], 4242])
    client.delete_contacts([third["Id"]])

    assert journal_since(mark) == [
        ("POST", "/xapi/v1/Contacts/Pbx.DeleteContactsById"),  # tried once, answered 404
        ("DELETE", f"/xapi/v1/Contacts({first['Id']})"),
        ("DELETE", f"/xapi/v1/Contacts({second['Id']})"),
        ("DELETE", "/xapi/v1/Contacts(4242)"),  # already gone: fine
        ("DELETE", f"/xapi/v1/Contacts({third['Id']})"),  # remembered: no second try of the bulk call
    ]
    assert pbx.company_contacts == {}


def test_delete_contacts_of_nothing_sends_nothing(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    mark = len(XAPI_JOURNAL)

    client.delete_contacts([])

    assert XAPI_JOURNAL[mark:] == []


def test_other_bulk_delete_errors_are_raised(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    pbx.inject(403, path_pattern=r"DeleteContactsById", method="POST")

    with pytest.raises(TcxApiError) as raised:
        client.delete_contacts([1])

    assert raised.value.status == 403

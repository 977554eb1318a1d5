"""Outlook contacts: the Graph fake's folders, listing and per-folder delta, and
GraphClient.contact_folders / contacts_delta with GraphContact.

The fake enforces Graph's contact rules (delta per folder, `$select` kept in the tokens,
page size from `Prefer: odata.maxpagesize`, REST ids that change on a move unless
`Prefer: IdType="ImmutableId"`, expiring tokens); the client must walk the whole folder
tree, read each folder in few requests, merge repeats, and restart a dropped round.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from fakes.graph import GraphFake
from fakes.transport import FakeRequest, FakeResponse, install
from shared.graph import CONTACT_PAGE_SIZE, GraphApiError, GraphClient
from shared.graph_models import CONTACT_SELECT, GraphContact

ROOT = "https://graph.fake.test"
GRAPH = f"{ROOT}/v1.0"
TENANT = "6f1c2b9e-0d7a-4c55-9d0e-3b1f2a4c5d6e"
CLIENT = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
SECRET = "s3cr3t-value~for.tests"
HOOK = "https://connector.example/api/graph/notifications?code=function-key-value"
NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
IMMUTABLE = 'IdType="ImmutableId"'


class Webhook:
    """The connector's webhook as the fake reaches it: answers handshakes, records notifications."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []

    def __call__(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        query = parse_qs(urlsplit(url).query)
        if "validationToken" in query:
            return 200, {"Content-Type": "text/plain; charset=utf-8"}, query["validationToken"][0].encode()
        self.notifications.extend(json.loads(body)["value"])
        return 202, {}, b""


@pytest.fixture
def webhook() -> Webhook:
    return Webhook()


@pytest.fixture
def fake(webhook: Webhook) -> Iterator[GraphFake]:
    graph = GraphFake(
        tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET, clock=lambda: NOW.timestamp(), deliver=webhook
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, ROOT, graph)
        yield graph


@pytest.fixture
def client(fake: GraphFake) -> GraphClient:
    token = fake.issue_token()
    return GraphClient(ROOT, lambda: token, sleep=lambda _: None)


@pytest.fixture
def http(fake: GraphFake) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {fake.issue_token()}"
    return session


@pytest.fixture
def ada(fake: GraphFake) -> str:
    return fake.add_user("ada@contoso.test")


@pytest.fixture
def recorded(fake: GraphFake, monkeypatch: pytest.MonkeyPatch) -> list[FakeRequest]:
    """Every Graph request the fake serves from now on."""
    seen: list[FakeRequest] = []
    original = fake.route

    def recording(request: FakeRequest) -> FakeResponse:
        seen.append(request)
        return original(request)

    monkeypatch.setattr(fake, "route", recording)
    return seen


def person(given: str, surname: str, **fields: Any) -> dict[str, Any]:
    address = f"{given}.{surname}@partner.test".lower()
    return {"givenName": given, "surname": surname, "emailAddresses": [{"name": given, "address": address}], **fields}


def by_id(contacts: list[GraphContact]) -> dict[str, GraphContact]:
    return {contact.id: contact for contact in contacts}


# -- folder tree -----------------------------------------------------------------------------
def test_contact_folders_walks_the_whole_tree_without_the_default_folder(
    fake: GraphFake, client: GraphClient, ada: str
) -> None:
    default = fake.default_contact_folder_id(ada)
    work = fake.add_contact_folder(ada, "Work")
    family = fake.add_contact_folder(ada, "Family")
    suppliers = fake.add_contact_folder(ada, "Suppliers", work)
    overseas = fake.add_contact_folder(ada, "Overseas", suppliers)
    fake.add_contact_folder(fake.add_user("bob@contoso.test"), "Bob's own")

    fake.reset_counts()
    folders = client.contact_folders(ada)

    assert [folder.id for folder in folders] == [work, family, suppliers, overseas]  # parents first
    parents = {folder.display_name: folder.parent_folder_id for folder in folders}
    assert parents == {"Work": default, "Family": default, "Suppliers": work, "Overseas": suppliers}
    assert default not in {folder.id for folder in folders}
    # one listing of the top level, one of each folder's children
    assert fake.route_counts["GET /users/{key}/contactFolders"] == 1
    assert fake.route_counts["GET /users/{key}/contactFolders/{folder}/childFolders"] == 4


def test_contact_folders_of_a_mailbox_without_folders_is_empty(fake: GraphFake, client: GraphClient, ada: str) -> None:
    fake.add_contact(ada, **person("Grace", "Hopper"))
    assert client.contact_folders(ada) == []


def test_contact_folders_follows_pages(fake: GraphFake, client: GraphClient, ada: str) -> None:
    names = [f"Region {index:03d}" for index in range(CONTACT_PAGE_SIZE + 20)]
    for name in names:
        fake.add_contact_folder(ada, name)
    fake.reset_counts()

    folders = client.contact_folders(ada)

    assert [folder.display_name for folder in folders] == names
    assert fake.route_counts["GET /users/{key}/contactFolders"] == 2  # 500 + 20


def test_shared_mailbox_is_reached_by_its_address(fake: GraphFake, client: GraphClient) -> None:
    shared = fake.add_user("sales-mailbox@contoso.onmicrosoft.test", mail="sales@contoso.test", account_enabled=False)
    folder = fake.add_contact_folder(shared, "Key accounts")
    in_default = fake.add_contact(shared, **person("Linus", "Pauling"))
    in_folder = fake.add_contact(shared, folder, **person("Lise", "Meitner"))

    assert [f.id for f in client.contact_folders("sales@contoso.test")] == [folder]
    assert set(by_id(client.contacts_delta("sales@contoso.test", None, None).contacts)) == {in_default}
    assert set(by_id(client.contacts_delta("sales@contoso.test", folder, None).contacts)) == {in_folder}


# -- delta: initial, incremental, removals -----------------------------------------------------
def test_initial_round_reads_the_folder_with_the_selected_fields(
    fake: GraphFake, client: GraphClient, ada: str
) -> None:
    default = fake.default_contact_folder_id(ada)
    work = fake.add_contact_folder(ada, "Work")
    grace = fake.add_contact(
        ada,
        **person(
            "Grace",
            "Hopper",
            companyName="US Navy",
            jobTitle="Rear Admiral",
            department="Computing",
            businessPhones=["+1 202 555 0100"],
            homePhones=["+1 202 555 0199"],
            mobilePhone="+1 202 555 0142",
        ),
    )
    fake.add_contact(ada, work, **person("Alan", "Turing"))

    result = client.contacts_delta(ada, None, None)

    assert result.full is True
    assert result.delta_link.startswith(f"{GRAPH}/users/{ada}/contacts/delta?$deltatoken=")
    [contact] = result.contacts  # the default folder only, not the child folder
    assert contact.id == grace
    assert not contact.is_removed
    assert (contact.given_name, contact.surname, contact.display_name) == ("Grace", "Hopper", "Grace Hopper")
    assert (contact.company_name, contact.job_title, contact.department) == ("US Navy", "Rear Admiral", "Computing")
    assert [(e.name, e.address) for e in contact.email_addresses] == [("Grace", "grace.hopper@partner.test")]
    assert contact.business_phones == ["+1 202 555 0100"]
    assert contact.home_phones == ["+1 202 555 0199"]
    assert contact.mobile_phone == "+1 202 555 0142"
    assert contact.parent_folder_id == default


def test_every_request_asks_for_immutable_ids_big_pages_and_only_the_mapped_fields(
    fake: GraphFake, client: GraphClient, ada: str, recorded: list[FakeRequest]
) -> None:
    work = fake.add_contact_folder(ada, "Work")
    fake.add_contact(ada, work, **person("Alan", "Turing", personalNotes="owes me a book"))
    link = client.contacts_delta(ada, work, None).delta_link
    client.contacts_delta(ada, work, link)
    client.contact_folders(ada)

    assert len(recorded) == 4
    for request in recorded:
        preferences = [part.strip() for part in request.headers["Prefer"].split(",")]
        assert IMMUTABLE in preferences
        assert f"odata.maxpagesize={CONTACT_PAGE_SIZE}" in preferences
    first = recorded[0]
    assert first.path.endswith(f"/contactFolders/{work}/contacts/delta")
    assert set(first.query["$select"].split(",")) == set(CONTACT_SELECT)
    assert "$select" not in recorded[1].query  # the delta link carries it


def test_select_keeps_private_fields_out_of_the_answer(fake: GraphFake, http: requests.Session, ada: str) -> None:
    fake.add_contact(ada, **person("Alan", "Turing", personalNotes="owes me a book", birthday="1912-06-23"))
    select = ",".join(CONTACT_SELECT)
    first = http.get(f"{GRAPH}/users/{ada}/contacts/delta", params={"$select": select}).json()
    later = http.get(first["@odata.deltaLink"]).json()  # nothing changed: an empty round
    [item] = first["value"]

    assert "personalNotes" not in item and "birthday" not in item
    assert item["givenName"] == "Alan"
    assert later["value"] == []


def test_incremental_round_returns_only_changes_and_removals(fake: GraphFake, client: GraphClient, ada: str) -> None:
    kept = fake.add_contact(ada, **person("Marie", "Curie"))
    changed = fake.add_contact(ada, **person("Alan", "Turing"))
    deleted = fake.add_contact(ada, **person("Ada", "Lovelace"))
    first = client.contacts_delta(ada, None, None)
    assert set(by_id(first.contacts)) == {kept, changed, deleted}

    fake.update_contact(ada, changed, mobilePhone="+44 20 7946 0000")
    fake.delete_contact(ada, deleted)
    added = fake.add_contact(ada, **person("Emmy", "Noether"))
    fake.reset_counts()
    second = client.contacts_delta(ada, None, first.delta_link)

    assert second.full is False
    contacts = by_id(second.contacts)
    assert set(contacts) == {changed, deleted, added}
    assert contacts[changed].mobile_phone == "+44 20 7946 0000"
    assert contacts[deleted].is_removed and contacts[deleted].removed is not None
    assert contacts[deleted].removed.reason == "deleted"
    assert not contacts[added].is_removed
    assert fake.request_counts == {"GET": 1}

    third = client.contacts_delta(ada, None, second.delta_link)
    assert third.contacts == []


def test_an_update_to_the_same_values_is_not_a_change(fake: GraphFake, client: GraphClient, ada: str) -> None:
    grace = fake.add_contact(ada, **person("Grace", "Hopper", jobTitle="Admiral"))
    link = client.contacts_delta(ada, None, None).delta_link
    fake.update_contact(ada, grace, jobTitle="Admiral")
    assert client.contacts_delta(ada, None, link).contacts == []


def test_move_between_folders_is_a_removal_here_and_an_addition_there_with_the_same_id(
    fake: GraphFake, client: GraphClient, ada: str
) -> None:
    work = fake.add_contact_folder(ada, "Work")
    archive = fake.add_contact_folder(ada, "Archive", work)
    alan = fake.add_contact(ada, work, **person("Alan", "Turing"))
    work_link = client.contacts_delta(ada, work, None).delta_link
    archive_first = client.contacts_delta(ada, archive, None)
    assert archive_first.contacts == []

    fake.move_contact(ada, alan, archive)
    out_of_work = client.contacts_delta(ada, work, work_link)
    into_archive = client.contacts_delta(ada, archive, archive_first.delta_link)

    [tombstone] = out_of_work.contacts
    assert tombstone.id == alan and tombstone.is_removed
    [moved] = into_archive.contacts
    assert moved.id == alan and not moved.is_removed  # immutable id: the same contact
    assert moved.parent_folder_id == archive
    assert moved.given_name == "Alan"

    # and back to the default folder: the default folder's delta sees it arrive
    default_link = client.contacts_delta(ada, None, None).delta_link
    fake.move_contact(ada, alan, fake.default_contact_folder_id(ada))
    [arrived] = client.contacts_delta(ada, None, default_link).contacts
    assert arrived.id == alan and arrived.parent_folder_id == fake.default_contact_folder_id(ada)


def test_without_the_immutable_preference_a_move_changes_the_id(
    fake: GraphFake, http: requests.Session, ada: str
) -> None:
    work = fake.add_contact_folder(ada, "Work")
    alan = fake.add_contact(ada, **person("Alan", "Turing"))
    default_round = http.get(f"{GRAPH}/users/{ada}/contacts/delta").json()
    [before] = default_round["value"]
    assert before["id"] != alan  # REST id, not the immutable one
    assert before["id"] == fake.rest_contact_id(ada, alan)

    fake.move_contact(ada, alan, work)
    [gone] = http.get(default_round["@odata.deltaLink"]).json()["value"]
    [after] = http.get(f"{GRAPH}/users/{ada}/contactFolders/{work}/contacts").json()["value"]
    immutable = http.get(f"{GRAPH}/users/{ada}/contactFolders/{work}/contacts", headers={"Prefer": IMMUTABLE}).json()

    assert gone == {"id": before["id"], "@removed": {"reason": "deleted"}}
    assert after["id"] != before["id"]
    assert immutable["value"][0]["id"] == alan
    # Graph accepts either form in a path; the old REST id is gone with the move.
    assert http.get(f"{GRAPH}/users/{ada}/contacts/{alan}").status_code == 200
    assert http.get(f"{GRAPH}/users/{ada}/contacts/{after['id']}").status_code == 200
    missing = http.get(f"{GRAPH}/users/{ada}/contacts/{before['id']}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ErrorItemNotFound"


def test_a_contact_changed_during_a_round_comes_once_with_its_latest_values(
    fake: GraphFake, client: GraphClient, ada: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    contacts = [fake.add_contact(ada, **person(f"Given{i:04d}", "Example")) for i in range(CONTACT_PAGE_SIZE + 10)]
    first_contact = contacts[0]
    original = fake.route
    pages = 0

    def change_after_first_page(request: FakeRequest) -> FakeResponse:
        nonlocal pages
        response = original(request)
        pages += 1
        if pages == 1:  # the contact was already delivered on page one; it changes now
            fake.update_contact(ada, first_contact, jobTitle="Changed mid-round")
        return response

    monkeypatch.setattr(fake, "route", change_after_first_page)
    result = client.contacts_delta(ada, None, None)

    assert pages == 2
    ids = [contact.id for contact in result.contacts]
    assert len(ids) == len(set(ids)) == len(contacts)
    assert by_id(result.contacts)[first_contact].job_title == "Changed mid-round"


def test_delta_follows_pages_of_the_requested_size(fake: GraphFake, client: GraphClient, ada: str) -> None:
    work = fake.add_contact_folder(ada, "Work")
    contacts = {fake.add_contact(ada, work, **person(f"Given{i:04d}", "Example")) for i in range(2 * 500 + 7)}
    fake.reset_counts()

    result = client.contacts_delta(ada, work, None)

    assert {contact.id for contact in result.contacts} == contacts
    assert fake.route_counts["GET /users/{key}/contactFolders/{folder}/contacts/delta"] == 3


def test_fake_pages_delta_by_its_default_without_a_preference(
    fake: GraphFake, http: requests.Session, ada: str
) -> None:
    for i in range(5):
        fake.add_contact(ada, **person(f"Given{i}", "Example"))
    fake.contact_delta_page_size = 2
    seen: list[str] = []
    url: str | None = f"{GRAPH}/users/{ada}/contacts/delta"
    pages = 0
    while url:
        page = http.get(url).json()
        pages += 1
        seen.extend(item["id"] for item in page["value"])
        url = page.get("@odata.nextLink")
        if url is None:
            assert "@odata.deltaLink" in page
    assert pages == 3 and len(set(seen)) == 5


def test_delta_survives_throttling(fake: GraphFake, client: GraphClient, ada: str) -> None:
    alan = fake.add_contact(ada, **person("Alan", "Turing"))
    fake.inject(429, retry_after=1, path_pattern=r"/contacts/delta$")
    assert [contact.id for contact in client.contacts_delta(ada, None, None).contacts] == [alan]
    assert fake.request_counts["GET"] == 2


# -- resets ----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [410, 400])
def test_a_dropped_sync_state_restarts_a_full_round(
    fake: GraphFake, client: GraphClient, ada: str, status: int
) -> None:
    work = fake.add_contact_folder(ada, "Work")
    alan = fake.add_contact(ada, work, **person("Alan", "Turing"))
    link = client.contacts_delta(ada, work, None).delta_link
    grace = fake.add_contact(ada, work, **person("Grace", "Hopper"))
    fake.expire_contact_delta_tokens(status=status)
    fake.reset_counts()

    result = client.contacts_delta(ada, work, link)

    assert result.full is True
    assert set(by_id(result.contacts)) == {alan, grace}
    assert result.delta_link != link
    assert fake.route_counts["GET /users/{key}/contactFolders/{folder}/contacts/delta"] == 2
    # the new link works
    assert client.contacts_delta(ada, work, result.delta_link).full is False


@pytest.mark.parametrize(("status", "code"), [(410, "resyncRequired"), (400, "syncStateNotFound")])
def test_fake_answers_expired_tokens_like_graph(
    fake: GraphFake, http: requests.Session, ada: str, status: int, code: str
) -> None:
    fake.add_contact(ada, **person("Alan", "Turing"))
    select = "givenName,surname"
    link = http.get(f"{GRAPH}/users/{ada}/contacts/delta", params={"$select": select}).json()["@odata.deltaLink"]
    fake.expire_contact_delta_tokens(status=status)

    answer = http.get(link)

    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    if status == 410:
        assert answer.headers["Location"] == f"{GRAPH}/users/{ada}/contacts/delta?$select={select}&$deltatoken="


def test_users_delta_tokens_are_untouched_by_contact_expiry(fake: GraphFake, client: GraphClient, ada: str) -> None:
    users_link = client.users_delta(None).delta_link
    fake.expire_contact_delta_tokens()
    assert client.users_delta(users_link).full is False


def test_an_unknown_delta_token_is_sync_state_not_found(fake: GraphFake, http: requests.Session, ada: str) -> None:
    answer = http.get(f"{GRAPH}/users/{ada}/contacts/delta", params={"$deltatoken": "made-up"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "syncStateNotFound"


# -- errors ----------------------------------------------------------------------------------
def test_unknown_mailbox_folder_and_mailboxless_user_are_404(fake: GraphFake, client: GraphClient, ada: str) -> None:
    kiosk = fake.add_user("kiosk@contoso.test", has_mailbox=False)
    with pytest.raises(GraphApiError) as stranger:
        client.contacts_delta("nobody@contoso.test", None, None)
    with pytest.raises(GraphApiError) as folder:
        client.contacts_delta(ada, "AAMkAGnot-a-folderAAEOAAA=", None)
    with pytest.raises(GraphApiError) as no_exchange:
        client.contact_folders(kiosk)

    assert (stranger.value.status, stranger.value.code) == (404, "ResourceNotFound")
    assert (folder.value.status, folder.value.code) == (404, "ErrorItemNotFound")
    assert (no_exchange.value.status, no_exchange.value.code) == (404, "MailboxNotEnabledForRESTAPI")


def test_fake_refuses_unknown_select_names(fake: GraphFake, http: requests.Session, ada: str) -> None:
    answer = http.get(f"{GRAPH}/users/{ada}/contacts/delta", params={"$select": "givenName,favouriteColour"})
    assert answer.status_code == 400
    assert "favouriteColour" in answer.json()["error"]["message"]


def test_helpers_refuse_what_outlook_would(fake: GraphFake, ada: str) -> None:
    kiosk = fake.add_user("kiosk@contoso.test", has_mailbox=False)
    with pytest.raises(ValueError, match="mailbox"):
        fake.add_contact(kiosk, **person("Alan", "Turing"))
    with pytest.raises(TypeError, match="favouriteColour"):
        fake.add_contact(ada, favouriteColour="green")
    with pytest.raises(TypeError, match="read-only"):
        fake.add_contact(ada, parentFolderId="elsewhere")
    fake.add_contact_folder(ada, "Work")
    with pytest.raises(ValueError, match="already exists"):
        fake.add_contact_folder(ada, "work")
    with pytest.raises(KeyError):
        fake.add_contact(ada, "no-such-folder", givenName="Alan")


def test_a_contact_without_a_display_name_gets_one_as_outlook_composes_it(
    fake: GraphFake, client: GraphClient, ada: str
) -> None:
    fake.add_contact(ada, givenName="Alan", surname="Turing")
    fake.add_contact(ada, companyName="Bletchley Park")
    names = sorted(contact.display_name or "" for contact in client.contacts_delta(ada, None, None).contacts)
    assert names == ["Alan Turing", "Bletchley Park"]


def test_contact_model_reads_nulls_as_absent() -> None:
    contact = GraphContact.model_validate(
        {
            "id": "c1",
            "givenName": None,
            "emailAddresses": [None, {"name": None, "address": "x@partner.test"}],
            "businessPhones": None,
            "homePhones": [None, "+49 30 1234567"],
            "mobilePhone": None,
        }
    )
    assert contact.given_name is None
    assert [e.address for e in contact.email_addresses] == ["x@partner.test"]
    assert contact.business_phones == []
    assert contact.home_phones == ["+49 30 1234567"]
    assert not contact.is_removed


# -- notifications ---------------------------------------------------------------------------
def subscribe(client: GraphClient, resource: str, change_type: str = "created,updated,deleted") -> str:
    return client.create_subscription(
        resource=resource,
        change_type=change_type,
        notification_url=HOOK,
        expiration=NOW + timedelta(days=2),
        client_state="contacts-client-state",
    ).id


def test_contact_changes_notify_mailbox_subscribers(
    fake: GraphFake, client: GraphClient, webhook: Webhook, ada: str
) -> None:
    work = fake.add_contact_folder(ada, "Work")
    subscription = subscribe(client, f"users/{ada}/contacts")
    other = fake.add_user("bob@contoso.test")
    fake.add_contact(other, **person("Not", "Ours"))  # another mailbox: nothing for us

    alan = fake.add_contact(ada, **person("Alan", "Turing"))
    fake.update_contact(ada, alan, jobTitle="Codebreaker")
    fake.move_contact(ada, alan, work)
    fake.delete_contact(ada, alan)

    assert [item["changeType"] for item in webhook.notifications] == ["created", "updated", "updated", "deleted"]
    for item in webhook.notifications:
        assert item["subscriptionId"] == subscription
        assert item["resource"] == f"Users/{ada}/Contacts/{alan}"  # the immutable id throughout
        assert item["resourceData"]["@odata.type"] == "#Microsoft.Graph.Contact"
        assert item["resourceData"]["id"] == alan
        assert item["clientState"] == "contacts-client-state"


def test_folder_subscribers_hear_a_move_as_leaving_and_arriving(
    fake: GraphFake, client: GraphClient, webhook: Webhook, ada: str
) -> None:
    work = fake.add_contact_folder(ada, "Work")
    archive = fake.add_contact_folder(ada, "Archive")
    work_subscription = subscribe(client, f"users/{ada}/contactFolders/{work}/contacts")
    archive_subscription = subscribe(client, f"users/{ada}/contactFolders/{archive}/contacts")
    alan = fake.add_contact(ada, work, **person("Alan", "Turing"))

    fake.move_contact(ada, alan, archive)

    heard = [(item["subscriptionId"], item["changeType"]) for item in webhook.notifications]
    assert heard == [(work_subscription, "created"), (work_subscription, "deleted"), (archive_subscription, "created")]


def test_subscribers_hear_only_their_change_types(
    fake: GraphFake, client: GraphClient, webhook: Webhook, ada: str
) -> None:
    subscribe(client, f"users/{ada}/contacts", "deleted")
    alan = fake.add_contact(ada, **person("Alan", "Turing"))
    fake.update_contact(ada, alan, jobTitle="Codebreaker")
    assert webhook.notifications == []
    fake.delete_contact(ada, alan)
    assert [item["changeType"] for item in webhook.notifications] == ["deleted"]


# -- route counting ----------------------------------------------------------------------------
def test_contact_routes_are_counted(fake: GraphFake, client: GraphClient, ada: str) -> None:
    fake.add_contact_folder(ada, "Work")
    fake.reset_counts()
    client.contact_folders(ada)
    client.contacts_delta(ada, None, None)
    assert fake.route_counts == {
        "GET /users/{key}/contactFolders": 1,
        "GET /users/{key}/contactFolders/{folder}/childFolders": 1,
        "GET /users/{key}/contacts/delta": 1,
    }


def test_a_deleted_folder_answers_404_to_its_delta_and_leaves_the_listing(
    fake: GraphFake, client: GraphClient, ada: str
) -> None:
    suppliers = fake.add_contact_folder(ada, "Suppliers")
    nested = fake.add_contact_folder(ada, "Nested", parent_folder_id=suppliers)
    fake.add_contact(ada, folder_id=nested, givenName="Grace")
    link = client.contacts_delta(ada, suppliers, None).delta_link

    fake.delete_contact_folder(ada, suppliers)

    assert client.contact_folders(ada) == []  # the child went with it
    for folder, delta_link in ((suppliers, link), (nested, None)):
        with pytest.raises(GraphApiError) as raised:
            client.contacts_delta(ada, folder, delta_link)
        assert (raised.value.status, raised.value.code) == (404, "ErrorItemNotFound")

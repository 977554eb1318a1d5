"""Contacts into the 3CX phonebooks end to end in process: Graph and 3CX fakes, Azurite."""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import suppress
from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.data.tables import TableServiceClient

from shared.state import StateStore, utcnow
from sync.cli import main
from sync.contact_sync import PERSONAL_STATE_FORGOTTEN, run_contact_sync
from sync.runtime import process_runtime
from tests.conftest import Tenant

SALES = "sales@contoso.com"
SUPPORT = "support@contoso.com"


def person(first: str, last: str, email: str | None, phone: str = "+44 20 7946 0000", **extra: Any) -> dict:
    fields: dict[str, Any] = {
        "givenName": first,
        "surname": last,
        "displayName": f"{first} {last}",
        "businessPhones": [phone] if phone else [],
        "emailAddresses": [{"name": first, "address": email}] if email else [],
    }
    fields.update(extra)
    return fields


@pytest.fixture
def shared(tenant_env: Tenant, monkeypatch: pytest.MonkeyPatch) -> Tenant:
    """Two shared mailboxes (disabled accounts with a mailbox, as Exchange makes them)."""
    tenant_env.sales = tenant_env.graph.add_user(SALES, account_enabled=False)  # type: ignore[attr-defined]
    tenant_env.support = tenant_env.graph.add_user(SUPPORT, account_enabled=False)  # type: ignore[attr-defined]
    monkeypatch.setenv("SHARED_MAILBOXES", f"{SALES},{SUPPORT}")
    return tenant_env


def _book(tenant: Tenant) -> dict[str, dict]:
    return {c.get("Email") or c["FirstName"]: c for c in tenant.pbx.company_contacts.values()}


def _writes(tenant: Tenant) -> int:
    return tenant.pbx_writes()


def test_shared_mailbox_contacts_fill_the_company_phonebook_and_a_rerun_writes_nothing(shared: Tenant) -> None:
    shared.graph.add_contact(shared.sales, **person("Ada", "Lovelace", "ada@engines.example"))
    folder = shared.graph.add_contact_folder(shared.sales, "Suppliers")
    shared.graph.add_contact(shared.sales, folder_id=folder, **person("Grace", "Hopper", "grace@navy.example"))
    shared.graph.add_contact(shared.support, **person("Alan", "Turing", "alan@bletchley.example"))
    shared.pbx.add_contact(FirstName="Made", LastName="By Hand", PhoneNumber="123456")

    first = run_contact_sync(process_runtime())

    assert first.counts()["created"] == 3
    book = _book(shared)
    assert set(book) == {"ada@engines.example", "grace@navy.example", "alan@bletchley.example", "Made"}
    assert book["grace@navy.example"]["Tag"].startswith(f"m365:{SALES}#")
    assert book["Made"].get("Tag") in (None, "")

    shared.graph.reset_counts()
    shared.reset_pbx_counts()
    again = run_contact_sync(process_runtime())
    assert again.counts() == {"created": 0, "updated": 0, "deleted": 0, "unchanged": 3, "failed": 0, "skipped": 0}
    assert _writes(shared) == 0
    graph_routes = {route for route, count in shared.graph.route_counts.items() if count}
    assert graph_routes and all(route.endswith("/delta") for route in graph_routes)


def test_changes_deletes_and_hand_edits(shared: Tenant) -> None:
    ada = shared.graph.add_contact(shared.sales, **person("Ada", "Lovelace", "ada@engines.example"))
    bob = shared.graph.add_contact(shared.sales, **person("Bob", "Builder", "bob@build.example"))
    run_contact_sync(process_runtime())
    entry = _book(shared)["ada@engines.example"]
    shared.pbx.update_contact(entry["Id"], Title="Typed in 3CX by hand")  # our entry, edited in 3CX
    shared.graph.update_contact(shared.sales, ada, jobTitle="Countess")
    shared.graph.delete_contact(shared.sales, bob)

    result = run_contact_sync(process_runtime())

    assert (result.counts()["updated"], result.counts()["deleted"]) == (1, 1)
    book = _book(shared)
    assert book["ada@engines.example"]["Title"] == "Countess"
    assert "bob@build.example" not in book


def test_the_same_person_in_two_mailboxes_is_one_entry(shared: Tenant) -> None:
    shared.graph.add_contact(shared.support, **person("Ada", "Lovelace", "ADA@engines.example", jobTitle="support"))
    sales_ada = shared.graph.add_contact(
        shared.sales, **person("Ada", "Lovelace", "ada@engines.example", jobTitle="sales")
    )
    run_contact_sync(process_runtime())
    (entry,) = shared.pbx.company_contacts.values()
    assert entry["Title"] == "sales"

    shared.graph.delete_contact(shared.sales, sales_ada)
    run_contact_sync(process_runtime())
    (entry_after,) = shared.pbx.company_contacts.values()
    assert entry_after["Id"] == entry["Id"]
    assert entry_after["Title"] == "support"
    assert entry_after["Tag"].startswith(f"m365:{SUPPORT}#")


def test_a_contact_moved_between_folders_stays_one_untouched_entry(shared: Tenant) -> None:
    ada = shared.graph.add_contact(shared.sales, **person("Ada", "Lovelace", "ada@engines.example"))
    folder = shared.graph.add_contact_folder(shared.sales, "VIP")
    run_contact_sync(process_runtime(), full=True)
    shared.graph.move_contact(shared.sales, ada, folder)
    shared.reset_pbx_counts()
    result = run_contact_sync(process_runtime())
    assert result.counts()["unchanged"] == 1
    assert _writes(shared) == 0


def test_rejected_contacts_are_skipped_with_a_reason(shared: Tenant) -> None:
    shared.graph.add_contact(shared.sales, **person("No", "Number", "none@x.example", phone=""))
    shared.graph.add_contact(shared.sales, displayName="", businessPhones=["+1 555 0100"])
    result = run_contact_sync(process_runtime())
    reasons = sorted(skip.reason for book in result.books for skip in book.plan.skipped)
    assert reasons == ["no name and no company", "no phone number"]
    assert not shared.pbx.company_contacts


def test_an_expired_delta_link_rereads_the_folder(shared: Tenant) -> None:
    shared.graph.add_contact(shared.sales, **person("Ada", "Lovelace", "ada@engines.example"))
    gone = shared.graph.add_contact(shared.sales, **person("Bob", "Builder", "bob@build.example"))
    run_contact_sync(process_runtime())
    shared.graph.delete_contact(shared.sales, gone)
    shared.graph.expire_contact_delta_tokens()
    result = run_contact_sync(process_runtime())
    assert result.counts()["deleted"] == 1
    assert set(_book(shared)) == {"ada@engines.example"}


def test_a_contact_notification_reaches_the_phonebook(shared: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    from sync.subscription_upkeep import reconcile_subscriptions
    from sync.worker import Done, handle_work
    from tests.integration.test_presence import Recorder

    queued = shared.connect_webhook(monkeypatch)
    result = reconcile_subscriptions(process_runtime())
    assert result.failed == 0
    contacts_subs = [s for s in shared.graph.subscriptions.values() if s.resource.endswith("/contacts")]
    assert len(contacts_subs) == 2
    shared.graph.add_contact(shared.support, **person("Alan", "Turing", "alan@bletchley.example"))
    items = [item for item in queued if item.kind == "contacts"]
    assert [item.user_id for item in items] == [SUPPORT]
    assert handle_work(process_runtime(), items[0], Recorder()) == Done("succeeded")
    assert set(_book(shared)) == {"alan@bletchley.example"}


def test_skip_reasons_and_per_book_counts_are_in_the_run_record(shared: Tenant) -> None:
    shared.graph.add_contact(shared.sales, **person("No", "Number", "none@x.example", phone=""))
    shared.graph.add_contact(shared.sales, **person("Ada", "Lovelace", "ada@engines.example"))
    run_contact_sync(process_runtime())
    (record,) = shared.state.recent_runs("contacts")  # one run per phonebook: here the company one
    assert (record.subject, record.trigger, record.status) == ("company", "cli", "succeeded")
    assert record.counts["created"] == 1
    assert [line.split(": ", 1)[1] for line in record.skipped] == ["no phone number"]


def test_a_graph_outage_fails_the_run_and_says_why(shared: Tenant) -> None:
    """The fault: Graph kept answering 503 and the contacts run was recorded as succeeded, no error."""
    shared.graph.add_contact(shared.sales, **person("Ada", "Lovelace", "ada@engines.example"))
    shared.graph.inject(503, count=50, path_pattern=r"/contacts")

    result = run_contact_sync(process_runtime())

    assert result.status == "failed"
    assert "Microsoft Graph unavailable" in (result.aborted or "")
    (record,) = shared.state.recent_runs("contacts")
    assert (record.subject, record.status) == ("company", "failed")
    assert any("Microsoft Graph unavailable" in error for error in record.errors)
    assert shared.pbx.company_contacts == {}


def test_a_phonebook_another_run_holds_is_left_to_it(shared: Tenant) -> None:
    shared.graph.add_contact(shared.sales, **person("Ada", "Lovelace", "ada@engines.example"))
    shared.state.lease("contacts:company", timedelta(minutes=5)).acquire()  # another instance's run

    result = run_contact_sync(process_runtime())

    assert result.busy == ["company"]
    assert result.status == "partial"
    assert result.books == [] and shared.pbx.company_contacts == {}


def test_a_deleted_contact_folder_is_dropped_and_the_rest_still_syncs(shared: Tenant) -> None:
    """The fault: a deleted sub-folder failed its mailbox's refresh and, through it, the whole
    company phonebook, for up to a day (folder ids are cached that long)."""
    folder = shared.graph.add_contact_folder(shared.sales, "Suppliers")
    shared.graph.add_contact(shared.sales, folder_id=folder, **person("Grace", "Hopper", "grace@navy.example"))
    shared.graph.add_contact(shared.sales, **person("Ada", "Lovelace", "ada@engines.example"))
    run_contact_sync(process_runtime())
    assert set(_book(shared)) == {"grace@navy.example", "ada@engines.example"}

    shared.graph.delete_contact_folder(shared.sales, folder)
    shared.graph.add_contact(shared.support, **person("Alan", "Turing", "alan@bletchley.example"))
    result = run_contact_sync(process_runtime())

    assert result.status == "succeeded", result.books[0].failures
    assert set(_book(shared)) == {"ada@engines.example", "alan@bletchley.example"}


def test_one_mailbox_refused_keeps_its_entries_and_never_blocks_the_others(shared: Tenant) -> None:
    shared.graph.add_contact(shared.sales, **person("Ada", "Lovelace", "ada@engines.example"))
    run_contact_sync(process_runtime())
    shared.graph.add_contact(shared.support, **person("Alan", "Turing", "alan@bletchley.example"))
    shared.graph.inject(403, count=50, path_pattern=r"/users/sales@contoso\.com/")  # e.g. an Exchange RBAC scope

    result = run_contact_sync(process_runtime())

    assert set(_book(shared)) == {"ada@engines.example", "alan@bletchley.example"}  # kept, and added
    assert result.status == "partial"
    (failure,) = result.books[0].failures
    assert SALES in failure and "403" in failure


# -- what earlier versions stored for personal phonebooks -------------------------------------------------


def _key(text: str) -> str:
    """The row key earlier versions derived from a mailbox or contact id (pinned here on purpose:
    leftovers keep the layout they were written with, whatever the code does today)."""
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _delta_name(mailbox: str, folder_id: str | None) -> str:
    return "contacts-" + hashlib.sha256(f"{mailbox.lower()}\n{folder_id or ''}".encode()).hexdigest()[:40]


def _rows(tenant: Tenant, table: str) -> list[dict[str, Any]]:
    service = TableServiceClient.from_connection_string(tenant.env["AzureWebJobsStorage"])
    client = service.get_table_client(f"{tenant.env['STATE_TABLE_PREFIX']}{table}")
    with suppress(ResourceExistsError):
        client.create_table()
    return [dict(entity) for entity in client.list_entities()]


def _leave_personal_phonebook_state(tenant: Tenant, user_id: str) -> None:
    """Write, row for row, what an earlier version kept for one user's personal phonebook."""
    service = TableServiceClient.from_connection_string(tenant.env["AzureWebJobsStorage"])
    prefix = tenant.env["STATE_TABLE_PREFIX"]

    def upsert(table: str, entity: dict[str, Any]) -> None:
        client = service.get_table_client(f"{prefix}{table}")
        with suppress(ResourceExistsError):
            client.create_table()
        client.upsert_entity(entity)

    for contact_id, name in (("AAMkMum", "Mum"), ("AAMkDentist", "Dentist")):
        contact = {"id": contact_id, "givenName": name, "mobilePhone": "+447700900123", "_connectorFolder": ""}
        upsert(
            "contacts",
            {
                "PartitionKey": _key(user_id),
                "RowKey": _key(contact_id),
                "contact_id": contact_id,
                "data": json.dumps(contact),
            },
        )
    upsert(
        "contactfolders",
        {"PartitionKey": "folders", "RowKey": _key(user_id), "folders": '["AAMkFamily"]', "listed_at": utcnow()},
    )
    for folder in (None, "AAMkFamily"):
        link = f"{tenant.env['GRAPH_BASE_URL']}/users/{user_id}/contacts/delta()?$deltatoken=old"
        upsert(
            "deltalinks",
            {"PartitionKey": "delta", "RowKey": _delta_name(user_id, folder), "link": link, "saved_at": utcnow()},
        )
    upsert("contactbooks", {"PartitionKey": "book", "RowKey": user_id, "extension": "100"})


def _personal_leftovers(tenant: Tenant, user_id: str) -> list[str]:
    """Whatever of one user's personal-phonebook state is still stored, table by table."""
    names = {_delta_name(user_id, None), _delta_name(user_id, "AAMkFamily")}
    return [
        *(f"contacts {row['contact_id']}" for row in _rows(tenant, "contacts") if row["PartitionKey"] == _key(user_id)),
        *(f"folders {row['RowKey']}" for row in _rows(tenant, "contactfolders") if row["RowKey"] == _key(user_id)),
        *(f"delta {row['RowKey']}" for row in _rows(tenant, "deltalinks") if row["RowKey"] in names),
        *(f"book {row['RowKey']}" for row in _rows(tenant, "contactbooks")),
    ]


def test_the_next_contacts_run_deletes_what_earlier_versions_kept_for_personal_phonebooks(
    shared: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    (user_id,) = shared.add_users(1)
    _leave_personal_phonebook_state(shared, user_id)
    shared.graph.add_contact(shared.sales, **person("Ada", "Lovelace", "ada@engines.example"))
    folder = shared.graph.add_contact_folder(shared.support, "Suppliers")
    shared.graph.add_contact(shared.support, folder_id=folder, **person("Grace", "Hopper", "grace@navy.example"))
    assert len(_personal_leftovers(shared, user_id)) == 6

    assert main(["contacts", "--json"]) == 0

    assert _personal_leftovers(shared, user_id) == []
    assert shared.state.marker_set(PERSONAL_STATE_FORGOTTEN)  # done once: later runs only look at the marker
    assert set(_book(shared)) == {"ada@engines.example", "grace@navy.example"}
    # The shared mailboxes' own state is kept: a run with nothing changed reads delta pages only.
    capsys.readouterr()
    shared.graph.reset_counts()
    assert main(["contacts", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unchanged"] == 2
    graph_routes = {route for route, count in shared.graph.route_counts.items() if count}
    assert graph_routes and all(route.endswith("/delta") for route in graph_routes)


def test_the_contacts_timer_deletes_them_without_any_shared_mailbox(tenant_env: Tenant) -> None:
    from tests.function_app_support import function
    from tests.integration.test_function_app import _Timer

    (user_id,) = tenant_env.add_users(1)
    _leave_personal_phonebook_state(tenant_env, user_id)

    function("contact_sync_timer").get_user_function()(_Timer())

    assert _personal_leftovers(tenant_env, user_id) == []
    assert tenant_env.pbx.request_counts.total() == 0  # nothing to sync: 3CX is not asked anything


def test_a_clean_up_storage_fails_is_tried_again_and_never_stops_the_company_phonebook(
    shared: Tenant, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (user_id,) = shared.add_users(1)
    _leave_personal_phonebook_state(shared, user_id)
    shared.graph.add_contact(shared.sales, **person("Ada", "Lovelace", "ada@engines.example"))

    def storage_fails(keep: object) -> tuple[int, int]:
        raise HttpResponseError(message="503 Server Busy")

    with monkeypatch.context() as patched, caplog.at_level(logging.WARNING, logger="connector"):
        patched.setattr(StateStore, "forget_contact_mailboxes", lambda self, keep: storage_fails(keep))
        result = run_contact_sync(process_runtime())

    assert result.status == "succeeded" and set(_book(shared)) == {"ada@engines.example"}
    assert any(r.getMessage().startswith("personal_contacts_cleanup_failed ") for r in caplog.records)
    assert not shared.state.marker_set(PERSONAL_STATE_FORGOTTEN)
    assert len(_personal_leftovers(shared, user_id)) == 6

    run_contact_sync(process_runtime())  # the next run

    assert _personal_leftovers(shared, user_id) == []
    assert shared.state.marker_set(PERSONAL_STATE_FORGOTTEN)

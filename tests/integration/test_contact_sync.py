"""Contacts into the 3CX phonebooks end to end in process: Graph and 3CX fakes, Azurite."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sync.contact_sync import run_contact_sync
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

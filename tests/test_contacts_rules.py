"""Contacts → phonebook rules as data in, data out: mapping, rejection, ownership, merging."""

from __future__ import annotations

from typing import Any

import pytest

from shared.graph_models import GraphContact
from sync.contacts import (
    CreateContact,
    DeleteContact,
    SourceContact,
    UpdateContact,
    contact_fields,
    entry_key,
    make_tag,
    plan_book,
    rejection,
    tag_key,
    wanted_company,
    wanted_personal,
)


def contact(cid: str, **fields: Any) -> GraphContact:
    data: dict[str, Any] = {
        "id": cid,
        "givenName": "Ada",
        "surname": "Lovelace",
        "companyName": "Analytical Engines",
        "emailAddresses": [{"name": "Ada", "address": "ada@engines.example"}],
        "businessPhones": ["+44 20 7946 0000"],
        "homePhones": [],
        "mobilePhone": None,
    }
    data.update(fields)
    return GraphContact.model_validate(data)


def test_the_mapping_table() -> None:
    mapped = contact_fields(
        contact(
            "c1",
            jobTitle="Countess",
            department="Mathematics",
            businessPhones=["+44 20 7946 0000", "020 7946 0001", "+44 20 7946 0002"],
            homePhones=["+44 1632 960000"],
            mobilePhone="+44 7700 900000",
            emailAddresses=[{"address": "first@x.example"}, {"address": "second@x.example"}],
        )
    )
    assert mapped == {
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "CompanyName": "Analytical Engines",
        "Title": "Countess",
        "Department": "Mathematics",
        "Email": "first@x.example",
        "PhoneNumber": "+447700900000",
        "Mobile2": "",
        "Home": "+441632960000",
        "Business": "+442079460000",
        "Business2": "02079460001",
        "BusinessFax": "",
        "Other": "+442079460002",
        "Pager": "",
    }


def test_second_home_number_goes_to_other_and_display_name_fills_missing_names() -> None:
    mapped = contact_fields(
        contact("c1", givenName=None, surname=None, displayName="Front Desk", homePhones=["111 222", "333 444"])
    )
    assert mapped["FirstName"] == "Front Desk"
    assert (mapped["Home"], mapped["Other"]) == ("111222", "333444")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"givenName": None, "surname": None, "displayName": None, "companyName": None}, "no name and no company"),
        ({"businessPhones": [], "mobilePhone": None, "homePhones": []}, "no phone number"),
        ({"businessPhones": ["n/a"]}, "no phone number"),
        ({"givenName": None, "surname": None, "displayName": None}, None),  # a company alone is enough
    ],
)
def test_what_3cx_would_reject_is_skipped_with_a_reason(fields: dict[str, Any], reason: str | None) -> None:
    assert rejection(contact_fields(contact("c1", **fields))) == reason
    wanted, rejected = wanted_personal("user:u1", "u1@contoso.com", [contact("c1", **fields)])
    assert [r.reason for r in rejected] == ([reason] if reason else [])
    assert len(wanted) == (0 if reason else 1)


def test_tags_mark_ownership_and_source() -> None:
    key = entry_key("company", "email:ada@engines.example")
    tag = make_tag("Sales@Contoso.com", key)
    assert tag == f"m365:sales@contoso.com#{key}"
    assert tag_key(tag) == key
    assert tag_key("VIP") is None
    assert tag_key(None) is None
    assert tag_key("m365:no-key") is None


def test_plan_creates_updates_and_deletes_only_its_own_entries() -> None:
    wanted, _ = wanted_personal("user:u1", "u1@contoso.com", [contact("keep"), contact("new", givenName="Grace")])
    by_source = {w.source.split("/")[1]: w for w in wanted}
    target = [
        {"Id": 1, **by_source["keep"].fields, "Title": "edited by hand in 3CX"},
        {"Id": 2, "FirstName": "Gone", "PhoneNumber": "123", "Tag": make_tag("u1@contoso.com", "deadbeef0000")},
        {"Id": 3, "FirstName": "Made in 3CX", "PhoneNumber": "456", "Tag": None},
        {"Id": 4, "FirstName": "Also by hand", "PhoneNumber": "789", "Tag": "supplier"},
    ]
    plan = plan_book("user:u1", wanted, target)
    assert plan.of_kind("update") == [UpdateContact(by_source["keep"].key, 1, {"Title": ""})]
    assert [a.fields["FirstName"] for a in plan.of_kind("create")] == ["Grace"]
    assert plan.of_kind("delete") == [DeleteContact("deadbeef0000", 2)]


def test_a_rerun_with_nothing_changed_plans_nothing() -> None:
    wanted, _ = wanted_personal("user:u1", "u1@contoso.com", [contact("a"), contact("b", givenName="Bea")])
    target = [{"Id": i, **w.fields} for i, w in enumerate(wanted, start=1)]
    plan = plan_book("user:u1", wanted, target)
    assert plan.actions == []
    assert plan.unchanged == 2


def test_duplicated_entries_of_ours_are_cleaned_up() -> None:
    wanted, _ = wanted_personal("user:u1", "u1@contoso.com", [contact("a")])
    target = [{"Id": 5, **wanted[0].fields}, {"Id": 9, **wanted[0].fields}]
    plan = plan_book("user:u1", wanted, target)
    assert plan.actions == [DeleteContact(wanted[0].key, 9)]


def test_shared_mailboxes_merge_the_same_person_and_the_first_mailbox_wins() -> None:
    sales = SourceContact("sales@contoso.com", contact("s1", jobTitle="from sales"))
    support = SourceContact("support@contoso.com", contact("p1", jobTitle="from support"))
    other = SourceContact("support@contoso.com", contact("p2", givenName="Bob", emailAddresses=[]))
    wanted, _ = wanted_company("company", ["sales@contoso.com", "support@contoso.com"], [support, other, sales])
    assert len(wanted) == 2
    ada = next(w for w in wanted if w.fields["FirstName"] == "Ada")
    assert ada.fields["Title"] == "from sales"
    assert ada.fields["Tag"].startswith("m365:sales@contoso.com#")
    # Sales loses the contact: support's copy takes over the same entry (same key, new Tag).
    wanted_after, _ = wanted_company("company", ["sales@contoso.com", "support@contoso.com"], [support, other])
    ada_after = next(w for w in wanted_after if w.fields["FirstName"] == "Ada")
    assert ada_after.key == ada.key
    assert ada_after.fields["Title"] == "from support"
    assert ada_after.fields["Tag"].startswith("m365:support@contoso.com#")


def test_contacts_without_email_are_never_merged() -> None:
    one = SourceContact("a@contoso.com", contact("x", emailAddresses=[]))
    two = SourceContact("b@contoso.com", contact("x", emailAddresses=[]))
    wanted, _ = wanted_company("company", ["a@contoso.com", "b@contoso.com"], [one, two])
    assert len(wanted) == 2


def test_creates_carry_every_mapped_field_and_the_tag() -> None:
    wanted, _ = wanted_personal("user:u1", "u1@contoso.com", [contact("a")])
    (create,) = plan_book("user:u1", wanted, []).actions
    assert isinstance(create, CreateContact)
    assert create.fields["Tag"] == make_tag("u1@contoso.com", entry_key("user:u1", "a"))

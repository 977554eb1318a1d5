"""Contacts → phonebook rules as data in, data out: mapping, rejection, ownership, merging."""

from __future__ import annotations

from typing import Any

import pytest

from shared.graph_models import GraphContact
from sync.contacts import (
    BookPlan,
    CreateContact,
    DeleteContact,
    Rejected,
    SourceContact,
    UpdateContact,
    WantedEntry,
    contact_fields,
    entry_key,
    make_tag,
    plan_book,
    rejection,
    tag_key,
    wanted_company,
)

REMOVED = {"@removed": {"reason": "deleted"}}


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


def person(cid: str, **fields: Any) -> GraphContact:
    """A contact with an e-mail address of its own, so that it is nobody else's entry."""
    return contact(cid, **{"emailAddresses": [{"address": f"{cid}@people.example"}], **fields})


def company(contacts: list[GraphContact]) -> tuple[list[WantedEntry], list[Rejected]]:
    """Contacts read from one shared mailbox for the company book."""
    return wanted_company("company", ["u1@contoso.com"], [SourceContact("u1@contoso.com", c) for c in contacts])


def applied(plan: BookPlan, book: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The book after 3CX carried out the plan; a created entry gets the next free Id."""
    entries = {entry["Id"]: dict(entry) for entry in book}
    for action in plan.actions:
        if isinstance(action, CreateContact):
            new_id = max(entries, default=0) + 1
            entries[new_id] = {"Id": new_id, **action.fields}
        elif isinstance(action, UpdateContact):
            entries[action.contact_id].update(action.changes)
        elif isinstance(action, DeleteContact):
            del entries[action.contact_id]
    return list(entries.values())


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


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # Exactly two business numbers: the second is Business2, nothing is left over for Other.
        ({"businessPhones": ["111 222", "333 444"]}, {"Business": "111222", "Business2": "333444", "Other": ""}),
        # A given name alone is a name: it is kept, the display name does not replace it.
        ({"surname": None, "displayName": "Ada L. (Engines)"}, {"FirstName": "Ada", "LastName": ""}),
        # Blank and empty addresses are passed over: the first address with text in it is used.
        (
            {"emailAddresses": [{"address": "  "}, {"name": "no address"}, {"address": " ada@x.example "}]},
            {"Email": "ada@x.example"},
        ),
        ({"department": None, "jobTitle": None}, {"Department": "", "Title": ""}),
    ],
)
def test_mapping_of_partly_filled_contacts(fields: dict[str, Any], expected: dict[str, str]) -> None:
    mapped = contact_fields(contact("c1", **fields))
    assert {name: mapped[name] for name in expected} == expected


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
        ({"surname": None, "companyName": None}, None),  # so is a given name alone
        ({"givenName": None, "companyName": None}, None),  # or a surname alone
    ],
)
def test_what_3cx_would_reject_is_skipped_with_a_reason(fields: dict[str, Any], reason: str | None) -> None:
    assert rejection(contact_fields(contact("c1", **fields))) == reason
    wanted, rejected = company([contact("c1", **fields)])
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
    # '#' is legal in a mailbox address: the key is what follows the LAST '#'.
    assert tag_key(make_tag("front#desk@contoso.com", key)) == key


def test_entry_keys_are_a_stable_contract() -> None:
    # Pinned on purpose: entries written by earlier versions are found again only by the key in
    # their Tag. A different derivation would orphan every entry of every book (all deleted and
    # created again, while copies made by hand with the Tag kept would no longer be recognised).
    assert entry_key("company", "email:ada@engines.example") == "b0e17ac7c3e5"
    assert entry_key("company", "contact:sales@contoso.com/s2") == "b50f0fc9b0ed"


def test_company_identity_ignores_the_case_of_email_and_mailbox() -> None:
    # The identity strings are part of the key contract above: the e-mail address, else the
    # source mailbox and contact id, both lower-cased so a change of case keeps the entry.
    mailboxes = ["Sales@Contoso.com"]
    with_email = SourceContact("Sales@Contoso.com", contact("s1", emailAddresses=[{"address": "Ada@Engines.Example"}]))
    without_email = SourceContact("Sales@Contoso.com", contact("s2", givenName="Bob", emailAddresses=[]))
    wanted, _ = wanted_company("company", mailboxes, [with_email, without_email])
    ada_key = entry_key("company", "email:ada@engines.example")
    bob_key = entry_key("company", "contact:sales@contoso.com/s2")
    assert [(w.key, w.source, w.fields["Tag"]) for w in wanted] == [
        (ada_key, "Sales@Contoso.com/s1", make_tag("Sales@Contoso.com", ada_key)),
        (bob_key, "Sales@Contoso.com/s2", make_tag("Sales@Contoso.com", bob_key)),
    ]
    assert wanted[0].fields["Email"] == "Ada@Engines.Example"  # the entry shows the address as typed


def test_removed_and_rejected_contacts_are_skipped_and_the_rest_still_taken() -> None:
    """A reject is recorded as mailbox/contact-id with its reason; it never stops the contacts after it."""
    wanted, rejected = company(
        [
            contact("a", **REMOVED),
            contact("b", businessPhones=[]),
            contact("c", givenName=None, surname=None, companyName=None, displayName=None),
            contact("d", givenName="Grace"),
        ]
    )
    assert rejected == [
        Rejected("u1@contoso.com/b", "no phone number"),
        Rejected("u1@contoso.com/c", "no name and no company"),
    ]
    assert [(w.source, w.fields["FirstName"]) for w in wanted] == [("u1@contoso.com/d", "Grace")]
    assert wanted[0].fields["Tag"] == make_tag("u1@contoso.com", wanted[0].key)


def test_plan_creates_updates_and_deletes_only_its_own_entries() -> None:
    wanted, _ = company([person("keep"), person("new", givenName="Grace")])
    by_source = {w.source.split("/")[1]: w for w in wanted}
    target = [
        {"Id": 1, **by_source["keep"].fields, "Title": "edited by hand in 3CX"},
        {"Id": 2, "FirstName": "Gone", "PhoneNumber": "123", "Tag": make_tag("u1@contoso.com", "deadbeef0000")},
        {"Id": 3, "FirstName": "Made in 3CX", "PhoneNumber": "456", "Tag": None},
        {"Id": 4, "FirstName": "Also by hand", "PhoneNumber": "789", "Tag": "supplier"},
    ]
    plan = plan_book("company", wanted, target)
    assert plan.of_kind("update") == [UpdateContact(by_source["keep"].key, 1, {"Title": ""})]
    assert [a.fields["FirstName"] for a in plan.of_kind("create")] == ["Grace"]
    assert plan.of_kind("delete") == [DeleteContact("deadbeef0000", 2)]


def test_a_rerun_with_nothing_changed_plans_nothing() -> None:
    wanted, _ = company([person("a"), person("b", givenName="Bea")])
    target = [{"Id": i, **w.fields} for i, w in enumerate(wanted, start=1)]
    plan = plan_book("company", wanted, target)
    assert plan.actions == []
    assert plan.unchanged == 2


@pytest.mark.parametrize("ids", [(5, 9, 7), (9, 7, 5), (7, 5, 9)])
def test_duplicated_entries_of_ours_are_cleaned_up_and_the_lowest_id_stays(ids: tuple[int, ...]) -> None:
    wanted, _ = company([contact("a")])
    made_by_hand = {"Id": 1, "FirstName": "Made in 3CX", "PhoneNumber": "456", "Tag": "supplier"}
    # 3CX may list the book in any order, and entries that are not ours come in between.
    target = [made_by_hand, *({"Id": i, **wanted[0].fields, "Title": f"copy {i}"} for i in ids)]
    plan = plan_book("company", wanted, target)
    assert sorted(plan.of_kind("delete"), key=lambda a: a.contact_id) == [
        DeleteContact(wanted[0].key, 7),
        DeleteContact(wanted[0].key, 9),
    ]
    assert plan.of_kind("update") == [UpdateContact(wanted[0].key, 5, {"Title": ""})]
    assert plan.of_kind("create") == []


def test_a_new_contact_does_not_stop_the_plan_for_the_ones_after_it() -> None:
    wanted, _ = company([person("a", givenName="New"), person("b")])
    target = [{"Id": 3, **wanted[1].fields, "Title": "edited by hand in 3CX"}]
    plan = plan_book("company", wanted, target)
    assert plan.actions == [
        CreateContact(wanted[0].key, dict(wanted[0].fields)),
        UpdateContact(wanted[1].key, 3, {"Title": ""}),
    ]


def test_a_plan_names_its_book_and_carries_the_skipped_contacts() -> None:
    wanted, rejected = company([contact("a"), contact("b", businessPhones=[])])
    plan = plan_book("company", wanted, [], rejected)
    assert plan.book == "company"
    assert plan.skipped == [Rejected("u1@contoso.com/b", "no phone number")]
    assert plan.actions == [CreateContact(entry_key("company", "email:ada@engines.example"), dict(wanted[0].fields))]


def company_book() -> tuple[str, list[WantedEntry], list[Rejected]]:
    """The company book: the same person in two mailboxes merged, one contact rejected."""
    contacts = [
        SourceContact("support@contoso.com", contact("p1", jobTitle="from support")),  # merged into sales' copy
        SourceContact("sales@contoso.com", contact("s1")),
        SourceContact("support@contoso.com", contact("p2", givenName="Bob", emailAddresses=[])),
        SourceContact("sales@contoso.com", contact("s2", businessPhones=[])),  # rejected
    ]
    return "company", *wanted_company("company", ["sales@contoso.com", "support@contoso.com"], contacts)


def test_planning_again_after_the_plan_was_carried_out_changes_nothing() -> None:
    """The plan is complete: once 3CX has carried it out, the next run finds nothing to do."""
    book, wanted, rejected = company_book()
    last = wanted[-1]
    start = [
        {"Id": 1, "FirstName": "Made in 3CX", "PhoneNumber": "456", "Tag": None},
        {"Id": 2, **last.fields, "Title": "edited by hand"},
        {"Id": 3, **last.fields},  # a copy made in the 3CX console, Tag kept
        {"Id": 4, "FirstName": "Gone", "PhoneNumber": "123", "Tag": make_tag("x@contoso.com", "deadbeef0000")},
    ]
    first = plan_book(book, wanted, start, rejected)
    assert len(wanted) == 2 and len(rejected) == 1
    assert [a.kind for a in first.actions] == ["delete", "create", "update", "delete"]
    after = applied(first, start)
    again = plan_book(book, wanted, after, rejected)
    assert again.actions == []
    assert again.unchanged == len(wanted)
    assert again.skipped == rejected
    assert {entry["Id"] for entry in after} == {1, 2, 5}  # the hand-made entry, the kept copy, the new one


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


def test_a_mailbox_not_in_the_list_ranks_after_every_listed_one() -> None:
    # The unlisted mailbox's copy has the smaller contact id, so only the mailbox rank decides.
    stray = SourceContact("old@contoso.com", contact("a0", jobTitle="from old"))
    listed = SourceContact("support@contoso.com", contact("z9", jobTitle="from support"))
    wanted, _ = wanted_company("company", ["sales@contoso.com", "support@contoso.com"], [stray, listed])
    assert [(w.source, w.fields["Title"]) for w in wanted] == [("support@contoso.com/z9", "from support")]


def test_contacts_without_email_are_never_merged() -> None:
    one = SourceContact("a@contoso.com", contact("x", emailAddresses=[]))
    two = SourceContact("b@contoso.com", contact("x", emailAddresses=[]))
    wanted, _ = wanted_company("company", ["a@contoso.com", "b@contoso.com"], [one, two])
    assert len(wanted) == 2


def test_creates_carry_every_mapped_field_and_the_tag() -> None:
    wanted, _ = company([contact("a")])
    (create,) = plan_book("company", wanted, []).actions
    assert isinstance(create, CreateContact)
    assert create.fields["Tag"] == make_tag("u1@contoso.com", entry_key("company", "email:ada@engines.example"))

"""Outlook contacts → 3CX phonebooks: the rules, as pure functions.

One way only. The contacts of the mailboxes in SHARED_MAILBOXES (default folder and its
child folders) feed the company phonebook. (Personal phonebooks are 3CX's own Microsoft 365
sync, switched per user by `MS365ContactsEnabled`: no published XAPI operation writes them.)

- **Mapping** (Graph contact → `Pbx.Contact`): givenName → FirstName, surname → LastName
  (no names at all: the display name becomes FirstName), companyName → CompanyName,
  jobTitle → Title, department → Department, the first e-mail address → Email,
  businessPhones[0] → Business, businessPhones[1] → Business2, mobilePhone → PhoneNumber,
  homePhones[0] → Home, homePhones[1] (else businessPhones[2]) → Other. Graph v1.0 offers no
  fax, pager or second mobile on contacts, so BusinessFax, Pager and Mobile2 stay empty.
  Numbers are normalised like user phone numbers (`+` and digits).
- **Rejected as 3CX would reject them**, and skipped with the reason recorded: a contact
  with no name and no company, or with no phone number.
- **Ownership:** every entry the connector writes carries a `Tag` of the form
  `m365:<source mailbox>#<key>`. Only entries with that prefix are ever updated or deleted;
  a contact someone made in 3CX never is. The key (a short hash of what the entry stands
  for) lets a run recognise its own entries without any other state.
- **Shared mailboxes, same person twice:** entries are merged by e-mail address. The
  mailbox listed first in SHARED_MAILBOXES wins (within one mailbox, the contact with the
  smallest id); if it loses the contact, the next one takes over. Contacts without an
  e-mail address are never merged. One person, one phonebook line: caller-ID lookups stay
  unambiguous.
- Only changed fields are written; a run with nothing changed writes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from shared.graph_models import GraphContact
from sync.phone_numbers import normalize_phone

TAG_PREFIX = "m365:"
NUMBER_FIELDS = ("PhoneNumber", "Mobile2", "Home", "Business", "Business2", "BusinessFax", "Other", "Pager")


@dataclass(frozen=True)
class SourceContact:
    """A Graph contact with the mailbox it came from."""

    mailbox: str
    contact: GraphContact


@dataclass(frozen=True)
class WantedEntry:
    key: str  # stable identity of the entry within its book (hash, goes into the Tag)
    fields: Mapping[str, str]
    source: str  # mailbox/contact id, for messages


@dataclass(frozen=True)
class Rejected:
    source: str
    reason: str


@dataclass(frozen=True)
class ContactAction:
    kind: ClassVar[str] = "action"
    key: str


@dataclass(frozen=True)
class CreateContact(ContactAction):
    kind: ClassVar[str] = "create"
    fields: Mapping[str, str]


@dataclass(frozen=True)
class UpdateContact(ContactAction):
    kind: ClassVar[str] = "update"
    contact_id: int
    changes: Mapping[str, str]


@dataclass(frozen=True)
class DeleteContact(ContactAction):
    kind: ClassVar[str] = "delete"
    contact_id: int


@dataclass
class BookPlan:
    """The plan for one phonebook (the company one)."""

    book: str
    actions: list[ContactAction] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[Rejected] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[ContactAction]:
        return [action for action in self.actions if action.kind == kind]


def entry_key(book: str, identity: str) -> str:
    """A short, stable key for an entry: what goes after '#' in its Tag."""
    return hashlib.sha256(f"{book}\n{identity}".encode()).hexdigest()[:12]


def make_tag(mailbox: str, key: str) -> str:
    return f"{TAG_PREFIX}{mailbox.lower()}#{key}"


def tag_key(tag: str | None) -> str | None:
    """The key of an entry the connector owns, or None for anyone else's."""
    if not tag or not tag.startswith(TAG_PREFIX) or "#" not in tag:
        return None
    return tag.rsplit("#", 1)[1] or None


def contact_fields(contact: GraphContact) -> dict[str, str]:
    """The Pbx.Contact fields (without Tag) for one Graph contact."""
    first = (contact.given_name or "").strip()
    last = (contact.surname or "").strip()
    if not first and not last:
        first = (contact.display_name or "").strip()
    business = [normalize_phone(p) for p in contact.business_phones if p]
    home = [normalize_phone(p) for p in contact.home_phones if p]
    business = [p for p in business if p]
    home = [p for p in home if p]
    emails = [e.address.strip() for e in contact.email_addresses if e.address and e.address.strip()]
    other = home[1] if len(home) > 1 else (business[2] if len(business) > 2 else "")
    return {
        "FirstName": first,
        "LastName": last,
        "CompanyName": (contact.company_name or "").strip(),
        "Title": (contact.job_title or "").strip(),
        "Department": (contact.department or "").strip(),
        "Email": emails[0] if emails else "",
        "PhoneNumber": normalize_phone(contact.mobile_phone),
        "Mobile2": "",
        "Home": home[0] if home else "",
        "Business": business[0] if business else "",
        "Business2": business[1] if len(business) > 1 else "",
        "BusinessFax": "",
        "Other": other,
        "Pager": "",
    }


def rejection(fields: Mapping[str, str]) -> str | None:
    """Why 3CX would refuse this entry, or None."""
    if not (fields["FirstName"] or fields["LastName"] or fields["CompanyName"]):
        return "no name and no company"
    if not any(fields[name] for name in NUMBER_FIELDS):
        return "no phone number"
    return None


def wanted_company(
    book: str, mailboxes: Sequence[str], contacts: Iterable[SourceContact]
) -> tuple[list[WantedEntry], list[Rejected]]:
    """Shared-mailbox contacts merged by e-mail; the earlier mailbox in `mailboxes` wins."""
    order = {mailbox.lower(): index for index, mailbox in enumerate(mailboxes)}
    ranked = sorted(
        (c for c in contacts if not c.contact.is_removed),
        key=lambda c: (order.get(c.mailbox.lower(), len(order)), c.contact.id),
    )
    wanted: dict[str, WantedEntry] = {}
    rejected = []
    for item in ranked:
        fields = contact_fields(item.contact)
        source = f"{item.mailbox}/{item.contact.id}"
        reason = rejection(fields)
        if reason:
            rejected.append(Rejected(source, reason))
            continue
        identity = (
            f"email:{fields['Email'].lower()}"
            if fields["Email"]
            else f"contact:{item.mailbox.lower()}/{item.contact.id}"
        )
        key = entry_key(book, identity)
        if key in wanted:
            continue  # the same person from a mailbox that ranks lower
        wanted[key] = WantedEntry(key, {**fields, "Tag": make_tag(item.mailbox, key)}, source)
    return list(wanted.values()), rejected


def plan_book(
    book: str, wanted: Iterable[WantedEntry], target: Iterable[Mapping[str, Any]], rejected: Iterable[Rejected] = ()
) -> BookPlan:
    """Bring one phonebook's connector entries in line with `wanted`.

    `target` holds the book's current contacts as XAPI dicts (Id, Tag, fields). Entries
    whose Tag the connector did not write are never touched. Two entries carrying the same
    key (e.g. a copy made in the 3CX console with the Tag kept) are deduplicated: the one
    with the lowest Id stays.
    """
    plan = BookPlan(book, skipped=list(rejected))
    ours: dict[str, Mapping[str, Any]] = {}
    for contact in sorted(target, key=lambda c: int(c["Id"])):  # every 3CX contact has an Id
        key = tag_key(contact.get("Tag"))
        if key is None:
            continue
        if key in ours:
            plan.actions.append(DeleteContact(key, int(contact["Id"])))
        else:
            ours[key] = contact
    wanted_keys = set()
    for entry in wanted:
        wanted_keys.add(entry.key)
        current = ours.get(entry.key)
        if current is None:
            plan.actions.append(CreateContact(entry.key, dict(entry.fields)))
            continue
        changes = {name: value for name, value in entry.fields.items() if (current.get(name) or "") != value}
        if changes:
            plan.actions.append(UpdateContact(entry.key, int(current["Id"]), changes))
        else:
            plan.unchanged += 1
    for key, contact in ours.items():
        if key not in wanted_keys:
            plan.actions.append(DeleteContact(key, int(contact["Id"])))
    return plan

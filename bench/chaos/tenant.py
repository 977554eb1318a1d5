"""The simulated company and its week: who is hired, leaves, is renamed, meets, edits contacts.

Everything happens through the fakes' own helpers, as an administrator or a user would do
it in Microsoft 365 or in the 3CX console; the fakes notify the connector where Graph
would. What the soak must remember to judge the end (it cannot be read back from either
side) is kept in `Memory`: the numbers users had after the first sync, statuses users set
by hand, the users and contacts made by hand in 3CX, and every change made in Microsoft 365.

Random choices come from the seeded generator only and are made over lists in a stable
order, so one seed gives one week.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fakes.graph import GraphFake, exchange_plan
from fakes.threecx import PROFILE_NAMES, ThreeCXFake
from shared.graph import AVATAR_SIZE

DOMAIN = "contoso.example"
SHARED_MAILBOXES = ("reception@contoso.example", "sales@contoso.example", "support@contoso.example")
HAND_MADE_NUMBERS = 9000  # hand-made 3CX users take numbers from here; the connector from EXTENSION_START
PRE_EXISTING_NUMBERS = 2000  # 3CX users made by hand before the connector, for M365 users it will link

# fmt: off
FIRST = (
    "Ada", "Bruno", "Chen", "Dana", "Eva", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kofi", "Lena", "Mateo",
    "Nadia", "Omar", "Pia", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zoe",
)
LAST = (
    "Hart", "Costa", "Wei", "Okafor", "Lindqvist", "Haddad", "Muller", "Tanaka", "Duarte", "Berg", "Mensah",
    "Novak", "Rossi", "Khan", "Silva", "Dubois", "Nakamura", "Kowalski", "Jensen", "Moreau", "Sato", "Fischer",
)
# fmt: on
COMPANIES = ("Pipes Ltd", "Parcel Express", "Acme Tools", "Blue Harbour", "Nordic Print", "Sunrise Catering")
TITLES = ("Owner", "Account manager", "Engineer", "Driver", "Accountant", "Buyer", "")
SHOW_AS = (("busy", 50), ("tentative", 15), ("free", 15), ("oof", 10), ("workingElsewhere", 10))


Event = Callable[[datetime, timedelta], None]  # one thing happening, at a moment, within a step


@dataclass(frozen=True)
class HandStatus:
    """The last status a user's 3CX account got from outside the connector."""

    status: str
    at: datetime
    by_hand: bool  # False: a fresh 3CX user (made again after a deletion), not a choice of its user


@dataclass
class Memory:
    """What the soak remembers to judge the end by (see the module docstring)."""

    initial_numbers: dict[str, str] = field(default_factory=dict)  # M365 id -> extension after the first sync
    hand_status: dict[str, HandStatus] = field(default_factory=dict)  # M365 id -> status set outside
    hand_users: dict[int, dict[str, Any]] = field(default_factory=dict)  # 3CX id -> as made by hand
    hand_contacts: dict[int, dict[str, Any]] = field(default_factory=dict)  # 3CX id -> as made by hand
    left: dict[str, str] = field(default_factory=dict)  # M365 id -> address, of those who left during the week
    photos: dict[str, bytes | None] = field(default_factory=dict)  # M365 id -> the photo last set
    hand_deleted: set[str] = field(default_factory=set)  # M365 ids whose 3CX user an admin deleted
    deleted_numbers: dict[str, str] = field(default_factory=dict)  # M365 id -> the number of that 3CX user
    changed_users: dict[str, Counter[str]] = field(default_factory=dict)  # M365 id -> changes made
    changed_contacts: dict[str, Counter[str]] = field(default_factory=dict)  # e-mail -> changes made
    changed_calendars: dict[str, Counter[str]] = field(default_factory=dict)  # M365 id -> changes made

    def user_changed(self, m365_id: str, kind: str) -> None:
        self.changed_users.setdefault(m365_id, Counter())[kind] += 1

    def contact_changed(self, email: str, kind: str) -> None:
        self.changed_contacts.setdefault(email.lower(), Counter())[kind] += 1

    def calendar_changed(self, m365_id: str, kind: str) -> None:
        self.changed_calendars.setdefault(m365_id, Counter())[kind] += 1


@dataclass(frozen=True)
class LifeRates:
    """Events per simulated day: a share of the staff, or a count."""

    @classmethod
    def busier(cls, factor: float) -> LifeRates:
        """Every rate times `factor` (a short soak needs a busy week to see every kind of event)."""
        return cls(**{name: value * factor for name, value in asdict(cls()).items()})

    hires: float = 0.015
    leavers: float = 0.01
    renames: float = 0.02
    phone_changes: float = 0.01
    photo_changes: float = 0.03
    meetings: float = 0.6  # per user
    meeting_changes: float = 0.15  # per user
    contact_edits: float = 0.08  # per user, across the shared mailboxes
    hand_statuses: float = 0.04  # per user
    hand_deletions: float = 0.004  # per user: an admin deletes a synced user in 3CX
    hand_users: float = 1.0  # count: users made by hand in 3CX
    hand_contact_edits: float = 2.0  # count: edits to the company phonebook in the 3CX console


class Company:
    """The tenant, the PBX, and the week happening to them."""

    def __init__(self, graph: GraphFake, pbx: ThreeCXFake, rng: random.Random, rates: LifeRates) -> None:
        self.graph = graph
        self.pbx = pbx
        self.rng = rng
        self.rates = rates
        self.memory = Memory()
        self.events: Counter[str] = Counter()
        self.mailbox_ids: dict[str, str] = {}  # shared mailbox address -> its user id
        self._serial = 0
        self._owed: dict[int, list[Event]] = {}

    # =====================================================================================
    # the company before the connector
    # =====================================================================================
    def seed(self, users: int, now: datetime) -> None:
        """Staff, a few accounts that are not staff, shared mailboxes with contacts, and a PBX in use."""
        for _ in range(users):
            self._new_person(now)
        self.graph.add_user(f"guest.partner@{DOMAIN}", user_type="Guest", user_id=self._uuid())
        self.graph.add_user(f"room.atrium@{DOMAIN}", has_mailbox=False, user_id=self._uuid())
        for address in SHARED_MAILBOXES:  # disabled accounts with a mailbox, as Exchange makes them
            self.mailbox_ids[address] = self.graph.add_user(address, account_enabled=False, user_id=self._uuid())
        self.graph.add_contact_folder(self.mailbox_ids[SHARED_MAILBOXES[0]], "Suppliers")
        for _ in range(max(6, users // 4)):
            self._add_contact(now)
        staff = self.staff()
        for index, user_id in enumerate(self.rng.sample(staff, max(1, len(staff) // 20))):
            upn = str(self.graph.users[user_id]["userPrincipalName"])
            self.pbx.add_user(Number=str(PRE_EXISTING_NUMBERS + index), EmailAddress=upn.upper(), FirstName="Old")
        for _ in range(3):
            self._hand_made_user()
        for _ in range(3):
            self._hand_made_contact()

    # =====================================================================================
    # one step of the week
    # =====================================================================================
    def plan_week(self, steps: int) -> None:
        """Make sure each kind of event happens at least once in the week, whatever its rate."""
        self._owed = {}
        for action, _ in self._actions():
            self._owed.setdefault(self.rng.randint(1, steps), []).append(action)

    def live(self, now: datetime, step: timedelta, index: int) -> None:
        """What happens in Microsoft 365 and in the 3CX console during step `index` (of length `step`)."""
        share = step / timedelta(days=1)
        for action, per_day in self._actions():
            for _ in range(self._count(per_day * share)):
                action(now, step)
        for action in self._owed.pop(index, []):
            action(now, step)

    def _actions(self) -> list[tuple[Event, float]]:
        """Each kind of event with how often it happens per day now (most rates are per member of staff)."""
        rates, staff = self.rates, len(self.staff())
        return [
            (self._hire, rates.hires * staff),
            (self._leave, rates.leavers * staff),
            (self._rename, rates.renames * staff),
            (self._change_phone, rates.phone_changes * staff),
            (self._change_photo, rates.photo_changes * staff),
            (self._meeting, rates.meetings * staff),
            (self._change_meeting, rates.meeting_changes * staff),
            (self._edit_contacts, rates.contact_edits * staff),
            (self._hand_status, rates.hand_statuses * staff),
            (self._hand_deletion, rates.hand_deletions * staff),
            (self._hand_made_user_step, rates.hand_users),
            (self._hand_contact_step, rates.hand_contact_edits),
        ]

    def _count(self, expected: float) -> int:
        whole, fraction = divmod(expected, 1.0)
        return int(whole) + (self.rng.random() < fraction)

    # =====================================================================================
    # people
    # =====================================================================================
    def staff(self) -> list[str]:
        """Ids of the enabled member accounts with a mailbox (who should have an extension), in a stable order."""
        return [user_id for user_id, user in sorted(self.graph.users.items()) if takes_part(user)]

    def _new_person(self, now: datetime) -> str:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        self._serial += 1
        upn = f"{first}.{last}{self._serial}@{DOMAIN}".lower()
        user_id = self.graph.add_user(
            upn,
            given_name=first,
            surname=last,
            mobile_phone=self._phone(),
            business_phones=[self._phone()] if self.rng.random() < 0.7 else [],
            user_id=self._uuid(),
        )
        if self.rng.random() < 0.1:
            self._set_photo(user_id, self._photo())
        return user_id

    def _hire(self, now: datetime, step: timedelta) -> None:
        user_id = self._new_person(now)
        self.memory.user_changed(user_id, "hired")
        self.events["hires"] += 1

    def _leave(self, now: datetime, step: timedelta) -> None:
        staff = self.staff()
        if len(staff) < 5:
            return
        user_id = self.rng.choice(staff)
        user = self.graph.users[user_id]
        self.memory.left[user_id] = str(user.get("mail") or user["userPrincipalName"])
        how = self.rng.choices(("disabled", "soft_deleted", "deleted", "licence_lapsed"), (5, 3, 1, 1))[0]
        if how == "disabled":
            self.graph.update_user(user_id, accountEnabled=False)
        elif how == "soft_deleted":
            self.graph.soft_delete_user(user_id)
        elif how == "deleted":
            self.graph.hard_delete_user(user_id)
        else:
            lapsed = exchange_plan(now.strftime("%Y-%m-%dT%H:%M:%SZ"), capability_status="Suspended")
            self.graph.update_user(user_id, assignedPlans=[lapsed])
        self.memory.user_changed(user_id, f"left ({how})")
        self.events["leavers"] += 1

    def _rename(self, now: datetime, step: timedelta) -> None:
        user_id = self._someone()
        if user_id is None:
            return
        user = self.graph.users[user_id]
        last = self.rng.choice(LAST)
        self.graph.update_user(user_id, surname=last, displayName=f"{user['givenName']} {last}")
        self.memory.user_changed(user_id, "renamed")
        self.events["renames"] += 1

    def _change_phone(self, now: datetime, step: timedelta) -> None:
        user_id = self._someone()
        if user_id is None:
            return
        if self.rng.random() < 0.5:
            self.graph.update_user(user_id, mobilePhone=self._phone())
        else:
            self.graph.update_user(user_id, businessPhones=[self._phone()])
        self.memory.user_changed(user_id, "phone")
        self.events["phone_changes"] += 1

    def _change_photo(self, now: datetime, step: timedelta) -> None:
        user_id = self._someone()
        if user_id is None:
            return
        removed = self.graph.photo_etag(user_id) is not None and self.rng.random() < 0.2
        self._set_photo(user_id, None if removed else self._photo())
        self.memory.user_changed(user_id, "photo removed" if removed else "photo")
        self.events["photo_changes"] += 1

    def _set_photo(self, user_id: str, photo: bytes | None) -> None:
        self.graph.set_photo(user_id, photo)
        # What the avatar should be: the photo at the size avatars are fetched at.
        self.memory.photos[user_id] = self.graph.photo_content(user_id, AVATAR_SIZE) if photo else None

    def _someone(self) -> str | None:
        staff = self.staff()
        return self.rng.choice(staff) if staff else None

    # =====================================================================================
    # calendars
    # =====================================================================================
    def _meeting(self, now: datetime, step: timedelta) -> None:
        user_id = self._someone()
        if user_id is None:
            return
        show_as = self.rng.choices([name for name, _ in SHOW_AS], [weight for _, weight in SHOW_AS])[0]
        kind = self.rng.random()
        if kind < 0.05:  # a day out of office
            day = (now + timedelta(days=self.rng.randint(0, 1))).date()
            self.graph.add_event(
                user_id,
                start=day,
                end=day + timedelta(days=1),
                show_as="oof",
                is_all_day=True,
                subject="Leave",
                event_id=self._event_id(),
            )
        else:
            start = self._quarter(now + timedelta(minutes=self.rng.randint(-60, 24 * 60)))
            end = start + timedelta(minutes=self.rng.choice((15, 30, 45, 60, 90, 120, 180)))
            recurrence = {"pattern": "daily", "count": self.rng.randint(2, 4)} if kind < 0.1 else None
            self.graph.add_event(
                user_id, start=start, end=end, show_as=show_as, recurrence=recurrence, event_id=self._event_id()
            )
        self.memory.calendar_changed(user_id, "meeting")
        self.events["meetings"] += 1

    def meetings_around(self, moment: datetime, count: int) -> None:
        """Meetings running at `moment` (and some just over), so the end has statuses to check."""
        staff = self.staff()
        for user_id in self.rng.sample(staff, min(count, len(staff))):
            start = self._quarter(moment - timedelta(minutes=self.rng.choice((15, 30, 60))))
            over = self.rng.random() < 0.3
            end = start + timedelta(minutes=15) if over else moment + timedelta(minutes=self.rng.choice((30, 60)))
            show_as = self.rng.choice(("busy", "busy", "oof", "workingElsewhere"))
            self.graph.add_event(
                user_id, start=start, end=end, show_as=show_as, subject="Late meeting", event_id=self._event_id()
            )
            self.memory.calendar_changed(user_id, "meeting")
            self.events["meetings"] += 1

    def _change_meeting(self, now: datetime, step: timedelta) -> None:
        candidates = [
            (user_id, instance)
            for user_id in self.staff()
            for instance in self.graph.event_instances(user_id)
            if instance.end > now and not instance.is_cancelled
        ]
        if not candidates:
            return
        user_id, instance = self.rng.choice(candidates)
        event_id = instance.source.id  # the series or single event, as a user edits it
        change = self.rng.choice(("cancel", "move", "delete", "show_as"))
        if change == "cancel":
            self.graph.cancel_event(user_id, event_id)
        elif change == "delete":
            self.graph.delete_event(user_id, event_id)
        elif change == "show_as":
            self.graph.update_event(user_id, event_id, show_as=self.rng.choice(("busy", "free", "oof", "tentative")))
        elif not instance.is_all_day and instance.source.recurrence is None:
            shift = timedelta(minutes=self.rng.choice((-30, 15, 30, 60, 120)))
            self.graph.update_event(user_id, event_id, start=instance.start + shift, end=instance.end + shift)
        else:
            self.graph.cancel_event(user_id, event_id)
            change = "cancel"
        self.memory.calendar_changed(user_id, change)
        self.events["meeting_changes"] += 1

    # =====================================================================================
    # the company phonebook's sources
    # =====================================================================================
    def _edit_contacts(self, now: datetime, step: timedelta) -> None:
        roll = self.rng.random()
        if roll < 0.4:
            self._add_contact(now)
        elif roll < 0.75:
            self._update_contact()
        elif roll < 0.9:
            self._delete_contact()
        else:
            self._move_contact()

    def _add_contact(self, now: datetime) -> None:
        mailbox = self.rng.choice(list(self.mailbox_ids.values()))
        folders = (
            sorted(self.graph.contact_mailboxes[mailbox].folders) if mailbox in self.graph.contact_mailboxes else []
        )
        folder = self.rng.choice(folders) if folders and self.rng.random() < 0.3 else None
        # Someone another mailbox knows too (never twice in one mailbox: which copy wins there
        # would hang on contact ids alone).
        known = sorted(
            {_email_of(fields) for box, _, fields in self._contacts() if box != mailbox and _email_of(fields)}
            - {_email_of(fields) for box, _, fields in self._contacts() if box == mailbox}
        )
        if known and self.rng.random() < 0.1:
            email = self.rng.choice(known)
        else:
            self._serial += 1
            email = f"contact{self._serial}@{self.rng.choice(('pipes', 'parcels', 'acme', 'harbour'))}.example"
        fields: dict[str, Any] = {
            "givenName": self.rng.choice(FIRST),
            "surname": self.rng.choice(LAST),
            "emailAddresses": [{"address": email, "name": email}],
            "companyName": self.rng.choice(COMPANIES),
            "jobTitle": self.rng.choice(TITLES),
        }
        if self.rng.random() < 0.95:  # the rest have no number: 3CX would refuse them, so they are skipped
            fields["businessPhones"] = [self._phone()]
        if self.rng.random() < 0.4:
            fields["mobilePhone"] = self._phone()
        self.graph.add_contact(mailbox, folder, **fields)
        self.memory.contact_changed(email, "added")
        self.events["contact_edits"] += 1

    def _contacts(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(mailbox id, contact id, fields) of every shared-mailbox contact, in the order they were added
        (contact ids are random, so an order by id would differ from run to run)."""
        found = []
        for mailbox in self.mailbox_ids.values():
            book = self.graph.contact_mailboxes.get(mailbox)
            for contact_id, contact in book.contacts.items() if book else []:
                found.append((mailbox, contact_id, contact.fields))
        return found

    def _update_contact(self) -> None:
        contacts = self._contacts()
        if not contacts:
            return
        mailbox, contact_id, fields = self.rng.choice(contacts)
        change = self.rng.choice(("businessPhones", "jobTitle", "surname"))
        value: Any = {
            "businessPhones": [self._phone()],
            "jobTitle": self.rng.choice(TITLES),
            "surname": self.rng.choice(LAST),
        }[change]
        self.graph.update_contact(mailbox, contact_id, **{change: value})
        self.memory.contact_changed(_email_of(fields), f"updated {change}")
        self.events["contact_edits"] += 1

    def _delete_contact(self) -> None:
        contacts = self._contacts()
        if not contacts:
            return
        mailbox, contact_id, fields = self.rng.choice(contacts)
        self.graph.delete_contact(mailbox, contact_id)
        self.memory.contact_changed(_email_of(fields), "deleted")
        self.events["contact_edits"] += 1

    def _move_contact(self) -> None:
        movable = [
            (mailbox, contact_id, fields)
            for mailbox, contact_id, fields in self._contacts()
            if len(self.graph.contact_mailboxes[mailbox].folders) > 1
        ]
        if not movable:
            return
        mailbox, contact_id, fields = self.rng.choice(movable)
        book = self.graph.contact_mailboxes[mailbox]
        current = book.contacts[contact_id].folder_id
        target = self.rng.choice([folder for folder in book.folders if folder != current])
        self.graph.move_contact(mailbox, contact_id, target)
        self.memory.contact_changed(_email_of(fields), "moved")
        self.events["contact_edits"] += 1

    # =====================================================================================
    # by hand, in 3CX
    # =====================================================================================
    def _hand_status(self, now: datetime, step: timedelta) -> None:
        user_id = self._someone()
        tcx = self.tcx_user_of(user_id) if user_id else None
        if user_id is None or tcx is None or not tcx.get("Enabled", True):
            return
        status = self.rng.choice([name for name in PROFILE_NAMES if name != tcx["CurrentProfileName"]])
        self.pbx.set_status(tcx["Id"], status)
        self.memory.hand_status[user_id] = HandStatus(status, now, by_hand=True)
        self.events["hand_statuses"] += 1

    def _hand_deletion(self, now: datetime, step: timedelta) -> None:
        user_id = self._someone()
        tcx = self.tcx_user_of(user_id) if user_id else None
        if user_id is None or tcx is None:
            return
        self.pbx.delete_user(tcx["Id"])
        self.memory.hand_deleted.add(user_id)
        self.memory.deleted_numbers[user_id] = str(tcx["Number"])
        # The connector makes it again, fresh: its status starts as 3CX's default.
        self.memory.hand_status[user_id] = HandStatus("Available", now, by_hand=False)
        self.events["hand_deletions"] += 1

    def _hand_made_user_step(self, now: datetime, step: timedelta) -> None:
        self._hand_made_user()

    def _hand_made_user(self) -> None:
        number = str(HAND_MADE_NUMBERS + len(self.memory.hand_users))
        made = self.pbx.add_user(
            Number=number,
            FirstName=self.rng.choice(FIRST),
            LastName="(desk phone)",
            EmailAddress=f"desk{number}@facilities.example",
        )
        self.memory.hand_users[int(made["Id"])] = made
        self.events["hand_made_users"] += 1

    def _hand_contact_step(self, now: datetime, step: timedelta) -> None:
        ours = [
            contact
            for contact in self.pbx.company_contacts.values()
            if str(contact.get("Tag") or "").startswith("m365:")
        ]
        roll = self.rng.random()
        if roll < 0.4 and ours:
            victim = self.rng.choice(sorted(ours, key=lambda c: int(c["Id"])))
            self.pbx.update_contact(int(victim["Id"]), FirstName="Edited", Title="by hand")
            self.events["hand_contact_edits"] += 1
        elif roll < 0.7 and ours:
            victim = self.rng.choice(sorted(ours, key=lambda c: int(c["Id"])))
            self.pbx.delete_contact(int(victim["Id"]))
            self.events["hand_contact_deletions"] += 1
        else:
            self._hand_made_contact()

    def _hand_made_contact(self) -> None:
        made = self.pbx.add_contact(
            FirstName=self.rng.choice(("Pizza", "Taxi", "Florist", "Locksmith")),
            LastName=self.rng.choice(("Place", "Central", "Corner")),
            PhoneNumber=self._phone(normalised=True),
        )
        self.memory.hand_contacts[int(made["Id"])] = made
        self.events["hand_made_contacts"] += 1

    # =====================================================================================
    # helpers
    # =====================================================================================
    def tcx_user_of(self, user_id: str) -> dict[str, Any] | None:
        """The 3CX user carrying this M365 user's address (None if there is none)."""
        user = self.graph.users.get(user_id)
        if user is None:
            return None
        address = str(user.get("mail") or user["userPrincipalName"]).casefold()
        matches = [u for u in self.pbx.users.values() if str(u.get("EmailAddress") or "").casefold() == address]
        return matches[0] if len(matches) == 1 else None

    def remember_numbers(self) -> None:
        """The extension of every staff member now (after the first sync): numbers must never change."""
        by_address = {str(u.get("EmailAddress") or "").casefold(): u for u in self.pbx.users.values()}
        for user_id in self.staff():
            user = self.graph.users[user_id]
            tcx = by_address.get(str(user.get("mail") or user["userPrincipalName"]).casefold())
            if tcx is not None:
                self.memory.initial_numbers[user_id] = str(tcx["Number"])

    def _phone(self, *, normalised: bool = False) -> str:
        digits = "".join(str(self.rng.randint(0, 9)) for _ in range(7))
        if normalised:
            return f"+4930{digits}"
        return self.rng.choice((f"+49 30 {digits}", f"+49 (0)30 {digits[:3]} {digits[3:]}", f"+4930{digits}"))

    def _photo(self) -> bytes:
        return b"\xff\xd8\xff\xe0" + self.rng.randbytes(24)

    def _event_id(self) -> str:
        return f"AAMkAG{self.rng.getrandbits(128):032x}"

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    @staticmethod
    def _quarter(moment: datetime) -> datetime:
        return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


def takes_part(user: dict[str, Any]) -> bool:
    """Whether a Graph user (as the fake stores it) should have a working extension: an enabled
    member account with a working Exchange mailbox (shared mailboxes are disabled accounts)."""
    working = any(
        plan.get("service") == "exchange" and str(plan.get("capabilityStatus")).lower() in ("enabled", "warning")
        for plan in user.get("assignedPlans") or []
    )
    return bool(user.get("accountEnabled")) and user.get("userType") == "Member" and working and bool(user.get("mail"))


def _email_of(fields: dict[str, Any]) -> str:
    addresses: Iterable[dict[str, Any]] = fields.get("emailAddresses") or []
    for entry in addresses:
        if entry.get("address"):
            return str(entry["address"]).lower()
    return ""

"""Graph change-notification subscriptions: which are wanted, and the plan that gets there (pure).

Wanted: one subscription on `/users/{id}/events` for every synced user whose calendar
option is on, one on `/users/{mailbox}/contacts` for every mailbox in SHARED_MAILBOXES (the
company phonebook), and one on `/users` (updated, deleted) so user changes reach 3CX within
minutes. Earlier versions also watched each user's own contacts (`/users/{id}/contacts`)
for personal phonebooks; those are wanted no more, so the upkeep deletes ours like any
other unwanted subscription, and a lifecycle event for one ends it.

Each subscription has its own random `clientState`, kept in state, that every notification
must carry. Subscriptions are renewed well before they expire (Outlook resources live at
most 10,080 minutes, users 41,760), recreated when Graph no longer knows them, and deleted
when nobody needs them any more — including ones Graph still has for our webhook that our
state forgot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar, Literal

from sync.eligibility import Audience
from sync.records import SubscriptionRecord

Kind = Literal["calendar", "users", "contacts"]

# Lifetimes a little under Graph's maxima, and how long before expiry to renew.
LIFETIME: Mapping[str, timedelta] = {
    "calendar": timedelta(minutes=10_080 - 60),
    "contacts": timedelta(minutes=10_080 - 60),
    "users": timedelta(minutes=41_760 - 60),
}
RENEW_BEFORE: Mapping[str, timedelta] = {
    "calendar": timedelta(days=3),
    "contacts": timedelta(days=3),
    "users": timedelta(days=10),
}
CHANGE_TYPES: Mapping[str, str] = {
    "calendar": "created,updated,deleted",
    "contacts": "created,updated,deleted",
    "users": "updated,deleted",
}
USERS_RESOURCE = "/users"


def calendar_resource(user_id: str) -> str:
    return f"/users/{user_id}/events"


def contacts_resource(mailbox: str) -> str:
    return f"/users/{mailbox}/contacts"


@dataclass(frozen=True)
class WantedSubscription:
    kind: Kind
    resource: str
    user_id: str | None

    @classmethod
    def of(cls, record: SubscriptionRecord) -> WantedSubscription:
        """The same subscription again (to recreate one Graph dropped)."""
        return cls(record.kind, record.resource, record.user_id)


@dataclass(frozen=True)
class SubscriptionAction:
    kind: ClassVar[str] = "action"
    resource: str


@dataclass(frozen=True)
class CreateSubscription(SubscriptionAction):
    kind: ClassVar[str] = "create"
    wanted: WantedSubscription


@dataclass(frozen=True)
class RenewSubscription(SubscriptionAction):
    kind: ClassVar[str] = "renew"
    record: SubscriptionRecord


@dataclass(frozen=True)
class DeleteSubscription(SubscriptionAction):
    kind: ClassVar[str] = "delete"
    subscription_id: str
    reason: str


@dataclass
class SubscriptionPlan:
    actions: list[SubscriptionAction] = field(default_factory=list)
    unchanged: int = 0


def wanted_subscriptions(audience: Audience, shared_mailboxes: Iterable[str] = ()) -> list[WantedSubscription]:
    """`/users` always; a calendar subscription per user with that option; contacts per shared mailbox."""
    wanted = [WantedSubscription("users", USERS_RESOURCE, None)]
    for m365_id in sorted(audience.calendar_users()):
        wanted.append(WantedSubscription("calendar", calendar_resource(m365_id), m365_id))
    for mailbox in shared_mailboxes:
        wanted.append(WantedSubscription("contacts", contacts_resource(mailbox.lower()), mailbox.lower()))
    return wanted


def is_abandoned_contacts_subscription(record: SubscriptionRecord, shared_mailboxes: Iterable[str]) -> bool:
    """A contacts subscription on a mailbox that is not in SHARED_MAILBOXES: nobody reads its changes.

    Such are the subscriptions earlier versions made on each user's own contacts for personal
    phonebooks (and one on a mailbox taken out of SHARED_MAILBOXES). A lifecycle event for one
    ends it instead of renewing or replacing it.
    """
    shared = {mailbox.lower() for mailbox in shared_mailboxes}
    return record.kind == "contacts" and (record.user_id or "").lower() not in shared


def plan_subscriptions(
    wanted: Iterable[WantedSubscription],
    records: Mapping[str, SubscriptionRecord],
    graph_side: Iterable[tuple[str, str]] | None,
    now: datetime,
) -> SubscriptionPlan:
    """Compare wanted subscriptions with ours (state) and Graph's (id, resource) list.

    `graph_side` None means Graph's list was not read: no orphan clean-up, and records are
    trusted to exist (a renewal that meets 404 recreates).
    """
    plan = SubscriptionPlan()
    wanted_by_resource = {w.resource.lower(): w for w in wanted}
    covered: set[str] = set()
    graph_ids = None if graph_side is None else {sub_id for sub_id, _ in graph_side}
    for record in sorted(records.values(), key=lambda r: r.resource):
        key = record.resource.lower()
        if key not in wanted_by_resource or key in covered:
            reason = "no longer needed" if key not in wanted_by_resource else "duplicate"
            plan.actions.append(DeleteSubscription(record.resource, record.id, reason))
            continue
        if (graph_ids is not None and record.id not in graph_ids) or record.expires_at <= now:
            plan.actions.append(DeleteSubscription(record.resource, record.id, "expired or gone at Graph"))
            continue  # recreated below
        covered.add(key)
        if record.expires_at - now < RENEW_BEFORE[record.kind]:
            plan.actions.append(RenewSubscription(record.resource, record))
        else:
            plan.unchanged += 1
    for key, want in wanted_by_resource.items():
        if key not in covered:
            plan.actions.append(CreateSubscription(want.resource, want))
    if graph_side is not None:
        known = {record.id for record in records.values()}
        for sub_id, resource in graph_side:
            if sub_id not in known:
                plan.actions.append(DeleteSubscription(resource, sub_id, "not in state (orphaned)"))
    return plan

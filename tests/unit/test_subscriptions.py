"""Subscription upkeep: the plan as data."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sync.eligibility import Audience
from sync.options import UserOptions
from sync.records import Link, OptionOverrides, SubscriptionRecord
from sync.subscriptions import (
    CreateSubscription,
    DeleteSubscription,
    RenewSubscription,
    is_abandoned_contacts_subscription,
    plan_subscriptions,
    wanted_subscriptions,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ON = UserOptions(sso=False, office_phone=False, photo=False, personal_contacts=False, calendar=True)


def _link(uid: str, **extra) -> Link:
    return Link(m365_id=uid, upn=f"{uid}@contoso.com", tcx_user_id=1, extension="100", origin="created", **extra)


def _record(sub_id: str, resource: str, kind: str, expires_in: timedelta, user_id: str | None = None):
    return SubscriptionRecord(
        id=sub_id, kind=kind, resource=resource, user_id=user_id, client_state="x" * 40, expires_at=NOW + expires_in
    )


def test_wanted_subscriptions_follow_links_and_the_calendar_option() -> None:
    links = {"a": _link("a"), "b": _link("b"), "c": _link("c", deprovisioned="disabled")}
    wanted = wanted_subscriptions(
        Audience(links, ON, {"b": OptionOverrides(m365_id="b", upn="b@contoso.com", calendar=False)})
    )
    assert [(w.kind, w.resource) for w in wanted] == [("users", "/users"), ("calendar", "/users/a/events")]


@pytest.mark.parametrize(
    ("kind", "left", "action"),
    [
        ("calendar", timedelta(days=6), None),
        ("calendar", timedelta(days=2, hours=23), RenewSubscription),
        ("users", timedelta(days=11), None),
        ("users", timedelta(days=9), RenewSubscription),
    ],
)
def test_renewal_well_before_expiry(kind: str, left: timedelta, action) -> None:
    resource = "/users" if kind == "users" else "/users/a/events"
    record = _record("s1", resource, kind, left, None if kind == "users" else "a")
    wanted = wanted_subscriptions(Audience({"a": _link("a")}, ON, {}))
    wanted = [w for w in wanted if w.resource == resource]
    plan = plan_subscriptions(wanted, {"s1": record}, [("s1", resource)], NOW)
    assert [type(a) for a in plan.actions] == ([action] if action else [])


def test_missing_are_created_unneeded_and_orphaned_are_deleted() -> None:
    wanted = wanted_subscriptions(Audience({"a": _link("a")}, ON, {}))
    records = {"old": _record("old", "/users/gone/events", "calendar", timedelta(days=5), "gone")}
    graph_side = [("old", "/users/gone/events"), ("stray", "/users/a/events")]
    plan = plan_subscriptions(wanted, records, graph_side, NOW)
    kinds = sorted((type(a).__name__, a.resource) for a in plan.actions)
    assert kinds == [
        ("CreateSubscription", "/users"),
        ("CreateSubscription", "/users/a/events"),
        ("DeleteSubscription", "/users/a/events"),
        ("DeleteSubscription", "/users/gone/events"),
    ]
    orphan = next(a for a in plan.actions if isinstance(a, DeleteSubscription) and a.subscription_id == "stray")
    assert "orphaned" in orphan.reason


def test_an_expired_record_is_replaced() -> None:
    wanted = [w for w in wanted_subscriptions(Audience({"a": _link("a")}, ON, {})) if w.kind == "calendar"]
    records = {"s1": _record("s1", "/users/a/events", "calendar", -timedelta(minutes=1), "a")}
    plan = plan_subscriptions(wanted, records, [], NOW)
    assert sorted(type(a).__name__ for a in plan.actions) == ["CreateSubscription", "DeleteSubscription"]
    assert isinstance(next(a for a in plan.actions if a.kind == "create"), CreateSubscription)


def test_contacts_are_watched_for_shared_mailboxes_only_whatever_the_personal_contacts_option() -> None:
    """The option now asks 3CX's own sync (MS365ContactsEnabled); the connector reads no user's contacts."""
    everyone = replace(ON, personal_contacts=True)
    wanted = wanted_subscriptions(Audience({"a": _link("a")}, everyone, {}), ["Sales@contoso.com"])
    assert [(w.kind, w.resource) for w in wanted] == [
        ("users", "/users"),
        ("calendar", "/users/a/events"),
        ("contacts", "/users/sales@contoso.com/contacts"),
    ]


def test_a_personal_contact_subscription_of_an_earlier_version_is_deleted_as_unneeded() -> None:
    everyone = replace(ON, personal_contacts=True)
    wanted = wanted_subscriptions(Audience({"a": _link("a")}, everyone, {}), ["sales@contoso.com"])
    old = _record("old", "/users/a/contacts", "contacts", timedelta(days=5), "a")
    plan = plan_subscriptions(wanted, {"old": old}, [("old", "/users/a/contacts")], NOW)
    (delete,) = [a for a in plan.actions if isinstance(a, DeleteSubscription)]
    assert (delete.subscription_id, delete.reason) == ("old", "no longer needed")


@pytest.mark.parametrize(
    ("kind", "user_id", "abandoned"),
    [
        ("contacts", "a", True),  # a user's own contacts: an earlier version's, for a personal phonebook
        ("contacts", "gone@contoso.com", True),  # a mailbox taken out of SHARED_MAILBOXES
        ("contacts", "SALES@contoso.com", False),
        ("contacts", None, True),
        ("calendar", "a", False),
        ("users", None, False),
    ],
)
def test_a_contacts_subscription_is_abandoned_unless_it_watches_a_shared_mailbox(
    kind: str, user_id: str | None, abandoned: bool
) -> None:
    resource = "/users" if kind == "users" else f"/users/{user_id}/{'events' if kind == 'calendar' else 'contacts'}"
    record = _record("s1", resource, kind, timedelta(days=5), user_id)
    assert is_abandoned_contacts_subscription(record, ["sales@contoso.com"]) is abandoned

"""Subscription upkeep: the plan as data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sync.eligibility import Audience
from sync.options import UserOptions
from sync.records import Link, OptionOverrides, SubscriptionRecord
from sync.subscriptions import (
    CreateSubscription,
    DeleteSubscription,
    RenewSubscription,
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

"""Graph change-notification subscriptions: plan, then apply.

Wanted: one subscription on `/users/{id}/events` for every synced user whose calendar
option is on, and one on `/users` (updated, deleted) so user changes reach 3CX within
minutes. Each has its own random `clientState`, kept in state, that every notification
must carry. Subscriptions are renewed well before they expire (Outlook resources live at
most 10,080 minutes, users 41,760), recreated when Graph no longer knows them, and deleted
when nobody needs them any more — including ones Graph still has for our webhook that our
state forgot.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal

from shared.graph import GraphApiError
from shared.telemetry import log_event
from sync.eligibility import Audience
from sync.envelope import RunReport, run_envelope
from sync.records import SubscriptionRecord
from sync.runtime import Runtime

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
UPKEEP_LOCK = "subscriptions"


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
        return cls(record.kind, record.resource, record.user_id)  # type: ignore[arg-type]


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
    """`/users` always; a calendar and a contacts subscription per user who has that option."""
    wanted = [WantedSubscription("users", USERS_RESOURCE, None)]
    calendar_users = audience.calendar_users()
    contact_users = audience.personal_contact_users()
    for m365_id in sorted(audience.synced()):
        if m365_id in calendar_users:
            wanted.append(WantedSubscription("calendar", calendar_resource(m365_id), m365_id))
        if m365_id in contact_users:
            wanted.append(WantedSubscription("contacts", contacts_resource(m365_id), m365_id))
    for mailbox in shared_mailboxes:
        wanted.append(WantedSubscription("contacts", contacts_resource(mailbox.lower()), mailbox.lower()))
    return wanted


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


@dataclass
class SubscriptionResult:
    plan: SubscriptionPlan
    created: int = 0
    renewed: int = 0
    deleted: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "renewed": self.renewed,
            "deleted": self.deleted,
            "unchanged": self.plan.unchanged,
            "failed": self.failed,
        }


def reconcile_subscriptions(rt: Runtime, *, now: datetime | None = None, trigger: str = "cli") -> SubscriptionResult:
    """Create missing, renew expiring, delete orphaned subscriptions (the timer and the CLI), as one run."""
    rt.settings.require_graph()
    rt.settings.require_webhook()
    now = now or datetime.now(UTC)
    result = SubscriptionResult(SubscriptionPlan())
    with run_envelope(rt.state, "subscriptions", trigger=trigger, lock=UPKEEP_LOCK) as run:
        try:
            _upkeep(rt, result, now)
        finally:
            run.report = RunReport(counts=result.as_dict(), failures=list(result.errors))
    return result


def _upkeep(rt: Runtime, result: SubscriptionResult, now: datetime) -> None:
    wanted = wanted_subscriptions(Audience.of(rt.state, rt.settings), rt.settings.shared_mailboxes)
    records = rt.state.subscriptions()
    ours = _notification_base(rt)
    current_urls = (rt.settings.webhook_url, rt.settings.lifecycle_url)
    graph_side = []
    for sub in rt.graph.list_subscriptions():
        if (sub.notification_url or "").split("?", 1)[0] != ours:
            continue  # another application's, or another connector's
        graph_side.append((sub.id, sub.resource))
        if (sub.notification_url, sub.lifecycle_notification_url) != current_urls and sub.id in records:
            # WEBHOOK_URL changed (a new function key): forget it here, so it is deleted as
            # orphaned and made again with the URL Graph must use from now on.
            del records[sub.id]
    # Records whose subscription Graph no longer has are dropped before planning.
    live_ids = {sub_id for sub_id, _ in graph_side}
    for record in list(records.values()):
        if record.id not in live_ids:
            rt.state.delete_subscription(record.id)
            del records[record.id]
    plan = plan_subscriptions(wanted, records, graph_side, now)
    result.plan = plan
    for action in plan.actions:
        try:
            _apply(rt, action, result, now)
        except GraphApiError as error:
            result.failed += 1
            result.errors.append(f"{action.kind} {action.resource}: {error}")
            level = logging.ERROR
            log_event(
                "subscription_failed",
                level,
                kind="subscriptions",
                action=action.kind,
                resource=action.resource,
                error=str(error),
            )
    expiries = [record.expires_at for record in rt.state.subscriptions().values()]
    soonest = min(expiries, default=None)
    log_event(
        "subscription_summary",
        kind="subscriptions",
        total=len(expiries),
        soonest_expiry=soonest.strftime("%Y-%m-%dT%H:%M:%SZ") if soonest else None,
        **result.as_dict(),
    )


def _notification_base(rt: Runtime) -> str:
    return (rt.settings.webhook_url or "").split("?", 1)[0]


def _apply(rt: Runtime, action: SubscriptionAction, result: SubscriptionResult, now: datetime) -> None:
    if isinstance(action, CreateSubscription):
        create_subscription(rt, action.wanted, now)
        result.created += 1
    elif isinstance(action, RenewSubscription):
        try:
            renewed = rt.graph.renew_subscription(action.record.id, now + LIFETIME[action.record.kind])
        except GraphApiError as error:
            if error.status != 404:
                raise
            rt.state.delete_subscription(action.record.id)
            create_subscription(
                rt, WantedSubscription(action.record.kind, action.record.resource, action.record.user_id), now
            )  # type: ignore[arg-type]
            result.created += 1
            return
        rt.state.save_subscription(action.record.model_copy(update={"expires_at": renewed.expiration}))
        result.renewed += 1
    elif isinstance(action, DeleteSubscription):
        rt.graph.delete_subscription(action.subscription_id)
        rt.state.delete_subscription(action.subscription_id)
        result.deleted += 1
    log_event("subscription_action", kind="subscriptions", action=action.kind, resource=action.resource)


def create_subscription(rt: Runtime, wanted: WantedSubscription, now: datetime) -> SubscriptionRecord:
    """Create one subscription (Graph validates our webhook first) and remember its clientState.

    A 409 means Graph already has one for this resource (e.g. state was lost): that one is
    deleted, since its clientState is unknown to us, and creation is tried once more.
    """
    client_state = secrets.token_urlsafe(48)  # 64 characters, within Graph's 128
    arguments = {
        "resource": wanted.resource,
        "change_type": CHANGE_TYPES[wanted.kind],
        "notification_url": rt.settings.webhook_url or "",
        "lifecycle_url": rt.settings.lifecycle_url,
        "expiration": now + LIFETIME[wanted.kind],
        "client_state": client_state,
    }
    try:
        subscription = rt.graph.create_subscription(**arguments)
    except GraphApiError as error:
        if error.status != 409:
            raise
        for existing in rt.graph.list_subscriptions():
            if existing.resource.strip("/").lower() == wanted.resource.strip("/").lower():
                rt.graph.delete_subscription(existing.id)
        subscription = rt.graph.create_subscription(**arguments)
    record = SubscriptionRecord(
        id=subscription.id,
        kind=wanted.kind,
        resource=wanted.resource,
        user_id=wanted.user_id,
        client_state=client_state,
        expires_at=subscription.expiration,
    )
    rt.state.save_subscription(record)
    return record


def handle_lifecycle(
    rt: Runtime, subscription_id: str, event: str, *, now: datetime | None = None
) -> tuple[str, str] | None:
    """React to a lifecycle notification; returns (kind, user or mailbox) to reconcile now, if any."""
    now = now or datetime.now(UTC)
    record = rt.state.get_subscription(subscription_id)
    if record is None:
        return None
    if event == "reauthorizationRequired":
        try:
            renewed = rt.graph.renew_subscription(record.id, now + LIFETIME[record.kind])
            rt.state.save_subscription(record.model_copy(update={"expires_at": renewed.expiration}))
        except GraphApiError as error:
            if error.status != 404:
                raise
            rt.state.delete_subscription(record.id)
            create_subscription(rt, WantedSubscription.of(record), now)
    elif event == "subscriptionRemoved":
        rt.state.delete_subscription(record.id)
        create_subscription(rt, WantedSubscription.of(record), now)
    log_event("subscription_lifecycle", kind="subscriptions", lifecycle_event=event, resource=record.resource)
    # After any lifecycle event, changes may have been missed: reconcile what it watches.
    if record.kind in ("calendar", "contacts") and record.user_id:
        return record.kind, record.user_id
    return None

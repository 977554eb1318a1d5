"""Subscription upkeep: apply the subscription plan against Graph, and react to lifecycle events.

The rules (what is wanted, when to renew) are `sync.subscriptions`; this module reads our
records and Graph's list, applies the plan action by action, and keeps the records in
step. It runs as one recorded run (the envelope) per upkeep and per lifecycle event.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypedDict

from shared.graph import GraphApiError
from shared.telemetry import count_action, log_event
from sync.eligibility import Audience
from sync.envelope import RunReport, run_envelope
from sync.records import SubscriptionRecord
from sync.runtime import Runtime
from sync.subscriptions import (
    CHANGE_TYPES,
    LIFETIME,
    CreateSubscription,
    DeleteSubscription,
    RenewSubscription,
    SubscriptionAction,
    SubscriptionPlan,
    WantedSubscription,
    is_abandoned_contacts_subscription,
    plan_subscriptions,
    wanted_subscriptions,
)

UPKEEP_LOCK = "subscriptions"


class _CreateArguments(TypedDict):
    """The keyword arguments of `GraphClient.create_subscription`, built once and sent up to twice."""

    resource: str
    change_type: str
    notification_url: str
    lifecycle_url: str
    expiration: datetime
    client_state: str


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
        if _base_of(sub.notification_url) != ours:
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
            _log_failure(action.kind, action.resource, error)
    expiries = [record.expires_at for record in rt.state.subscriptions().values()]
    soonest = min(expiries, default=None)
    log_event(
        "subscription_summary",
        kind="subscriptions",
        total=len(expiries),
        soonest_expiry=soonest.strftime("%Y-%m-%dT%H:%M:%SZ") if soonest else None,
        **result.as_dict(),
    )


def _log_failure(action: str, resource: str, error: GraphApiError) -> None:
    """The `subscription_failed` line (the alert's): Graph refused to make or keep a subscription."""
    count_action("subscriptions", action, "failed")
    log_event(
        "subscription_failed", logging.ERROR, kind="subscriptions", action=action, resource=resource, error=str(error)
    )


def _notification_base(rt: Runtime) -> str:
    """Our webhook, without its query string (the function key): what our subscriptions notify."""
    return _base_of(rt.settings.webhook_url)


def _base_of(notification_url: str | None) -> str:
    return (notification_url or "").split("?", 1)[0]


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
            replace_subscription(rt, action.record, now)
            result.created += 1
            return
        rt.state.save_subscription(action.record.model_copy(update={"expires_at": renewed.expiration}))
        result.renewed += 1
    elif isinstance(action, DeleteSubscription):
        rt.graph.delete_subscription(action.subscription_id)
        rt.state.delete_subscription(action.subscription_id)
        result.deleted += 1
    count_action("subscriptions", action.kind, "ok")
    log_event("subscription_action", kind="subscriptions", action=action.kind, resource=action.resource)


def create_subscription(rt: Runtime, wanted: WantedSubscription, now: datetime) -> SubscriptionRecord:
    """Create one subscription (Graph validates our webhook first) and remember its clientState.

    A 409 means Graph already has one for this resource and change types. If it notifies
    our webhook (state was lost, or it was made with an older function key), it is ours:
    deleted, since its clientState is unknown to us, and creation is tried once more. One
    that notifies another webhook (another deployment sharing the app registration) is
    not ours to delete: the 409 stands, naming that webhook.
    """
    client_state = secrets.token_urlsafe(48)  # 64 characters, within Graph's 128
    arguments: _CreateArguments = {
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
        ours = _notification_base(rt)
        on_resource = [
            existing
            for existing in rt.graph.list_subscriptions()
            if existing.resource.strip("/").lower() == wanted.resource.strip("/").lower()
        ]
        mine = [existing for existing in on_resource if _base_of(existing.notification_url) == ours]
        if not mine:
            others = sorted({_base_of(existing.notification_url) for existing in on_resource})
            if not others:
                raise
            raise GraphApiError(
                error.status, error.code, f"{error.message} (it notifies {', '.join(others)}, not this connector)"
            ) from error
        for existing in mine:
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


def replace_subscription(rt: Runtime, record: SubscriptionRecord, now: datetime) -> SubscriptionRecord:
    """Make a new subscription for what `record` watches (Graph no longer has its own), then forget `record`.

    The record goes only once its replacement exists: when creating fails, it is still
    there, so the retry (the queue's, for a lifecycle event; the next upkeep's otherwise)
    finds it and tries again.
    """
    replacement = create_subscription(rt, WantedSubscription.of(record), now)
    rt.state.delete_subscription(record.id)
    return replacement


def handle_lifecycle(
    rt: Runtime, subscription_id: str, event: str, *, now: datetime | None = None
) -> tuple[str, str] | None:
    """React to a lifecycle notification; returns (kind, user or mailbox) to reconcile now, if any."""
    now = now or datetime.now(UTC)
    record = rt.state.get_subscription(subscription_id)
    if record is None:
        return None
    if is_abandoned_contacts_subscription(record, rt.settings.shared_mailboxes):
        # An earlier version's subscription on a user's own contacts (personal phonebooks, which
        # 3CX now syncs itself), or a mailbox taken out of SHARED_MAILBOXES: end it, make nothing.
        rt.graph.delete_subscription(record.id)  # after subscriptionRemoved, Graph answers 404: fine
        rt.state.delete_subscription(record.id)
        count_action("subscriptions", "delete", "ok")
        log_event(
            "subscription_action",
            kind="subscriptions",
            action="delete",
            resource=record.resource,
            lifecycle_event=event,
        )
        return None
    try:
        if event == "reauthorizationRequired":
            _reauthorize(rt, record, now)
        elif event == "subscriptionRemoved":  # Graph has deleted it already
            replace_subscription(rt, record, now)
    except GraphApiError as error:
        _log_failure(event, record.resource, error)
        raise  # the record is kept; the worker records the refusal
    log_event("subscription_lifecycle", kind="subscriptions", lifecycle_event=event, resource=record.resource)
    # After any lifecycle event, changes may have been missed: reconcile what it watches.
    if record.kind in ("calendar", "contacts") and record.user_id:
        return record.kind, record.user_id
    return None


def _reauthorize(rt: Runtime, record: SubscriptionRecord, now: datetime) -> None:
    """Renew (which reauthorizes); a subscription Graph no longer knows (404) is replaced."""
    try:
        renewed = rt.graph.renew_subscription(record.id, now + LIFETIME[record.kind])
    except GraphApiError as error:
        if error.status != 404:
            raise
        replace_subscription(rt, record, now)
        return
    rt.state.save_subscription(record.model_copy(update={"expires_at": renewed.expiration}))

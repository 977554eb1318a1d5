"""Subscription records and change notifications shaped as Graph sends them, for the webhook
tests of both tiers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sync.notifications import WebhookAnswer, receive_notifications
from sync.records import SubscriptionRecord
from tests.conftest import TENANT_ID

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)

# Graph names users by object id (GUID); work items accept nothing else for calendars.
USER_A = "a1b2c3d4-0000-4000-8000-00000000000a"
USER_B = "b1b2c3d4-0000-4000-8000-00000000000b"


def subscription_record(sub_id: str, kind: str = "calendar", user_id: str | None = USER_A, secret: str | None = None):
    resource = {"calendar": f"users/{user_id}/events", "users": "/users", "contacts": f"users/{user_id}/contacts"}
    return SubscriptionRecord(
        id=sub_id,
        kind=kind,
        resource=resource[kind],
        user_id=user_id if kind != "users" else None,
        client_state=secret or f"state-of-{sub_id}-7Hq2",
        expires_at=NOW + timedelta(days=2),
    )


RECORDS = {
    r.id: r
    for r in [
        subscription_record("sub-cal-a", user_id=USER_A),
        subscription_record("sub-cal-b", user_id=USER_B),
        subscription_record("sub-users", kind="users"),
        subscription_record("sub-contacts", kind="contacts", user_id=USER_A),
    ]
}


def change_notification(
    record: SubscriptionRecord, *, change_type: str = "updated", item: str = "AAMkEv1", **overrides: Any
):
    """A change notification shaped as Graph sends it for `record`'s resource."""
    if record.kind == "users":
        resource, odata_type, item = f"Users/{item}", "#Microsoft.Graph.User", item
    elif record.kind == "contacts":
        resource, odata_type = f"Users/{record.user_id}/Contacts/{item}", "#Microsoft.Graph.Contact"
    else:
        resource, odata_type = f"Users/{record.user_id}/Events/{item}", "#Microsoft.Graph.Event"
    notification = {
        "id": f"n-{item}",
        "subscriptionId": record.id,
        "subscriptionExpirationDateTime": record.expires_at.isoformat(),
        "changeType": change_type,
        "resource": resource,
        "resourceData": {"@odata.type": odata_type, "@odata.id": resource, "@odata.etag": 'W/"1"', "id": item},
        "clientState": record.client_state,
        "tenantId": TENANT_ID,
    }
    notification.update(overrides)
    return {key: value for key, value in notification.items() if value is not None}


def lifecycle_notification(record: SubscriptionRecord, event: str, **overrides: Any) -> dict[str, Any]:
    notification = {
        "subscriptionId": record.id,
        "subscriptionExpirationDateTime": record.expires_at.isoformat(),
        "tenantId": TENANT_ID,
        "clientState": record.client_state,
        "lifecycleEvent": event,
    }
    notification.update(overrides)
    return {key: value for key, value in notification.items() if value is not None}


def notification_body(*notifications: dict[str, Any]) -> bytes:
    return json.dumps({"value": list(notifications)}).encode()


def post_to_webhook(
    body: bytes, route=receive_notifications, query: dict[str, str] | None = None, **kwargs
) -> WebhookAnswer:
    options = {"tenant_id": TENANT_ID, "lookup": RECORDS.get, "now": lambda: NOW, **kwargs}
    return route(query or {}, body, **options)

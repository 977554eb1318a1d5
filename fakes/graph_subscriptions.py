"""Change-notification subscriptions for the Graph fake: the API, the handshake, delivery.

Mixed into `GraphFake`. Like Graph (facts: shared/reference/graph.md §1), the fake
- validates a new subscription (change types per resource, supported resources, https
  URLs, expiration within the resource's maximum, raised to 45 minutes when shorter,
  clientState length), refuses a duplicate resource + changeType (409) and a mailbox over
  its subscription quota (403);
- proves the webhook before creating: POST `<notificationUrl>?validationToken=<token>`
  (then the same for `lifecycleNotificationUrl`), requiring 200, `text/plain` and the
  decoded token as the body;
- delivers `changeNotificationCollection` POSTs when events or users change, and
  lifecycle notifications on request (`send_lifecycle`);
- forgets subscriptions once they expire by the fake's clock.

Delivery goes through the `deliver` attribute (url, headers, body) -> (status, headers,
body), a real HTTP POST by default; tests replace it with a function. With
`hold_notifications` set, notifications queue in `pending_notifications` until
`flush_notifications()`, so a test can reorder or duplicate them first. Every delivery,
handshakes included, is recorded in `deliveries`.

Deliveries never happen while the fake's lock is held: a webhook served in the same
process may call back into Graph while answering.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import requests

from fakes.graph_errors import GraphQueryError
from fakes.transport import FakeRequest, FakeResponse, Headers

Deliver = Callable[[str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]
DeliveryKind = Literal["handshake", "notification", "lifecycle"]
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
CHANGE_TYPES = ("created", "updated", "deleted")
DIRECTORY_CHANGE_TYPES = ("updated", "deleted")  # users and groups: no "created" (graph.md §1.1)
MINIMUM_LIFETIME = timedelta(minutes=45)
OUTLOOK_MAX_MINUTES = 10_080
DIRECTORY_MAX_MINUTES = 41_760
MAX_CLIENT_STATE = 128
DEFAULT_QUOTA = 1000
DELIVERY_TIMEOUT_SECONDS = 10.0
SUBSCRIPTION_PAGE_SIZE = 100
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# Resource paths the fake accepts, without the leading slash, matched case-insensitively.
_RESOURCES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("users", re.compile(r"^users$", re.IGNORECASE)),
    ("user", re.compile(r"^users/(?P<user>[^/?]+)$", re.IGNORECASE)),
    ("events", re.compile(r"^users/(?P<user>[^/?]+)/events$", re.IGNORECASE)),
    ("contacts", re.compile(r"^users/(?P<user>[^/?]+)/contacts$", re.IGNORECASE)),
    (
        "folderContacts",
        re.compile(r"^users/(?P<user>[^/?]+)/contactFolders/(?P<folder>[^/?]+)/contacts$", re.IGNORECASE),
    ),
)
_DIRECTORY_KINDS = frozenset({"users", "user"})


def post_over_http(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    """Deliver as Graph does: a POST that must be answered within 10 seconds."""
    response = requests.post(url, headers=headers, data=body, timeout=DELIVERY_TIMEOUT_SECONDS)
    return response.status_code, dict(response.headers.items()), response.content


class SubscriptionError(GraphQueryError):
    """A subscription request the fake refuses, in Graph's words."""


@dataclass
class FakeSubscription:
    """A subscription as the fake stores it."""

    id: str
    resource: str  # as the client wrote it; Graph echoes it
    kind: str  # users | user | events | contacts | folderContacts
    user_id: str | None  # the mailbox or user it watches (None for all users)
    folder_id: str | None  # the contact folder, for folder contacts
    change_types: frozenset[str]
    change_type: str  # as the client wrote it
    notification_url: str
    lifecycle_notification_url: str | None
    expiration: datetime
    client_state: str | None = field(repr=False)
    application_id: str = ""
    reauthorizations: int = 0

    @property
    def key(self) -> tuple[str, str | None, str | None, frozenset[str]]:
        """What makes two subscriptions duplicates: the same resource and change types.

        The resource is compared as what it names, so `users/{upn}/events` and
        `/Users/{id}/events` are the same resource.
        """
        return (self.kind, self.user_id, (self.folder_id or "").lower() or None, self.change_types)

    @property
    def quota_scope(self) -> str:
        """What a subscription counts against: its mailbox, or the tenant's directory."""
        return "directory" if self.kind in _DIRECTORY_KINDS else f"mailbox:{self.user_id}"

    def to_graph(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": self.change_type,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_notification_url,
            "expirationDateTime": _timestamp(self.expiration),
            "creatorId": self.application_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


@dataclass
class PendingNotification:
    """A notification POST waiting in `pending_notifications` (held delivery)."""

    subscription_id: str
    kind: DeliveryKind
    url: str
    payload: dict[str, Any]

    @property
    def body(self) -> bytes:
        return json.dumps(self.payload).encode("utf-8")


@dataclass(frozen=True)
class Delivery:
    """One POST the fake made to a webhook, and how the webhook answered (status 0: no answer)."""

    url: str
    kind: DeliveryKind
    status: int
    seconds: float
    subscription_id: str | None = None


class SubscriptionMixin:
    """The subscription half of GraphFake (state, helpers, routes and delivery)."""

    # Provided by GraphFake.
    _lock: threading.RLock
    clock: Callable[[], float]
    users: dict[str, dict[str, Any]]
    tenant_id: str
    client_id: str
    base_url: str
    add_route: Callable[..., None]
    _find_user: Callable[[str], dict[str, Any]]
    _mailbox_owner: Callable[[str], str]

    def _init_subscriptions(self, *, quota: int, allow_http_loopback: bool, deliver: Deliver | None) -> None:
        self._subscriptions: dict[str, FakeSubscription] = {}
        self.subscription_quota_per_resource = quota
        self.allow_http_loopback = allow_http_loopback
        self.deliver: Deliver = deliver or post_over_http
        self.hold_notifications = False
        self.pending_notifications: list[PendingNotification] = []
        self.deliveries: list[Delivery] = []
        self.subscription_page_size = SUBSCRIPTION_PAGE_SIZE

    # =====================================================================================
    # helpers for tests, demo and benchmarks
    # =====================================================================================
    @property
    def subscriptions(self) -> dict[str, FakeSubscription]:
        """Live subscriptions by id (expired ones are gone, as in Graph)."""
        with self._lock:
            self._drop_expired()
            return self._subscriptions

    @contextmanager
    def held_notifications(self) -> Iterator[list[PendingNotification]]:
        """Queue deliveries inside the block; flush them (in queue order) when it ends."""
        with self._lock:
            before = self.hold_notifications
            self.hold_notifications = True
        try:
            yield self.pending_notifications
        finally:
            with self._lock:
                self.hold_notifications = before
            if not before:
                self.flush_notifications()

    def flush_notifications(self) -> list[Delivery]:
        """Deliver every pending notification in list order; returns what happened."""
        with self._lock:
            pending = list(self.pending_notifications)
            self.pending_notifications.clear()
        return [self.deliver_notification(item) for item in pending]

    def deliver_notification(self, notification: PendingNotification) -> Delivery:
        """POST one notification now, whatever `hold_notifications` says."""
        headers = {"Content-Type": "application/json; charset=utf-8"}
        status, _headers, _body, seconds = self._post(notification.url, headers, notification.body)
        return self._record(notification.url, notification.kind, status, seconds, notification.subscription_id)

    def send_lifecycle(self, subscription_id: str, event: str) -> None:
        """Send a lifecycle notification to the subscription's lifecycleNotificationUrl.

        `subscriptionRemoved` removes the subscription first, as Graph does.
        """
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"lifecycle event must be one of {', '.join(LIFECYCLE_EVENTS)}")
        with self._lock:
            subscription = self.subscriptions[subscription_id]
            if not subscription.lifecycle_notification_url:
                raise ValueError(f"subscription {subscription_id} has no lifecycleNotificationUrl")
            if event == "subscriptionRemoved":
                del self._subscriptions[subscription_id]
            payload = {
                "value": [
                    {
                        "subscriptionId": subscription.id,
                        "subscriptionExpirationDateTime": _timestamp(subscription.expiration),
                        "tenantId": self.tenant_id,
                        "clientState": subscription.client_state,
                        "lifecycleEvent": event,
                    }
                ]
            }
            notification = PendingNotification(
                subscription.id, "lifecycle", subscription.lifecycle_notification_url, payload
            )
        self._dispatch_notifications([notification])

    def expire_subscription(self, subscription_id: str) -> None:
        """Let a subscription lapse now (Graph deletes subscriptions that were not renewed)."""
        with self._lock:
            self._subscriptions.pop(subscription_id, None)

    # =====================================================================================
    # change hooks (called by the calendar and user helpers, never under the lock)
    # =====================================================================================
    def _notify_event_change(self, user_id: str, event_id: str, change_type: str) -> None:
        resource = f"Users/{user_id}/Events/{event_id}"
        resource_data = {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": resource,
            "@odata.etag": f'W/"{secrets.token_hex(12)}"',
            "id": event_id,
        }
        self._notify(lambda sub: sub.kind == "events" and sub.user_id == user_id, change_type, resource, resource_data)

    def _notify_user_change(self, user_id: str, change_type: str) -> None:
        resource = f"Users/{user_id}"
        resource_data = {
            "@odata.type": "#Microsoft.Graph.User",
            "@odata.id": resource,
            "id": user_id,
            "organizationId": self.tenant_id,
        }
        self._notify(
            lambda sub: sub.kind == "users" or (sub.kind == "user" and sub.user_id == user_id),
            change_type,
            resource,
            resource_data,
        )

    def _notify(
        self,
        watches: Callable[[FakeSubscription], bool],
        change_type: str,
        resource: str,
        resource_data: dict[str, Any],
    ) -> None:
        with self._lock:
            if not self._subscriptions:
                return  # the common case when seeding thousands of users: nothing to do
            self._drop_expired()
            notifications = [
                PendingNotification(
                    subscription.id,
                    "notification",
                    subscription.notification_url,
                    {
                        "value": [
                            {
                                "id": secrets.token_hex(8),
                                "subscriptionId": subscription.id,
                                "subscriptionExpirationDateTime": _timestamp(subscription.expiration),
                                "changeType": change_type,
                                "resource": resource,
                                "resourceData": dict(resource_data),
                                "clientState": subscription.client_state,
                                "tenantId": self.tenant_id,
                            }
                        ]
                    },
                )
                for subscription in self._subscriptions.values()
                if change_type in subscription.change_types and watches(subscription)
            ]
        self._dispatch_notifications(notifications)

    def _dispatch_notifications(self, notifications: list[PendingNotification]) -> None:
        with self._lock:
            if self.hold_notifications:
                self.pending_notifications.extend(notifications)
                return
        for notification in notifications:
            self.deliver_notification(notification)

    # =====================================================================================
    # routes (served without the fake's lock: creation waits for the webhook)
    # =====================================================================================
    def _register_subscription_routes(self) -> None:
        self.add_route("POST", r"/subscriptions", self._create_subscription)
        self.add_route("GET", r"/subscriptions", self._list_subscriptions)
        self.add_route("GET", r"/subscriptions/(?P<id>[^/]+)", self._get_subscription)
        self.add_route("PATCH", r"/subscriptions/(?P<id>[^/]+)", self._update_subscription)
        self.add_route("DELETE", r"/subscriptions/(?P<id>[^/]+)", self._delete_subscription)
        self.add_route("POST", r"/subscriptions/(?P<id>[^/]+)/reauthorize", self._reauthorize_subscription)

    def _create_subscription(self, request: FakeRequest, _match: re.Match[str]) -> FakeResponse:
        payload = _json_object(request)
        for name in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if not payload.get(name):
                raise SubscriptionError(
                    400, "InvalidRequest", f"{name} is a required property for subscription creation."
                )
        resource = str(payload["resource"])
        kind, user_key, folder_id = _resource_kind(resource)
        change_types = _change_types(payload["changeType"], kind)
        client_state = payload.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE):
            raise SubscriptionError(
                400, "InvalidRequest", f"clientState must be a string of at most {MAX_CLIENT_STATE} characters."
            )
        notification_url = self._webhook_url(payload["notificationUrl"], "notificationUrl")
        lifecycle_url = payload.get("lifecycleNotificationUrl")
        if lifecycle_url is not None:
            lifecycle_url = self._webhook_url(lifecycle_url, "lifecycleNotificationUrl")
        with self._lock:
            expiration = self._expiration(payload["expirationDateTime"], kind)
            user_id = self._watched_user(kind, user_key)
            candidate = FakeSubscription(
                id=str(uuid.uuid4()),
                resource=resource,
                kind=kind,
                user_id=user_id,
                folder_id=folder_id,
                change_types=change_types,
                change_type=str(payload["changeType"]),
                notification_url=notification_url,
                lifecycle_notification_url=lifecycle_url,
                expiration=expiration,
                client_state=client_state,
                application_id=self.client_id,
            )
            self._check_admissible(candidate)
        # The handshake happens outside the lock: the webhook may take seconds.
        self._handshake(notification_url, candidate.id)
        if lifecycle_url:
            self._handshake(lifecycle_url, candidate.id)
        with self._lock:
            self._check_admissible(candidate)  # another create may have won meanwhile
            self._subscriptions[candidate.id] = candidate
            body = {"@odata.context": f"{self.base_url}/v1.0/$metadata#subscriptions/$entity", **candidate.to_graph()}
        return FakeResponse(201, body)

    def _list_subscriptions(self, request: FakeRequest, _match: re.Match[str]) -> FakeResponse:
        offset = 0
        if "$skiptoken" in request.query:
            offset = _decode_skiptoken(request.query["$skiptoken"])
        with self._lock:
            self._drop_expired()
            everything = list(self._subscriptions.values())
            size = self.subscription_page_size
        page = everything[offset : offset + size]
        body: dict[str, Any] = {
            "@odata.context": f"{self.base_url}/v1.0/$metadata#subscriptions",
            "value": [subscription.to_graph() for subscription in page],
        }
        if offset + size < len(everything):
            body["@odata.nextLink"] = (
                f"{self.base_url}/v1.0/subscriptions?$skiptoken={_encode_skiptoken(offset + size)}"
            )
        return FakeResponse(200, body)

    def _get_subscription(self, _request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        with self._lock:
            subscription = self._known(match["id"])
            body = {
                "@odata.context": f"{self.base_url}/v1.0/$metadata#subscriptions/$entity",
                **subscription.to_graph(),
            }
        return FakeResponse(200, body)

    def _update_subscription(self, request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        payload = _json_object(request)
        if "lifecycleNotificationUrl" in payload:
            raise SubscriptionError(
                400,
                "InvalidRequest",
                "lifecycleNotificationUrl cannot be added or changed; delete the subscription and create a new one.",
            )
        unknown = set(payload) - {"expirationDateTime", "notificationUrl"}
        if unknown:
            raise SubscriptionError(
                400,
                "InvalidRequest",
                f"Only expirationDateTime and notificationUrl can be updated, not {min(unknown)}.",
            )
        new_url = (
            self._webhook_url(payload["notificationUrl"], "notificationUrl") if "notificationUrl" in payload else None
        )
        with self._lock:
            subscription = self._known(match["id"])
            expiration = (
                self._expiration(payload["expirationDateTime"], subscription.kind)
                if "expirationDateTime" in payload
                else subscription.expiration
            )
        if new_url is not None:
            self._handshake(new_url, subscription.id)
        with self._lock:
            subscription = self._known(match["id"])
            subscription.expiration = expiration
            subscription.reauthorizations += 1  # a renewal reauthorizes too (graph.md §1.6)
            if new_url is not None:
                subscription.notification_url = new_url
            body = {
                "@odata.context": f"{self.base_url}/v1.0/$metadata#subscriptions/$entity",
                **subscription.to_graph(),
            }
        return FakeResponse(200, body)

    def _delete_subscription(self, _request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        with self._lock:
            self._known(match["id"])
            del self._subscriptions[match["id"]]
        return FakeResponse(204)

    def _reauthorize_subscription(self, _request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        with self._lock:
            self._known(match["id"]).reauthorizations += 1
        return FakeResponse(204)

    # =====================================================================================
    # validation
    # =====================================================================================
    def _webhook_url(self, value: Any, name: str) -> str:
        url = str(value)
        parts = urlsplit(url)
        loopback = parts.hostname in _LOOPBACK_HOSTS
        if parts.scheme == "https" and parts.hostname:
            return url
        if parts.scheme == "http" and self.allow_http_loopback and loopback:
            return url
        raise SubscriptionError(400, "InvalidRequest", f"The {name} must be an https URL.")

    def _expiration(self, value: Any, kind: str) -> datetime:
        try:
            requested = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise SubscriptionError(400, "InvalidRequest", "expirationDateTime is not a valid date-time.") from None
        if requested.tzinfo is None:
            requested = requested.replace(tzinfo=UTC)  # Graph reads subscription times as UTC
        now = datetime.fromtimestamp(self.clock(), UTC)
        if requested <= now:
            raise SubscriptionError(400, "InvalidRequest", "Subscription expiration must be in the future.")
        maximum = DIRECTORY_MAX_MINUTES if kind in _DIRECTORY_KINDS else OUTLOOK_MAX_MINUTES
        if requested > now + timedelta(minutes=maximum):
            raise SubscriptionError(
                400, "ExtensionError", f"Subscription expiration can only be {maximum} minutes in the future."
            )
        return max(requested.astimezone(UTC), now + MINIMUM_LIFETIME)

    def _watched_user(self, kind: str, user_key: str | None) -> str | None:
        """The id of the user a resource names: a mailbox for Outlook resources (404 without one)."""
        if user_key is None:
            return None
        if kind in _DIRECTORY_KINDS:
            return str(self._find_user(user_key)["id"])
        return self._mailbox_owner(user_key)

    def _check_admissible(self, candidate: FakeSubscription) -> None:
        self._drop_expired()
        for existing in self._subscriptions.values():
            if existing.key == candidate.key:
                raise SubscriptionError(
                    409, "Conflict", f"Subscription Id {existing.id} already exists for the requested combination"
                )
        used = sum(1 for existing in self._subscriptions.values() if existing.quota_scope == candidate.quota_scope)
        if used >= self.subscription_quota_per_resource:
            target = "directory resources in this tenant" if candidate.kind in _DIRECTORY_KINDS else "this mailbox"
            raise SubscriptionError(
                403,
                "ExtensionError",
                f"The number of subscriptions for {target} has reached its limit of "
                f"{self.subscription_quota_per_resource}.",
            )

    def _handshake(self, url: str, subscription_id: str) -> None:
        token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
        separator = "&" if urlsplit(url).query else "?"
        target = f"{url}{separator}validationToken={quote(token, safe='')}"
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        status, answer_headers, body, seconds = self._post(target, headers, b"")
        self._record(target, "handshake", status, seconds, subscription_id)
        if status == 0 or seconds > DELIVERY_TIMEOUT_SECONDS:
            raise SubscriptionError(400, "InvalidRequest", "Subscription validation request timed out.")
        content_type = Headers(answer_headers).get("Content-Type", "")
        if status != 200 or not content_type.lower().startswith("text/plain") or body != token.encode("utf-8"):
            raise SubscriptionError(
                400,
                "ValidationError",
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to "
                "validation request.",
            )

    def _known(self, subscription_id: str) -> FakeSubscription:
        self._drop_expired()
        subscription = self._subscriptions.get(subscription_id)
        if subscription is None:
            raise SubscriptionError(404, "ResourceNotFound", f"The object '{subscription_id}' was not found.")
        return subscription

    def _drop_expired(self) -> None:
        now = datetime.fromtimestamp(self.clock(), UTC)
        for subscription_id in [sid for sid, sub in self._subscriptions.items() if sub.expiration <= now]:
            del self._subscriptions[subscription_id]

    # =====================================================================================
    # delivery
    # =====================================================================================
    def _post(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes, float]:
        started = time.monotonic()
        try:
            status, answer_headers, answer = self.deliver(url, dict(headers), body)
        except Exception:  # an unreachable webhook is an answer too: none (status 0)
            return 0, {}, b"", time.monotonic() - started
        return status, answer_headers, answer, time.monotonic() - started

    def _record(
        self, url: str, kind: DeliveryKind, status: int, seconds: float, subscription_id: str | None
    ) -> Delivery:
        delivery = Delivery(url, kind, status, seconds, subscription_id)
        with self._lock:
            self.deliveries.append(delivery)
        return delivery


# =========================================================================================
# helpers
# =========================================================================================
def _json_object(request: FakeRequest) -> dict[str, Any]:
    try:
        payload = request.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise SubscriptionError(400, "BadRequest", "The request body must be a JSON object.")
    return payload


def _resource_kind(resource: str) -> tuple[str, str | None, str | None]:
    """The kind of a resource path, the user (id or UPN) and the contact folder it names."""
    path = resource.strip().lstrip("/")
    if path.lower().startswith("me/") or path.lower() == "me":
        raise SubscriptionError(400, "InvalidRequest", "/me request is only valid with delegated authentication flow.")
    for kind, pattern in _RESOURCES:
        match = pattern.match(path)
        if match:
            return kind, match.groupdict().get("user"), match.groupdict().get("folder")
    raise SubscriptionError(400, "InvalidRequest", f"Resource '{resource}' is not supported for subscriptions.")


def _change_types(value: Any, kind: str) -> frozenset[str]:
    allowed = DIRECTORY_CHANGE_TYPES if kind in _DIRECTORY_KINDS else CHANGE_TYPES
    names = [part.strip() for part in str(value).split(",")]
    if not names or any(name not in allowed for name in names):
        raise SubscriptionError(
            400,
            "InvalidRequest",
            f"changeType '{value}' is not supported for this resource; use a comma-separated list of "
            f"{', '.join(allowed)}.",
        )
    return frozenset(names)


def _timestamp(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}0Z"


def _encode_skiptoken(offset: int) -> str:
    return f"s{offset:08x}"


def _decode_skiptoken(token: str) -> int:
    if not re.fullmatch(r"s[0-9a-f]{8}", token):
        raise SubscriptionError(400, "BadRequest", "The specified page token value has expired or is invalid.")
    return int(token[1:], 16)

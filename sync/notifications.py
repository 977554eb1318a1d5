"""The Graph webhook: validate change and lifecycle notifications and turn them into work items.

Graph wants an answer within seconds and retries (then throttles, then drops) slow
endpoints, so the routes only authenticate and queue: each accepted notification becomes
a typed piece of `Work` that the queue-triggered worker reconciles later. Everything here is pure
(no Functions or storage types): the caller passes the query, the raw body, a subscription
lookup and a clock, and puts `WebhookAnswer.work` on the queue.

Authentication follows Graph's advice: a notification counts only if its subscription is
one of ours, its `clientState` equals the secret stored with that subscription (compared
in constant time) and its `tenantId` is our tenant. Anything else is dropped and logged
(subscription id and reason only), yet the POST is still answered 202 whenever the body
was well-formed: Graph must not retry rogue or stale posts, and a sender learns nothing.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, get_args, runtime_checkable

from pydantic import ValidationError

from shared.notification_models import ChangeNotification, ChangeNotificationCollection
from shared.telemetry import log_event
from shared.work_items import LifecycleEvent, Work, work_from_fields
from sync.records import SubscriptionRecord

MAX_BODY_BYTES = 1024 * 1024
MAX_VALIDATION_TOKEN_CHARS = 1024
MAX_DROP_LINES_PER_POST = 20
VALIDATION_TOKEN_PARAM = "validationToken"  # noqa: S105 - a query parameter name, not a secret

_LIFECYCLE_EVENTS: frozenset[str] = frozenset(get_args(LifecycleEvent))
# "Users/{id}" as Graph writes it for /users subscriptions; also users('{id}') and a trailing @tenant.
_USER_RESOURCE = re.compile(r"^/?users(?:/|\(')([A-Za-z0-9._-]{1,128})(?:@[^/']*)?(?:'\))?/?$", re.IGNORECASE)

_SUBSCRIPTION_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

SubscriptionLookup = Callable[[str], SubscriptionRecord | None]


@runtime_checkable
class SubscriptionStore(Protocol):
    """Where subscription records live (`StateStore`)."""

    def get_subscription(self, subscription_id: str) -> SubscriptionRecord | None: ...


Route = Literal["notifications", "lifecycle"]


# Sent with every answer: the handshake echoes text a sender chose, which a browser must
# never sniff into HTML or script; the JSON answers say the same for good measure.
ANSWER_HEADERS: Mapping[str, str] = {"X-Content-Type-Options": "nosniff"}


@dataclass
class WebhookAnswer:
    """What the HTTP layer answers (status, body, its type, headers), and the work it must queue first."""

    status: int
    body: str
    content_type: str  # "text/plain" for the handshake, "application/json" otherwise
    work: list[Work] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=lambda: dict(ANSWER_HEADERS))


def receive_notifications(
    query: Mapping[str, str],
    body: bytes,
    *,
    tenant_id: str,
    lookup: SubscriptionLookup,
    now: Callable[[], datetime],
) -> WebhookAnswer:
    """`POST /api/graph/notifications`: the validation handshake, or a batch of change notifications."""
    return _receive("notifications", query, body, tenant_id=tenant_id, lookup=lookup, now=now)


def receive_lifecycle(
    query: Mapping[str, str],
    body: bytes,
    *,
    tenant_id: str,
    lookup: SubscriptionLookup,
    now: Callable[[], datetime],
) -> WebhookAnswer:
    """`POST /api/graph/lifecycle`: the validation handshake, or a batch of lifecycle notifications.

    Same rules as the notifications route: Graph may send either kind to either URL (when
    both URLs are one endpoint), and each notification is judged by its own content.
    """
    return _receive("lifecycle", query, body, tenant_id=tenant_id, lookup=lookup, now=now)


# -- the steps ------------------------------------------------------------------------------


def _receive(
    route: Route,
    query: Mapping[str, str],
    body: bytes,
    *,
    tenant_id: str,
    lookup: SubscriptionLookup,
    now: Callable[[], datetime],
) -> WebhookAnswer:
    if VALIDATION_TOKEN_PARAM in query:
        return _handshake(route, query[VALIDATION_TOKEN_PARAM])
    if len(body) > MAX_BODY_BYTES:
        log_event("webhook_rejected", logging.WARNING, route=route, reason="body too large", body_bytes=len(body))
        return _json_answer(413, {"error": f"body larger than {MAX_BODY_BYTES} bytes"})
    collection = _parse(route, body)
    if collection is None:
        return _json_answer(400, {"error": "body is not a Graph change notification collection"})

    received_at = now()
    work: dict[str, Work] = {}  # keyed by the message text: identical items collapse, order kept
    drops = _DropLog(route)
    for notification in collection.value:
        if not is_plausible_subscription_id(notification.subscription_id):
            # Never ours (Graph's ids are GUIDs), and characters like / # ? break a Table Storage lookup.
            drops.add(notification, Drop("not a subscription id"))
            continue
        try:
            record = lookup(notification.subscription_id)
        except Exception:
            # Storage is down: we cannot authenticate, so ask Graph to deliver again later.
            log_event("webhook_lookup_failed", logging.ERROR, route=route, subscription_id=_loggable(notification))
            return _json_answer(503, {"error": "subscription store unavailable; retry later"})
        verdict = _judge(notification, record, tenant_id, received_at)
        if isinstance(verdict, Drop):
            drops.add(notification, verdict)
        else:
            work.setdefault(verdict.to_message(), verdict)
    drops.close()
    log_event(
        "webhook_received",
        logging.DEBUG,
        route=route,
        notifications=len(collection.value),
        dropped=drops.count,
        queued=len(work),
    )
    return _json_answer(202, {}, list(work.values()))


def _handshake(route: Route, token: str) -> WebhookAnswer:
    """Echo the (already URL-decoded) validation token as plain text, and nothing else."""
    if not token or len(token) > MAX_VALIDATION_TOKEN_CHARS or not _encodable(token):
        log_event("webhook_rejected", logging.WARNING, route=route, reason="bad validation token", chars=len(token))
        return _json_answer(400, {"error": "validationToken must be 1 to 1024 characters of text"})
    log_event("webhook_validated", route=route)
    return WebhookAnswer(200, token, "text/plain", [])


def _parse(route: Route, body: bytes) -> ChangeNotificationCollection | None:
    try:
        return ChangeNotificationCollection.model_validate_json(body)
    except ValidationError as error:
        not_json = any(problem["type"] == "json_invalid" for problem in error.errors(include_input=False))
        log_event(
            "webhook_rejected",
            logging.WARNING,
            route=route,
            reason="not JSON" if not_json else "not the notification schema",
            body_bytes=len(body),
            problems=error.error_count(),
        )
        return None


@dataclass(frozen=True)
class Drop:
    """Why a notification is not turned into work (logged with its subscription id only)."""

    reason: str
    level: int = logging.WARNING


def _judge(
    notification: ChangeNotification,
    record: SubscriptionRecord | None,
    tenant_id: str,
    received_at: datetime,
) -> Work | Drop:
    """The work item one notification asks for, or why it is dropped."""
    if record is None:
        return Drop("unknown subscription")
    if not _same_secret(notification.client_state, record.client_state):
        return Drop("clientState mismatch")
    if not _same_tenant(notification.tenant_id, tenant_id):
        return Drop("foreign tenant")

    if notification.is_lifecycle:
        if notification.lifecycle_event not in _LIFECYCLE_EVENTS:
            return Drop("unsupported lifecycle event")
        fields: dict[str, object] = {
            "kind": "lifecycle",
            "subscription_id": notification.subscription_id,
            "lifecycle_event": notification.lifecycle_event,
            "user_id": record.user_id,
        }
    elif record.kind == "calendar":
        if not record.user_id:
            return Drop("calendar subscription has no user")
        fields = {"kind": "calendar", "user_id": record.user_id}
    elif record.kind == "users":
        user_id = _user_id_of(notification)
        if user_id is None:
            return Drop("resource names no user")
        fields = {"kind": "user", "user_id": user_id}
    elif record.kind == "contacts":
        if not record.user_id:
            return Drop("contacts subscription has no mailbox")
        fields = {"kind": "contacts", "user_id": record.user_id}
    else:
        return Drop(f"{record.kind} notifications are not handled", logging.DEBUG)

    if not notification.is_lifecycle:
        fields.update(subscription_id=notification.subscription_id, change_type=notification.change_type)
    try:
        return work_from_fields({**fields, "received_at": received_at})
    except ValidationError:
        return Drop("does not fit a work item")


class _DropLog:
    """One log line per dropped notification, up to a cap per POST, then one summary line.

    A forged POST may carry a thousand notifications; it must not become a thousand log lines.
    """

    def __init__(self, route: Route) -> None:
        self.route = route
        self.count = 0
        self._unlogged: Counter[str] = Counter()

    def add(self, notification: ChangeNotification, drop: Drop) -> None:
        self.count += 1
        if self.count <= MAX_DROP_LINES_PER_POST:
            log_event(
                "notification_dropped",
                drop.level,
                route=self.route,
                subscription_id=_loggable(notification),
                reason=drop.reason,
            )
        else:
            self._unlogged[drop.reason] += 1

    def close(self) -> None:
        if self._unlogged:
            reasons = ", ".join(f"{reason}: {count}" for reason, count in self._unlogged.most_common())
            log_event(
                "notifications_dropped",
                logging.WARNING,
                route=self.route,
                count=sum(self._unlogged.values()),
                reasons=reasons,
            )


# -- checks -------------------------------------------------------------------------------


def _same_secret(given: str | None, stored: str) -> bool:
    """Constant-time comparison of clientState, so its value cannot be guessed byte by byte."""
    # Always compare (even when absent) so the timing does not tell "missing" from "wrong".
    equal = hmac.compare_digest((given or "").encode("utf-8", "surrogatepass"), stored.encode("utf-8", "surrogatepass"))
    return equal and given is not None and stored != ""  # an empty secret authenticates nothing


def _same_tenant(given: str | None, ours: str) -> bool:
    """GUIDs compared as GUIDs: case and braces do not matter."""
    if not given:
        return False
    try:
        return uuid.UUID(given) == uuid.UUID(ours)
    except ValueError:
        return False


def _user_id_of(notification: ChangeNotification) -> str | None:
    match = _USER_RESOURCE.match(notification.resource or "")
    if match:
        return match.group(1)
    data_id = notification.resource_data.id if notification.resource_data else None
    if data_id and re.fullmatch(r"[A-Za-z0-9._-]{1,128}", data_id):
        return data_id
    return None


def is_plausible_subscription_id(subscription_id: str) -> bool:
    """Could this be a Graph subscription id (and a safe Table Storage key)?"""
    return _SUBSCRIPTION_ID.fullmatch(subscription_id) is not None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _loggable(notification: ChangeNotification) -> str:
    """The subscription id as it may appear in a log line: printable ASCII, bounded."""
    text = notification.subscription_id[:128]
    return "".join(ch if ch.isascii() and ch.isprintable() and ch not in " \"'" else "?" for ch in text)


def _json_answer(status: int, payload: dict[str, str], work: list[Work] | None = None) -> WebhookAnswer:
    return WebhookAnswer(status, json.dumps(payload), "application/json", work or [])


# -- the subscription cache -------------------------------------------------------------------


class SubscriptionCache:
    """`StateStore.get_subscription` behind a small, thread-safe, time-limited cache.

    Built around the store (`SubscriptionCache(state)`) or any lookup callable.

    Every notification needs its subscription's record; a burst of notifications (a busy
    calendar, a bulk user change) would otherwise read the same table row hundreds of times.
    Misses are cached too, briefly, so a flood of made-up subscription ids cannot hammer
    storage; the cache is bounded, dropping the oldest entries first. A lookup that raises
    (storage failing) caches nothing: the route answers 503 and Graph's redelivery reads again.
    """

    def __init__(
        self,
        store: SubscriptionStore | SubscriptionLookup,
        *,
        ttl_seconds: float = 60.0,
        miss_ttl_seconds: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load: SubscriptionLookup = store.get_subscription if isinstance(store, SubscriptionStore) else store
        self._ttl = ttl_seconds
        self._miss_ttl = miss_ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, SubscriptionRecord | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, subscription_id: str) -> SubscriptionRecord | None:
        """The subscription's record (None if it is not ours), from the cache while fresh."""
        if not is_plausible_subscription_id(subscription_id):
            return None  # not worth a storage read, and some characters would make it fail
        now = self._clock()
        with self._lock:
            cached = self._entries.get(subscription_id)
            if cached is not None and cached[0] > now:
                return cached[1]
        # Loaded outside the lock: one slow read must not stall every other lookup.
        record = self._load(subscription_id)
        expires = self._clock() + (self._ttl if record is not None else self._miss_ttl)
        with self._lock:
            self._entries[subscription_id] = (expires, record)
            self._entries.move_to_end(subscription_id)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return record

    __call__ = get

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

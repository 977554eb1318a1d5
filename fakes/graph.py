"""A stateful fake of Entra ID (token issuing) and Microsoft Graph (users, groups, photos,
calendars, Outlook contacts, change-notification subscriptions).

One fake serves both under one root: the authority is `<root>/{tenant}` and Graph is
`<root>/v1.0`, so a single `install` or `serve` gives MSAL and the Graph client a whole
tenant. Like moto, it enforces the real API's rules (page-size limits, the advanced-query
header, `$batch` limits, bearer tokens, delta tokens that expire) so a client cannot pass
its tests by leaning on leniency Graph does not have. Facts: shared/reference/graph.md.

Tests, the demo and benchmarks change the tenant through plain methods (`add_user`,
`update_user`, `soft_delete_user`, ...). Every change bumps a version number; delta
tokens remember the version they were issued at, which is how a later delta call knows
what changed.

Calendars live in fakes/graph_calendar.py, contacts in fakes/graph_contacts.py and
subscriptions with their webhook delivery in fakes/graph_subscriptions.py; all three are
mixed into `GraphFake`. Tenant changes made through the helpers notify matching
subscriptions (users: `updated`, or `deleted` when permanent).
`route_counts` counts Graph operations by route (e.g. "GET /users/{key}/calendarView"),
batch items included, for tests and benchmarks.

Faults: `inject` fails whole requests (a `$batch` POST included); `inject_batch_item` fails
single items inside a `$batch` with any status while the batch itself answers 200, as Graph
does (graph.md §5.4) — e.g. `inject_batch_item(500, count=100, url_pattern="/users/<id>/photo$")`
for one user's photo that keeps failing; clear `batch_item_faults` to end it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fakes.graph_calendar import CalendarMixin
from fakes.graph_contacts import ContactsMixin
from fakes.graph_errors import GraphQueryError
from fakes.graph_subscriptions import DEFAULT_QUOTA, Deliver, SubscriptionMixin
from fakes.transport import ISSUED_CREDENTIALS, FakeRequest, FakeResponse, FakeService, Fault, Headers

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXCHANGE_PLAN_ID = "efb87545-963c-4e0d-99df-69c6916d9eb0"  # Exchange Online (Plan 1)
GRAPH_PREFIX = "/v1.0"

MAX_PAGE_SIZE = 999
DEFAULT_PAGE_SIZE = 100
MAX_BATCH_REQUESTS = 20

# Returned when a request has no $select (graph.md §4.1).
DEFAULT_USER_PROPERTIES: tuple[str, ...] = (
    "businessPhones",
    "displayName",
    "givenName",
    "id",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
)
# Properties `$select` accepts; a name outside this list is rejected as Graph does.
KNOWN_USER_PROPERTIES: tuple[str, ...] = (
    *DEFAULT_USER_PROPERTIES,
    "accountEnabled",
    "assignedLicenses",
    "assignedPlans",
    "city",
    "companyName",
    "country",
    "createdDateTime",
    "department",
    "employeeId",
    "faxNumber",
    "mailNickname",
    "otherMails",
    "proxyAddresses",
    "state",
    "streetAddress",
    "usageLocation",
    "userType",
)
_CANONICAL_PROPERTY = {name.lower(): name for name in KNOWN_USER_PROPERTIES}

Handler = Callable[[FakeRequest, "re.Match[str]"], FakeResponse]
_UPN: Any = object()  # add_user's default for `mail`: the UPN when the user has a mailbox


def exchange_plan(assigned_at: str, *, capability_status: str = "Enabled") -> dict[str, Any]:
    """An `assignedPlans` entry for Exchange Online, as Graph reports a mailbox licence."""
    return {
        "assignedDateTime": assigned_at,
        "capabilityStatus": capability_status,
        "service": "exchange",
        "servicePlanId": EXCHANGE_PLAN_ID,
    }


@dataclass
class _Photo:
    content: bytes
    etag: str
    width: int
    height: int
    content_type: str = "image/jpeg"


# The square sizes Graph serves a photo at (`/photos/{size}/$value`), up to the stored photo's own.
PHOTO_SIZES = (48, 64, 96, 120, 240, 360, 432, 504, 648)


@dataclass
class _Cursor:
    """Server-side state behind a `$skiptoken` (a page in progress)."""

    kind: str  # "users", "delta" or "members"
    ids: list[str]
    offset: int
    page_size: int
    select: tuple[str, ...] | None
    query: dict[str, str] = field(default_factory=dict)  # repeated in nextLink, as Graph does
    # delta only: the version the round's deltaLink starts from, the last version folded
    # into `ids`, and the id filter encoded in the round.
    round_version: int = 0
    seen_version: int = 0
    id_filter: frozenset[str] | None = None


@dataclass(frozen=True)
class _DeltaState:
    """Server-side state behind a `$deltatoken`."""

    version: int
    select: tuple[str, ...] | None
    id_filter: frozenset[str] | None


class GraphFake(CalendarMixin, ContactsMixin, SubscriptionMixin, FakeService):
    """Entra token endpoint + Graph users, delta, groups, photos, `$batch`, calendars,
    contacts and subscriptions, with state.

    `subscription_quota_per_resource` caps subscriptions per mailbox (and for directory
    resources); `allow_http_loopback` lets webhooks on http://127.0.0.1 or localhost be
    subscribed for local runs (Graph itself requires https); `deliver` replaces the HTTP
    POST used for handshakes and notifications.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str | None = None,
        client_certificate_pem: bytes | str | None = None,
        clock: Callable[[], float] = time.time,
        token_lifetime_seconds: int = 3599,
        subscription_quota_per_resource: int = DEFAULT_QUOTA,
        allow_http_loopback: bool = False,
        deliver: Deliver | None = None,
    ) -> None:
        super().__init__()
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.client_certificate: x509.Certificate | None = None
        if client_certificate_pem is not None:
            pem = client_certificate_pem.encode() if isinstance(client_certificate_pem, str) else client_certificate_pem
            self.client_certificate = x509.load_pem_x509_certificate(pem)
        self.clock = clock
        self.token_lifetime_seconds = token_lifetime_seconds
        self.delta_page_size = DEFAULT_PAGE_SIZE

        # tenant state
        self.users: dict[str, dict[str, Any]] = {}  # active users by id, Graph property names
        self.deleted_users: dict[str, dict[str, Any]] = {}  # soft-deleted, restorable
        self.groups: dict[str, dict[str, Any]] = {}  # id -> {"id", "displayName", "members": [ids]}
        self._upn_index: dict[str, str] = {}  # lower-case UPN -> id (active and soft-deleted)
        self._photos: dict[str, _Photo] = {}
        self._photo_serial = itertools.count(1)

        # change tracking for delta
        self.version = 0
        self._lifecycle_at: dict[str, int] = {}  # id -> version of create/delete/restore
        self._property_changed_at: dict[str, dict[str, int]] = {}  # id -> property -> version

        # tokens and cursors
        self.tokens_issued = 0
        self._access_tokens: dict[str, float] = {}  # token -> expiry (clock seconds)
        self._cursors: dict[str, _Cursor] = {}
        self._delta_tokens: dict[str, _DeltaState] = {}
        # token -> (status to answer: 410 or 400, the round's $select for the restart Location)
        self._expired_delta_tokens: dict[str, tuple[int, tuple[str, ...] | None]] = {}

        # $batch
        self.batch_item_counts: Counter[str] = Counter()
        self.batch_item_faults: list[Fault] = []

        # calendars, contacts and subscriptions
        self._init_calendars()
        self._init_contacts()
        self._init_subscriptions(
            quota=subscription_quota_per_resource, allow_http_loopback=allow_http_loopback, deliver=deliver
        )

        self.route_counts: Counter[str] = Counter()  # "GET /users/{key}/calendarView" -> count
        self._graph_routes: list[tuple[str, re.Pattern[str], Handler, str]] = []
        self._register_graph_routes()

    # =====================================================================================
    # tenant mutation helpers (plain methods for tests, demo and benchmarks)
    # =====================================================================================
    def add_user(
        self,
        upn: str,
        *,
        given_name: str | None = None,
        surname: str | None = None,
        display_name: str | None = None,
        mail: str | None = _UPN,
        mobile_phone: str | None = None,
        business_phones: Iterable[str] = (),
        account_enabled: bool = True,
        user_type: str = "Member",
        has_mailbox: bool = True,
        user_id: str | None = None,
    ) -> str:
        """Create a user and return its id. `mail` defaults to the UPN when the user has a mailbox."""
        with self._lock:
            if upn.lower() in self._upn_index:
                raise ValueError(f"userPrincipalName {upn} already exists")
            new_id = user_id or str(uuid.uuid4())
            if new_id in self._lifecycle_at:
                raise ValueError(f"user id {new_id} was already used")
            if display_name is None:
                display_name = " ".join(part for part in (given_name, surname) if part) or upn.split("@")[0]
            if mail is _UPN:
                mail = upn if has_mailbox else None
            now = _iso(self.clock())
            self.users[new_id] = {
                "id": new_id,
                "userPrincipalName": upn,
                "mail": mail,
                "displayName": display_name,
                "givenName": given_name,
                "surname": surname,
                "mobilePhone": mobile_phone,
                "businessPhones": list(business_phones),
                "accountEnabled": account_enabled,
                "userType": user_type,
                "assignedPlans": [exchange_plan(now)] if has_mailbox else [],
                "jobTitle": None,
                "officeLocation": None,
                "preferredLanguage": None,
                "createdDateTime": now,
            }
            self._upn_index[upn.lower()] = new_id
            self._lifecycle_at[new_id] = self._bump()
        self._notify_user_change(new_id, "updated")  # Graph reports creation as "updated"
        return new_id

    def update_user(self, user_id: str, **graph_fields: Any) -> None:
        """Change properties of an active user, named as in Graph (e.g. `displayName="A B"`)."""
        with self._lock:
            record = self.users[user_id]
            changed = {name: value for name, value in graph_fields.items() if record.get(name) != value}
            if "id" in changed:
                raise ValueError("a user's id cannot change")
            if "userPrincipalName" in changed:
                new_upn = str(changed["userPrincipalName"])
                owner = self._upn_index.get(new_upn.lower())
                if owner not in (None, user_id):
                    raise ValueError(f"userPrincipalName {new_upn} already exists")
                del self._upn_index[str(record["userPrincipalName"]).lower()]
                self._upn_index[new_upn.lower()] = user_id
            if not changed:
                return
            version = self._bump()
            record.update(changed)
            versions = self._property_changed_at.setdefault(user_id, {})
            for name in changed:
                versions[name] = version
        self._notify_user_change(user_id, "updated")

    def soft_delete_user(self, user_id: str) -> None:
        """Delete a user the restorable way (Entra's deleted items; delta reason "changed")."""
        with self._lock:
            self.deleted_users[user_id] = self.users.pop(user_id)
            self._lifecycle_at[user_id] = self._bump()
        self._notify_user_change(user_id, "updated")  # a soft delete is an update to Graph

    def hard_delete_user(self, user_id: str) -> None:
        """Delete a user permanently, active or soft-deleted (delta reason "deleted")."""
        with self._lock:
            record = self.users.pop(user_id, None) or self.deleted_users.pop(user_id)
            self._upn_index.pop(str(record["userPrincipalName"]).lower(), None)
            self._photos.pop(user_id, None)
            self._property_changed_at.pop(user_id, None)
            self._lifecycle_at[user_id] = self._bump()
        self._notify_user_change(user_id, "deleted")

    def restore_user(self, user_id: str) -> None:
        """Bring a soft-deleted user back."""
        with self._lock:
            self.users[user_id] = self.deleted_users.pop(user_id)
            self._lifecycle_at[user_id] = self._bump()
        self._notify_user_change(user_id, "updated")

    def add_group(self, display_name: str, members: Iterable[str] = (), *, group_id: str | None = None) -> str:
        """Create a group whose members are user or group ids; returns its id."""
        with self._lock:
            new_id = group_id or str(uuid.uuid4())
            self.groups[new_id] = {"id": new_id, "displayName": display_name, "members": list(members)}
            self._bump()
            return new_id

    def add_group_member(self, group_id: str, member_id: str) -> None:
        with self._lock:
            members = self.groups[group_id]["members"]
            if member_id not in members:
                members.append(member_id)
                self._bump()

    def remove_group_member(self, group_id: str, member_id: str) -> None:
        with self._lock:
            self.groups[group_id]["members"].remove(member_id)
            self._bump()

    def set_photo(
        self,
        user_id: str,
        content: bytes | None,
        *,
        width: int = 648,
        height: int = 648,
        content_type: str = "image/jpeg",
    ) -> None:
        """Set (or with None remove) a user's photo; every new photo gets a new etag.

        Photos are a navigation property, which delta does not track, so this does not
        bump the version: a client must compare etags to notice.
        """
        with self._lock:
            if user_id not in self.users:
                raise KeyError(user_id)
            if content is None:
                self._photos.pop(user_id, None)
                return
            serial = next(self._photo_serial)
            digest = hashlib.sha256(content + serial.to_bytes(8, "big")).hexdigest()[:32]
            self._photos[user_id] = _Photo(bytes(content), f'W/"{digest}"', width, height, content_type)

    def photo_content(self, user_id: str, size: str | None = None) -> bytes:
        """What `$value` gives for the user's photo: the original, or its `size` ("96x96") version."""
        with self._lock:
            photo = self._photos[user_id]
            return photo.content if size is None else _resized(photo, size)

    def photo_etag(self, user_id: str) -> str | None:
        """The etag Graph would report for a user's photo; None without a photo."""
        with self._lock:
            photo = self._photos.get(user_id)
            return photo.etag if photo else None

    def issue_token(self) -> str:
        """A valid Graph access token without an HTTP round trip (for tests that don't test auth)."""
        with self._lock:
            return self._new_access_token()

    def expire_delta_tokens(self, *, status: int = 410) -> None:
        """Make every outstanding delta and delta-page token fail, as after tenant maintenance.

        `status` 410 answers Gone with a Location to restart from; 400 answers the
        `syncStateNotFound` error Graph gives for expired tokens.
        """
        if status not in (400, 410):
            raise ValueError("status must be 410 (Gone) or 400 (syncStateNotFound)")
        with self._lock:
            for token, state in self._delta_tokens.items():
                self._expired_delta_tokens[token] = (status, state.select)
            self._delta_tokens.clear()
            for token, cursor in list(self._cursors.items()):
                if cursor.kind == "delta":
                    self._expired_delta_tokens[token] = (status, cursor.select)
                    del self._cursors[token]

    def inject_batch_item(
        self, status: int, *, count: int = 1, retry_after: float | None = None, url_pattern: str | None = None
    ) -> None:
        """Make the next `count` matching `$batch` items answer `status` (the batch itself stays 200).

        `url_pattern` is a regex searched in the item's path (relative to /v1.0).
        """
        with self._lock:
            self.batch_item_faults.append(Fault(status, count, retry_after, url_pattern, None))

    def reset_counts(self) -> None:
        """Zero the per-method and the per-route request counts."""
        with self._lock:
            super().reset_counts()
            self.route_counts.clear()

    def add_route(self, method: str, pattern: str, handler: Handler, *, label: str | None = None) -> None:
        """Serve another Graph path (a regex matched against the path after /v1.0).

        `label` names the route in `route_counts`; by default the pattern with its named
        groups written as `{name}`.
        """
        name = label or _route_label(pattern)
        self._graph_routes.append((method.upper(), re.compile(pattern + r"$"), handler, f"{method.upper()} {name}"))

    # =====================================================================================
    # dispatch
    # =====================================================================================
    def route(self, request: FakeRequest) -> FakeResponse:
        if request.path == f"{GRAPH_PREFIX}/subscriptions" or request.path.startswith(f"{GRAPH_PREFIX}/subscriptions/"):
            # Subscription handlers lock for themselves: creating one waits for the webhook's
            # handshake, which must not stall (or deadlock) every other Graph request.
            return self._graph(request)
        with self._lock:
            if request.path == GRAPH_PREFIX or request.path.startswith(GRAPH_PREFIX + "/"):
                return self._graph(request)
            return self._entra(request)

    def fault_response(self, fault: Fault) -> FakeResponse:
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = _seconds(fault.retry_after)
        code, message = {
            429: ("TooManyRequests", "Too many requests. Please retry after the time given in Retry-After."),
            503: ("serviceNotAvailable", "The service is temporarily unavailable. Please retry."),
            504: ("UnknownError", "The gateway timed out."),
        }.get(fault.status, ("generalException", f"Injected failure {fault.status}."))
        return self._graph_error(fault.status, code, message, headers)

    def _graph(self, request: FakeRequest) -> FakeResponse:
        denied = self._check_bearer(request.headers.get("Authorization"))
        if denied is not None:
            return denied
        relative = replace(request, path=request.path[len(GRAPH_PREFIX) :] or "/")
        if relative.method == "POST" and relative.path == "/$batch":
            return self._batch(relative)
        return self._dispatch_graph(relative)

    def _dispatch_graph(self, request: FakeRequest) -> FakeResponse:
        path_matched = False
        for method, pattern, handler, label in self._graph_routes:
            match = pattern.match(request.path)
            if match is None:
                continue
            path_matched = True
            if method != request.method:
                continue
            with self._lock:
                self.route_counts[label] += 1
            try:
                return handler(request, match)
            except GraphQueryError as error:  # CalendarError and SubscriptionError included
                return self._graph_error(error.status, error.code, error.message, error.headers)
        if path_matched:
            return self._graph_error(405, "Request_BadRequest", f"The method {request.method} is not allowed here.")
        return self._graph_error(
            400, "BadRequest", f"Resource not found for the segment '{request.path.strip('/').split('/')[0]}'."
        )

    def _register_graph_routes(self) -> None:
        self.add_route("GET", r"/users", self._list_users)
        self.add_route("GET", r"/users/delta(?:\(\))?", self._users_delta)
        self.add_route("GET", r"/users/(?P<key>[^/]+)", self._get_user)
        self.add_route("GET", r"/users/(?P<key>[^/]+)/photo", self._photo_metadata)
        self.add_route("GET", r"/users/(?P<key>[^/]+)/photo/\$value", self._photo_value)
        self.add_route("GET", r"/users/(?P<key>[^/]+)/photos/(?P<size>[^/]+)/\$value", self._sized_photo_value)
        self.add_route("GET", r"/groups/(?P<group>[^/]+)/transitiveMembers/microsoft\.graph\.user", self._members)
        self._register_calendar_routes()
        self._register_contact_routes()
        self._register_subscription_routes()

    # =====================================================================================
    # Entra
    # =====================================================================================
    def _entra(self, request: FakeRequest) -> FakeResponse:
        parts = request.path.strip("/").split("/")
        if request.method == "GET" and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return self._openid_configuration(parts[0])
        if request.method == "POST" and parts[1:] == ["oauth2", "v2.0", "token"]:
            return self._token(parts[0], request)
        return FakeResponse(404, {"error": "not_found", "error_description": f"No such endpoint: {request.path}"})

    def _openid_configuration(self, tenant: str) -> FakeResponse:
        if tenant != self.tenant_id:
            return _aad_error(
                400,
                "invalid_tenant",
                "AADSTS90002",
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing "
                "into the correct cloud.",
            )
        root = f"{self.base_url}/{tenant}"
        return FakeResponse(
            200,
            {
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{root}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{root}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "graph.fake",
                "msgraph_host": urlsplit(self.base_url).netloc,
            },
        )

    def _token(self, tenant: str, request: FakeRequest) -> FakeResponse:
        form = request.form()
        if tenant != self.tenant_id:
            return _aad_error(400, "invalid_request", "AADSTS90002", f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return _aad_error(
                400,
                "unsupported_grant_type",
                "AADSTS70003",
                "The app requested an unsupported grant type; this tenant serves client_credentials only.",
            )
        client_id = form.get("client_id", "")
        if client_id != self.client_id:
            return _aad_error(
                400,
                "unauthorized_client",
                "AADSTS700016",
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
            )
        if form.get("scope", "").split() != [GRAPH_SCOPE]:
            return _aad_error(
                400,
                "invalid_scope",
                "AADSTS1002012",
                f"The provided value for scope {form.get('scope', '')} is not valid. Client credential flows must "
                "have a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        refusal = self._check_client_credential(form, f"{self.base_url}/{tenant}/oauth2/v2.0/token")
        if refusal is not None:
            return refusal
        token = self._new_access_token()
        return FakeResponse(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime_seconds,
                "ext_expires_in": self.token_lifetime_seconds,
                "access_token": token,
            },
        )

    def _check_client_credential(self, form: dict[str, str], token_endpoint: str) -> FakeResponse | None:
        if form.get("client_secret"):
            if self.client_secret is not None and secrets.compare_digest(form["client_secret"], self.client_secret):
                return None
            return _aad_error(
                401,
                "invalid_client",
                "AADSTS7000215",
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
                f"value, not the client secret ID, for a secret added to app '{self.client_id}'.",
            )
        if form.get("client_assertion"):
            if form.get("client_assertion_type") != JWT_BEARER:
                return _aad_error(
                    400, "invalid_request", "AADSTS50027", "Invalid client_assertion_type; expected jwt-bearer."
                )
            return self._check_client_assertion(form["client_assertion"], token_endpoint)
        return _aad_error(
            401,
            "invalid_client",
            "AADSTS7000218",
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )

    def _check_client_assertion(self, assertion: str, token_endpoint: str) -> FakeResponse | None:
        """Check a client assertion JWT the way Entra does for certificate credentials."""
        try:
            header_b64, payload_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64url_decode(header_b64))
            claims = json.loads(_b64url_decode(payload_b64))
            signature = _b64url_decode(signature_b64)
        except (ValueError, binascii.Error):
            return _aad_error(401, "invalid_client", "AADSTS50027", "JWT token is invalid or malformed.")
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            return _aad_error(
                401,
                "invalid_client",
                "AADSTS700023",
                "Client assertion audience or issuer/subject claim does not match the client id.",
            )
        if claims.get("aud") != token_endpoint:
            return _aad_error(
                401,
                "invalid_client",
                "AADSTS700021",
                f"Client assertion audience claim does not match {token_endpoint}.",
            )
        now = self.clock()
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] + 300 < now:
            return _aad_error(
                401, "invalid_client", "AADSTS700024", "Client assertion is not within its valid time range."
            )
        if self.client_certificate is None:
            return None
        thumbprint = self.client_certificate.fingerprint(hashes.SHA1())  # noqa: S303 - x5t is SHA-1 by definition
        sha256_print = self.client_certificate.fingerprint(hashes.SHA256())
        sent_x5t = header.get("x5t")
        sent_x5t256 = header.get("x5t#S256")
        if (sent_x5t and _b64url_decode(sent_x5t) != thumbprint) or (
            sent_x5t256 and _b64url_decode(sent_x5t256) != sha256_print
        ):
            return _aad_error(
                401,
                "invalid_client",
                "AADSTS700027",
                "The certificate with identifier used to sign the client assertion is not registered on application.",
            )
        public_key = self.client_certificate.public_key()
        signed = f"{header_b64}.{payload_b64}".encode("ascii")
        algorithm = header.get("alg")
        try:
            if not isinstance(public_key, rsa.RSAPublicKey):
                raise InvalidSignature
            if algorithm == "RS256":
                public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            elif algorithm == "PS256":
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
                public_key.verify(signature, signed, pss, hashes.SHA256())
            else:
                raise InvalidSignature
        except InvalidSignature:
            return _aad_error(401, "invalid_client", "AADSTS700027", "Client assertion failed signature validation.")
        return None

    def _new_access_token(self) -> str:
        token = "fake-graph-" + secrets.token_urlsafe(24)
        self._access_tokens[token] = self.clock() + self.token_lifetime_seconds
        ISSUED_CREDENTIALS.add(token)
        self.tokens_issued += 1
        return token

    def _check_bearer(self, authorization: str | None) -> FakeResponse | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self._graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        expires_at = self._access_tokens.get(token.strip())
        if expires_at is None:
            return self._graph_error(401, "InvalidAuthenticationToken", "Access token validation failure.")
        if expires_at <= self.clock():
            return self._graph_error(
                401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
            )
        return None

    # =====================================================================================
    # Graph: users
    # =====================================================================================
    def _list_users(self, request: FakeRequest, _match: re.Match[str]) -> FakeResponse:
        if "$skiptoken" in request.query:
            cursor = self._take_cursor(request.query["$skiptoken"], "users")
        else:
            select = _parse_select(request.query.get("$select"))
            page_size = _parse_top(request.query.get("$top"))
            ids = self._filter_users(request.query.get("$filter"))
            query = {key: value for key, value in request.query.items() if key in ("$select", "$top", "$filter")}
            cursor = _Cursor("users", ids, 0, page_size, select, query)
        return self._page_response(cursor, "/users", "users")

    def _get_user(self, request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        record = self._find_user(match["key"])
        select = _parse_select(request.query.get("$select"))
        body = {"@odata.context": f"{self._graph_root}/$metadata#users/$entity", **_project(record, select)}
        return FakeResponse(200, body)

    def _find_user(self, key: str) -> dict[str, Any]:
        record = self.users.get(key)
        if record is None:
            user_id = self._upn_index.get(key.lower())
            record = self.users.get(user_id) if user_id else None
        if record is None:
            raise GraphQueryError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.",
            )
        return record

    def _filter_users(self, expression: str | None) -> list[str]:
        if not expression:
            return list(self.users)
        clauses, connector = _parse_filter(expression)
        matching = []
        for user_id, record in self.users.items():
            results = (_clause_matches(record, clause) for clause in clauses)
            if all(results) if connector == "and" else any(results):
                matching.append(user_id)
        return matching

    # =====================================================================================
    # Graph: users delta
    # =====================================================================================
    def _users_delta(self, request: FakeRequest, _match: re.Match[str]) -> FakeResponse:
        if "$skiptoken" in request.query:
            token = request.query["$skiptoken"]
            self._raise_if_expired(token)
            cursor = self._take_cursor(token, "delta")
        elif request.query.get("$deltatoken"):
            token = request.query["$deltatoken"]
            if token.lower() == "latest":
                return self._latest_delta_link(request)
            self._raise_if_expired(token)
            state = self._delta_tokens.get(token)
            if state is None:
                raise _sync_state_not_found()
            ids = self._changed_since(state)
            cursor = _Cursor(
                "delta",
                ids,
                0,
                self._delta_page_size(request),
                state.select,
                round_version=self.version,
                seen_version=self.version,
                id_filter=state.id_filter,
            )
        else:
            select = _parse_select(request.query.get("$select"))
            id_filter = _parse_id_filter(request.query.get("$filter"))
            ids = [user_id for user_id in self.users if id_filter is None or user_id in id_filter]
            cursor = _Cursor(
                "delta",
                ids,
                0,
                self._delta_page_size(request),
                select,
                round_version=self.version,
                seen_version=self.version,
                id_filter=id_filter,
            )
        return self._delta_page(cursor)

    def _latest_delta_link(self, request: FakeRequest) -> FakeResponse:
        state = _DeltaState(
            self.version, _parse_select(request.query.get("$select")), _parse_id_filter(request.query.get("$filter"))
        )
        return FakeResponse(
            200,
            {
                "@odata.context": f"{self._graph_root}/$metadata#users",
                "value": [],
                "@odata.deltaLink": self._new_delta_link(state),
            },
        )

    def _delta_page(self, cursor: _Cursor) -> FakeResponse:
        # Changes made while a round is in progress are appended, so an entity can appear
        # twice in one round (Graph does this too; clients must merge, last one wins).
        if self.version > cursor.seen_version:
            still_to_come = set(cursor.ids[cursor.offset :])
            late = [
                user_id
                for user_id in self._changed_ids(cursor.seen_version, cursor.select, cursor.id_filter)
                if user_id not in still_to_come
            ]
            cursor = replace(cursor, ids=cursor.ids + late, seen_version=self.version)
        end = cursor.offset + cursor.page_size
        entries = [self._delta_entry(user_id, cursor.select) for user_id in cursor.ids[cursor.offset : end]]
        body: dict[str, Any] = {"@odata.context": f"{self._graph_root}/$metadata#users", "value": entries}
        if end < len(cursor.ids):
            token = self._store_cursor(replace(cursor, offset=end))
            body["@odata.nextLink"] = f"{self._graph_root}/users/delta?$skiptoken={token}"
        else:
            body["@odata.deltaLink"] = self._new_delta_link(
                _DeltaState(cursor.round_version, cursor.select, cursor.id_filter)
            )
        return FakeResponse(200, body)

    def _delta_entry(self, user_id: str, select: tuple[str, ...] | None) -> dict[str, Any]:
        if user_id in self.users:
            return _project(self.users[user_id], select)
        reason = "changed" if user_id in self.deleted_users else "deleted"
        return {"id": user_id, "@removed": {"reason": reason}}

    def _changed_since(self, state: _DeltaState) -> list[str]:
        return self._changed_ids(state.version, state.select, state.id_filter)

    def _changed_ids(self, version: int, select: tuple[str, ...] | None, id_filter: frozenset[str] | None) -> list[str]:
        watched = set(select or DEFAULT_USER_PROPERTIES)
        changed = []
        for user_id, lifecycle_version in self._lifecycle_at.items():
            if id_filter is not None and user_id not in id_filter:
                continue
            if lifecycle_version > version or any(
                property_version > version and name in watched
                for name, property_version in self._property_changed_at.get(user_id, {}).items()
            ):
                changed.append(user_id)
        return changed

    def _new_delta_link(self, state: _DeltaState) -> str:
        token = secrets.token_urlsafe(18)
        self._delta_tokens[token] = state
        return f"{self._graph_root}/users/delta?$deltatoken={token}"

    def _raise_if_expired(self, token: str) -> None:
        status, select = self._expired_delta_tokens.get(token, (None, None))
        if status == 410:
            # Location restarts the round: an empty $deltatoken means "from the beginning".
            select_query = f"$select={','.join(select)}&" if select else ""
            raise GraphQueryError(
                410,
                "resyncRequired",
                "Resync required. Replace any local items with the server's version (including deletes) and "
                "start a new synchronization round.",
                {"Location": f"{self._graph_root}/users/delta?{select_query}$deltatoken="},
            )
        if status == 400:
            raise _sync_state_not_found()

    def _delta_page_size(self, request: FakeRequest) -> int:
        prefer = request.headers.get("Prefer") or ""
        match = re.search(r"odata\.maxpagesize=(\d+)", prefer)
        return max(1, int(match.group(1))) if match else self.delta_page_size

    # =====================================================================================
    # Graph: groups
    # =====================================================================================
    def _members(self, request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        group_id = match["group"]
        if (request.headers.get("ConsistencyLevel") or "").lower() != "eventual" or (
            request.query.get("$count", "").lower() != "true"
        ):
            raise GraphQueryError(
                400,
                "Request_UnsupportedQuery",
                "The requested query needs the advanced query capabilities: send 'ConsistencyLevel: eventual' "
                "and '$count=true'.",
            )
        if group_id not in self.groups:
            raise GraphQueryError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{group_id}' does not exist or one of its queried reference-property objects are not "
                "present.",
            )
        path = f"/groups/{quote(group_id)}/transitiveMembers/microsoft.graph.user"
        if "$skiptoken" in request.query:
            cursor = self._take_cursor(request.query["$skiptoken"], "members")
            return self._page_response(cursor, path, "users")
        select = _parse_select(request.query.get("$select"))
        page_size = _parse_top(request.query.get("$top"))
        query = {key: value for key, value in request.query.items() if key in ("$select", "$top", "$count")}
        cursor = _Cursor("members", self.transitive_user_ids(group_id), 0, page_size, select, query)
        response = self._page_response(cursor, path, "users")
        response.body["@odata.count"] = len(cursor.ids)
        return response

    def transitive_user_ids(self, group_id: str) -> list[str]:
        """Active users in a group, directly or through nested groups (cycles tolerated)."""
        users: dict[str, None] = {}
        seen_groups: set[str] = set()
        pending = [group_id]
        while pending:
            current = pending.pop()
            if current in seen_groups or current not in self.groups:
                continue
            seen_groups.add(current)
            for member in self.groups[current]["members"]:
                if member in self.groups:
                    pending.append(member)
                elif member in self.users:
                    users[member] = None
        return list(users)

    # =====================================================================================
    # Graph: photos
    # =====================================================================================
    def _photo_metadata(self, request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        record = self._find_user(match["key"])
        photo = self._photo_of(record["id"])
        return FakeResponse(
            200,
            {
                "@odata.context": f"{self._graph_root}/$metadata#users('{record['id']}')/photo/$entity",
                "@odata.mediaContentType": photo.content_type,
                "@odata.mediaEtag": photo.etag,
                "id": f"{photo.width}X{photo.height}",
                "height": photo.height,
                "width": photo.width,
            },
        )

    def _photo_value(self, request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        record = self._find_user(match["key"])
        photo = self._photo_of(record["id"])
        return FakeResponse(200, photo.content, {"Content-Type": photo.content_type, "ETag": photo.etag})

    def _sized_photo_value(self, request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        """One of Graph's sizes of the photo; a size it does not have for this photo is 404."""
        record = self._find_user(match["key"])
        photo = self._photo_of(record["id"])
        size = match["size"]
        side = int(size.split("x", 1)[0]) if re.fullmatch(r"(\d+)x\1", size) else 0
        if side not in PHOTO_SIZES or side > min(photo.width, photo.height):
            raise GraphQueryError(404, "ImageNotFound", f"The photo wasn't found at size {size}.")
        return FakeResponse(200, _resized(photo, size), {"Content-Type": photo.content_type, "ETag": photo.etag})

    def _photo_of(self, user_id: str) -> _Photo:
        photo = self._photos.get(user_id)
        if photo is None:
            raise GraphQueryError(
                404,
                "ImageNotFound",
                "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.",
            )
        return photo

    # =====================================================================================
    # Graph: $batch
    # =====================================================================================
    def _batch(self, request: FakeRequest) -> FakeResponse:
        try:
            payload = request.json()
        except ValueError:
            return self._graph_error(400, "BadRequest", "Invalid batch payload format.")
        items = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(items, list) or not items:
            return self._graph_error(400, "BadRequest", "Invalid batch payload format: 'requests' is missing.")
        if len(items) > MAX_BATCH_REQUESTS:
            return self._graph_error(
                400, "BadRequest", f"Invalid batch payload format: a batch holds at most {MAX_BATCH_REQUESTS} requests."
            )
        seen: set[str] = set()
        for item in items:
            item_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(item_id, str) or not item.get("method") or not item.get("url"):
                return self._graph_error(400, "BadRequest", "Each batch request needs 'id', 'method' and 'url'.")
            if item_id in seen:
                return self._graph_error(400, "BadRequest", f"Batch request ids must be unique; '{item_id}' repeats.")
            seen.add(item_id)
        responses = [self._batch_item(item, request.headers) for item in items]
        return FakeResponse(200, {"responses": responses})

    def _batch_item(self, item: dict[str, Any], outer_headers: Headers) -> dict[str, Any]:
        parts = urlsplit(str(item["url"]))
        path = "/" + unquote(parts.path).lstrip("/")
        if path.startswith(GRAPH_PREFIX + "/"):
            path = path[len(GRAPH_PREFIX) :]
        headers = Headers({"Authorization": outer_headers.get("Authorization", "")})
        for key, value in (item.get("headers") or {}).items():
            headers[key] = value
        body = item.get("body")
        sub_request = FakeRequest(
            method=str(item["method"]).upper(),
            path=path,
            query={key: values[0] for key, values in parse_qs(parts.query, keep_blank_values=True).items()},
            headers=headers,
            body=json.dumps(body).encode() if body is not None else b"",
            url=str(item["url"]),
        )
        self.batch_item_counts[sub_request.method] += 1
        fault = self._take_batch_fault(sub_request)
        response = self.fault_response(fault) if fault else self._dispatch_graph(sub_request)
        return _batch_answer(str(item["id"]), response)

    def _take_batch_fault(self, request: FakeRequest) -> Fault | None:
        for fault in self.batch_item_faults:
            if fault.count > 0 and fault.matches(request):
                fault.count -= 1
                if fault.count == 0:
                    self.batch_item_faults.remove(fault)
                return fault
        return None

    # =====================================================================================
    # shared pieces
    # =====================================================================================
    @property
    def _graph_root(self) -> str:
        return f"{self.base_url}{GRAPH_PREFIX}"

    def _bump(self) -> int:
        self.version += 1
        return self.version

    def _store_cursor(self, cursor: _Cursor) -> str:
        token = secrets.token_urlsafe(18)
        self._cursors[token] = cursor
        return token

    def _take_cursor(self, token: str, kind: str) -> _Cursor:
        cursor = self._cursors.get(token)
        if cursor is None or cursor.kind != kind:
            if kind == "delta":
                raise _sync_state_not_found()
            raise GraphQueryError(
                400, "Request_BadRequest", "The specified page token value has expired or is invalid."
            )
        return cursor

    def _page_response(self, cursor: _Cursor, path: str, entity_set: str) -> FakeResponse:
        """One page of users from a cursor; ids gone since the first page are skipped."""
        end = cursor.offset + cursor.page_size
        page = [
            _project(self.users[user_id], cursor.select)
            for user_id in cursor.ids[cursor.offset : end]
            if user_id in self.users
        ]
        body: dict[str, Any] = {"@odata.context": f"{self._graph_root}/$metadata#{entity_set}", "value": page}
        if end < len(cursor.ids):
            token = self._store_cursor(replace(cursor, offset=end))
            query = "".join(f"{key}={quote(value, safe=',')}&" for key, value in cursor.query.items())
            body["@odata.nextLink"] = f"{self._graph_root}{path}?{query}$skiptoken={token}"
        return FakeResponse(200, body)

    def _graph_error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> FakeResponse:
        request_id = str(uuid.uuid4())
        body = {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": _iso(self.clock()),
                    "request-id": request_id,
                    "client-request-id": request_id,
                },
            }
        }
        return FakeResponse(status, body, dict(headers or {}))


# =========================================================================================
# helpers
# =========================================================================================
def _route_label(pattern: str) -> str:
    """A readable route name from its regex: `/users/(?P<key>[^/]+)/photo` -> `/users/{key}/photo`."""
    label = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)
    label = re.sub(r"\(\?:[^)]*\)\?", "", label)
    return label.replace("\\", "")


def _project(record: dict[str, Any], select: tuple[str, ...] | None) -> dict[str, Any]:
    """The user as Graph shows it: only the selected (or default) properties, plus id."""
    names = select or DEFAULT_USER_PROPERTIES
    projected = {"id": record["id"]}
    for name in names:
        value = record.get(name)
        projected[name] = (
            [dict(item) if isinstance(item, dict) else item for item in value] if isinstance(value, list) else value
        )
    return projected


def _parse_select(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    names = []
    for raw in value.split(","):
        name = _CANONICAL_PROPERTY.get(raw.strip().lower())
        if name is None:
            raise GraphQueryError(
                400,
                "Request_BadRequest",
                f"Could not find a property named '{raw.strip()}' on type 'microsoft.graph.user'.",
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def _parse_top(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    try:
        top = int(value)
    except ValueError:
        top = 0
    if not 1 <= top <= MAX_PAGE_SIZE:
        raise GraphQueryError(
            400,
            "Request_UnsupportedQuery",
            f"Invalid page size specified: '{value}'. Must be between 1 and {MAX_PAGE_SIZE} inclusive.",
        )
    return top


_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+('(?:[^']|'')*'|true|false|null)\s*$", re.IGNORECASE)


def _parse_filter(expression: str) -> tuple[list[tuple[str, Any]], str]:
    """`prop eq 'value'` clauses joined by one kind of connector (`or` or `and`)."""
    connector = "or"
    pieces = re.split(r"\s+or\s+", expression.strip(), flags=re.IGNORECASE)
    if len(pieces) == 1:
        pieces = re.split(r"\s+and\s+", expression.strip(), flags=re.IGNORECASE)
        connector = "and"
    clauses = []
    for piece in pieces:
        match = _CLAUSE.match(piece.strip("() "))
        name = _CANONICAL_PROPERTY.get(match.group(1).lower()) if match else None
        if match is None or name is None:
            raise GraphQueryError(
                400, "Request_UnsupportedQuery", f"Unsupported or invalid query filter clause: {piece}"
            )
        literal = match.group(2)
        value: Any
        if literal.startswith("'"):
            value = literal[1:-1].replace("''", "'")
        else:
            value = {"true": True, "false": False, "null": None}[literal.lower()]
        clauses.append((name, value))
    return clauses, connector


def _clause_matches(record: dict[str, Any], clause: tuple[str, Any]) -> bool:
    name, expected = clause
    actual = record.get(name)
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.lower() == expected.lower()  # directory string comparisons ignore case
    return actual == expected


def _parse_id_filter(expression: str | None) -> frozenset[str] | None:
    """Delta's only filter: `id eq '...'` clauses joined by `or`, at most 50."""
    if not expression:
        return None
    clauses, connector = _parse_filter(expression)
    if any(name != "id" for name, _ in clauses) or (connector == "and" and len(clauses) > 1):
        raise GraphQueryError(400, "Request_UnsupportedQuery", "Delta supports only 'id eq' filters joined by 'or'.")
    if len(clauses) > 50:
        raise GraphQueryError(400, "Request_UnsupportedQuery", "Delta filters may name at most 50 ids.")
    return frozenset(str(value) for _, value in clauses)


def _sync_state_not_found() -> GraphQueryError:
    return GraphQueryError(
        400,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired or invalid; start a new round.",
    )


def _batch_answer(item_id: str, response: FakeResponse) -> dict[str, Any]:
    headers = dict(response.headers)
    body: Any = response.body
    if isinstance(body, (bytes, bytearray)):
        # Graph returns binary item bodies base64-encoded.
        body = base64.b64encode(body).decode("ascii")
    elif isinstance(body, (dict, list)):
        headers.setdefault("Content-Type", "application/json; charset=utf-8")
    return {"id": item_id, "status": response.status, "headers": headers, "body": body}


def _aad_error(status: int, error: str, aadsts: str, description: str) -> FakeResponse:
    trace_id = str(uuid.uuid4())
    correlation_id = str(uuid.uuid4())
    timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return FakeResponse(
        status,
        {
            "error": error,
            "error_description": f"{aadsts}: {description}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {timestamp}",
            "error_codes": [int(aadsts.removeprefix("AADSTS"))],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={aadsts.removeprefix('AADSTS')}",
        },
    )


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _resized(photo: _Photo, size: str) -> bytes:
    """A stand-in for Graph's scaled copy: different from the original, the same for the same photo."""
    return f"{size}:".encode() + hashlib.sha256(photo.content).digest()

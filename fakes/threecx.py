"""A stateful, moto-style fake of the 3CX V20 XAPI and its token endpoint.

The fake's root is the PBX root (`https://pbx.example.com:5001`): it answers
`/connect/token`, the user operations under `/xapi/v1` the connector uses, and the company
phonebook (`/xapi/v1/Contacts`, in `fakes.threecx_contacts`), 3CX's own Microsoft 365
integration settings and the API client's record (in `fakes.threecx_integrations`). Anything else outside
`/xapi/v1` (the web client's API, such as the MyPhone session) is 404. It keeps
users and contacts in memory and enforces what the real PBX enforces, so a client cannot
pass its tests by sending what 3CX would refuse:

* one active token per API client: issuing a token revokes the previous one (3CX's rule);
* request bodies may only carry `Pbx.User` properties of the official 20.0.10 document,
  with the right JSON types; anything else is a 400 in the OData error shape;
* an extension number is immutable and unique; `CurrentProfileName` takes one of the
  five profile names;
* no `@odata.nextLink`: clients page with `$top`/`$skip`.

Every request under `/xapi/v1` is appended to `XAPI_JOURNAL` *before* it is checked, so the
conformance test can hold everything the suite sent against the official OpenAPI document.
Tests that send an invalid request on purpose mark it with the `X-Test-Deliberately-Invalid: 1`
header, which that check skips.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fakes.threecx_contacts import ContactRejected, PhonebookMixin
from fakes.threecx_integrations import IntegrationRejected, IntegrationsMixin
from fakes.transport import ISSUED_CREDENTIALS, FakeRequest, FakeResponse, FakeService, Fault
from fakes.xapi_errors import XapiRejection

XAPI_ROOT = "/xapi/v1"
API_DESCRIPTION_PATH = f"{XAPI_ROOT}/swagger.yaml"  # the document itself, not an operation in it
TOKEN_PATH = "/connect/token"
DELIBERATELY_INVALID_HEADER = "X-Test-Deliberately-Invalid"

XAPI_JOURNAL: list[FakeRequest] = []
_JOURNAL_LOCK = threading.Lock()


def clear_journal() -> None:
    """Forget every journaled request (the journal is shared by all fake instances)."""
    with _JOURNAL_LOCK:
        XAPI_JOURNAL.clear()


# -- Pbx.User property names by JSON kind, from the official 20.0.10 OpenAPI document ----------
# fmt: off
_STRING_PROPERTIES = frozenset({
    "AccessPassword", "AuthID", "AuthPassword", "Blfs", "CallUsRequirement", "ClickToCallId", "ContactImage",
    "CurrentProfileName", "DeskphonePassword", "DisplayName", "EmailAddress", "EmergencyAdditionalInfo",
    "EmergencyLocationId", "FirstName", "HotdeskingAssignment", "Language", "LastName", "Mobile", "Number",
    "OutboundCallerID", "PromptSet", "QueueStatus", "SIPID", "SRTPMode", "TranscriptionMode", "VMEmailOptions",
    "VMPIN", "VMPlayMsgDateTime", "WebMeetingFriendlyName",
})
_BOOLEAN_PROPERTIES = frozenset({
    "AIAgent", "AllowLanOnly", "AllowOwnRecordings", "BlockTunnel", "CallScreening", "CallUsEnableChat",
    "CallUsEnablePhone", "CallUsEnableVideo", "DatevEnabled", "Enable2FA", "Enabled", "EnableHotdesking",
    "ForbidRecording", "GoogleCalendarEnabled", "GoogleContactsEnabled", "GoogleSignInEnabled", "HideInPhonebook",
    "Internal", "IsRegistered", "MS365CalendarEnabled", "MS365ContactsEnabled", "MS365SignInEnabled",
    "MS365TeamsEnabled", "MyPhoneAllowDeleteRecordings", "MyPhoneHideForwardings", "MyPhonePush",
    "MyPhoneShowRecordings", "PbxDeliversAudio", "PinProtected", "RecordCalls", "RecordEmailNotify",
    "RecordExternalCallsOnly", "Require2FA", "SendEmailMissedCalls", "VMDisablePinAuth", "VMEnabled",
    "VMPlayCallerID", "WebMeetingApproveParticipants",
})
_INTEGER_PROPERTIES = frozenset({"Id", "PinProtectTimeout", "PrimaryGroupId"})
_OBJECT_PROPERTIES = frozenset({"AgentSettings", "BreakTime", "Hours"})  # complex types
_COLLECTION_PROPERTIES = frozenset({"OfficeHoursProps", "Tags"})  # collections of enum values
_NAVIGATION_PROPERTIES = frozenset({"ForwardingExceptions", "ForwardingProfiles", "Greetings", "Groups", "Phones"})
_SCALAR_PROPERTIES = _STRING_PROPERTIES | _BOOLEAN_PROPERTIES | _INTEGER_PROPERTIES
USER_PROPERTIES = _SCALAR_PROPERTIES | _OBJECT_PROPERTIES | _COLLECTION_PROPERTIES | _NAVIGATION_PROPERTIES
_EDM_TYPES = {**dict.fromkeys(_STRING_PROPERTIES, "Edm.String"), **dict.fromkeys(_BOOLEAN_PROPERTIES, "Edm.Boolean"),
              **dict.fromkeys(_INTEGER_PROPERTIES, "Edm.Int32")}

# fmt: on

PROFILE_NAMES = ("Available", "Away", "Out of office", "Custom 1", "Custom 2")
_INT32 = range(-(2**31), 2**31)


class XapiRequestError(XapiRejection):
    """A request the PBX refuses; becomes an OData error answer."""

    def response(self) -> FakeResponse:
        return odata_error(self.status, self.message, target=self.target, warning=self.warning)


def odata_error(status: int, message: str, *, target: str | None = None, warning: str | None = None) -> FakeResponse:
    """An answer in 3CX's OData error shape: a WARNINGS key goes to details, "Field:\\nKEY" to message."""
    detail_message = warning or message
    main_message = f"{target}:\n{warning}" if target and warning else message
    details = [{"code": "", "message": detail_message, "target": target}] if target else []
    body = {"error": {"code": "", "message": main_message, "target": None, "details": details, "innerError": {}}}
    return FakeResponse(status, body)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


# -- query options ---------------------------------------------------------------------------
_FILTER = re.compile(
    r"^\s*(?:tolower\(\s*(?P<lowered>\w+)\s*\)|(?P<plain>\w+))\s+eq\s+"
    r"(?P<literal>'(?:[^']|'')*'|-?\d+|true|false|null)\s*$"
)
_ORDER_ITEM = re.compile(r"^\s*(?P<prop>\w+)(?:\s+(?P<direction>asc|desc))?\s*$")


def _parse_literal(literal: str) -> Any:
    if literal.startswith("'"):
        return literal[1:-1].replace("''", "'")
    if literal in ("true", "false"):
        return literal == "true"
    if literal == "null":
        return None
    return int(literal)


def _user_filter(expression: str) -> Callable[[dict[str, Any]], bool]:
    """The few `$filter` forms the connector needs: `[tolower(]Prop[)] eq literal`."""
    match = _FILTER.match(expression)
    if not match:
        raise XapiRequestError(400, f"The $filter expression is not supported by this PBX fake: {expression}")
    lowered = match.group("lowered") is not None
    prop = match.group("lowered") or match.group("plain")
    if prop not in _SCALAR_PROPERTIES:
        raise XapiRequestError(400, f"Could not find a property named '{prop}' on type 'Pbx.User'.")
    value = _parse_literal(match.group("literal"))
    if lowered and prop not in _STRING_PROPERTIES:
        raise XapiRequestError(400, f"No function signature for the function with name 'tolower' matches '{prop}'.")
    expected = str if prop in _STRING_PROPERTIES else bool if prop in _BOOLEAN_PROPERTIES else int
    if value is not None and (type(value) is not expected):
        raise XapiRequestError(400, f"A binary operator with incompatible types was detected for '{prop}'.")

    def matches(user: dict[str, Any]) -> bool:
        stored = user.get(prop)
        if lowered and isinstance(stored, str):
            stored = stored.lower()
        return stored == value

    return matches


def _order(users: list[dict[str, Any]], orderby: str) -> list[dict[str, Any]]:
    keys: list[tuple[str, bool]] = []
    for item in orderby.split(","):
        match = _ORDER_ITEM.match(item)
        if not match or match.group("prop") not in _SCALAR_PROPERTIES:
            raise XapiRequestError(400, f"The $orderby item is not a sortable property of 'Pbx.User': {item.strip()}")
        keys.append((match.group("prop"), match.group("direction") == "desc"))
    ordered = list(users)
    for prop, descending in reversed(keys):  # stable sorts, least significant key first
        ordered.sort(key=lambda user, p=prop: (user.get(p) is not None, user.get(p)), reverse=descending)
    return ordered


def _non_negative(request: FakeRequest, option: str) -> int | None:
    raw = request.query.get(option)
    if raw is None:
        return None
    if not raw.isdigit():
        raise XapiRequestError(
            400, f"Invalid value '{raw}' for {option} query option; a non-negative integer is needed."
        )
    return int(raw)


def _names(raw: str, allowed: frozenset[str], option: str) -> list[str]:
    names = [name.strip() for name in raw.split(",") if name.strip()]
    for name in names:
        if name not in allowed:
            raise XapiRequestError(400, f"Could not find a property named '{name}' on type 'Pbx.User' ({option}).")
    return names


# -- body validation ---------------------------------------------------------------------------
def _check_value(name: str, value: Any) -> None:
    """Reject what OData's reader refuses: unknown properties and values of the wrong JSON type."""
    if name not in USER_PROPERTIES:
        raise XapiRequestError(
            400,
            f"The property '{name}' does not exist on type 'Pbx.User'. "
            "Make sure to only use property names that are defined by the type.",
            target=name,
        )
    if name in _COLLECTION_PROPERTIES or name in _NAVIGATION_PROPERTIES:
        ok = isinstance(value, list)
    elif name in _OBJECT_PROPERTIES:
        ok = value is None or isinstance(value, dict)
    elif value is None:
        ok = name != "Id"
    elif name in _STRING_PROPERTIES:
        ok = isinstance(value, str)
    elif name in _BOOLEAN_PROPERTIES:
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, int) and not isinstance(value, bool) and value in _INT32
    if not ok:
        expected = _EDM_TYPES.get(name) or ("a complex value" if name in _OBJECT_PROPERTIES else "a collection")
        raise XapiRequestError(
            400, f"Cannot convert the value of '{name}' to the expected type '{expected}'.", target=name
        )


def _user_body(request: FakeRequest) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError:
        raise XapiRequestError(400, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise XapiRequestError(400, "The request body must be a 'Pbx.User' object.")
    properties = {name: value for name, value in body.items() if not name.startswith("@odata.")}
    for name, value in properties.items():
        _check_value(name, value)
    if "CurrentProfileName" in properties and properties["CurrentProfileName"] not in PROFILE_NAMES:
        raise XapiRequestError(
            400, "No forwarding profile has this name.", target="CurrentProfileName", warning="WARNINGS.XAPI.NOT_FOUND"
        )
    if properties.get("Number") == "":
        raise XapiRequestError(
            400, "Number can not be empty.", target="Number", warning="WARNINGS.XAPI.CAN_NOT_BE_EMPTY_STRING"
        )
    return properties


class ThreeCXFake(PhonebookMixin, IntegrationsMixin, FakeService):
    """The PBX: token endpoint plus `/xapi/v1` users, status profiles, version, phonebook and integrations."""

    def __init__(
        self,
        *,
        client_id: str = "connector",
        client_secret: str = "fake-secret",
        expires_in_unit: str = "seconds",
        token_lifetime_seconds: int = 3600,
        clock: Callable[[], float] = time.time,
        version: str = "20.0.10.1000",
        first_extension: str = "100",
        opaque_tokens: bool = False,
        max_page_size: int | None = None,
        journal: bool = True,
        max_company_contacts: int | None = None,
        api_client_role: str = "system_admins",
        api_client_department: str = "DEFAULT",
    ) -> None:
        """`expires_in_unit` "minutes" mimics 20.0.8 and earlier; `opaque_tokens` issues non-JWT tokens
        so a client must rely on `expires_in`; `max_page_size` caps every page (3CX documents none);
        `journal=False` keeps a long-running served fake from growing the journal. `version` also
        decides the bulk contact delete's name (renamed in 20.0.9). `max_company_contacts` is the
        company phonebook's limit, None for none. `api_client_role` is the role the API client
        was given in `api_client_department` (Admin → Integrations → API)."""
        super().__init__()
        if expires_in_unit not in ("seconds", "minutes"):
            raise ValueError("expires_in_unit must be 'seconds' or 'minutes'")
        self.client_id = client_id
        self._client_secret = client_secret
        self.expires_in_unit = expires_in_unit
        self.token_lifetime_seconds = token_lifetime_seconds
        self.clock = clock
        self.version = version
        self.first_extension = first_extension
        self.opaque_tokens = opaque_tokens
        self.max_page_size = max_page_size
        self.journal = journal
        self.tokens_issued = 0
        self.rejected_tokens = 0  # XAPI requests answered 401 (missing, replaced or expired token)
        self._signing_key = secrets.token_bytes(32)
        self._active_token: str | None = None
        self._active_token_expiry = 0.0
        self._users: dict[int, dict[str, Any]] = {}
        self._profiles: dict[int, list[dict[str, Any]]] = {}
        self._next_id = 1
        self._current = threading.local()
        self.api_description_text: str | None = None  # served at /xapi/v1/swagger.yaml when set
        # Numbers held by DNs that are not users (queues, ring groups, IVRs, trunks): they never
        # appear under /Users, yet 3CX refuses them for a new user.
        self.other_dn_numbers: set[str] = set()
        # Fields 3CX computes or reformats itself, as a test sets them: after every create and
        # PATCH, field name -> what 3CX stores, given the user as written.
        self.normalisers: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self._init_phonebooks(max_company_contacts=max_company_contacts)
        self._init_integrations(api_client_role=api_client_role, api_client_department=api_client_department)

    def __repr__(self) -> str:
        contacts = len(self._book)
        return (
            f"ThreeCXFake(client_id={self.client_id!r}, users={len(self._users)}, contacts={contacts}, "
            f"version={self.version!r})"
        )

    # -- test helpers (not HTTP) ---------------------------------------------------------------
    def add_user(self, **fields: Any) -> dict[str, Any]:
        """Seed a user as if made by hand in the 3CX admin console; returns a copy of it.

        Same rules as the API (property names, types, unique Number); `Id` may be forced.
        """
        with self._lock:
            try:
                for name, value in fields.items():
                    _check_value(name, value)
                    if name == "CurrentProfileName" and value not in PROFILE_NAMES:
                        raise XapiRequestError(400, f"unknown profile {value!r}")
                if fields.get("Id") in self._users:
                    raise XapiRequestError(400, f"Id {fields['Id']} is already in use")
                return copy.deepcopy(self._create(fields, user_id=fields.get("Id")))
            except XapiRequestError as rejection:
                raise ValueError(rejection.message) from None

    @property
    def users(self) -> dict[int, dict[str, Any]]:
        """A snapshot of every stored user, by Id."""
        with self._lock:
            return copy.deepcopy(self._users)

    def user_by_number(self, number: str) -> dict[str, Any] | None:
        with self._lock:
            user = self._find_number(number)
            return copy.deepcopy(user) if user else None

    def delete_user(self, user_id: int) -> None:
        """Delete a user as an admin would in the console; KeyError when there is none."""
        with self._lock:
            del self._users[user_id]
            self._profiles.pop(user_id, None)

    def set_status(self, user_id: int, profile_name: str) -> None:
        """Change a user's status as the user would in the 3CX app."""
        if profile_name not in PROFILE_NAMES:
            raise ValueError(f"{profile_name!r} is not one of {PROFILE_NAMES}")
        with self._lock:
            self._users[user_id]["CurrentProfileName"] = profile_name

    def first_available_number(self) -> str:
        """The lowest free extension number at or above `first_extension`."""
        with self._lock:
            taken = {user.get("Number") for user in self._users.values()} | self.other_dn_numbers
            candidate = int(self.first_extension)
            while str(candidate) in taken:
                candidate += 1
            return str(candidate)

    # -- transport hooks ---------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        if self.journal and request.path.startswith(XAPI_ROOT) and request.path != API_DESCRIPTION_PATH:
            with _JOURNAL_LOCK:
                XAPI_JOURNAL.append(request)
        self._current.path = request.path  # lets fault_response word the failure per endpoint
        return super().handle(request)

    def fault_response(self, fault: Fault) -> FakeResponse:
        """Injected failures in the shape the endpoint uses: OAuth at /connect/token, OData elsewhere."""
        headers = {} if fault.retry_after is None else {"Retry-After": _retry_after(fault.retry_after)}
        try:
            phrase = HTTPStatus(fault.status).phrase
        except ValueError:
            phrase = "Error"
        if fault.status == 401:
            return FakeResponse(401, b"", {**headers, "WWW-Authenticate": 'Bearer error="invalid_token"'})
        if getattr(self._current, "path", "") == TOKEN_PATH:
            return FakeResponse(fault.status, {"error": "server_error", "error_description": phrase}, headers)
        response = odata_error(fault.status, phrase)
        response.headers.update(headers)
        return response

    def route(self, request: FakeRequest) -> FakeResponse:
        with self._lock:
            if request.path == TOKEN_PATH:
                return self._issue_token(request)
            if request.path == API_DESCRIPTION_PATH:
                # The PBX serves its own OpenAPI document; a test gives the fake one to serve.
                if self.api_description_text is None:
                    return FakeResponse(404, b"")
                return FakeResponse(200, self.api_description_text, {"Content-Type": "text/yaml; charset=utf-8"})
            if not request.path.startswith(XAPI_ROOT + "/"):
                return FakeResponse(404, b"")
            path = request.path[len(XAPI_ROOT) :]
            try:
                if self._bearer_is_valid(request):
                    return self._xapi(request, path)
                self.rejected_tokens += 1
                return FakeResponse(401, b"", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            except XapiRequestError as rejection:
                return rejection.response()
            except (ContactRejected, IntegrationRejected) as rejection:
                return odata_error(
                    rejection.status, rejection.message, target=rejection.target, warning=rejection.warning
                )

    # -- /connect/token ------------------------------------------------------------------------------
    def _issue_token(self, request: FakeRequest) -> FakeResponse:
        if request.method != "POST":
            return FakeResponse(405, {"error": "invalid_request", "error_description": "POST only"})
        form = request.form()
        valid = (
            form.get("grant_type") == "client_credentials"
            and form.get("client_id") == self.client_id
            and hmac.compare_digest(form.get("client_secret", "").encode(), self._client_secret.encode())
        )
        if not valid:
            return FakeResponse(
                401,
                {"error": "unauthorized", "error_description": "The request requires valid user authentication."},
            )
        issued_at = int(self.clock())
        expires_at = issued_at + self.token_lifetime_seconds
        token = self._new_token(issued_at, expires_at)
        ISSUED_CREDENTIALS.add(token)
        self._active_token, self._active_token_expiry = token, float(expires_at)  # the old one stops working
        self.tokens_issued += 1
        lifetime = self.token_lifetime_seconds
        expires_in = lifetime if self.expires_in_unit == "seconds" else lifetime // 60
        body = {"token_type": "Bearer", "expires_in": expires_in, "access_token": token, "refresh_token": None}
        return FakeResponse(200, body, {"Cache-Control": "no-store"})

    def _new_token(self, issued_at: int, expires_at: int) -> str:
        if self.opaque_tokens:
            return secrets.token_urlsafe(32)
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {
            "iss": self.base_url,
            "client_id": self.client_id,
            "iat": issued_at,
            "exp": expires_at,
            "jti": secrets.token_hex(8),
        }
        payload = _b64url(json.dumps(claims).encode())
        signature = hmac.new(self._signing_key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64url(signature)}"

    def _bearer_is_valid(self, request: FakeRequest) -> bool:
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token or self._active_token is None:
            return False
        if not hmac.compare_digest(token.strip().encode(), self._active_token.encode()):
            return False
        return self.clock() < self._active_token_expiry

    # -- /xapi/v1 ---------------------------------------------------------------------------------------
    def _xapi(self, request: FakeRequest, path: str) -> FakeResponse:
        method = request.method
        if path == "/Users":
            if method == "GET":
                return self._list_users(request)
            return self._only(method, "POST", self._post_user, request)
        if path == "/Users/Pbx.GetFirstAvailableExtensionNumber()":
            return self._only(method, "GET", self._first_available, request)
        if path == "/Users/Pbx.BatchDelete":
            return self._only(method, "POST", self._batch_delete, request)
        if path == "/SystemStatus":
            return self._only(method, "GET", self._system_status, request)
        if path == "/Defs":
            return self._only(method, "GET", self._defs, request)
        if path.startswith("/Contacts"):
            answer = self._contacts(request, path)
            if answer is not None:
                return answer
        answer = self._integrations(request, path)
        if answer is not None:
            return answer
        if match := re.fullmatch(r"/Users\((\d+)\)", path):
            user_id = int(match.group(1))
            if method == "GET":
                return self._entity(request, self._get(user_id))
            if method == "PATCH":
                return self._patch_user(request, user_id)
            return self._only(method, "DELETE", lambda _: self._delete(user_id), request)
        if match := re.fullmatch(r"/Users\((\d+)\)/ForwardingProfiles", path):
            return self._only(method, "GET", lambda _: self._forwarding_profiles(int(match.group(1))), request)
        if match := re.fullmatch(r"/Users\(Number='((?:[^']|'')*)'\)", path):
            number = match.group(1).replace("''", "'")
            user = self._find_number(number)
            if user is None:
                raise XapiRequestError(
                    404, "No user has this number.", target="Number", warning="WARNINGS.XAPI.NOT_FOUND"
                )
            return self._only(method, "GET", lambda r: self._entity(r, user), request)
        raise XapiRequestError(404, f"No HTTP resource was found that matches the request URI '{XAPI_ROOT}{path}'.")

    @staticmethod
    def _only(
        method: str, allowed: str, handler: Callable[[FakeRequest], FakeResponse], request: FakeRequest
    ) -> FakeResponse:
        if method != allowed:
            raise XapiRequestError(405, f"The HTTP method '{method}' is not allowed here.")
        return handler(request)

    def _context(self, fragment: str) -> str:
        return f"{self.base_url}{XAPI_ROOT}/$metadata#{fragment}"

    def _list_users(self, request: FakeRequest) -> FakeResponse:
        for option in request.query:
            if option.startswith("$") and option not in {
                "$top",
                "$skip",
                "$count",
                "$select",
                "$filter",
                "$orderby",
                "$expand",
            }:
                raise XapiRequestError(400, f"The query parameter '{option}' is not supported.")
        top, skip = _non_negative(request, "$top"), _non_negative(request, "$skip") or 0
        count_option = request.query.get("$count", "false")
        if count_option not in ("true", "false"):
            raise XapiRequestError(400, f"Invalid value '{count_option}' for $count query option.")
        shape = self._shape(request)
        users = list(self._users.values())
        if "$filter" in request.query:
            matches = _user_filter(request.query["$filter"])
            users = [user for user in users if matches(user)]
        if "$orderby" in request.query:
            users = _order(users, request.query["$orderby"])
        total = len(users)
        if self.max_page_size is not None:
            top = self.max_page_size if top is None else min(top, self.max_page_size)
        page = users[skip:] if top is None else users[skip : skip + top]
        body: dict[str, Any] = {"@odata.context": self._context("Users")}
        if count_option == "true":
            body["@odata.count"] = total
        body["value"] = [shape(user) for user in page]
        return FakeResponse(200, body)

    def _shape(self, request: FakeRequest) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """How `$select` / `$expand` cut a stored user; navigation properties only on `$expand`."""
        selected = (
            _names(request.query["$select"], USER_PROPERTIES - _NAVIGATION_PROPERTIES, "$select")
            if "$select" in request.query
            else None
        )
        expanded = _names(request.query.get("$expand", ""), _NAVIGATION_PROPERTIES, "$expand")

        def shape(user: dict[str, Any]) -> dict[str, Any]:
            if selected is None:
                shaped = {k: copy.deepcopy(v) for k, v in user.items() if k not in _NAVIGATION_PROPERTIES}
            else:
                shaped = {name: copy.deepcopy(user.get(name)) for name in selected}
            for name in expanded:
                source = self._profiles.get(user["Id"], []) if name == "ForwardingProfiles" else user.get(name, [])
                shaped[name] = copy.deepcopy(source)
            return shaped

        return shape

    def _entity(self, request: FakeRequest, user: dict[str, Any]) -> FakeResponse:
        return FakeResponse(200, {"@odata.context": self._context("Users/$entity"), **self._shape(request)(user)})

    def _get(self, user_id: int) -> dict[str, Any]:
        user = self._users.get(user_id)
        if user is None:
            raise XapiRequestError(404, f"No user with Id {user_id}.", target="Id", warning="WARNINGS.XAPI.NOT_FOUND")
        return user

    def _find_number(self, number: str) -> dict[str, Any] | None:
        return next((user for user in self._users.values() if user.get("Number") == number), None)

    def _post_user(self, request: FakeRequest) -> FakeResponse:
        shape = self._shape(request)
        user = self._create(_user_body(request))
        headers = {"Location": f"{self.base_url}{XAPI_ROOT}/Users({user['Id']})"}
        return FakeResponse(201, {"@odata.context": self._context("Users/$entity"), **shape(user)}, headers)

    def _create(self, properties: dict[str, Any], user_id: int | None = None) -> dict[str, Any]:
        """Store a new user with the defaults 3CX fills in; the PBX assigns Id (and Number if absent)."""
        number = properties.get("Number")
        if number is None:
            number = self.first_available_number()
        elif self._find_number(number) is not None or number in self.other_dn_numbers:
            raise XapiRequestError(
                400, "Number is already in use.", target="Number", warning="WARNINGS.XAPI.ALREADY_IN_USE"
            )
        if user_id is None:
            user_id = self._next_id
        self._next_id = max(self._next_id, user_id + 1)
        given = {k: copy.deepcopy(v) for k, v in properties.items() if k not in ("Id", "Number", "ForwardingProfiles")}
        user: dict[str, Any] = {
            "Id": user_id,
            "Number": number,
            "FirstName": "",
            "LastName": "",
            "DisplayName": None,
            "EmailAddress": "",
            "Mobile": "",
            "OutboundCallerID": "",
            "ContactImage": "",
            "CurrentProfileName": "Available",
            "Enabled": True,
            "Internal": False,
            "HideInPhonebook": False,
            "MS365SignInEnabled": False,
            "MS365CalendarEnabled": False,
            "MS365ContactsEnabled": False,
            "MS365TeamsEnabled": False,
            "Require2FA": False,
            "SendEmailMissedCalls": False,
            "VMEnabled": True,
            "Language": "EN",
            "QueueStatus": "LoggedOut",
            "TranscriptionMode": "Inherit",
            "IsRegistered": False,
            "Tags": [],
            "Groups": [],
        }
        user.update(given)
        if user["DisplayName"] is None:
            user["DisplayName"] = f"{user['FirstName'] or ''} {user['LastName'] or ''}".strip()
        self._normalise(user)
        self._users[user_id] = user
        self._profiles[user_id] = [
            {"Id": user_id * 10 + index, "Name": name, "CustomName": None, "CustomMessage": ""}
            for index, name in enumerate(PROFILE_NAMES)
        ]
        return user

    def _patch_user(self, request: FakeRequest, user_id: int) -> FakeResponse:
        user = self._get(user_id)
        properties = _user_body(request)
        if "Id" in properties and properties["Id"] != user_id:
            raise XapiRequestError(400, "Id can not be changed.", target="Id", warning="WARNINGS.XAPI.FORBIDDEN_CHANGE")
        if "Number" in properties and properties["Number"] != user["Number"]:
            raise XapiRequestError(
                400, "Number can not be changed.", target="Number", warning="WARNINGS.XAPI.FORBIDDEN_CHANGE"
            )
        for name, value in properties.items():
            if name not in ("Id", "Number", "ForwardingProfiles"):
                user[name] = copy.deepcopy(value)
        self._normalise(user)
        return FakeResponse(204, b"")

    def _normalise(self, user: dict[str, Any]) -> None:
        for name, normalise in self.normalisers.items():
            user[name] = normalise(user)

    def _delete(self, user_id: int) -> FakeResponse:
        self._get(user_id)
        self.delete_user(user_id)
        return FakeResponse(204, b"")

    def _batch_delete(self, request: FakeRequest) -> FakeResponse:
        try:
            body = request.json()
        except ValueError:
            raise XapiRequestError(400, "The request body is not valid JSON.") from None
        ids = body.get("ids") if isinstance(body, dict) else None
        valid = isinstance(body, dict) and set(body) == {"ids"} and isinstance(ids, list)
        if not valid or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise XapiRequestError(400, "The action BatchDelete takes one parameter, 'ids', a list of integers.")
        errors = []
        for user_id in ids:
            if user_id in self._users:
                self.delete_user(user_id)
            else:
                errors.append({"ExtensionNumber": "", "Error": "WARNINGS.XAPI.NOT_FOUND"})
        return FakeResponse(200, {"@odata.context": self._context("Collection(Pbx.UserDeleteError)"), "value": errors})

    def _first_available(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(
            200, {"@odata.context": self._context("Pbx.FirstAvailableNumber"), "Number": self.first_available_number()}
        )

    def _forwarding_profiles(self, user_id: int) -> FakeResponse:
        self._get(user_id)
        profiles = copy.deepcopy(self._profiles[user_id])
        return FakeResponse(
            200, {"@odata.context": self._context(f"Users({user_id})/ForwardingProfiles"), "value": profiles}
        )

    def _system_status(self, request: FakeRequest) -> FakeResponse:
        host = self.base_url.split("://", 1)[-1].split(":", 1)[0]
        status = {
            "Id": 1,
            "FQDN": host,
            "Version": self.version,
            "ExtensionsTotal": len(self._users),
            "Activated": True,
            "LicenseActive": True,
        }
        if "$select" in request.query:
            status = {name.strip(): status.get(name.strip()) for name in request.query["$select"].split(",")}
        return FakeResponse(200, {"@odata.context": self._context("SystemStatus"), **status})

    def _defs(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(200, {"@odata.context": self._context("Defs"), "Id": 1}, {"X-3CX-Version": self.version})

"""Client of the 3CX V20 configuration API (XAPI): users, status, phonebooks and the PBX version.

The token is the delicate part. 3CX keeps **one active token per API client**: fetching a
new one revokes the old one. So every caller in the process shares one token, only one of
them fetches at a time, and the others wait and reuse what it got. A token is renewed
shortly before it expires (proactively, so in-flight calls do not trip over a revoked one)
and once more whenever the PBX answers 401, e.g. because another process took the token.

`expires_in` changed meaning in 20.0.9 (minutes before, seconds since), so the lifetime is
read from the JWT's own `exp`/`iat` claims when the token is a JWT, and otherwise guessed
from the size of `expires_in` (see `token_lifetime_seconds`).

Every request goes through `shared.http.send`: throttling and transient 503/504s are
retried for idempotent calls only; a create is never repeated after a 5xx.

Phonebook: the `/Contacts` operations with the API client's token act on the company
phonebook (the published XAPI has no operation on one user's personal phonebook). The bulk
delete action was renamed in 20.0.9 (`Pbx.BatchContactsDelete` -> `Pbx.DeleteContactsById`);
the client only ever sends the new name and deletes one by one where the PBX does not know it.

Every request goes to TCX_BASE_URL's scheme, host and port, under `/xapi/v1` (or to
`/connect/token`), and nowhere else: the token goes to the PBX only.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import requests
from pydantic import ValidationError

from shared.errors import UpstreamError, UpstreamRefused, UpstreamUnavailable
from shared.http import RetriesExhausted, RetryPolicy, send
from shared.threecx_models import (
    ContactChanges,
    Counted,
    Entity,
    Microsoft365Integration,
    ODataError,
    Page,
    ServicePrincipalPage,
    SystemStatus,
    TcxContact,
    TcxUser,
    TokenResponse,
    UserChanges,
)
from shared.urls import redact_url, same_origin

log = logging.getLogger(__name__)

RENEW_MARGIN_SECONDS = 300.0  # renew when less than 5 minutes ...
RENEW_MARGIN_FRACTION = 0.1  # ... or less than 10% of the lifetime remain, whichever is smaller
LARGEST_MINUTES_VALUE = 120  # `expires_in` up to this is minutes (20.0.8 sends 60 for an hour)
DEFAULT_LIFETIME_SECONDS = 3600.0  # the documented lifetime, when the answer gives none

DEFAULT_POLICY = RetryPolicy()  # frozen, so one shared default is safe
CREDENTIALS_HINT = "check TCX_CLIENT_ID / TCX_CLIENT_SECRET"
BULK_DELETE_ACTION = "/Contacts/Pbx.DeleteContactsById"  # 20.0.9 and later
BULK_DELETE_CHUNK = 100  # ids per bulk delete request: 3CX documents no limit, so stay modest


class TcxError(UpstreamError):
    """Base of everything this client raises."""


class TcxAuthError(TcxError, UpstreamRefused):
    """3CX refused the API client's credentials or its token; retrying will not help."""


class TcxRequestRefused(TcxError, UpstreamRefused):
    """The client refused to send a request: its URL is not on TCX_BASE_URL's scheme, host and port."""


class TcxUnavailable(TcxError, UpstreamUnavailable):
    """The PBX could not be reached or kept failing (network, 5xx, throttled past the policy)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TcxApiError(TcxError, UpstreamRefused):
    """A non-2xx XAPI answer, with the OData error parsed: `3CX 400 WARNINGS.XAPI.ALREADY_IN_USE on Number`."""

    def __init__(
        self,
        status: int,
        code: str = "",
        message: str = "",
        target: str | None = None,
        details: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.details = list(details)
        text = f"3CX {status}"
        if code:
            text += f" {code}"
        if target:
            text += f" on {target}"
        if message and not code:
            text += f": {message}"
        super().__init__(text)

    @classmethod
    def from_response(cls, response: requests.Response) -> TcxApiError:
        """Parse the OData error shape; an empty or foreign body still gives the status."""
        try:
            parsed = ODataError.model_validate(response.json())
        except (ValueError, ValidationError):
            return cls(response.status_code, message=response.reason or "")
        details = [detail.model_dump() for detail in parsed.error.details]
        message = (parsed.error.message or "").replace("\n", " ")
        return cls(response.status_code, parsed.warning, message, parsed.target, details)


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, unverified (only to read its lifetime); None for opaque tokens."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def token_lifetime_seconds(token: TokenResponse, now: float) -> float:
    """How long a freshly issued token lives, in seconds.

    A JWT's `exp - iat` is used first: both come from the PBX clock, so clock skew between
    PBX and this host does not matter. Without a readable JWT, `expires_in` is taken as
    minutes when it is at most 120 (3CX up to 20.0.8 sends 60 meaning an hour, and no
    server issues 2-minute tokens) and as seconds above that (20.0.9 and later).
    """
    claims = _jwt_claims(token.access_token.get_secret_value())
    if claims is not None:
        expires_at, issued_at = _number(claims.get("exp")), _number(claims.get("iat"))
        if expires_at is not None:
            if issued_at is not None and issued_at < expires_at:
                return expires_at - issued_at
            return max(0.0, expires_at - now)
    if token.expires_in is None or token.expires_in <= 0:
        return DEFAULT_LIFETIME_SECONDS
    if token.expires_in <= LARGEST_MINUTES_VALUE:
        return token.expires_in * 60.0
    return float(token.expires_in)


class SharedToken(Protocol):
    """Where Function instances share the one XAPI token 3CX allows per API client.

    Without it every instance would fetch its own token and so revoke the others'.
    """

    def load(self) -> tuple[str, float] | None:
        """The stored token and the moment (epoch seconds) it is due for renewal."""

    def store(self, token: str, renew_at: float) -> None: ...

    def exclusive(self) -> AbstractContextManager[object]:
        """Held by the one instance that fetches a token; the others wait for it."""


class TokenKeeper:
    """The process's one XAPI token: fetched by one caller at a time, shared by all.

    `fetch` does the HTTP call; the keeper decides when to call it. With `shared`, the
    token is also shared with other processes (Function instances), and fetching is
    serialised across them too.
    """

    def __init__(
        self, fetch: Callable[[], TokenResponse], clock: Callable[[], float], shared: SharedToken | None = None
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._shared = shared
        self._lock = threading.Lock()
        self._state: tuple[str, float] | None = None  # (token, renew at); replaced as a whole

    def current(self) -> str:
        """A token that is not due for renewal; fetches one if needed (others wait for it)."""
        state = self._state
        if state is not None and self._clock() < state[1]:
            return state[0]
        with self._lock:
            state = self._state  # a caller that held the lock before us may have renewed it
            if state is not None and self._clock() < state[1]:
                return state[0]
            return self._obtain(rejected=None)

    def renew(self, rejected: str) -> str:
        """A token other than `rejected` (which the PBX refused); fetches one unless another caller did."""
        with self._lock:
            state = self._state
            if state is not None and state[0] != rejected and self._clock() < state[1]:
                return state[0]
            return self._obtain(rejected=rejected)

    def _obtain(self, rejected: str | None) -> str:
        if self._shared is None:
            return self._fetch_locked()
        adopted = self._adopt(rejected)
        if adopted is not None:
            return adopted
        with self._shared.exclusive():
            adopted = self._adopt(rejected)  # another instance may have fetched while we waited
            if adopted is not None:
                return adopted
            token = self._fetch_locked()
            assert self._state is not None
            self._shared.store(*self._state)
            return token

    def _adopt(self, rejected: str | None) -> str | None:
        assert self._shared is not None
        shared = self._shared.load()
        if shared is not None and shared[0] != rejected and self._clock() < shared[1]:
            self._state = shared
            return shared[0]
        return None

    def _fetch_locked(self) -> str:
        fetched_at = self._clock()
        answer = self._fetch()
        lifetime = token_lifetime_seconds(answer, fetched_at)
        margin = min(RENEW_MARGIN_FRACTION * lifetime, RENEW_MARGIN_SECONDS)
        token = answer.access_token.get_secret_value()
        self._state = (token, fetched_at + lifetime - margin)
        log.info("3CX token issued; valid %.0fs, renewing after %.0fs", lifetime, lifetime - margin)
        return token


class XapiCall(Protocol):
    """One XAPI request (what `ThreeCXClient._call` does)."""

    def __call__(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool | None = None,
    ) -> requests.Response: ...


class ThreeCXClient:
    """The connector's port to one 3CX PBX (`base_url` is the PBX root, e.g. https://pbx:5001)."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        session: requests.Session | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        page_size: int = 1000,
        shared_token: SharedToken | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self._session = session or requests.Session()
        self._policy = policy
        self._sleep = sleep
        self.page_size = page_size
        self._xapi = f"{self.base_url}/xapi/v1"
        self._tokens = TokenKeeper(self._fetch_token, clock, shared_token)
        # None: not tried yet; False: this PBX answered 404 (before 20.0.9), so delete one by one.
        self._bulk_contact_delete: bool | None = None

    def __repr__(self) -> str:
        return f"ThreeCXClient(base_url={self.base_url!r}, client_id={self.client_id!r})"

    # -- users ------------------------------------------------------------------------------------
    def list_users(self, select: Sequence[str] | None = None) -> list[TcxUser]:
        """Every user (with the `select`ed properties, plus Id and Number), in `Id` order."""
        return _every(self._call, "/Users", Page[TcxUser], self.page_size, _selecting(select))

    def find_users_by_email(self, address: str, select: Sequence[str] | None = None) -> list[TcxUser]:
        """The users whose e-mail is `address`, case ignored (3CX does not keep e-mails unique)."""
        literal = address.lower().replace("'", "''")
        options = {"$filter": f"tolower(EmailAddress) eq '{literal}'", **_selecting(select)}
        return _every(self._call, "/Users", Page[TcxUser], self.page_size, options)

    def get_user(self, user_id: int, select: Sequence[str] | None = None) -> TcxUser | None:
        """One user by Id (with the `select`ed properties, plus Id and Number); None when there is none."""
        try:
            response = self._call("GET", f"/Users({int(user_id)})", params=_selecting(select))
        except TcxApiError as error:
            if error.status == 404:
                return None
            raise
        return TcxUser.model_validate(response.json())

    def create_user(self, fields: Mapping[str, Any]) -> TcxUser:
        """Create a user from XAPI-named fields; the PBX assigns a Number when none is given.

        Never repeated after a 5xx or a dropped connection: the user may exist by then.
        """
        return TcxUser.model_validate(_create(self._call, "/Users", UserChanges, fields))

    def update_user(self, user_id: int, fields: Mapping[str, Any]) -> None:
        """PATCH the given XAPI-named fields; sending the same values twice changes nothing."""
        _update(self._call, f"/Users({int(user_id)})", UserChanges, fields)

    def delete_user(self, user_id: int) -> None:
        """Delete a user; one that is already gone counts as deleted."""
        _delete(self._call, f"/Users({int(user_id)})")

    # -- status --------------------------------------------------------------------------------------
    def set_status(self, user_id: int, profile_name: str) -> None:
        """Switch the user's current status profile ("Available", "Away", "Out of office", ...)."""
        self.update_user(user_id, {"CurrentProfileName": profile_name})

    # -- avatar -------------------------------------------------------------------------------------
    def set_avatar(self, user_id: int, image: bytes, content_type: str) -> None:
        """Set the user's picture by PATCHing `ContactImage` with a `data:` URI.

        Unverified against a real PBX: the official 20.0.10 OpenAPI document has no upload
        operation at all (no multipart, no binary body); the only picture property of
        `Pbx.User` is the string `ContactImage`, and what values 3CX accepts there is not
        documented. Kept in this one method so it can be replaced once that is known.
        """
        encoded = base64.b64encode(image).decode("ascii")
        self.update_user(user_id, {"ContactImage": f"data:{content_type};base64,{encoded}"})

    # -- company phonebook -----------------------------------------------------------------------------
    def list_contacts(self, filter: str | None = None) -> list[TcxContact]:  # noqa: A002 - the OData option
        """Every company phonebook entry matching the OData `filter` (all without one), paged in `Id` order."""
        options = {"$filter": filter} if filter else {}
        return _every(self._call, "/Contacts", Page[TcxContact], self.page_size, options)

    def create_contact(self, fields: Mapping[str, Any]) -> TcxContact:
        """Add an entry to the company phonebook from XAPI-named fields; 3CX marks it `ContactType` "3CX"."""
        return TcxContact.model_validate(_create(self._call, "/Contacts", ContactChanges, fields))

    def update_contact(self, contact_id: int, fields: Mapping[str, Any]) -> None:
        """PATCH the given XAPI-named fields of a company phonebook entry."""
        _update(self._call, f"/Contacts({int(contact_id)})", ContactChanges, fields)

    def delete_contact(self, contact_id: int) -> None:
        """Delete a company phonebook entry; one already gone counts as deleted."""
        _delete(self._call, f"/Contacts({int(contact_id)})")

    def delete_contacts(self, contact_ids: Sequence[int]) -> None:
        """Delete many company phonebook entries, in bulk where the PBX can.

        `Pbx.DeleteContactsById` exists from 20.0.9 on; before, the same action had another
        name, which is never sent blindly: a PBX that answers 404 to the new name gets one
        `DELETE` per entry instead (404 = already gone), and this client remembers that.
        """
        ids = [int(contact_id) for contact_id in dict.fromkeys(contact_ids)]
        for start in range(0, len(ids), BULK_DELETE_CHUNK):
            chunk = ids[start : start + BULK_DELETE_CHUNK]
            if self._bulk_contact_delete is not False:
                try:
                    # Deleting the same ids twice leaves the same book, so a retry is safe.
                    self._call("POST", BULK_DELETE_ACTION, json_body={"ids": chunk}, idempotent=True)
                except TcxApiError as error:
                    if error.status != 404:
                        raise
                    log.info("3CX does not know %s (before 20.0.9); deleting contacts one by one", BULK_DELETE_ACTION)
                    self._bulk_contact_delete = False
                else:
                    self._bulk_contact_delete = True
                    continue
            for contact_id in chunk:
                self.delete_contact(contact_id)

    # -- the PBX -------------------------------------------------------------------------------------
    def version(self) -> str | None:
        """The PBX version (`SystemStatus.Version`), else the `X-3CX-Version` header of `/Defs`."""
        try:
            response = self._call("GET", "/SystemStatus", params={"$select": "Version"})
        except TcxApiError as error:
            if error.status not in (403, 404):
                raise
            response = self._call("GET", "/Defs", params={"$select": "Id"})
            return response.headers.get("X-3CX-Version")
        return SystemStatus.model_validate(response.json()).version

    def api_description(self) -> str:
        """The PBX's own OpenAPI document (`/xapi/v1/swagger.yaml`), as text."""
        return self._call("GET", "/swagger.yaml").text

    def microsoft365_integration(self) -> Microsoft365Integration:
        """3CX's own Microsoft 365 integration settings (`GET /Microsoft365Integration`); read only."""
        return Microsoft365Integration.model_validate(self._call("GET", "/Microsoft365Integration").json())

    def api_client_roles(self) -> list[tuple[str, str]] | None:
        """(department, role) of each department this API client is in; None when no client has its Client ID.

        An API client is a service principal whose `Number` is its Client ID (as in 3CX's own
        tutorial); its role in each department is `Groups/Rights/RoleName`.
        """
        literal = "'" + self.client_id.replace("'", "''") + "'"
        params = {"$filter": f"Number eq {literal}", "$select": "Id,Number", "$expand": "Groups($expand=Rights)"}
        page = ServicePrincipalPage.model_validate(self._call("GET", "/ServicePrincipals", params=params).json())
        mine = [principal for principal in page.value if principal.number == self.client_id]
        if not mine:
            return None
        return [
            (group.name or "", group.rights.role_name or "" if group.rights else "")
            for principal in mine
            for group in principal.groups
        ]

    def count_users(self) -> int | None:
        """How many users the PBX has, reading one at most (None when it does not say)."""
        return self._count("/Users")

    def count_contacts(self) -> int | None:
        """How many company phonebook entries there are, reading one at most (None when the PBX does not say)."""
        return self._count("/Contacts")

    def _count(self, path: str) -> int | None:
        params = {"$top": 1, "$select": "Id", "$count": "true"}
        return Counted.model_validate(self._call("GET", path, params=params).json()).count

    # -- plumbing ------------------------------------------------------------------------------------
    def _fetch_token(self) -> TokenResponse:
        """POST the client credentials to `/connect/token` (called by the TokenKeeper only)."""
        url = f"{self.base_url}/connect/token"
        form = {"client_id": self.client_id, "client_secret": self._client_secret, "grant_type": "client_credentials"}
        try:
            # Safe to repeat: a second token simply replaces the first.
            response = send(
                self._session, "POST", url, policy=self._policy, idempotent=True, sleep=self._sleep, data=form
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            raise TcxUnavailable(f"3CX at {self.base_url} is unreachable ({type(error).__name__})") from error
        except RetriesExhausted as error:
            raise TcxUnavailable(f"3CX at {self.base_url}: token endpoint {error}") from None
        status = response.status_code
        if status in (400, 401, 403):
            raise TcxAuthError(f"3CX rejected the API client credentials ({status}) — {CREDENTIALS_HINT}")
        if status >= 500:
            raise TcxUnavailable(f"3CX at {self.base_url} answered {status} at /connect/token", status)
        if status != 200:
            raise TcxAuthError(f"3CX token endpoint {url} answered {status} — check the PBX address")
        try:
            return TokenResponse.model_validate(response.json())
        except (ValueError, ValidationError):
            raise TcxAuthError(f"3CX token endpoint {url} answered without an access token") from None

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """One request with the shared token; a 401 gets one new token and one repeat.

        `path` is relative to the XAPI root and starts with "/"; anything else, or a URL
        that is not on TCX_BASE_URL's scheme, host and port, is refused unsent
        (`TcxRequestRefused`), before any token is fetched.
        """
        url = self._xapi + path
        if not path.startswith("/") or not same_origin(url, self.base_url):
            # Only the PBX gets a bearer token, whatever `path` a caller passes.
            raise TcxRequestRefused(
                f"not sent to 3CX: {method} {redact_url(url)} is not a path on the PBX at {self.base_url}"
                " (TCX_BASE_URL)"
            )
        if params:
            # %20 rather than '+' for spaces, and OData's $ ( ) ' , left readable.
            url += "?" + urlencode(params, quote_via=quote, safe="$(),'")
        token = self._tokens.current()
        response = self._send(method, url, token, json_body, idempotent)
        if response.status_code == 401:
            token = self._tokens.renew(rejected=token)
            response = self._send(method, url, token, json_body, idempotent)
            if response.status_code == 401:
                raise TcxAuthError(
                    "3CX refused a freshly issued token (401); another service may be using the same "
                    f"API client, and 3CX keeps only one active token per client — {CREDENTIALS_HINT}"
                )
        return self._checked(method, path, response)

    def _checked(self, method: str, path: str, response: requests.Response) -> requests.Response:
        """The response if it is a success; otherwise the error it stands for."""
        status = response.status_code
        if status >= 500:
            raise TcxUnavailable(f"3CX at {self.base_url} answered {status} to {method} {path}", status)
        if status >= 400:
            raise TcxApiError.from_response(response)
        return response

    def _send(self, method: str, url: str, token: str, json_body: Any, idempotent: bool | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        kwargs: dict[str, Any] = {"headers": headers}
        if json_body is not None:
            kwargs["json"] = json_body
        try:
            return send(
                self._session, method, url, policy=self._policy, idempotent=idempotent, sleep=self._sleep, **kwargs
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            raise TcxUnavailable(f"3CX at {self.base_url} is unreachable ({type(error).__name__})") from error
        except RetriesExhausted as error:
            status = error.response.status_code if error.response is not None else None
            raise TcxUnavailable(f"3CX at {self.base_url}: {error}", status) from None


# -- the three writes, the same for every entity set ---------------------------------------------------------
def _create(call: XapiCall, path: str, changes: type[UserChanges | ContactChanges], fields: Mapping[str, Any]) -> Any:
    """POST a new entity; its JSON. Never repeated after a 5xx or a dropped connection (it may exist by then)."""
    body = changes.model_validate(dict(fields)).body()
    return call("POST", path, json_body=body, idempotent=False).json()


def _update(call: XapiCall, path: str, changes: type[UserChanges | ContactChanges], fields: Mapping[str, Any]) -> None:
    """PATCH the given XAPI-named fields; safe to repeat (the same values twice change nothing)."""
    body = changes.model_validate(dict(fields)).body()
    call("PATCH", path, json_body=body, idempotent=True)


def _delete(call: XapiCall, path: str) -> None:
    """DELETE an entity; one that is already gone counts as deleted."""
    try:
        call("DELETE", path)
    except TcxApiError as error:
        if error.status != 404:
            raise


def _selecting(select: Sequence[str] | None) -> dict[str, str]:
    """`$select` for these properties plus Id and Number (which every read needs); none: everything."""
    return {} if select is None else {"$select": ",".join(dict.fromkeys(["Id", "Number", *select]))}


def _every(
    call: XapiCall, path: str, page_type: type[Page[Entity]], page_size: int, options: Mapping[str, str]
) -> list[Entity]:
    """Every entity of a collection, paged with `$top`/`$skip` in stable `Id` order (3CX sends no nextLink).

    `$count=true` rides along so that a server capping pages below `page_size` cannot end
    the listing early: paging stops when the count is reached or a page is empty.
    """
    params: dict[str, Any] = {"$orderby": "Id", "$count": "true", "$top": page_size, **options}
    entities: list[Entity] = []
    while True:
        params["$skip"] = len(entities)
        page = page_type.model_validate(call("GET", path, params=params).json())
        entities.extend(page.value)
        if not page.value:
            break
        if page.count is not None:
            if len(entities) >= page.count:
                break
        elif len(page.value) < page_size:
            break
    return entities

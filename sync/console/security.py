"""Who may use the console, and the protections every console response carries.

In Azure, App Service built-in authentication signs the administrator in with Entra ID and
passes the signed-in principal to the app as `X-MS-CLIENT-PRINCIPAL`: base64 of
`{"auth_typ": ..., "name_typ": ..., "role_typ": ..., "claims": [{"typ": ..., "val": ...}]}`.
App Service removes that header from what a client sends, so it is trusted only where App
Service says its authentication is on (`WEBSITE_AUTH_ENABLED`), or under `python -m sync
serve` on loopback, which sets a local principal itself (`CONSOLE_LOCAL_PRINCIPAL`). The
console then requires the app role `Connector.Admin` among the principal's role claims.

Forms carry a CSRF token: HMAC-SHA256, under a key kept in state, of the principal's object
id and a random nonce the browser holds in a `__Host-` cookie (Secure, HttpOnly,
SameSite=Strict). A POST whose token does not match its cookie and its principal is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

ROLE = "Connector.Admin"
PRINCIPAL_HEADER = "x-ms-client-principal"
CSRF_COOKIE = "__Host-console-csrf"
CSRF_FIELD = "csrf"
# The role claim type Entra uses in the principal's claims; `role_typ` names the one in use.
_ROLE_TYPES = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
_ID_TYPES = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
_NAME_TYPES = ("preferred_username", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn", "name")
LOCAL_ENV = "CONSOLE_LOCAL_PRINCIPAL"  # set by `serve` on loopback; ignored inside App Service

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none';"
        " base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Principal:
    """The signed-in administrator."""

    id: str  # Entra object id (or the local user's name under `serve`)
    name: str  # UPN or display name, for the log and the run record
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return ROLE in self.roles


class Refused(Exception):
    """The request may not use the console; `status` says how to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def trusted_source() -> str | None:
    """Where a principal header can come from here, or None when it cannot be trusted at all."""
    if os.environ.get("WEBSITE_AUTH_ENABLED", "").strip().lower() == "true":
        return "app-service"
    if os.environ.get(LOCAL_ENV) and not os.environ.get("WEBSITE_INSTANCE_ID"):
        return "local"
    return None


def principal_from(headers: dict[str, str]) -> Principal:
    """The administrator behind a request; `Refused` (401, 403) when there is none allowed."""
    if trusted_source() is None:
        raise Refused(403, "the console needs App Service authentication (Entra ID) turned on for this Function App")
    raw = next((value for name, value in headers.items() if name.lower() == PRINCIPAL_HEADER), None)
    if not raw:
        raise Refused(401, "not signed in")
    principal = parse_principal(raw)
    if not principal.is_admin:
        raise Refused(403, f"{principal.name} does not have the app role {ROLE}")
    return principal


def parse_principal(raw: str) -> Principal:
    """Decode `X-MS-CLIENT-PRINCIPAL`; anything malformed is `Refused(403)` (never a sign-in loop)."""
    try:
        data: Any = json.loads(base64.b64decode(raw + "=" * (-len(raw) % 4), validate=False))
    except (ValueError, binascii.Error) as error:
        raise Refused(403, "the sign-in header is malformed") from error
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise Refused(403, "the sign-in header is malformed")
    claims = [c for c in data["claims"] if isinstance(c, dict) and isinstance(c.get("val"), str)]
    role_types = {str(data.get("role_typ") or ""), *_ROLE_TYPES} - {""}
    name_types = (str(data.get("name_typ") or ""), *_NAME_TYPES)

    def first(types: tuple[str, ...]) -> str | None:
        for wanted in types:
            for claim in claims:
                if claim.get("typ") == wanted and claim["val"]:
                    return str(claim["val"])
        return None

    object_id = first(_ID_TYPES)
    if object_id is None:
        raise Refused(403, "the sign-in header names no user")
    roles = frozenset(str(c["val"]) for c in claims if c.get("typ") in role_types)
    return Principal(object_id, first(name_types) or object_id, roles)


def encode_principal(object_id: str, name: str, roles: tuple[str, ...]) -> str:
    """A principal header as App Service writes it (for `serve`'s local principal and tests)."""
    role_typ = _ROLE_TYPES[1]
    claims = [
        {"typ": _ID_TYPES[0], "val": object_id},
        {"typ": "preferred_username", "val": name},
        *({"typ": "roles", "val": role} for role in roles),
    ]
    payload = {"auth_typ": "aad", "name_typ": "preferred_username", "role_typ": role_typ, "claims": claims}
    return base64.b64encode(json.dumps(payload).encode("utf-8")).decode("ascii")


# -- CSRF -------------------------------------------------------------------------------------


def cookie_nonce(headers: dict[str, str]) -> str | None:
    """The CSRF nonce the browser holds, if any (well-formed only)."""
    raw = next((value for name, value in headers.items() if name.lower() == "cookie"), "")
    try:
        jar: SimpleCookie = SimpleCookie(raw)
    except CookieError:
        return None
    morsel = jar.get(CSRF_COOKIE)
    value = morsel.value if morsel is not None else ""
    return value if len(value) == 43 and value.replace("-", "").replace("_", "").isalnum() else None


def new_nonce() -> str:
    return secrets.token_urlsafe(32)


def csrf_cookie(nonce: str) -> str:
    return f"{CSRF_COOKIE}={nonce}; Path=/; Secure; HttpOnly; SameSite=Strict"


def csrf_token(key: bytes, principal: Principal, nonce: str) -> str:
    return hmac.new(key, f"{principal.id}|{nonce}".encode(), hashlib.sha256).hexdigest()


def check_csrf(key: bytes, principal: Principal, nonce: str | None, token: str | None) -> None:
    """`Refused(403)` unless `token` is this principal's token for the cookie's nonce."""
    if not nonce or not token or not hmac.compare_digest(csrf_token(key, principal, nonce), token):
        raise Refused(403, "the form has expired or was not sent from the console; reload the page and try again")

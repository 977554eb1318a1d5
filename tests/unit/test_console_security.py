"""The console's principal and CSRF rules, without I/O."""

from __future__ import annotations

import base64
import json

import pytest

from sync.console.security import (
    ROLE,
    Principal,
    Refused,
    check_csrf,
    cookie_nonce,
    csrf_token,
    encode_principal,
    new_nonce,
    parse_principal,
    principal_from,
)

KEY = b"k" * 32


def _header(claims: list[dict[str, str]], role_typ: str = "roles") -> str:
    payload = {"auth_typ": "aad", "name_typ": "name", "role_typ": role_typ, "claims": claims}
    return base64.b64encode(json.dumps(payload).encode()).decode()


OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"


def test_roles_are_read_from_the_claim_type_role_typ_names() -> None:
    custom = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    raw = _header([{"typ": OID, "val": "id-1"}, {"typ": custom, "val": ROLE}, {"typ": "name", "val": "Ada"}], custom)
    principal = parse_principal(raw)
    assert principal == Principal("id-1", "Ada", frozenset({ROLE}))
    assert principal.is_admin


def test_a_role_of_another_claim_type_does_not_count() -> None:
    raw = _header([{"typ": OID, "val": "id-1"}, {"typ": "groups", "val": ROLE}])
    assert not parse_principal(raw).is_admin


@pytest.mark.parametrize(
    "raw",
    ["%%%", base64.b64encode(b"[1, 2]").decode(), _header([{"typ": "name", "val": "no id"}])],
)
def test_a_malformed_principal_is_refused(raw: str) -> None:
    with pytest.raises(Refused) as refused:
        parse_principal(raw)
    assert refused.value.status == 403


def test_the_header_is_believed_only_where_app_service_authentication_is_on(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = {"X-MS-CLIENT-PRINCIPAL": encode_principal("id-1", "ada@contoso.com", (ROLE,))}
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    monkeypatch.delenv("CONSOLE_LOCAL_PRINCIPAL", raising=False)
    with pytest.raises(Refused):
        principal_from(headers)
    monkeypatch.setenv("CONSOLE_LOCAL_PRINCIPAL", "1")
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "abc")  # inside App Service the local switch means nothing
    with pytest.raises(Refused):
        principal_from(headers)
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    assert principal_from(headers).name == "ada@contoso.com"


def test_a_csrf_token_holds_for_its_principal_and_nonce_only() -> None:
    ada = Principal("id-1", "ada", frozenset({ROLE}))
    bob = Principal("id-2", "bob", frozenset({ROLE}))
    nonce = new_nonce()
    token = csrf_token(KEY, ada, nonce)
    check_csrf(KEY, ada, nonce, token)
    for principal, cookie, sent in (
        (bob, nonce, token),
        (ada, new_nonce(), token),
        (ada, nonce, None),
        (ada, None, token),
    ):
        with pytest.raises(Refused):
            check_csrf(KEY, principal, cookie, sent)
    with pytest.raises(Refused):
        check_csrf(b"x" * 32, ada, nonce, token)


def test_only_a_well_formed_nonce_cookie_is_read() -> None:
    nonce = new_nonce()
    assert cookie_nonce({"Cookie": f"other=1; __Host-console-csrf={nonce}"}) == nonce
    assert cookie_nonce({"cookie": "__Host-console-csrf=short"}) is None
    assert cookie_nonce({}) is None

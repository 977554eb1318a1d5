"""The accepted shapes of a user reference, written down once (shared/identifiers.py)."""

from __future__ import annotations

import pytest

from shared.identifiers import MalformedId, is_address, is_object_id, is_user_reference, user_reference

GUID = "8f2e6d4c-1b3a-4c5d-9e8f-0a1b2c3d4e5f"

ACCEPTED = [
    GUID,
    GUID.upper(),
    "ada@contoso.com",
    "Ada.Lovelace@Contoso.onmicrosoft.com",
    "ada_contoso.com#EXT#@fabrikam.onmicrosoft.com",  # a guest's UPN
    "o'brien@contoso.com",
    "sales+eu@contoso.com",  # a shared mailbox's address
    "x@a-b.example",
]

REFUSED = [
    "",
    ".",
    "..",
    "ada",  # no domain
    "ada@",
    "@contoso.com",
    "ada@contoso",  # a domain has at least two labels
    "ada@@contoso.com",
    "a@b@contoso.com",
    ".ada@contoso.com",
    "ada.@contoso.com",  # Entra: no period right before the @
    "a..da@contoso.com",
    "ada@contoso..com",
    "ada@-contoso.com",
    "ada@contoso.com/../../groups",
    "../users@contoso.com",
    "ada?x=1@contoso.com",
    "ada%2F@contoso.com",
    "ada @contoso.com",
    " ada@contoso.com",
    "ada@contoso.com\n",
    "{" + GUID + "}",  # uuid.UUID accepts it; Graph's ids have no braces
    GUID.replace("-", ""),
    "urn:uuid:" + GUID,
    "a" * 65 + "@contoso.com",  # local part over 64
    "a@" + ".".join(["b" * 60] * 5) + ".com",  # over 254 in all
]


@pytest.mark.parametrize("value", ACCEPTED)
def test_object_ids_upns_and_addresses_are_accepted(value: str) -> None:
    assert is_user_reference(value)
    assert user_reference(value, "upn") == value


@pytest.mark.parametrize("value", REFUSED)
def test_anything_else_is_refused_with_one_line_naming_it(value: str) -> None:
    assert not is_user_reference(value)
    with pytest.raises(MalformedId) as raised:
        user_reference(value, "--only")
    message = str(raised.value)
    assert message.startswith("--only: ")
    assert "\n" not in message
    assert "object id (GUID)" in message and "name@domain" in message


def test_the_two_shapes_apart() -> None:
    assert is_object_id(GUID) and not is_address(GUID)
    assert is_address("ada@contoso.com") and not is_object_id("ada@contoso.com")


def test_a_refusal_quotes_a_long_value_only_in_part() -> None:
    message = str(MalformedId.of("x" * 500, "upn"))
    assert len(message) < 200

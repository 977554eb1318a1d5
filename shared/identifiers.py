"""What a reference to a Microsoft 365 user or mailbox may look like: written down once.

Every entry that takes one from outside checks it here before anything else happens: the
admin routes (`?only=`, `/api/admin/options/{upn}`), the command line (`users --only`,
`options show|set|reset UPN`), the settings (`USER_SYNC_USERS`, `SHARED_MAILBOXES`,
`USER_SYNC_GROUPS`), queue messages (shared/work_items.py), and the Graph client itself
before it puts one into a URL path (`quote()` leaves `..` alone, so `/users/..` would
become `GET /v1.0/`).

Two shapes are accepted, after Graph's own rules:

- an **object id**: a GUID as Graph writes it, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in
  hexadecimal digits (any case). Users, groups and subscriptions are named so. Braces,
  `urn:uuid:` and the form without hyphens are not Graph's and are refused.
- an **address**: a user principal name or an SMTP address, `local@domain`, as Graph
  resolves `/users/{upn or address}`. The local part is 1 to 64 of the characters Entra
  allows in a UPN (letters, digits, `' . - _ ! # ^ ~`) plus those Exchange allows in a
  mailbox address (`$ & * + = ` { | }`), with no leading, trailing or doubled period
  (Entra: none right before the `@`). Characters that structure a URL (`/ ? % \\`), `@`,
  whitespace and quotes are never part of one. The domain is two or more DNS labels
  (letters, digits, inner hyphens). At most 254 characters in all.

A guest's UPN (`ada_contoso.com#EXT#@fabrikam.onmicrosoft.com`) is an address by these rules.
"""

from __future__ import annotations

import re

MAX_ADDRESS_LENGTH = 254
MAX_LOCAL_PART_LENGTH = 64
_SHOWN_CHARACTERS = 80  # of a refused value, in the one line that names it

_OBJECT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_ATOM = r"[A-Za-z0-9'\-_!#^~$&*+=`{|}]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@{_LABEL}(?:\.{_LABEL})+")

USER_EXPECTED = "neither an object id (GUID) nor a user principal name or address (name@domain)"
OBJECT_EXPECTED = "not an object id (GUID)"


class MalformedId(ValueError):
    """A reference that is not of the shape expected; its message is one line naming it."""

    @classmethod
    def of(cls, value: str, what: str, expected: str = USER_EXPECTED) -> MalformedId:
        shown = value if len(value) <= _SHOWN_CHARACTERS else value[:_SHOWN_CHARACTERS] + "…"
        return cls(f"{what}: {shown!r} is {expected}")


def is_object_id(value: str) -> bool:
    """A GUID as Graph writes object ids."""
    return _OBJECT_ID.fullmatch(value) is not None


def is_address(value: str) -> bool:
    """A user principal name or mailbox address, `local@domain` (see the module docstring)."""
    match = _ADDRESS.fullmatch(value)
    return match is not None and len(value) <= MAX_ADDRESS_LENGTH and len(match.group("local")) <= MAX_LOCAL_PART_LENGTH


def is_user_reference(value: str) -> bool:
    """An object id or an address: what Graph's `/users/{id | userPrincipalName}` accepts."""
    return is_object_id(value) or is_address(value)


def object_id(value: str, what: str) -> str:
    """`value` if it is an object id; else `MalformedId` naming `what`."""
    if not is_object_id(value):
        raise MalformedId.of(value, what, OBJECT_EXPECTED)
    return value


def user_reference(value: str, what: str) -> str:
    """`value` if it is an object id or an address; else `MalformedId` naming `what` (e.g. `--only`)."""
    if not is_user_reference(value):
        raise MalformedId.of(value, what)
    return value

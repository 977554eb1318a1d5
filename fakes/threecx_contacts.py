"""The phonebook half of the 3CX fake: `/xapi/v1/Contacts`, the company phonebook.

Mixed into `fakes.threecx.ThreeCXFake`. It keeps the company phonebook and enforces what
3CX enforces on `Pbx.Contact`:

* only `Pbx.Contact` properties (20.0.10 document), with the right JSON types;
* a contact needs a first name, a last name or a company name
  (`WARNINGS.CONTACTS_SPECIFY_NAME_SURNAME_COMPANY`) and at least one number
  (`WARNINGS.CONTACTS_SPECIFY_PHONE_NUMBER`), after a PATCH as much as on create;
* a full book refuses new entries (`WARNINGS.LIMIT_REACHED`; 3CX's department limit
  `DepartmentContactsMaxCount`);
* `ContactType` is "3CX" unless the body says otherwise;
* the bulk delete action is `Pbx.DeleteContactsById` from 20.0.9 on and
  `Pbx.BatchContactsDelete` before: the fake's `version` decides which one exists, the
  other answers 404 as an unknown action does on a real PBX.

A user's personal phonebook is not modelled: no published operation reads or writes one
(3CX fills it itself, through its own Microsoft 365 sync), and the fake offers no MyPhone
session either.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fakes.transport import FakeRequest, FakeResponse
from fakes.xapi_errors import XapiRejection

# -- Pbx.Contact, from the official 20.0.10 OpenAPI document (unchanged since 20.0.4) ----------
NAME_PROPERTIES = ("FirstName", "LastName", "CompanyName")
NUMBER_PROPERTIES = ("PhoneNumber", "Mobile2", "Home", "Business", "Business2", "BusinessFax", "Other", "Pager")
CONTACT_STRING_PROPERTIES = frozenset({*NAME_PROPERTIES, *NUMBER_PROPERTIES, "Title", "Department", "Email", "Tag"})
CONTACT_PROPERTIES = CONTACT_STRING_PROPERTIES | {"Id", "ContactType"}
CONTACT_SOURCES = ("3CX", "CRM", "Google", "M365")  # Pbx.ContactSource
_FILTERABLE = CONTACT_STRING_PROPERTIES | {"ContactType"}

# The bulk delete action was renamed in 20.0.9.
BULK_DELETE_SINCE_20_0_9 = "Pbx.DeleteContactsById"
BULK_DELETE_BEFORE_20_0_9 = "Pbx.BatchContactsDelete"
_RENAME_VERSION = (20, 0, 9)

_INT32 = range(-(2**31), 2**31)
_QUERY_OPTIONS = frozenset({"$top", "$skip", "$count", "$select", "$filter", "$orderby"})


class ContactRejected(XapiRejection):
    """A phonebook request the PBX refuses; `fakes.threecx` words it as an OData error."""


def version_tuple(version: str) -> tuple[int, ...]:
    """`"20.0.10.1000"` -> (20, 0, 10, 1000); stops at the first part that is not a number."""
    parts: list[int] = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def bulk_delete_action(version: str) -> str:
    """The name of the bulk delete action on a PBX of this version."""
    return BULK_DELETE_SINCE_20_0_9 if version_tuple(version) >= _RENAME_VERSION else BULK_DELETE_BEFORE_20_0_9


# -- body validation ---------------------------------------------------------------------------
def _check_contact_value(name: str, value: Any) -> None:
    if name not in CONTACT_PROPERTIES:
        raise ContactRejected(
            400,
            f"The property '{name}' does not exist on type 'Pbx.Contact'. "
            "Make sure to only use property names that are defined by the type.",
            target=name,
        )
    if name == "Id":
        ok = isinstance(value, int) and not isinstance(value, bool) and value in _INT32
        expected = "Edm.Int32"
    elif name == "ContactType":
        ok = value is None or value in CONTACT_SOURCES
        expected = "Pbx.ContactSource"
    else:
        ok = value is None or isinstance(value, str)
        expected = "Edm.String"
    if not ok:
        raise ContactRejected(
            400, f"Cannot convert the value of '{name}' to the expected type '{expected}'.", target=name
        )


def contact_properties(body: Any) -> dict[str, Any]:
    """The `Pbx.Contact` properties of a request body; OData annotations are dropped."""
    if not isinstance(body, dict):
        raise ContactRejected(400, "The request body must be a 'Pbx.Contact' object.")
    properties = {name: value for name, value in body.items() if not name.startswith("@odata.")}
    for name, value in properties.items():
        _check_contact_value(name, value)
    return properties


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def check_contact_rules(contact: dict[str, Any]) -> None:
    """3CX's rules for a whole contact: someone to call, and something to call them on."""
    if all(_blank(contact.get(name)) for name in NAME_PROPERTIES):
        raise ContactRejected(400, "WARNINGS.CONTACTS_SPECIFY_NAME_SURNAME_COMPANY")
    if all(_blank(contact.get(name)) for name in NUMBER_PROPERTIES):
        raise ContactRejected(400, "WARNINGS.CONTACTS_SPECIFY_PHONE_NUMBER")


# -- $filter -----------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+)|(?P<name>[A-Za-z_]\w*)|(?P<punct>[(),]))")
_STRING_FUNCTIONS = {
    "startswith": str.startswith,
    "endswith": str.endswith,
    "contains": lambda value, part: part in value,
}
_CASE_FUNCTIONS = {"tolower": str.lower, "toupper": str.upper}

Predicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class _Token:
    kind: str  # string, number, name, punct
    text: str


def _tokens(expression: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(expression):
        if not expression[position:].strip():
            break
        match = _TOKEN.match(expression, position)
        if match is None:
            raise ContactRejected(400, f"The $filter expression cannot be read near: {expression[position:]}")
        kind = match.lastgroup or "punct"
        tokens.append(_Token(kind, match.group(kind)))
        position = match.end()
    return tokens


class _FilterParser:
    """`or` / `and` / `not` / parentheses over `Prop eq|ne literal`, `tolower|toupper(Prop) eq|ne
    literal` and `startswith|endswith|contains(Prop,'text')` on `Pbx.Contact` properties.

    Enough for what a sync asks of a phonebook (its own entries by `Tag`); anything else is
    a 400, so a client cannot rely on a filter this fake would only pretend to understand.
    """

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _tokens(expression)
        self.position = 0

    def parse(self) -> Predicate:
        predicate = self._or()
        if self.position != len(self.tokens):
            self._fail()
        return predicate

    def _fail(self) -> None:
        raise ContactRejected(400, f"The $filter expression is not supported by this PBX fake: {self.expression}")

    def _peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _next(self) -> _Token:
        token = self._peek()
        if token is None:
            self._fail()
        assert token is not None
        self.position += 1
        return token

    def _expect(self, text: str) -> None:
        if self._next().text != text:
            self._fail()

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "name" and token.text == word:
            self.position += 1
            return True
        return False

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._keyword("or"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda contact: any(part(contact) for part in parts))

    def _and(self) -> Predicate:
        parts = [self._unary()]
        while self._keyword("and"):
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else (lambda contact: all(part(contact) for part in parts))

    def _unary(self) -> Predicate:
        if self._keyword("not"):
            inner = self._unary()
            return lambda contact: not inner(contact)
        token = self._peek()
        if token is not None and token.text == "(":
            self.position += 1
            inner = self._or()
            self._expect(")")
            return inner
        return self._primary()

    def _primary(self) -> Predicate:
        token = self._next()
        if token.kind != "name":
            self._fail()
        if token.text in _STRING_FUNCTIONS:
            self._expect("(")
            read, _ = self._operand(self._next(), strings_only=True)
            self._expect(",")
            literal = self._next()
            if literal.kind != "string":
                self._fail()
            self._expect(")")
            part = _string_literal(literal.text)
            test = _STRING_FUNCTIONS[token.text]

            def calls(contact: dict[str, Any]) -> bool:
                value = read(contact)
                return isinstance(value, str) and bool(test(value, part))

            return calls
        read, prop = self._operand(token, strings_only=False)
        operator = self._next()
        if operator.kind != "name" or operator.text not in ("eq", "ne"):
            self._fail()
        expected = self._literal(self._next(), prop)
        if operator.text == "eq":
            return lambda contact: read(contact) == expected
        return lambda contact: read(contact) != expected

    def _operand(self, token: _Token, *, strings_only: bool) -> tuple[Callable[[dict[str, Any]], Any], str]:
        """How to read `Prop` or `tolower(Prop)` from a contact, and which property that is."""
        if token.kind != "name":
            self._fail()
        if token.text in _CASE_FUNCTIONS:
            self._expect("(")
            prop = self._property(self._next(), strings_only=True)
            self._expect(")")
            change = _CASE_FUNCTIONS[token.text]
            return (lambda contact: change(value) if isinstance(value := contact.get(prop), str) else value), prop
        prop = self._property(token, strings_only=strings_only)
        return (lambda contact: contact.get(prop)), prop

    def _property(self, token: _Token, *, strings_only: bool) -> str:
        if token.kind != "name" or token.text not in CONTACT_PROPERTIES:
            raise ContactRejected(400, f"Could not find a property named '{token.text}' on type 'Pbx.Contact'.")
        if strings_only and token.text not in _FILTERABLE:
            raise ContactRejected(400, f"No function signature matches the property '{token.text}'.")
        return token.text

    def _literal(self, token: _Token, prop: str) -> Any:
        if token.kind == "name" and token.text == "null":
            return None
        if prop == "Id":
            if token.kind != "number":
                raise ContactRejected(400, "A binary operator with incompatible types was detected for 'Id'.")
            return int(token.text)
        if token.kind != "string":
            raise ContactRejected(400, f"A binary operator with incompatible types was detected for '{prop}'.")
        return _string_literal(token.text)


def _string_literal(text: str) -> str:
    return text[1:-1].replace("''", "'")


def contact_filter(expression: str) -> Predicate:
    """A predicate over stored contacts for an OData `$filter` expression."""
    return _FilterParser(expression).parse()


# -- $orderby, $select, paging -------------------------------------------------------------------
_ORDER_ITEM = re.compile(r"^\s*(?P<prop>\w+)(?:\s+(?P<direction>asc|desc))?\s*$")


def order_contacts(contacts: list[dict[str, Any]], orderby: str) -> list[dict[str, Any]]:
    keys: list[tuple[str, bool]] = []
    for item in orderby.split(","):
        match = _ORDER_ITEM.match(item)
        if not match or match.group("prop") not in CONTACT_PROPERTIES:
            raise ContactRejected(400, f"The $orderby item is not a sortable property of 'Pbx.Contact': {item.strip()}")
        keys.append((match.group("prop"), match.group("direction") == "desc"))
    ordered = list(contacts)
    for prop, descending in reversed(keys):  # stable sorts, least significant key first
        ordered.sort(key=lambda contact, p=prop: (contact.get(p) is not None, contact.get(p)), reverse=descending)
    return ordered


def _selected(request: FakeRequest) -> list[str] | None:
    if "$select" not in request.query:
        return None
    names = [name.strip() for name in request.query["$select"].split(",") if name.strip()]
    for name in names:
        if name not in CONTACT_PROPERTIES:
            raise ContactRejected(400, f"Could not find a property named '{name}' on type 'Pbx.Contact' ($select).")
    return names


def _non_negative(request: FakeRequest, option: str) -> int | None:
    raw = request.query.get(option)
    if raw is None:
        return None
    if not raw.isdigit():
        raise ContactRejected(
            400, f"Invalid value '{raw}' for {option} query option; a non-negative integer is needed."
        )
    return int(raw)


def _shape(contact: dict[str, Any], selected: list[str] | None) -> dict[str, Any]:
    if selected is None:
        return copy.deepcopy(contact)
    return {name: copy.deepcopy(contact.get(name)) for name in selected}


class PhonebookMixin:
    """The company phonebook for `ThreeCXFake` (which provides the attributes below)."""

    # Provided by ThreeCXFake / FakeService.
    _lock: threading.RLock
    clock: Callable[[], float]
    version: str
    max_page_size: int | None
    base_url: str

    def _context(self, fragment: str) -> str:  # pragma: no cover - ThreeCXFake's
        raise NotImplementedError

    def _init_phonebooks(self, *, max_company_contacts: int | None) -> None:
        self.max_company_contacts = max_company_contacts
        self._book: dict[int, dict[str, Any]] = {}
        self._next_contact_id = 1

    # -- test helpers (not HTTP) ---------------------------------------------------------------
    def add_contact(self, **fields: Any) -> dict[str, Any]:
        """Seed a contact as if made by hand in the admin console. Same rules as the API."""
        with self._lock:
            try:
                properties = contact_properties(fields)
                return copy.deepcopy(self._create_contact(properties, contact_id=properties.get("Id")))
            except ContactRejected as rejection:
                raise ValueError(rejection.message) from None

    def update_contact(self, contact_id: int, **fields: Any) -> dict[str, Any]:
        """Edit a contact by hand in the console; same rules as a PATCH.

        Returns a copy of the changed contact; ValueError when there is no such contact or the
        change is refused.
        """
        with self._lock:
            try:
                return copy.deepcopy(self._change_contact(contact_id, contact_properties(fields)))
            except ContactRejected as rejection:
                raise ValueError(rejection.message) from None

    def delete_contact(self, contact_id: int) -> None:
        """Delete a contact by hand; KeyError when the book has none with that Id."""
        with self._lock:
            del self._book[contact_id]

    @property
    def company_contacts(self) -> dict[int, dict[str, Any]]:
        """A snapshot of the company phonebook, by Id."""
        with self._lock:
            return copy.deepcopy(self._book)

    # -- /xapi/v1/Contacts ---------------------------------------------------------------------
    def _contacts(self, request: FakeRequest, path: str) -> FakeResponse | None:
        """Answer a `/Contacts...` path; None when the path is not a contacts path."""
        method = request.method
        if path == "/Contacts":
            if method == "GET":
                return self._list_contacts(request)
            if method == "POST":
                return self._post_contact(request)
            raise ContactRejected(405, f"The HTTP method '{method}' is not allowed here.")
        if match := re.fullmatch(r"/Contacts\((-?\d+)\)", path):
            contact_id = int(match.group(1))
            if method == "GET":
                return self._get_contact(request, contact_id)
            if method == "PATCH":
                return self._patch_contact(request, contact_id)
            if method == "DELETE":
                self._stored_contact(contact_id)
                del self._book[contact_id]
                return FakeResponse(204, b"")
            raise ContactRejected(405, f"The HTTP method '{method}' is not allowed here.")
        if path == f"/Contacts/{bulk_delete_action(self.version)}":
            if method != "POST":
                raise ContactRejected(405, f"The HTTP method '{method}' is not allowed here.")
            return self._bulk_delete(request)
        return None

    def _stored_contact(self, contact_id: int) -> dict[str, Any]:
        contact = self._book.get(contact_id)
        if contact is None:
            raise ContactRejected(
                404, f"No contact with Id {contact_id}.", target="Id", warning="WARNINGS.XAPI.NOT_FOUND"
            )
        return contact

    def _list_contacts(self, request: FakeRequest) -> FakeResponse:
        for option in request.query:
            if option.startswith("$") and option not in _QUERY_OPTIONS:
                raise ContactRejected(400, f"The query parameter '{option}' is not supported.")
        top, skip = _non_negative(request, "$top"), _non_negative(request, "$skip") or 0
        count_option = request.query.get("$count", "false")
        if count_option not in ("true", "false"):
            raise ContactRejected(400, f"Invalid value '{count_option}' for $count query option.")
        selected = _selected(request)
        contacts = list(self._book.values())
        if "$filter" in request.query:
            matches = contact_filter(request.query["$filter"])
            contacts = [contact for contact in contacts if matches(contact)]
        if "$orderby" in request.query:
            contacts = order_contacts(contacts, request.query["$orderby"])
        total = len(contacts)
        if self.max_page_size is not None:
            top = self.max_page_size if top is None else min(top, self.max_page_size)
        page = contacts[skip:] if top is None else contacts[skip : skip + top]
        body: dict[str, Any] = {"@odata.context": self._context("Contacts")}
        if count_option == "true":
            body["@odata.count"] = total
        body["value"] = [_shape(contact, selected) for contact in page]
        return FakeResponse(200, body)

    def _get_contact(self, request: FakeRequest, contact_id: int) -> FakeResponse:
        contact = self._stored_contact(contact_id)
        shaped = _shape(contact, _selected(request))
        return FakeResponse(200, {"@odata.context": self._context("Contacts/$entity"), **shaped})

    def _post_contact(self, request: FakeRequest) -> FakeResponse:
        contact = self._create_contact(contact_properties(_json_body(request)))
        headers = {"Location": f"{self.base_url}/xapi/v1/Contacts({contact['Id']})"}
        return FakeResponse(
            201, {"@odata.context": self._context("Contacts/$entity"), **copy.deepcopy(contact)}, headers
        )

    def _create_contact(self, properties: dict[str, Any], contact_id: int | None = None) -> dict[str, Any]:
        """Store a new contact; the PBX assigns the Id."""
        contact: dict[str, Any] = dict.fromkeys(sorted(CONTACT_STRING_PROPERTIES), "")
        contact["ContactType"] = "3CX"
        contact.update({name: value for name, value in properties.items() if name != "Id"})
        if contact["ContactType"] is None:
            contact["ContactType"] = "3CX"
        check_contact_rules(contact)
        entries = self._book
        if self.max_company_contacts is not None and len(entries) >= self.max_company_contacts:
            raise ContactRejected(400, "WARNINGS.LIMIT_REACHED")
        if contact_id is None:
            contact_id = self._next_contact_id
        elif contact_id in entries:
            raise ContactRejected(400, f"Id {contact_id} is already in use")
        self._next_contact_id = max(self._next_contact_id, contact_id + 1)
        contact["Id"] = contact_id
        entries[contact_id] = contact
        return contact

    def _patch_contact(self, request: FakeRequest, contact_id: int) -> FakeResponse:
        self._change_contact(contact_id, contact_properties(_json_body(request)))
        return FakeResponse(204, b"")

    def _change_contact(self, contact_id: int, properties: dict[str, Any]) -> dict[str, Any]:
        contact = self._stored_contact(contact_id)
        if "Id" in properties and properties["Id"] != contact_id:
            raise ContactRejected(400, "Id can not be changed.", target="Id", warning="WARNINGS.XAPI.FORBIDDEN_CHANGE")
        changed = {**contact, **{name: value for name, value in properties.items() if name != "Id"}}
        check_contact_rules(changed)  # the contact as it would be after the change
        contact.update(changed)
        return contact

    def _bulk_delete(self, request: FakeRequest) -> FakeResponse:
        body = _json_body(request)
        ids = body.get("ids") if isinstance(body, dict) else None
        valid = isinstance(body, dict) and set(body) == {"ids"} and isinstance(ids, list)
        if not valid or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids or []):
            raise ContactRejected(400, "The action takes one parameter, 'ids', a list of integers.")
        for contact_id in ids or []:
            self._book.pop(contact_id, None)  # ids of nothing are left alone
        return FakeResponse(204, b"")


def _json_body(request: FakeRequest) -> Any:
    try:
        return request.json()
    except ValueError:
        raise ContactRejected(400, "The request body is not valid JSON.") from None

"""`python -m sync check-pbx`: does this PBX offer what the connector calls?

Every PBX serves its own OpenAPI document at `/xapi/v1/swagger.yaml`. Operations and
properties move between 3CX versions (bulk deletes were renamed in 20.0.9), so before
going live — and after a PBX update — this reads the live document and checks every
operation the connector uses and every property it writes, against that PBX's own words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from shared.threecx_models import CONTACT_FIELDS, USER_FIELDS


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # as the OpenAPI document spells it (relative to /xapi/v1)
    purpose: str
    required: bool = True  # False: the connector has a fallback


# Everything shared/threecx.py sends under /xapi/v1.
OPERATIONS = (
    Operation("GET", "/Users", "list users, find by e-mail"),
    Operation("POST", "/Users", "create users"),
    Operation("GET", "/Users({Id})", "read a user's current status"),
    Operation("PATCH", "/Users({Id})", "update users, set status, disable"),
    Operation("DELETE", "/Users({Id})", "delete users (DEPROVISION=delete)"),
    Operation("GET", "/SystemStatus", "PBX version", required=False),
    Operation("GET", "/Contacts", "list phonebook entries"),
    Operation("POST", "/Contacts", "create phonebook entries"),
    Operation("PATCH", "/Contacts({Id})", "update phonebook entries"),
    Operation("DELETE", "/Contacts({Id})", "delete phonebook entries"),
    Operation("POST", "/Contacts/Pbx.DeleteContactsById", "bulk delete (else one by one)", required=False),
)
# Properties the connector writes, by schema.
WRITTEN_PROPERTIES = {
    "Pbx.User": (*USER_FIELDS, "Number", "CurrentProfileName", "ContactImage"),
    "Pbx.Contact": CONTACT_FIELDS,
}


@dataclass
class CheckResult:
    version: str
    missing_required: list[Operation] = field(default_factory=list)
    missing_optional: list[Operation] = field(default_factory=list)
    present: list[Operation] = field(default_factory=list)
    missing_properties: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing_required and not any(self.missing_properties.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "version": self.version,
            "missing_required": [f"{o.method} {o.path}" for o in self.missing_required],
            "missing_optional": [f"{o.method} {o.path}" for o in self.missing_optional],
            "present": len(self.present),
            "missing_properties": self.missing_properties,
        }


def check_description(document: Mapping[str, Any]) -> CheckResult:
    """Compare the connector's needs with a parsed OpenAPI document."""
    paths = document.get("paths") or {}
    result = CheckResult(version=str((document.get("info") or {}).get("version", "unknown")))
    for operation in OPERATIONS:
        methods = {method.upper() for method in (paths.get(operation.path) or {})}
        if operation.method in methods:
            result.present.append(operation)
        elif operation.required:
            result.missing_required.append(operation)
        else:
            result.missing_optional.append(operation)
    schemas = (document.get("components") or {}).get("schemas") or {}
    for schema, properties in WRITTEN_PROPERTIES.items():
        declared = _properties(schemas, schemas.get(schema) or {}, set())
        result.missing_properties[schema] = [name for name in properties if name not in declared]
    return result


def _properties(schemas: Mapping[str, Any], schema: Mapping[str, Any], seen: set[str]) -> set[str]:
    """A schema's property names, through `$ref` and `allOf` (Pbx.User extends Pbx.DN)."""
    names = set(schema.get("properties") or {})
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference not in seen:
        seen.add(reference)
        names |= _properties(schemas, schemas.get(reference.rsplit("/", 1)[-1]) or {}, seen)
    for part in schema.get("allOf") or []:
        if isinstance(part, Mapping):
            names |= _properties(schemas, part, seen)
    return names


def parse_description(text: str) -> Mapping[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the document is over a megabyte
    document = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader either way
    if not isinstance(document, Mapping) or "paths" not in document:
        raise ValueError("the PBX's /xapi/v1/swagger.yaml is not an OpenAPI document")
    return document


def render(result: CheckResult) -> str:
    lines = [f"3CX API description version {result.version}"]
    for operation in OPERATIONS:
        mark = "✓" if operation in result.present else ("✗" if operation.required else "~")
        lines.append(f"  {mark} {operation.method:<6} {operation.path:<52} {operation.purpose}")
    for schema, missing in result.missing_properties.items():
        if missing:
            lines.append(f"  ✗ {schema} lacks {', '.join(missing)}")
    if result.ok:
        note = " (optional ones marked ~ have fallbacks)" if result.missing_optional else ""
        lines.append(f"OK: this PBX offers everything the connector uses{note}.")
    else:
        lines.append("NOT OK: the connector would fail on the operations or properties marked ✗.")
    return "\n".join(lines)

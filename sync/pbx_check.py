"""`python -m sync check-pbx`: does this PBX offer what the connector needs, with 3CX's own sync out of the way?

Every PBX serves its own OpenAPI document at `/xapi/v1/swagger.yaml`. Operations and
properties move between 3CX versions (bulk deletes were renamed in 20.0.9), so before
going live — and after a PBX update — this reads the live document and checks every
operation the connector uses and every property it writes, against that PBX's own words.

Then `assess` judges what was read from the PBX (and the options in state), one finding
per check, each with a fix when it is wrong:

- the PBX version;
- reading: the API client lists users and the company phonebook (one entry each, counted);
- writing is never tried (check-pbx changes nothing: even PATCHing a value onto itself is a
  write a PBX may act on). Its role decides it instead: read from the API client's own
  record (`GET /ServicePrincipals`, the one whose `Number` is the Client ID), System Admin
  or System Owner in some department may write users and contacts;
- 3CX's own Microsoft 365 integration (`GET /Microsoft365Integration`): connected or not,
  and which of its syncs are on. It fails the check when its *user* sync is on (a second
  writer of the same users), and when the `personal_contacts` option is on for anyone
  while 3CX cannot copy personal contacts (not connected, or its personal-contacts sync
  off): 3CX's own sync is the only published way into a personal phonebook. Its calendar
  sync on is a warning (it would set statuses beside the connector), and so is its
  shared-mailbox sync beside SHARED_MAILBOXES (the same contacts twice).

Pure: the caller reads (see `sync.cli`), this module decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from shared.threecx_models import CONTACT_FIELDS, USER_FIELDS, Microsoft365Integration


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
    Operation("GET", "/Microsoft365Integration", "check-pbx: 3CX's own Microsoft 365 integration", required=False),
    Operation("GET", "/ServicePrincipals", "check-pbx: the API client's role", required=False),
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


# -- the readiness verdict ------------------------------------------------------------------------------

# Roles that may create and change users and company phonebook entries (Admin → Integrations → API).
WRITE_ROLES = {"system_owners": "System Owner", "system_admins": "System Admin"}
ROLE_FIX = (
    "give the API client the role System Admin: 3CX Admin Console → Integrations → API → edit the client"
    " → Role: System Admin (Owner is not needed)"
)
INTEGRATION_PLACE = "3CX Admin Console → Integrations → Microsoft 365"
Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Unreadable:
    """A read the PBX refused or could not answer, as one line (e.g. "3CX 403")."""

    reason: str


@dataclass(frozen=True)
class PbxFacts:
    """What `check-pbx` read: from the PBX, and from the connector's own settings and options."""

    client_id: str
    description: CheckResult | Unreadable
    version: str | None | Unreadable
    users: int | None | Unreadable  # how many users the API client can list (None: not counted)
    contacts: int | None | Unreadable  # company phonebook entries
    roles: Sequence[tuple[str, str]] | None | Unreadable  # (department, role); None: no such API client
    integration: Microsoft365Integration | Unreadable
    personal_contacts_asked_by: Sequence[str]  # see sync.eligibility.personal_contacts_asked_by
    shared_mailboxes: bool  # SHARED_MAILBOXES is set


@dataclass(frozen=True)
class Finding:
    """One check's verdict: one line, and how to fix it when it is not ok."""

    check: str
    status: Status
    text: str
    fix: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"check": self.check, "status": self.status, "text": self.text, "fix": self.fix}


@dataclass(frozen=True)
class PbxReport:
    facts: PbxFacts
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return all(item.status != "fail" for item in self.findings)

    def as_dict(self) -> dict[str, Any]:
        description = self.facts.description
        payload: dict[str, Any] = (
            description.as_dict()
            if isinstance(description, CheckResult)
            else {"version": None, "missing_required": [], "missing_optional": [], "present": 0}
        )
        integration = self.facts.integration
        version = self.facts.version
        payload.update(
            ok=self.ok,
            pbx_version=version if isinstance(version, str) else None,
            microsoft365=None
            if isinstance(integration, Unreadable)
            else {
                "connected": integration.connected,
                "tenant_id": integration.tenant_id or None,
                "user_sync": integration.user_sync,
                "personal_contacts_sync": integration.personal_contacts_sync,
                "calendar_sync": integration.calendar_sync,
                "shared_mailboxes_sync": integration.shared_mailboxes_sync,
            },
            findings=[item.as_dict() for item in self.findings],
        )
        return payload


def assess(facts: PbxFacts) -> PbxReport:
    """Every check, in a fixed order, one finding each."""
    findings = [
        _version(facts.version),
        _description(facts.description),
        _read("read_users", "users", "users", facts.users),
        _read("read_contacts", "the company phonebook", "entries", facts.contacts),
        _write(facts.client_id, facts.roles),
        *_integration(facts),
    ]
    return PbxReport(facts, findings)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _version(version: str | None | Unreadable) -> Finding:
    if isinstance(version, Unreadable):
        return Finding("version", "warn", f"3CX version: not readable ({version.reason})")
    if not version:
        return Finding("version", "warn", "3CX version: the PBX does not say")
    return Finding("version", "ok", f"3CX version {version}")


def _description(description: CheckResult | Unreadable) -> Finding:
    if isinstance(description, Unreadable):
        return Finding(
            "api",
            "fail",
            f"the PBX's API description (/xapi/v1/swagger.yaml) could not be read ({description.reason})",
            "check TCX_BASE_URL: it must be the root of a 3CX V20 PBX",
        )
    if description.ok:
        return Finding("api", "ok", f"API description {description.version}: every operation and property used")
    missing = [f"{o.method} {o.path}" for o in description.missing_required] + [
        f"{schema}.{name}" for schema, names in description.missing_properties.items() for name in names
    ]
    return Finding(
        "api",
        "fail",
        f"API description {description.version} lacks {', '.join(missing)}",
        "update the PBX to a 3CX V20 version that offers them (see the lines marked ✗ above)",
    )


def _read(check: str, what: str, unit: str, count: int | None | Unreadable) -> Finding:
    if isinstance(count, Unreadable):
        return Finding(check, "fail", f"the API client cannot read {what} ({count.reason})", ROLE_FIX)
    counted = "" if count is None else f" ({count} {unit})"
    return Finding(check, "ok", f"the API client reads {what}{counted}")


def _write(client_id: str, roles: Sequence[tuple[str, str]] | None | Unreadable) -> Finding:
    unchecked = "so whether it may create and change users and phonebook entries is not tried either"
    if isinstance(roles, Unreadable):
        reason = f"the API client's role could not be read ({roles.reason}); {unchecked}"
        return Finding("write", "warn", reason, ROLE_FIX)
    if roles is None:
        return Finding(
            "write",
            "warn",
            f"no API client with Client ID {client_id!r} is listed, so its role is unknown; {unchecked}",
            f"check TCX_CLIENT_ID; {ROLE_FIX}",
        )
    if not roles:
        return Finding("write", "warn", f"the API client is in no department; {unchecked}", ROLE_FIX)
    writer = next(((department, role) for department, role in roles if role in WRITE_ROLES), None)
    if writer is None:
        held = ", ".join(f"{role or 'no role'} in {department or 'a department'}" for department, role in roles)
        return Finding(
            "write",
            "fail",
            f"the API client's role ({held}) may not create and change users and phonebook entries",
            ROLE_FIX,
        )
    department, role = writer
    return Finding(
        "write",
        "ok",
        f"the API client's role {WRITE_ROLES[role]} (department {department}) may create and change users and"
        " phonebook entries (read from its role, not tried: check-pbx writes nothing)",
    )


def _integration(facts: PbxFacts) -> list[Finding]:
    integration = facts.integration
    if isinstance(integration, Unreadable):
        fix = f"{ROLE_FIX}; then run check-pbx again"
        return [
            Finding(
                "microsoft365", "fail", f"3CX's Microsoft 365 integration could not be read ({integration.reason})", fix
            ),
            Finding("user_sync", "fail", "whether 3CX's own Microsoft 365 user sync is off cannot be told", fix),
            _personal_contacts(facts.personal_contacts_asked_by, None),
            Finding("calendar_sync", "warn", "whether 3CX's own calendar status is off cannot be told", fix),
            Finding("shared_mailboxes", "warn", "whether 3CX's own shared-mailbox sync is off cannot be told", fix),
        ]
    if integration.connected:
        state = (
            f"connected (tenant {integration.tenant_id}); its user sync {_on(integration.user_sync)},"
            f" personal contacts {_on(integration.personal_contacts_sync)}, calendar {_on(integration.calendar_sync)},"
            f" shared mailboxes {_on(integration.shared_mailboxes_sync)}"
        )
    else:
        state = "not connected"
    findings = [Finding("microsoft365", "ok", f"3CX's Microsoft 365 integration: {state}")]
    if integration.user_sync:
        findings.append(
            Finding(
                "user_sync",
                "fail",
                "3CX's own Microsoft 365 user sync is on: a second writer of the same users (it creates, changes"
                " and re-creates them by its own rules)",
                f"turn it off in {INTEGRATION_PLACE} (user synchronisation); the connector syncs the users",
            )
        )
    else:
        findings.append(Finding("user_sync", "ok", "3CX's own Microsoft 365 user sync is off"))
    findings.append(_personal_contacts(facts.personal_contacts_asked_by, integration))
    if integration.calendar_sync:
        findings.append(
            Finding(
                "calendar_sync",
                "warn",
                "3CX's own calendar status is on (AdUsers.SyncEvents): for a user with MS365CalendarEnabled it would"
                " set statuses beside the connector's; the user sync keeps MS365CalendarEnabled false for its users",
                f"turn off the calendar sync in {INTEGRATION_PLACE} unless users outside the connector need it",
            )
        )
    else:
        findings.append(Finding("calendar_sync", "ok", "3CX's own calendar status is off"))
    if integration.shared_mailboxes_sync and facts.shared_mailboxes:
        findings.append(
            Finding(
                "shared_mailboxes",
                "warn",
                "3CX's own shared-mailbox sync is on while SHARED_MAILBOXES is set: the company phonebook would get"
                " the same contacts twice",
                f"keep one: turn off the shared mailboxes in {INTEGRATION_PLACE}, or empty SHARED_MAILBOXES",
            )
        )
    else:
        findings.append(Finding("shared_mailboxes", "ok", "the company phonebook has one writer of shared mailboxes"))
    return findings


def _personal_contacts(asked_by: Sequence[str], integration: Microsoft365Integration | None) -> Finding:
    if not asked_by:
        return Finding("personal_contacts", "ok", "personal contacts: the option is off for everyone")
    who = ", ".join(asked_by[:3]) + (f" and {len(asked_by) - 3} more" if len(asked_by) > 3 else "")
    if integration is not None and integration.connected and integration.personal_contacts_sync:
        return Finding(
            "personal_contacts",
            "ok",
            f"personal contacts: on for {who}; 3CX's own sync copies their Outlook contacts (the user sync sets"
            " MS365ContactsEnabled)",
        )
    if integration is None:
        why = "3CX's Microsoft 365 integration could not be read"
    elif not integration.connected:
        why = "3CX's Microsoft 365 integration is not connected"
    else:
        why = "3CX's Microsoft 365 integration does not sync personal contacts"
    connect = "connect 3CX to Microsoft 365 (Configure, then the admin consent)"
    steps = [] if integration is not None and integration.connected else [connect]
    steps += ["turn on its personal contacts sync and leave its user sync off", "run check-pbx again"]
    numbered = ", ".join(f"({index}) {step}" for index, step in enumerate(steps, start=1))
    return Finding(
        "personal_contacts",
        "fail",
        f"personal contacts are on for {who}, but {why}: only 3CX's own sync writes personal phonebooks",
        f"in {INTEGRATION_PLACE}: {numbered}; or turn the option off: SYNC_PERSONAL_CONTACTS=false, and"
        " `python -m sync options set UPN personal_contacts=default` for each user listed",
    )


def render_report(report: PbxReport) -> str:
    """The text form: the operations table (when the description was read), then one line per finding."""
    marks = {"ok": "✓", "warn": "!", "fail": "✗"}
    lines = []
    if isinstance(report.facts.description, CheckResult):
        lines.extend(render(report.facts.description).splitlines()[:-1])  # its verdict line is part of the findings
        lines.append("")
    for item in report.findings:
        lines.append(f"{marks[item.status]} {item.text}")
        if item.fix:
            lines.append(f"    fix: {item.fix}")
    warned = any(item.status == "warn" for item in report.findings)
    if report.ok:
        lines.append("OK: this PBX is ready for the connector" + (" (read the lines marked !)." if warned else "."))
    else:
        lines.append("NOT OK: fix the lines marked ✗ first.")
    return "\n".join(lines)

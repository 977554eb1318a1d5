"""The integrations half of the 3CX fake: 3CX's own Microsoft 365 integration and the API client.

Mixed into `fakes.threecx.ThreeCXFake`. Two things an administrator sets up under
Admin → Integrations, as the official 20.0.10 document describes them:

* `GET` / `PATCH /xapi/v1/Microsoft365Integration`: the singleton `Pbx.Microsoft365Integration`
  (`Id`, `ApplicationId`, `TenantId`, `AdUsers`: `Pbx.ADUsersSyncConfiguration`,
  `SharedMailboxesSync`: `Pbx.UsersSyncConfiguration`). By default it is not connected:
  `ApplicationId` and `TenantId` are empty and every sync is off. A PATCH body must fit the
  schema (declared properties only, the right JSON types and enum values), as the real
  PBX's OData reader insists; the fake merges a nested object into the stored one (OData
  applies complex properties of a PATCH as a patch too) and replaces lists. How the PBX
  answers while it is connected, and what its own sync then does, is not modelled: the
  fake only keeps the configuration.
* `GET /xapi/v1/ServicePrincipals`: the API clients, each a DN whose `Number` is its
  Client ID (the official tutorial creates one with `{"Number": "sptest"}`). The fake
  knows the one API client it issues tokens to, in one department with one role
  (`Groups[].Rights.RoleName`, e.g. `system_admins`). `$filter` takes `Number eq '...'`,
  `$expand` takes `Groups` and `Groups($expand=Rights)`; `Rights` is a navigation property
  of `Pbx.UserGroup`, so it comes only when expanded.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from fakes.transport import FakeRequest, FakeResponse
from fakes.xapi_errors import XapiRejection

M365_PATH = "/Microsoft365Integration"
SERVICE_PRINCIPALS_PATH = "/ServicePrincipals"

# -- Pbx.Microsoft365Integration and its parts, from the official 20.0.10 document ------------------
# A property's kind: "bool?" (nullable boolean), "string", "strings" (array of strings), "int32",
# an enum (a tuple of its values, nullable), a nested schema (a dict, nullable) or a list of one.
INTEGRATION_SYNC_TYPES = ("SyncAllUsers", "SyncAllUsersExceptSelected", "SyncSelected", "SyncSelectedGroups")
SYNCHRONIZED_PBX_PROFILES = ("Available", "OutOfOffice", "Away")
SYNCHRONIZED_M365_PROFILES = (
    "Available",
    "Busy",
    "Away",
    "AvailableIdle",
    "BusyIdle",
    "DoNotDisturb",
    "BeRightBack",
    "InMeeting",
    "InCall",
)
_M365_TO_PBX_BINDING = {"From": SYNCHRONIZED_M365_PROFILES, "To": SYNCHRONIZED_PBX_PROFILES}
_PBX_TO_M365_BINDING = {"From": SYNCHRONIZED_PBX_PROFILES, "To": SYNCHRONIZED_M365_PROFILES}
STATUS_SYNC_CONFIGURATION: dict[str, Any] = {
    "M365ToPbxBindings": [_M365_TO_PBX_BINDING],
    "PBXToM365Bindings": [_PBX_TO_M365_BINDING],
    "PBXToM365Busy": "bool?",
}
AD_USERS_SYNC_CONFIGURATION: dict[str, Any] = {
    "EnableSSO": "bool?",
    "IsEnabled": "bool?",
    "IsSyncDepartments": "bool?",
    "IsSyncDetails": "bool?",
    "IsSyncOfficePhone": "bool?",
    "IsSyncPhoto": "bool?",
    "SelectedGroups": "strings",
    "SelectedUsers": "strings",
    "SetTeamsPresence": "bool?",
    "StartingExtensionNumber": "string",
    "StatusSyncConfiguration": STATUS_SYNC_CONFIGURATION,
    "SyncEvents": "bool?",
    "SyncGuestUsers": "bool?",
    "SyncPersonalContacts": "bool?",
    "SyncType": INTEGRATION_SYNC_TYPES,
}
USERS_SYNC_CONFIGURATION: dict[str, Any] = {
    "IsEnabled": "bool?",
    "SelectedUsers": "strings",
    "SyncType": INTEGRATION_SYNC_TYPES,
}
MICROSOFT365_INTEGRATION: dict[str, Any] = {
    "AdUsers": AD_USERS_SYNC_CONFIGURATION,
    "ApplicationId": "string",
    "Id": "int32",
    "SharedMailboxesSync": USERS_SYNC_CONFIGURATION,
    "TenantId": "string",
}

# Pbx.ServicePrincipal's own (non-navigation) properties, with those it has from Pbx.DN.
SERVICE_PRINCIPAL_PROPERTIES = frozenset(
    {"Id", "Number", "TranscriptionMode", "CallControlEnabled", "IsSystem", "LastUsed", "MyPhoneEnabled", "XAPIEnabled"}
)
_SERVICE_PRINCIPAL_EXPANDS = {"Groups": False, "Groups($expand=Rights)": True}  # value: Rights included
_NUMBER_FILTER = re.compile(r"^\s*Number\s+eq\s+'((?:[^']|'')*)'\s*$")
_INT32 = range(-(2**31), 2**31)


class IntegrationRejected(XapiRejection):
    """A request to these resources the PBX refuses; `fakes.threecx` words it as an OData error."""


def default_microsoft365_integration() -> dict[str, Any]:
    """The integration as a PBX that was never connected to Microsoft 365 shows it."""
    return {
        "Id": 1,
        "ApplicationId": "",
        "TenantId": "",
        "AdUsers": {
            "EnableSSO": False,
            "IsEnabled": False,
            "IsSyncDepartments": False,
            "IsSyncDetails": False,
            "IsSyncOfficePhone": False,
            "IsSyncPhoto": False,
            "SelectedGroups": [],
            "SelectedUsers": [],
            "SetTeamsPresence": False,
            "StartingExtensionNumber": "",
            "StatusSyncConfiguration": {"M365ToPbxBindings": [], "PBXToM365Bindings": [], "PBXToM365Busy": False},
            "SyncEvents": False,
            "SyncGuestUsers": False,
            "SyncPersonalContacts": False,
            "SyncType": "SyncAllUsers",
        },
        "SharedMailboxesSync": {"IsEnabled": False, "SelectedUsers": [], "SyncType": "SyncAllUsers"},
    }


def check_against(schema: Mapping[str, Any], value: Any, where: str) -> None:
    """Refuse what OData's reader refuses: undeclared properties, wrong JSON types, unknown enum values."""
    if not isinstance(value, dict):
        raise IntegrationRejected(400, f"'{where}' must be an object.", target=where)
    for name, item in value.items():
        if name.startswith("@odata."):
            continue
        path = f"{where}.{name}" if where else name
        if name not in schema:
            raise IntegrationRejected(
                400,
                f"The property '{name}' does not exist on type '{where or 'Pbx.Microsoft365Integration'}'. "
                "Make sure to only use property names that are defined by the type.",
                target=path,
            )
        _check_kind(schema[name], item, path)


def _check_kind(kind: Any, value: Any, path: str) -> None:
    if isinstance(kind, dict):
        if value is not None:
            check_against(kind, value, path)
        return
    if isinstance(kind, list):
        if not isinstance(value, list):
            raise IntegrationRejected(400, f"Cannot convert the value of '{path}' to a collection.", target=path)
        for index, item in enumerate(value):
            _check_kind(kind[0], item, f"{path}[{index}]")
        return
    if isinstance(kind, tuple):
        ok = value is None or value in kind
    elif kind == "bool?":
        ok = value is None or isinstance(value, bool)
    elif kind == "string":
        ok = isinstance(value, str)
    elif kind == "strings":
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
    else:  # int32
        ok = isinstance(value, int) and not isinstance(value, bool) and value in _INT32
    if not ok:
        raise IntegrationRejected(400, f"Cannot convert the value of '{path}' to the expected type.", target=path)


def _merged(stored: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`stored` with `changes` applied: nested objects merged, everything else replaced."""
    result = copy.deepcopy(stored)
    for name, value in changes.items():
        if name.startswith("@odata."):
            continue
        if isinstance(value, dict) and isinstance(result.get(name), dict):
            result[name] = _merged(result[name], value)
        else:
            result[name] = copy.deepcopy(value)
    return result


class IntegrationsMixin:
    """`/Microsoft365Integration` and `/ServicePrincipals` for `ThreeCXFake` (which provides the attributes below)."""

    # Provided by ThreeCXFake / FakeService.
    _lock: threading.RLock
    client_id: str
    _users: dict[int, dict[str, Any]]

    def _context(self, fragment: str) -> str:  # pragma: no cover - ThreeCXFake's
        raise NotImplementedError

    def _init_integrations(self, *, api_client_role: str, api_client_department: str) -> None:
        self._microsoft365 = default_microsoft365_integration()
        self._personal: dict[int, list[dict[str, Any]]] = {}  # user Id -> what 3CX's own sync copied
        self.api_client_role = api_client_role  # RoleName of the API client in its department
        self.api_client_department = api_client_department

    # -- test helpers (not HTTP) ---------------------------------------------------------------
    @property
    def microsoft365(self) -> dict[str, Any]:
        """A snapshot of 3CX's own Microsoft 365 integration settings."""
        with self._lock:
            return copy.deepcopy(self._microsoft365)

    def configure_microsoft365(self, **changes: Any) -> dict[str, Any]:
        """Change the integration as an administrator would in the console; the same rules as a PATCH.

        E.g. `configure_microsoft365(ApplicationId="…", TenantId="…", AdUsers={"SyncPersonalContacts": True})`.
        """
        with self._lock:
            try:
                return copy.deepcopy(self._patch_microsoft365_properties(changes))
            except IntegrationRejected as rejection:
                raise ValueError(rejection.message) from None

    def run_own_microsoft365_sync(
        self,
        outlook_contacts: Callable[[str], list[dict[str, Any]]],
        *,
        in_meeting: Callable[[str], bool] | None = None,
    ) -> dict[int, int]:
        """3CX's own Microsoft 365 sync, one round, as far as the connector meets it.

        While the integration is connected with `AdUsers.SyncPersonalContacts` on, each user
        whose `MS365ContactsEnabled` is on gets a one-way copy of the Outlook contacts of the
        mailbox its e-mail names (`outlook_contacts(email)`, Graph fields) as its personal
        phonebook; a user whose switch is off keeps none. Returns the entries copied per user Id.
        With `AdUsers.SyncEvents` on, each user whose `MS365CalendarEnabled` is on gets its
        status from `in_meeting(email)`: Out of office during a meeting, Available otherwise
        (3CX's own calendar status, a second writer of `CurrentProfileName`).
        """
        with self._lock:
            settings = self._microsoft365
            ad_users = settings.get("AdUsers") or {}
            connected = bool(settings.get("ApplicationId")) and bool(settings.get("TenantId"))
            copied: dict[int, int] = {}
            for user in self._users.values():
                switched_on = connected and ad_users.get("SyncPersonalContacts") and user.get("MS365ContactsEnabled")
                entries = [_personal_entry(contact) for contact in outlook_contacts(user.get("EmailAddress") or "")]
                self._personal[user["Id"]] = entries if switched_on else []
                if switched_on:
                    copied[user["Id"]] = len(entries)
                calendar = connected and ad_users.get("SyncEvents") and user.get("MS365CalendarEnabled")
                if calendar and in_meeting is not None:
                    busy = in_meeting(user.get("EmailAddress") or "")
                    user["CurrentProfileName"] = "Out of office" if busy else "Available"
            return copied

    def personal_contacts(self, user_id: int) -> list[dict[str, Any]]:
        """A user's personal phonebook as 3CX's own sync left it (names and numbers)."""
        with self._lock:
            return copy.deepcopy(self._personal.get(user_id, []))

    # -- /xapi/v1/Microsoft365Integration ------------------------------------------------------
    def _integrations(self, request: FakeRequest, path: str) -> FakeResponse | None:
        """Answer these resources' paths; None for any other path."""
        if path == M365_PATH:
            if request.method == "GET":
                return self._get_microsoft365(request)
            if request.method == "PATCH":
                try:
                    body = request.json()
                except ValueError:
                    raise IntegrationRejected(400, "The request body is not valid JSON.") from None
                self._patch_microsoft365_properties(body)
                return FakeResponse(204, b"")
            raise IntegrationRejected(405, f"The HTTP method '{request.method}' is not allowed here.")
        if path == SERVICE_PRINCIPALS_PATH:
            if request.method != "GET":
                raise IntegrationRejected(405, f"The HTTP method '{request.method}' is not allowed here.")
            return self._list_service_principals(request)
        return None

    def _get_microsoft365(self, request: FakeRequest) -> FakeResponse:
        for option in request.query:
            if option.startswith("$") and option not in ("$select", "$expand"):
                raise IntegrationRejected(400, f"The query parameter '{option}' is not supported.")
        if request.query.get("$expand", "").strip():
            raise IntegrationRejected(400, "Pbx.Microsoft365Integration has no navigation property to expand.")
        shown = copy.deepcopy(self._microsoft365)
        if "$select" in request.query:
            names = [name.strip() for name in request.query["$select"].split(",") if name.strip()]
            for name in names:
                if name not in MICROSOFT365_INTEGRATION:
                    raise IntegrationRejected(
                        400, f"Could not find a property named '{name}' on type 'Pbx.Microsoft365Integration'."
                    )
            shown = {name: shown[name] for name in names}
        return FakeResponse(200, {"@odata.context": self._context("Microsoft365Integration"), **shown})

    def _patch_microsoft365_properties(self, changes: Any) -> dict[str, Any]:
        check_against(MICROSOFT365_INTEGRATION, changes, "")
        if "Id" in changes and changes["Id"] != self._microsoft365["Id"]:
            raise IntegrationRejected(
                400, "Id can not be changed.", target="Id", warning="WARNINGS.XAPI.FORBIDDEN_CHANGE"
            )
        self._microsoft365 = _merged(self._microsoft365, changes)
        return self._microsoft365

    # -- /xapi/v1/ServicePrincipals ----------------------------------------------------------
    def _service_principals(self) -> list[dict[str, Any]]:
        """The API clients: the one this fake issues tokens to."""
        rights = {"RoleName": self.api_client_role, "AllowToManageCompanyBook": True}
        group = {"GroupId": 1, "Name": self.api_client_department, "Number": "GRP0000", "Rights": rights}
        return [
            {
                "Id": 1,
                "Number": self.client_id,
                "XAPIEnabled": True,
                "CallControlEnabled": False,
                "MyPhoneEnabled": False,
                "IsSystem": False,
                "Groups": [group],
            }
        ]

    def _list_service_principals(self, request: FakeRequest) -> FakeResponse:
        for option in request.query:
            if option.startswith("$") and option not in ("$filter", "$select", "$expand", "$count"):
                raise IntegrationRejected(400, f"The query parameter '{option}' is not supported.")
        principals = self._service_principals()
        if "$filter" in request.query:
            match = _NUMBER_FILTER.match(request.query["$filter"])
            if match is None:
                raise IntegrationRejected(
                    400, f"The $filter expression is not supported by this PBX fake: {request.query['$filter']}"
                )
            number = match.group(1).replace("''", "'")
            principals = [principal for principal in principals if principal["Number"] == number]
        expand = request.query.get("$expand", "").replace(" ", "")
        if expand and expand not in _SERVICE_PRINCIPAL_EXPANDS:
            raise IntegrationRejected(400, f"The $expand expression is not supported by this PBX fake: {expand}")
        selected = None
        if "$select" in request.query:
            selected = [name.strip() for name in request.query["$select"].split(",") if name.strip()]
            for name in selected:
                if name not in SERVICE_PRINCIPAL_PROPERTIES:
                    raise IntegrationRejected(
                        400, f"Could not find a property named '{name}' on type 'Pbx.ServicePrincipal'."
                    )
        shown = []
        for principal in principals:
            entry = {name: value for name, value in principal.items() if name != "Groups"}
            if selected is not None:
                entry = {name: entry.get(name) for name in selected}
            if expand:
                with_rights = _SERVICE_PRINCIPAL_EXPANDS[expand]
                entry["Groups"] = [
                    {name: value for name, value in group.items() if with_rights or name != "Rights"}
                    for group in principal["Groups"]
                ]
            shown.append(entry)
        body: dict[str, Any] = {"@odata.context": self._context("ServicePrincipals")}
        if request.query.get("$count") == "true":
            body["@odata.count"] = len(shown)
        body["value"] = shown
        return FakeResponse(200, body)


def _personal_entry(contact: Mapping[str, Any]) -> dict[str, Any]:
    """A personal phonebook entry as 3CX's own sync would make it from an Outlook contact."""
    phones = [*(contact.get("businessPhones") or []), contact.get("mobilePhone"), *(contact.get("homePhones") or [])]
    return {
        "FirstName": contact.get("givenName") or "",
        "LastName": contact.get("surname") or "",
        "PhoneNumbers": [phone for phone in phones if phone],
    }

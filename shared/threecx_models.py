"""Typed payloads of the 3CX V20 XAPI, as far as the connector reads or writes them.

Field aliases are the XAPI property names (`Pbx.User` in the official OpenAPI document),
so a model validates an XAPI answer as it arrives and dumps `by_alias` into a request body.
Answers carry far more properties than the connector cares about; those are ignored.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

# The user properties the connector keeps in step with Microsoft 365 (XAPI names).
# Presence (`CurrentProfileName`) and the picture (`ContactImage`) have their own ports.
USER_FIELDS: tuple[str, ...] = (
    "FirstName",
    "LastName",
    "DisplayName",
    "EmailAddress",
    "Mobile",
    "OutboundCallerID",
    "MS365SignInEnabled",
    "MS365ContactsEnabled",
    "MS365CalendarEnabled",
    "Enabled",
)

# What a listing needs for a plan: identity, the synced fields and the status.
# `ContactImage` is left out on purpose: it can be a large data URI per user.
USER_SELECT: tuple[str, ...] = ("Id", "Number", *USER_FIELDS, "CurrentProfileName")

# The five status profiles every 3CX user has; `CurrentProfileName` takes one of these.
PROFILE_NAMES: tuple[str, ...] = ("Available", "Away", "Out of office", "Custom 1", "Custom 2")


class _Xapi(BaseModel):
    """Base for XAPI answers: XAPI names in, Python names usable too, unknown keys dropped."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class _UserProperties(BaseModel):
    """The `Pbx.User` properties the connector reads and writes, shared by both directions."""

    first_name: str | None = Field(default=None, alias="FirstName")
    last_name: str | None = Field(default=None, alias="LastName")
    display_name: str | None = Field(default=None, alias="DisplayName")
    email_address: str | None = Field(default=None, alias="EmailAddress")
    mobile: str | None = Field(default=None, alias="Mobile")
    outbound_caller_id: str | None = Field(default=None, alias="OutboundCallerID")
    ms365_sign_in_enabled: bool | None = Field(default=None, alias="MS365SignInEnabled")
    # 3CX's own Microsoft 365 sync of this user's personal contacts, and of its calendar to status.
    ms365_contacts_enabled: bool | None = Field(default=None, alias="MS365ContactsEnabled")
    ms365_calendar_enabled: bool | None = Field(default=None, alias="MS365CalendarEnabled")
    enabled: bool | None = Field(default=None, alias="Enabled")
    current_profile_name: str | None = Field(default=None, alias="CurrentProfileName")
    contact_image: str | None = Field(default=None, alias="ContactImage", repr=False)


class _Changes(BaseModel):
    """A POST or PATCH body, strict and closed.

    A misspelt name or a wrong type (a number sent as an int) fails here, before 3CX answers
    with a 400 that would say so one entity at a time.
    """

    model_config = ConfigDict(populate_by_name=True, extra="forbid", strict=True)

    def body(self) -> dict[str, Any]:
        """The JSON body: only the properties that were given (an explicit None clears one)."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class TcxUser(_UserProperties, _Xapi):
    """A 3CX user (extension) as the connector sees it."""

    id: int = Field(alias="Id")
    number: str = Field(alias="Number")


class UserChanges(_UserProperties, _Changes):
    """A POST or PATCH body for `/Users`: only the properties the connector may write."""

    number: str | None = Field(default=None, alias="Number")


# The Pbx.Contact properties a client may write: everything but the key and `ContactType`
# (the PBX sets that to "3CX" for entries made through the API).
CONTACT_FIELDS: tuple[str, ...] = (
    "FirstName",
    "LastName",
    "CompanyName",
    "Title",
    "Department",
    "Email",
    "PhoneNumber",
    "Mobile2",
    "Home",
    "Business",
    "Business2",
    "BusinessFax",
    "Other",
    "Pager",
    "Tag",
)


class _ContactProperties(BaseModel):
    """The writable `Pbx.Contact` properties, shared by what is read and what is sent."""

    first_name: str | None = Field(default=None, alias="FirstName")
    last_name: str | None = Field(default=None, alias="LastName")
    company_name: str | None = Field(default=None, alias="CompanyName")
    title: str | None = Field(default=None, alias="Title")
    department: str | None = Field(default=None, alias="Department")
    email: str | None = Field(default=None, alias="Email")
    phone_number: str | None = Field(default=None, alias="PhoneNumber")
    mobile2: str | None = Field(default=None, alias="Mobile2")
    home: str | None = Field(default=None, alias="Home")
    business: str | None = Field(default=None, alias="Business")
    business2: str | None = Field(default=None, alias="Business2")
    business_fax: str | None = Field(default=None, alias="BusinessFax")
    other: str | None = Field(default=None, alias="Other")
    pager: str | None = Field(default=None, alias="Pager")
    tag: str | None = Field(default=None, alias="Tag")


class TcxContact(_ContactProperties, _Xapi):
    """A company phonebook entry (`Pbx.Contact`).

    `PhoneNumber` is the primary (mobile) number; there is no `Mobile`, only `Mobile2`.
    `Tag` is a free string the connector uses to recognise its own entries.
    """

    id: int = Field(alias="Id")
    contact_type: str | None = Field(default=None, alias="ContactType")


class ContactChanges(_ContactProperties, _Changes):
    """A POST or PATCH body for `/Contacts`: only the writable `Pbx.Contact` properties."""


Entity = TypeVar("Entity", TcxUser, TcxContact)


class Page(_Xapi, Generic[Entity]):
    """One page of a collection (`GET /Users`, `GET /Contacts`).

    3CX sends `@odata.count` only when asked, and never a nextLink.
    """

    value: list[Entity]
    count: int | None = Field(default=None, alias="@odata.count")


class SystemStatus(_Xapi):
    """The part of `GET /SystemStatus` the connector reads."""

    version: str | None = Field(default=None, alias="Version")


class TokenResponse(_Xapi):
    """Answer of `POST /connect/token`.

    `expires_in` is minutes up to 20.0.8 and seconds from 20.0.9; the client decides which.
    The token is a SecretStr so that no repr or log line can show it.
    """

    access_token: SecretStr
    expires_in: int | None = None
    token_type: str = "Bearer"  # noqa: S105 - a scheme name, not a secret


class ODataErrorDetail(_Xapi):
    """One entry of `error.details`; `target` names the offending property."""

    code: str | None = ""
    message: str | None = ""
    target: str | None = None


class ODataMainError(_Xapi):
    """The `error` object of an OData error answer (`Pbx.ODataErrors.MainError`)."""

    code: str | None = ""
    message: str | None = ""
    target: str | None = None
    details: list[ODataErrorDetail] = Field(default_factory=list)


class ODataError(_Xapi):
    """The XAPI error answer: `{"error": {"code", "message", "target", "details": [...]}}`.

    3CX usually leaves `code` empty and puts a `WARNINGS.*` key in `details[].message`
    (and as the last line of `message`, e.g. "Number:\\nWARNINGS.XAPI.ALREADY_IN_USE").
    """

    error: ODataMainError

    @property
    def warning(self) -> str:
        """The most specific error code on offer: `code`, else a `WARNINGS.*` key, else ""."""
        if self.error.code:
            return self.error.code
        for detail in self.error.details:
            if detail.code:
                return detail.code
            if detail.message and detail.message.startswith("WARNINGS."):
                return detail.message
        last_line = (self.error.message or "").strip().rsplit("\n", 1)[-1].strip()
        return last_line if last_line.startswith("WARNINGS.") else ""

    @property
    def target(self) -> str | None:
        """The property the error is about, when 3CX names one."""
        if self.error.target:
            return self.error.target
        return next((detail.target for detail in self.error.details if detail.target), None)


# -- what `check-pbx` reads: 3CX's own Microsoft 365 integration, the API client's role, counts ----------------
class M365UserSyncSettings(_Xapi):
    """The part of `Pbx.ADUsersSyncConfiguration` (`AdUsers`) the connector reads.

    `IsEnabled` is 3CX's own user sync from Microsoft 365 (a second writer of the users the
    connector syncs); `SyncPersonalContacts` copies each enabled user's Outlook contacts to
    their personal phonebook (per user: `MS365ContactsEnabled`); `SyncEvents` is 3CX's own
    calendar-driven status (per user: `MS365CalendarEnabled`).
    """

    is_enabled: bool | None = Field(default=None, alias="IsEnabled")
    sync_personal_contacts: bool | None = Field(default=None, alias="SyncPersonalContacts")
    sync_events: bool | None = Field(default=None, alias="SyncEvents")


class M365MailboxSyncSettings(_Xapi):
    """The part of `Pbx.UsersSyncConfiguration` (`SharedMailboxesSync`) the connector reads."""

    is_enabled: bool | None = Field(default=None, alias="IsEnabled")


class Microsoft365Integration(_Xapi):
    """`GET /Microsoft365Integration` (`Pbx.Microsoft365Integration`), as far as the connector reads it.

    Connected means 3CX's integration has an Entra application and tenant (both set by the
    consent flow in Admin → Integrations → Microsoft 365). A missing or null part reads as off.
    """

    application_id: str | None = Field(default=None, alias="ApplicationId")
    tenant_id: str | None = Field(default=None, alias="TenantId")
    ad_users: M365UserSyncSettings | None = Field(default=None, alias="AdUsers")
    shared_mailboxes: M365MailboxSyncSettings | None = Field(default=None, alias="SharedMailboxesSync")

    @property
    def connected(self) -> bool:
        return bool((self.application_id or "").strip() and (self.tenant_id or "").strip())

    @property
    def user_sync(self) -> bool:
        return bool(self.ad_users and self.ad_users.is_enabled)

    @property
    def personal_contacts_sync(self) -> bool:
        return bool(self.ad_users and self.ad_users.sync_personal_contacts)

    @property
    def calendar_sync(self) -> bool:
        return bool(self.ad_users and self.ad_users.sync_events)

    @property
    def shared_mailboxes_sync(self) -> bool:
        return bool(self.shared_mailboxes and self.shared_mailboxes.is_enabled)


class Rights(_Xapi):
    """The part of `Pbx.Rights` the connector reads: the role's name (e.g. `system_admins`)."""

    role_name: str | None = Field(default=None, alias="RoleName")


class GroupMembership(_Xapi):
    """A DN's membership of a department (`Pbx.UserGroup`): the department's name and the role in it."""

    name: str | None = Field(default=None, alias="Name")
    rights: Rights | None = Field(default=None, alias="Rights")


class ServicePrincipal(_Xapi):
    """An API client (`Pbx.ServicePrincipal`, a DN whose `Number` is its Client ID), with its departments."""

    id: int = Field(alias="Id")
    number: str | None = Field(default=None, alias="Number")
    groups: list[GroupMembership] = Field(default_factory=list, alias="Groups")


class ServicePrincipalPage(_Xapi):
    """A page of `GET /ServicePrincipals`."""

    value: list[ServicePrincipal]


class Counted(_Xapi):
    """A collection answer read for its `@odata.count` alone."""

    count: int | None = Field(default=None, alias="@odata.count")

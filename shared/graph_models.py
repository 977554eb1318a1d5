"""Typed shapes of what Microsoft Graph sends about users, photos, events, contacts and
subscriptions.

Graph omits properties that were not selected, sends `null` for unset ones, and marks
delta removals with `@removed`; these models absorb all three so domain code sees one
shape. Field aliases are Graph's own names, so payloads validate as they arrive.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The user properties the connector asks Graph for ($select) in list, get and delta calls.
USER_SELECT: tuple[str, ...] = (
    "id",
    "userPrincipalName",
    "mail",
    "displayName",
    "givenName",
    "surname",
    "mobilePhone",
    "businessPhones",
    "accountEnabled",
    "userType",
    "assignedPlans",
)

EXCHANGE_SERVICE = "exchange"
# assignedPlan.capabilityStatus is one of Enabled, Warning, Suspended, LockedOut, Deleted, in the
# order a licence that is not renewed goes through them. Enabled is "available for normal use";
# Warning is "available for normal use ... but is in a grace period"; from Suspended on the
# service is "unavailable" (its data is kept until Deleted). Source: Graph's "assignedPlan
# resource type" (learn.microsoft.com/graph/api/resources/assignedplan); the values are case
# insensitive there. ../shared/reference/graph.md names assignedLicenses (§4.1) but says nothing
# about assignedPlans or capabilityStatus.
WORKING_CAPABILITIES = frozenset({"enabled", "warning"})


class _GraphModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class AssignedPlan(_GraphModel):
    """One service plan assigned to a user through a licence (e.g. Exchange Online)."""

    service: str | None = None
    capability_status: str | None = Field(default=None, alias="capabilityStatus")
    service_plan_id: str | None = Field(default=None, alias="servicePlanId")
    assigned_date_time: str | None = Field(default=None, alias="assignedDateTime")

    @property
    def is_working(self) -> bool:
        """Whether the service still serves the user: Enabled, or Warning (a licence in its grace period)."""
        return (self.capability_status or "").lower() in WORKING_CAPABILITIES


class Removal(_GraphModel):
    """The `@removed` marker of a delta entry: "changed" = soft-deleted, "deleted" = gone for good."""

    reason: str | None = None


class GraphUser(_GraphModel):
    """An Entra user as Graph returns it, or a delta tombstone carrying only `id` and `@removed`."""

    id: str
    user_principal_name: str | None = Field(default=None, alias="userPrincipalName")
    mail: str | None = None
    display_name: str | None = Field(default=None, alias="displayName")
    given_name: str | None = Field(default=None, alias="givenName")
    surname: str | None = None
    mobile_phone: str | None = Field(default=None, alias="mobilePhone")
    business_phones: list[str] = Field(default_factory=list, alias="businessPhones")
    account_enabled: bool | None = Field(default=None, alias="accountEnabled")
    user_type: str | None = Field(default=None, alias="userType")
    assigned_plans: list[AssignedPlan] = Field(default_factory=list, alias="assignedPlans")
    removed: Removal | None = Field(default=None, alias="@removed")

    @field_validator("business_phones", "assigned_plans", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        # Graph sends null for collections it has nothing for; an empty list is what that means.
        return [] if value is None else value

    @property
    def is_removed(self) -> bool:
        """True for a delta tombstone (soft- or hard-deleted user)."""
        return self.removed is not None

    @property
    def removal_reason(self) -> str | None:
        """ "changed" (soft delete, restorable) or "deleted" (permanent); None when not removed."""
        return self.removed.reason if self.removed is not None else None

    @property
    def exchange_plans(self) -> list[AssignedPlan]:
        """The user's Exchange Online plans, working or not (a licence change leaves the old one Deleted)."""
        return [plan for plan in self.assigned_plans if (plan.service or "").lower() == EXCHANGE_SERVICE]

    def has_exchange_mailbox(self) -> bool:
        """Whether the user has a working Exchange mailbox.

        A licence alone is not enough: one Exchange plan must still work (Enabled, or Warning
        during a lapsed licence's grace period; not Suspended, LockedOut or Deleted), and the
        user needs an address to reach the mailbox by.
        """
        has_plan = any(plan.is_working for plan in self.exchange_plans)
        return has_plan and bool(self.mail or self.user_principal_name)


class PhotoImage(_GraphModel):
    """A user's photo as fetched for an avatar: its bytes and the content type Graph gave."""

    model_config = ConfigDict(frozen=True)

    content: bytes
    content_type: str


class PhotoInfo(_GraphModel):
    """What is known about a user's profile photo without downloading it.

    Photos are not tracked by delta, so the etag is what tells a sync that a photo changed;
    `etag` None means the user has no photo.
    """

    model_config = ConfigDict(frozen=True)

    user_id: str
    etag: str | None = None
    content_type: str | None = None


class PhotoUnreadable(_GraphModel):
    """A user's photo metadata that Graph would not give this time: its `$batch` item failed.

    Nothing is known about the photo, neither that it changed nor that it is gone, so a
    sync must leave the avatar (and the etag it remembers) as they are and ask again later.
    `reason` is one line naming Graph's answer.
    """

    model_config = ConfigDict(frozen=True)

    user_id: str
    reason: str


class DeltaResult(_GraphModel):
    """One completed delta round.

    `full` is True when the round enumerated every user (the first round, or a restart
    after Graph dropped the sync state), so users absent from it no longer exist.
    """

    users: list[GraphUser]
    delta_link: str
    full: bool


# =========================================================================================
# calendars
# =========================================================================================
ShowAs = Literal["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"]
SHOW_AS_VALUES: tuple[str, ...] = get_args(ShowAs)
EventType = Literal["singleInstance", "occurrence", "exception", "seriesMaster"]

# What calendar_view asks for: enough to derive a status, and nothing private (no subject,
# body, attendees, location), which is what Calendars.ReadBasic grants.
EVENT_SELECT: tuple[str, ...] = (
    "id",
    "showAs",
    "start",
    "end",
    "isAllDay",
    "isCancelled",
    "type",
    "seriesMasterId",
)

_UTC_NAMES = frozenset({"utc", "etc/utc", "etc/gmt", "gmt", "z", "coordinated universal time"})
_GRAPH_DATETIME = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?(?P<offset>Z|[+-]\d{2}:?\d{2})?$"
)


def parse_graph_datetime(value: str, time_zone: str | None = "UTC") -> datetime:
    """An aware UTC datetime from Graph's `dateTime` string and `timeZone` name.

    Graph writes seven fractional digits ("2026-11-26T10:00:00.0000000"), more than
    `datetime` holds, so the fraction is cut to microseconds. A string with its own offset
    (e.g. "...Z" in `expirationDateTime`) keeps it; otherwise `time_zone` says where the
    wall-clock time is: UTC, or an IANA name converted with zoneinfo. Windows zone names
    ("W. Europe Standard Time") are refused rather than guessed: the client asks Graph for
    UTC, so seeing one means a request went out without that preference.
    """
    match = _GRAPH_DATETIME.match(value.strip())
    if match is None:
        raise ValueError(f"not a Graph date-time: {value!r}")
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    parsed = datetime.fromisoformat(f"{match['base']}.{fraction}{_iso_offset(match['offset'])}")
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    return parsed.replace(tzinfo=_zone(time_zone)).astimezone(UTC)


def format_graph_datetime(moment: datetime) -> str:
    """An aware datetime as the UTC ISO 8601 string Graph accepts ("...Z")."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a naive datetime is ambiguous; pass an aware one")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso_offset(offset: str | None) -> str:
    if not offset:
        return ""
    if offset == "Z":
        return "+00:00"
    return offset if ":" in offset else f"{offset[:3]}:{offset[3:]}"


def _zone(name: str | None) -> tzinfo:
    if name is None or name.strip().lower() in _UTC_NAMES:
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f'time zone {name!r} is neither UTC nor an IANA name; request UTC with Prefer: outlook.timezone="UTC"'
        ) from None


def _aware_utc(value: Any) -> Any:
    """Accept Graph's dateTimeTimeZone object, a Graph date-time string, or an aware datetime."""
    if isinstance(value, dict):
        date_time = value.get("dateTime")
        if not isinstance(date_time, str):
            raise ValueError("dateTimeTimeZone without a dateTime string")
        return parse_graph_datetime(date_time, value.get("timeZone"))
    if isinstance(value, str):
        return parse_graph_datetime(value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetimes are ambiguous; events carry aware UTC datetimes")
        return value.astimezone(UTC)
    return value


class GraphEvent(_GraphModel):
    """An event as calendarView returns it, reduced to what decides a phone status.

    `start`/`end` are aware UTC datetimes whatever zone Graph wrote them in (see
    `parse_graph_datetime`); an all-day event therefore spans midnight to midnight of
    the zone it was returned in. Cancelled events are kept: the caller decides.
    """

    id: str
    show_as: ShowAs = Field(default="unknown", alias="showAs")
    start: datetime
    end: datetime
    is_all_day: bool = Field(default=False, alias="isAllDay")
    is_cancelled: bool = Field(default=False, alias="isCancelled")
    type: EventType | None = None
    series_master_id: str | None = Field(default=None, alias="seriesMasterId")

    @field_validator("show_as", mode="before")
    @classmethod
    def _known_show_as(cls, value: Any) -> Any:
        # Graph may add values (as it did with workingElsewhere); an unknown one must not
        # fail a whole calendar read, and "unknown" is Graph's own word for "no statement".
        return value if value in SHOW_AS_VALUES else "unknown"

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> Any:
        return value if value in get_args(EventType) else None

    @field_validator("is_all_day", "is_cancelled", mode="before")
    @classmethod
    def _null_is_false(cls, value: Any) -> Any:
        return False if value is None else value

    @field_validator("start", "end", mode="before")
    @classmethod
    def _to_utc(cls, value: Any) -> Any:
        return _aware_utc(value)


# =========================================================================================
# contacts
# =========================================================================================
# What contacts_delta asks for: the fields a phonebook entry is made from, and the folder
# (id always comes back, but naming it keeps the list self-explanatory).
CONTACT_SELECT: tuple[str, ...] = (
    "id",
    "parentFolderId",
    "givenName",
    "surname",
    "displayName",
    "companyName",
    "jobTitle",
    "department",
    "emailAddresses",
    "businessPhones",
    "homePhones",
    "mobilePhone",
)
CONTACT_FOLDER_SELECT: tuple[str, ...] = ("id", "displayName", "parentFolderId")


class EmailAddress(_GraphModel):
    """One of a contact's e-mail addresses; Outlook allows either part to be empty."""

    name: str | None = None
    address: str | None = None


class GraphContact(_GraphModel):
    """An Outlook contact as Graph returns it, or a delta tombstone (`id` and `@removed`).

    Outlook contacts are typed in by people, so every property may be missing or null;
    null collections and null entries in them are read as absent.
    """

    id: str
    given_name: str | None = Field(default=None, alias="givenName")
    surname: str | None = None
    display_name: str | None = Field(default=None, alias="displayName")
    company_name: str | None = Field(default=None, alias="companyName")
    job_title: str | None = Field(default=None, alias="jobTitle")
    department: str | None = None
    email_addresses: list[EmailAddress] = Field(default_factory=list, alias="emailAddresses")
    business_phones: list[str] = Field(default_factory=list, alias="businessPhones")
    home_phones: list[str] = Field(default_factory=list, alias="homePhones")
    mobile_phone: str | None = Field(default=None, alias="mobilePhone")
    parent_folder_id: str | None = Field(default=None, alias="parentFolderId")
    removed: Removal | None = Field(default=None, alias="@removed")

    @field_validator("email_addresses", "business_phones", "home_phones", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, list):
            return [item for item in value if item is not None]
        return value

    @property
    def is_removed(self) -> bool:
        """True for a delta tombstone: deleted, or moved out of the folder the round reads."""
        return self.removed is not None


class ContactFolder(_GraphModel):
    """A contact folder below a mailbox's default Contacts folder."""

    model_config = ConfigDict(frozen=True)

    id: str
    display_name: str | None = Field(default=None, alias="displayName")
    parent_folder_id: str | None = Field(default=None, alias="parentFolderId")


class ContactDeltaResult(_GraphModel):
    """One completed delta round over one contact folder.

    `full` is True when the round enumerated every contact in the folder (the first round,
    or a restart after Graph dropped the sync state), so contacts absent from it are no
    longer in that folder. Tombstones (`is_removed`) may appear in any round.
    """

    contacts: list[GraphContact]
    delta_link: str
    full: bool


# =========================================================================================
# change-notification subscriptions
# =========================================================================================
class Subscription(_GraphModel):
    """A Graph change-notification subscription as Graph reports it.

    `client_state` authenticates the notifications and the URLs may carry a function key
    (`?code=...`), so none of the three appears in repr().
    """

    id: str
    resource: str
    change_type: str = Field(alias="changeType")
    expiration: datetime = Field(alias="expirationDateTime")
    client_state: str | None = Field(default=None, alias="clientState", repr=False)
    notification_url: str = Field(alias="notificationUrl", repr=False)
    lifecycle_notification_url: str | None = Field(default=None, alias="lifecycleNotificationUrl", repr=False)

    @field_validator("expiration", mode="before")
    @classmethod
    def _expiration_utc(cls, value: Any) -> Any:
        return _aware_utc(value)

    @property
    def change_types(self) -> frozenset[str]:
        """The change types as a set ("created,updated" -> {"created", "updated"})."""
        return frozenset(part.strip() for part in self.change_type.split(",") if part.strip())

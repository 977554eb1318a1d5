"""Typed shapes of what Microsoft Graph sends about users and photos.

Graph omits properties that were not selected, sends `null` for unset ones, and marks
delta removals with `@removed`; these models absorb all three so domain code sees one
shape. Field aliases are Graph's own names, so payloads validate as they arrive.
"""

from __future__ import annotations

from typing import Any

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
ENABLED_CAPABILITY = "Enabled"


class _GraphModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class AssignedPlan(_GraphModel):
    """One service plan assigned to a user through a licence (e.g. Exchange Online)."""

    service: str | None = None
    capability_status: str | None = Field(default=None, alias="capabilityStatus")
    service_plan_id: str | None = Field(default=None, alias="servicePlanId")
    assigned_date_time: str | None = Field(default=None, alias="assignedDateTime")


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

    def has_exchange_mailbox(self) -> bool:
        """Whether the user has a working Exchange mailbox.

        A licence alone is not enough: the Exchange plan must be enabled (not suspended or
        deleted), and the user needs an address to reach the mailbox by.
        """
        has_plan = any(
            (plan.service or "").lower() == EXCHANGE_SERVICE
            and (plan.capability_status or "").lower() == ENABLED_CAPABILITY.lower()
            for plan in self.assigned_plans
        )
        return has_plan and bool(self.mail or self.user_principal_name)


class PhotoInfo(_GraphModel):
    """What is known about a user's profile photo without downloading it.

    Photos are not tracked by delta, so the etag is what tells a sync that a photo changed;
    `etag` None means the user has no photo.
    """

    model_config = ConfigDict(frozen=True)

    user_id: str
    etag: str | None = None
    content_type: str | None = None


class DeltaResult(_GraphModel):
    """One completed delta round.

    `full` is True when the round enumerated every user (the first round, or a restart
    after Graph dropped the sync state), so users absent from it no longer exist.
    """

    users: list[GraphUser]
    delta_link: str
    full: bool

"""Graph change notifications as they arrive at the webhook (`changeNotificationCollection`).

Anyone on the internet can POST to the webhook, so these models are the first line of
defence: every field the connector relies on is required and every string and list is
bounded, so a hostile body is rejected before it costs more than one parse. Graph adds
properties over time, so unknown fields are tolerated (and ignored), never an error.
Lifecycle notifications (`reauthorizationRequired`, `subscriptionRemoved`, `missed`) are
the same type with `lifecycleEvent` set and no resource.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

MAX_NOTIFICATIONS_PER_POST = 1_000
MAX_ID_LENGTH = 256
MAX_CLIENT_STATE_LENGTH = 255  # changeNotification allows 255; subscriptions are created with ≤ 128
MAX_RESOURCE_LENGTH = 2_048
MAX_VALIDATION_TOKEN_LENGTH = 16_384  # a JWT; only rich notifications carry them

NotificationId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]
OptionalId = Annotated[str, StringConstraints(max_length=MAX_ID_LENGTH)]


class ResourceData(BaseModel):
    """What Graph says about the changed item: its id and OData identity, never its content."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: OptionalId | None = None
    odata_type: Annotated[str, StringConstraints(max_length=MAX_ID_LENGTH)] | None = Field(None, alias="@odata.type")
    odata_id: Annotated[str, StringConstraints(max_length=MAX_RESOURCE_LENGTH)] | None = Field(None, alias="@odata.id")
    odata_etag: Annotated[str, StringConstraints(max_length=MAX_ID_LENGTH)] | None = Field(None, alias="@odata.etag")


class ChangeNotification(BaseModel):
    """One notification: a change (`changeType` + `resource`) or a lifecycle event (`lifecycleEvent`).

    `clientState` is optional here on purpose: a notification without it is not a malformed
    body but an unauthenticated notification, which the webhook drops (and still answers
    202, so a rogue sender learns nothing and Graph does not retry).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    subscription_id: NotificationId = Field(alias="subscriptionId")
    subscription_expiration: datetime | None = Field(None, alias="subscriptionExpirationDateTime")
    change_type: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = Field(None, alias="changeType")
    resource: Annotated[str, StringConstraints(min_length=1, max_length=MAX_RESOURCE_LENGTH)] | None = None
    resource_data: ResourceData | None = Field(None, alias="resourceData")
    client_state: Annotated[str, StringConstraints(max_length=MAX_CLIENT_STATE_LENGTH)] | None = Field(
        None, alias="clientState", repr=False
    )
    tenant_id: Annotated[str, StringConstraints(max_length=MAX_ID_LENGTH)] | None = Field(None, alias="tenantId")
    lifecycle_event: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None, alias="lifecycleEvent"
    )
    id: OptionalId | None = None

    @model_validator(mode="after")
    def _change_or_lifecycle(self) -> ChangeNotification:
        # A change notification is useless without what changed and how; a lifecycle one carries neither.
        if self.lifecycle_event is None and (self.change_type is None or self.resource is None):
            raise ValueError("a change notification needs changeType and resource (or lifecycleEvent)")
        return self

    @property
    def is_lifecycle(self) -> bool:
        return self.lifecycle_event is not None


class ChangeNotificationCollection(BaseModel):
    """The body of every notification POST: up to `MAX_NOTIFICATIONS_PER_POST` notifications."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    value: list[ChangeNotification] = Field(max_length=MAX_NOTIFICATIONS_PER_POST)
    validation_tokens: list[Annotated[str, StringConstraints(max_length=MAX_VALIDATION_TOKEN_LENGTH)]] | None = Field(
        None, alias="validationTokens", max_length=MAX_NOTIFICATIONS_PER_POST
    )

"""Messages on the work queue: one typed model per kind of work the worker is asked to do.

A Graph notification only says *which* user's calendar (or which user, or which mailbox)
changed; the worker reads the current data and converges (level-triggered), so
duplicates, reordering and loss cost nothing. Scheduled status boundaries ride the same
queue with a visibility delay. `Work` is a union discriminated on `kind`; `parse_work`
turns a message back into the one model its kind names, or raises `ValueError`.

A user is named as our producers name it (shared/identifiers.py has the shapes): by object
id (GUID) for calendar, user and boundary work, by object id or mailbox address for
contacts and lifecycle work. A message naming one otherwise is no producer's, and refused.
Contacts work names a shared mailbox; one naming a user's object id was queued by an earlier
version (personal phonebooks) and still parses, so the worker can drop it with a line.

Every message may carry the W3C `traceparent` of the code that queued it (the webhook, a
run scheduling a boundary), so the worker's span continues that trace (shared/telemetry.py).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from shared.identifiers import object_id, user_reference

LifecycleEvent = Literal["reauthorizationRequired", "subscriptionRemoved", "missed"]
GraphId = Annotated[str, Field(min_length=1, max_length=128)]
# A Microsoft 365 user's object id; a user's object id or a mailbox's address.
UserObjectId = Annotated[str, AfterValidator(lambda value: object_id(value, "user_id"))]
MailboxId = Annotated[str, AfterValidator(lambda value: user_reference(value, "user_id"))]
# W3C trace context: version-traceid-parentid-flags, lower-case hex.
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
Traceparent = Annotated[str, Field(pattern=TRACEPARENT.pattern)]


class _Message(BaseModel):
    """What every message carries besides its kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    change_type: str | None = Field(None, max_length=32)
    received_at: datetime | None = None  # when the webhook accepted it (for latency telemetry)
    traceparent: Traceparent | None = None  # the trace of whoever queued it

    def to_message(self) -> str:
        return self.model_dump_json(exclude_none=True)

    def traced(self, traceparent: str | None) -> Self:
        """This message carrying `traceparent`, unless it carries one already (a message put back keeps its own)."""
        if self.traceparent or not traceparent:
            return self
        return self.model_copy(update={"traceparent": traceparent})


class CalendarWork(_Message):
    """Re-read `user_id`'s calendar and re-decide their status (a calendar change notification)."""

    kind: Literal["calendar"] = "calendar"
    user_id: UserObjectId
    subscription_id: GraphId | None = None


class UserWork(_Message):
    """Sync this one M365 user into 3CX now (a `/users` change notification)."""

    kind: Literal["user"] = "user"
    user_id: UserObjectId
    subscription_id: GraphId | None = None


class BoundaryWork(_Message):
    """An event of `user_id` starts or ends at `due`: decide their status as of then."""

    kind: Literal["boundary"] = "boundary"
    user_id: UserObjectId
    due: datetime


class LifecycleWork(_Message):
    """Graph's lifecycle notification `lifecycle_event` for our subscription `subscription_id`."""

    kind: Literal["lifecycle"] = "lifecycle"
    subscription_id: GraphId
    lifecycle_event: LifecycleEvent
    user_id: MailboxId | None = None  # whose data the subscription watches, for the log


class ContactsWork(_Message):
    """Re-read mailbox `user_id`'s contacts: a shared mailbox (an address, or from an earlier version a user id)."""

    kind: Literal["contacts"] = "contacts"
    user_id: MailboxId
    subscription_id: GraphId | None = None


Work = Annotated[
    CalendarWork | UserWork | BoundaryWork | LifecycleWork | ContactsWork,
    Field(discriminator="kind"),
]
WorkKind = Literal["calendar", "user", "boundary", "lifecycle", "contacts"]

_WORK: TypeAdapter[Work] = TypeAdapter(Work)


def parse_work(text: str) -> Work:
    """The work a queue message stands for; `ValueError` (pydantic's) for anything else."""
    return _WORK.validate_json(text)


def traceparent_of(text: str) -> str | None:
    """The `traceparent` a message carries, read without judging the rest of it (None if none)."""
    try:
        fields = json.loads(text)
    except ValueError:
        return None
    value = fields.get("traceparent") if isinstance(fields, dict) else None
    return value if isinstance(value, str) and TRACEPARENT.match(value) else None


def work_from_fields(fields: dict[str, Any]) -> Work:
    """The work these fields describe; `ValueError` (pydantic's) when they describe none."""
    return _WORK.validate_python(fields)

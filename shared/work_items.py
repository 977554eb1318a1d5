"""Messages on the work queue: what the queue-triggered worker is asked to reconcile.

A Graph notification only says *which* user's calendar (or which user) changed; the worker
reads the current data and converges (level-triggered), so duplicates, reordering and
loss cost nothing. Scheduled status boundaries ride the same queue with a visibility delay.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

WorkKind = Literal["calendar", "user", "boundary", "lifecycle", "contacts"]
LifecycleEvent = Literal["reauthorizationRequired", "subscriptionRemoved", "missed"]


class WorkItem(BaseModel):
    """One unit of work for the worker.

    - `calendar`: re-read `user_id`'s calendar and re-plan its status (a change notification).
    - `user`: sync this one M365 user into 3CX now (a `/users` change notification).
    - `boundary`: an event starts or ends at `due`; recompute `user_id`'s status.
    - `lifecycle`: Graph's lifecycle notification `lifecycle_event` for `subscription_id`.
    - `contacts`: re-read the contacts of mailbox `user_id` (an M365 user id, or a shared
      mailbox's address) and reconcile the phonebook it feeds.
    """

    model_config = ConfigDict(extra="forbid")

    kind: WorkKind
    user_id: str | None = Field(None, max_length=128)
    subscription_id: str | None = Field(None, max_length=128)
    lifecycle_event: LifecycleEvent | None = None
    due: datetime | None = None
    change_type: str | None = Field(None, max_length=32)
    received_at: datetime | None = None  # when the webhook accepted it (for latency telemetry)

    def to_message(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_message(cls, text: str) -> WorkItem:
        return cls.model_validate_json(text)

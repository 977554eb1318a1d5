"""The connector's domain records: what it remembers between runs, as plain typed data.

No I/O here: `shared.state` stores and loads these in Table Storage, and the rules and
runs work with them as values.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class KeptValue(BaseModel):
    """A field 3CX stored its own way: it computes it (a display name from first and last
    name) or reformats it (a phone number). Not written again while both stay as they are."""

    wanted: Any  # what Microsoft 365 said, and the connector wrote
    kept: Any  # what 3CX made of it


class Link(BaseModel):
    """One M365 user bound to one 3CX user. Only linked 3CX users are ever changed."""

    m365_id: str
    upn: str
    tcx_user_id: int
    extension: str
    origin: Literal["created", "linked"]  # created by the connector, or an existing user matched by e-mail
    photo_etag: str | None = None
    deprovisioned: Literal["disabled"] | None = None
    kept: dict[str, KeptValue] = Field(default_factory=dict)  # by XAPI field name


class OptionOverrides(BaseModel):
    """A user's deviations from the tenant-wide option defaults (None = use the default)."""

    m365_id: str
    upn: str
    sso: bool | None = None
    office_phone: bool | None = None
    photo: bool | None = None
    personal_contacts: bool | None = None
    calendar: bool | None = None


class HeldAction(BaseModel):
    """One action a guard held back, in a form a later approval can check again."""

    kind: Literal["create", "avatar", "disable", "delete", "forget"]
    m365_id: str
    upn: str
    tcx_user_id: int | None = None  # the 3CX user it changes (None for a creation)
    extension: str | None = None
    reason: str = ""

    @property
    def key(self) -> tuple[str, str, int | None]:
        """What an action must match in a fresh plan to be the same action."""
        return (self.kind, self.m365_id, self.tcx_user_id)

    def describe(self) -> str:
        extension = f" (ext {self.extension})" if self.extension else ""
        return f"{self.kind} {self.upn}{extension}" + (f": {self.reason}" if self.reason else "")


def digest_of_held(actions: list[HeldAction]) -> str:
    """A hash of the held content: an approval names it, so it approves exactly what it saw."""
    canonical = json.dumps([action.model_dump(mode="json") for action in actions], sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


class Resolution(BaseModel):
    """What an administrator decided about a run's held actions."""

    decision: Literal["approved", "dismissed"]
    by: str  # the principal's name (UPN) as signed in, or the CLI's user
    at: datetime
    run_id: str | None = None  # the run that applied the approved actions


class RunRecord(BaseModel):
    """What one run did, for the administrator and for alerts."""

    kind: str
    run_id: str
    started_at: datetime
    trigger: str = ""  # timer, cli, admin, queue, ...
    subject: str | None = None  # the one user, phonebook or subscription a run was about
    ended_at: datetime | None = None
    status: Literal["running", "succeeded", "partial", "failed", "skipped"] = "running"
    dry_run: bool = False
    counts: dict[str, int] = Field(default_factory=dict)
    errors: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)  # what was left out on purpose, with why
    held: list[str] = Field(default_factory=list)  # actions held back (by the deletion guard)
    guard: str | None = None  # why deprovisioning was held back, if it was
    held_actions: list[HeldAction] = Field(default_factory=list)  # `held`, machine-readable
    held_digest: str | None = None  # `digest_of_held(held_actions)`, named by an approval
    resolution: Resolution | None = None  # approved or dismissed, by whom
    approves: str | None = None  # for an approval run: the run whose held actions it applied


class SubscriptionRecord(BaseModel):
    """A Graph subscription the connector made, with the secret that authenticates its notifications."""

    id: str
    kind: Literal["calendar", "users", "contacts"]
    resource: str
    user_id: str | None = None  # the M365 user (or shared mailbox) whose data it watches
    client_state: str = Field(repr=False)  # random per subscription; compared in constant time
    expires_at: datetime


class StatusInterval(BaseModel):
    """A stretch of time in which an event asks for a 3CX status (already mapped, UTC)."""

    start: datetime
    end: datetime
    status: str
    show_as: str
    event_id: str


class StatusChangeEntry(BaseModel):
    """One status the connector wrote for a user, as the console lists it."""

    at: datetime
    action: str  # "set" at an event's start, "restore" after it
    status_from: str | None = None
    status_to: str


class PresenceState(BaseModel):
    """Per-user memory of the calendar-driven status. Updated with optimistic concurrency."""

    m365_id: str
    tcx_user_id: int
    intervals: list[StatusInterval] = Field(default_factory=list)
    refreshed_at: datetime | None = None  # when the calendar was last read
    applied_status: str | None = None  # the status the connector set and believes active
    previous_status: str | None = None  # what the user had before; restored when the event ends
    overridden: bool = False  # the user changed status by hand during the current mapped stretch
    # A status the connector wrote whose answer never came (a 504 after 3CX applied it, say):
    # if 3CX shows it at the next look, it is the connector's own, never the user's "previous".
    pending_status: str | None = None
    refresh_queued_at: datetime | None = None  # a calendar read was queued then, not done yet
    read_failures: int = 0  # calendar reads that failed in a row
    read_again_at: datetime | None = None  # no read before then (backing off, or unreadable)
    unreadable: str | None = None  # why Graph refuses this calendar (e.g. "403 ErrorAccessDenied")
    next_boundary: datetime | None = None  # the boundary a queue message is scheduled for
    recent_changes: list[StatusChangeEntry] = Field(default_factory=list)  # the last ten writes, newest last
    etag: str | None = Field(None, exclude=True)

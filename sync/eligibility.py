"""Who takes part in what: each of these rules is written here once, and everyone asks here.

- *Synced*: an M365 user linked to a 3CX user whose link is not deprovisioned.
- *Calendar*: synced, and the effective calendar option is on — they get a calendar
  subscription and calendar-driven status.
- *Personal contacts*: synced, and the effective personal-contacts option is on — 3CX's own
  Microsoft 365 integration is asked to copy their Outlook contacts to their personal 3CX
  phonebook (`MS365ContactsEnabled`); the connector itself reads no user's contacts.
- *Paused*: SYNC_PAUSED stops timers and queued work from changing 3CX; Graph lifecycle
  upkeep goes on so subscriptions stay alive, and runs started by hand still work.
- *Stale calendar*: one never read, or not read for CALENDAR_REFRESH_MINUTES, is read again
  before its status is decided.

Pure: it works on records already read; `Audience.of` takes the narrow reading port it needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from shared.settings import Settings
from sync.options import UserOptions, effective_options, tenant_defaults
from sync.records import Link, OptionOverrides, PresenceState


class AudienceSource(Protocol):
    """What `Audience.of` reads: the links and the per-user option overrides."""

    def links(self) -> dict[str, Link]: ...

    def option_overrides(self) -> dict[str, OptionOverrides]: ...


@dataclass(frozen=True)
class Audience:
    """The linked users with their effective options, as of one read of state."""

    links: Mapping[str, Link]
    defaults: UserOptions
    overrides: Mapping[str, OptionOverrides]

    @classmethod
    def of(cls, source: AudienceSource, settings: Settings) -> Audience:
        return cls(source.links(), tenant_defaults(settings), source.option_overrides())

    def options(self, m365_id: str) -> UserOptions:
        """The user's effective options: their overrides over the tenant defaults."""
        return effective_options(self.defaults, self.overrides.get(m365_id))

    def effective_options(self) -> dict[str, UserOptions]:
        """Effective options of every user who has overrides (the rest have the defaults)."""
        return {m365_id: self.options(m365_id) for m365_id in self.overrides}

    def synced(self) -> dict[str, Link]:
        """Linked users whose 3CX user the connector keeps in step (not deprovisioned)."""
        return {m365_id: link for m365_id, link in self.links.items() if is_synced(link)}

    def calendar_users(self) -> dict[str, Link]:
        """Synced users with calendar-driven status on: each gets a calendar subscription."""
        return {m365_id: link for m365_id, link in self.synced().items() if self.options(m365_id).calendar}

    def personal_contact_users(self) -> dict[str, Link]:
        """Synced users with the personal-contacts option on (3CX's own sync copies their Outlook contacts)."""
        return {m365_id: link for m365_id, link in self.synced().items() if self.options(m365_id).personal_contacts}

    def has_calendar(self, m365_id: str) -> bool:
        link = self.links.get(m365_id)
        return is_synced(link) and self.options(m365_id).calendar


def personal_contacts_asked_by(defaults: UserOptions, overrides: Iterable[OptionOverrides]) -> list[str]:
    """Who turns the personal-contacts option on: the tenant default, then each per-user override (by UPN).

    Empty when nobody does. Anyone listed needs 3CX's own Microsoft 365 integration connected
    with its personal-contacts sync on: that is what copies their Outlook contacts.
    """
    asked = ["SYNC_PERSONAL_CONTACTS=true (tenant default)"] if defaults.personal_contacts else []
    chosen = sorted((o for o in overrides if o.personal_contacts), key=lambda o: o.upn.lower())
    return asked + [f"{o.upn} (per-user option)" for o in chosen]


def is_synced(link: Link | None) -> bool:
    return link is not None and not link.deprovisioned


def is_paused(settings: Settings) -> bool:
    """SYNC_PAUSED: timers and queued work change nothing in 3CX until it is cleared."""
    return settings.sync_paused


def calendar_is_stale(state: PresenceState | None, at: datetime, refresh_minutes: int) -> bool:
    """Whether the stored calendar is too old to decide a status on at `at`."""
    if state is None or state.refreshed_at is None:
        return True
    return at - state.refreshed_at > timedelta(minutes=refresh_minutes)


# A queued calendar read not done within this is taken as lost, and queued again.
QUEUED_READ_GRACE = timedelta(minutes=15)


def calendar_read_due(state: PresenceState | None, at: datetime, refresh_minutes: int, *, everyone: bool) -> bool:
    """Whether the presence pass should have this calendar read now (`everyone`: the nightly re-read).

    Not while backing off after failed reads or while Graph refuses the calendar (until
    `read_again_at`), and not while a read is already queued (at most one per calendar).
    """
    if state is not None and state.read_again_at is not None and at < state.read_again_at:
        return False
    if not everyone and not calendar_is_stale(state, at, refresh_minutes):
        return False
    return state is None or state.refresh_queued_at is None or at - state.refresh_queued_at >= QUEUED_READ_GRACE

"""The user sync: Microsoft 365 users become 3CX extensions.

`plan_users` is a pure function from (Graph users, 3CX users, links, options, photos) to a
typed plan; every business rule of the user sync lives in it and is tested as data in,
data out. `sync.user_run` reads the inputs, calls it, and applies the plan.

The rules, in the order `plan_users` applies them:
- A Graph user takes part when it is an enabled member account with a working Exchange
  mailbox and falls in USER_SYNC_SCOPE. The mailbox works while one of the user's Exchange
  plans (assignedPlans) is `Enabled` or `Warning` — a lapsed licence in its grace period
  still serves mail. `Suspended`, `LockedOut` and `Deleted` do not: such a user leaves, and
  the reason names the licence state ("no Exchange mailbox (Exchange licence Suspended)").
- It is matched to a 3CX user through its stored link; else an unlinked 3CX user whose
  e-mail equals the UPN or mail (case ignored) is linked; else a 3CX user is created with
  the lowest free number at or above EXTENSION_START (or 3CX's first free number).
- Extension numbers never change. A linked user deleted in 3CX is created again, with the
  same number if no one took it.
- Only fields that differ are written.
- With the photo option, the avatar follows the profile photo when its etag changed. A photo
  whose metadata Graph would not give this run (its `$batch` item failed) leaves the avatar
  and the remembered etag as they are, so the next run tries again; the user is synced
  otherwise, and the skip is in the plan with Graph's answer.
- A linked user who no longer takes part is deprovisioned per DEPROVISION; a 3CX user the
  connector neither created nor linked is never touched. DEPROVISION=delete deletes only
  3CX users the connector created (`Link.origin == "created"`); one that existed before and
  was linked by e-mail is disabled instead, never deleted, and the reason says so. The
  guard counts either removal alike.
- If more users would be disabled or deleted than the guard allows — counting those already
  removed in the last 24 hours, so one-at-a-time removals through notifications add up —
  none are, and the plan says why; the rest of the plan still applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from shared.graph_models import GraphUser, PhotoInfo, PhotoUnreadable
from shared.settings import DeprovisionPolicy, SyncScope
from shared.threecx_models import TcxUser
from sync.options import UserOptions
from sync.phone_numbers import normalize_phone
from sync.records import KeptValue, Link

# -- the plan's vocabulary ----------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    old: Any
    new: Any


@dataclass(frozen=True)
class UserAction:
    """Base of every planned change; `kind` names it in output and logs."""

    kind: ClassVar[str] = "action"
    m365_id: str
    upn: str


@dataclass(frozen=True)
class CreateUser(UserAction):
    kind: ClassVar[str] = "create"
    extension: str | None  # None: 3CX hands out its first free number
    fields: Mapping[str, Any]
    recreate: bool = False  # the linked 3CX user was deleted in 3CX


@dataclass(frozen=True)
class LinkUser(UserAction):
    kind: ClassVar[str] = "link"
    tcx_user_id: int
    extension: str
    changes: Mapping[str, FieldChange]


@dataclass(frozen=True)
class UpdateUser(UserAction):
    kind: ClassVar[str] = "update"
    tcx_user_id: int
    extension: str
    changes: Mapping[str, FieldChange]


@dataclass(frozen=True)
class SetAvatar(UserAction):
    kind: ClassVar[str] = "avatar"
    photo_etag: str | None  # None: the photo was removed in M365, clear the avatar


@dataclass(frozen=True)
class DisableUser(UserAction):
    kind: ClassVar[str] = "disable"
    tcx_user_id: int
    extension: str
    reason: str


@dataclass(frozen=True)
class DeleteUser(UserAction):
    kind: ClassVar[str] = "delete"
    tcx_user_id: int
    extension: str
    reason: str


@dataclass(frozen=True)
class ForgetLink(UserAction):
    """The user is gone on both sides: only the stored link is dropped."""

    kind: ClassVar[str] = "forget"
    extension: str
    reason: str


@dataclass(frozen=True)
class Skip:
    upn: str
    reason: str


@dataclass(frozen=True)
class GuardHold:
    """Deprovisioning held back by the accidental-deletion guard."""

    would_remove: int
    synced: int
    limit: str
    held: tuple[UserAction, ...]
    recent: int = 0  # already disabled or deleted in the guard's window before this run

    def describe(self) -> str:
        earlier = f" (after {self.recent} in the last 24 hours)" if self.recent else ""
        return (
            f"deletion guard: {self.would_remove} of {self.synced} synced users would be disabled or deleted"
            f"{earlier}, more than {self.limit}; none were. Check the tenant, then run"
            " `python -m sync users --allow-deprovision` to apply them."
        )


@dataclass(frozen=True)
class CreationHold:
    """Creation of many 3CX users held back by the same guard.

    Hires arrive a few at a time; dozens of creations at once mean a 3CX listing that came back
    short (each linked user it missed looks deleted and would be created again, next to its
    orphaned original) or a tenant-side change worth a second look (a widened scope).
    """

    would_create: int
    recreated: int  # of them, linked users the listing did not show
    known: int  # users the connector links
    limit: str
    held: tuple[UserAction, ...]

    def describe(self) -> str:
        again = f" ({self.recreated} of them linked users 3CX no longer lists)" if self.recreated else ""
        return (
            f"creation guard: {self.would_create} 3CX users would be created{again} beside the {self.known}"
            f" the connector links, more than {self.limit}; none were. Check that 3CX lists every user and"
            " that the tenant change is intended, then run `python -m sync users --allow-mass-create` to apply them."
        )


@dataclass
class UserPlan:
    actions: list[UserAction] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[Skip] = field(default_factory=list)
    guard: GuardHold | None = None
    creation_guard: CreationHold | None = None
    notices: list[str] = field(default_factory=list)  # said once per run: what the administrator should know
    refusal: str | None = None  # why this plan must not be applied at all

    def of_kind(self, kind: str) -> list[UserAction]:
        return [action for action in self.actions if action.kind == kind]


@dataclass(frozen=True)
class ScopeRule:
    """USER_SYNC_SCOPE with its lists resolved (group members as user ids)."""

    kind: SyncScope = SyncScope.ALL
    upns: frozenset[str] = frozenset()
    group_member_ids: frozenset[str] = frozenset()

    def admits(self, user: GraphUser) -> bool:
        names = {name.lower() for name in (user.user_principal_name, user.mail) if name}
        if self.kind is SyncScope.ALL:
            return True
        if self.kind is SyncScope.ALL_EXCEPT:
            return not names & self.upns
        if self.kind is SyncScope.SELECTED_USERS:
            return bool(names & self.upns)
        return user.id in self.group_member_ids


@dataclass(frozen=True)
class DeprovisionGuard:
    max_count: int | None = 25
    max_percent: float | None = 20.0

    def exceeded(self, would_remove: int, synced: int) -> str | None:
        """The limit crossed, in words, or None."""
        return self.over_count(would_remove) or self.over_share(would_remove, synced)

    def over_count(self, count: int) -> str | None:
        if self.max_count is not None and count > self.max_count:
            return f"the limit of {self.max_count} users (DEPROVISION_MAX_COUNT)"
        return None

    def over_share(self, count: int, synced: int) -> str | None:
        if self.max_percent is not None and synced and count * 100 / synced > self.max_percent:
            return f"the limit of {self.max_percent:g}% of synced users (DEPROVISION_MAX_PERCENT)"
        return None


@dataclass(frozen=True)
class UserSyncConfig:
    scope: ScopeRule = ScopeRule()
    extension_start: int | None = None
    deprovision: DeprovisionPolicy = DeprovisionPolicy.DISABLE
    guard: DeprovisionGuard = DeprovisionGuard()
    allow_deprovision: bool = False  # the administrator approved what the guard holds back
    allow_mass_create: bool = False  # ... and the creations it holds back
    # Disables/deletes already applied in the last 24 hours. They count against the guard too,
    # so leavers arriving one notification at a time cannot add up to a mass deletion.
    recent_removals: int = 0


# -- field mapping ----------------------------------------------------------------------


def display_names(user: GraphUser) -> tuple[str, str, str]:
    """First, last and display name, filling gaps from each other (directories are messy)."""
    first = (user.given_name or "").strip()
    last = (user.surname or "").strip()
    display = (user.display_name or "").strip()
    if not first and not last:
        assert user.user_principal_name is not None  # see _upn
        first = display or user.user_principal_name.split("@", 1)[0]
    if not display:
        display = f"{first} {last}".strip()
    return first, last, display


def desired_fields(user: GraphUser, options: UserOptions) -> dict[str, Any]:
    """The 3CX user fields (XAPI names) that this M365 user should have."""
    first, last, display = display_names(user)
    fields: dict[str, Any] = {
        "FirstName": first,
        "LastName": last,
        "DisplayName": display,
        "EmailAddress": user.mail or user.user_principal_name,
        "Mobile": normalize_phone(user.mobile_phone),
        "MS365SignInEnabled": options.sso,
        # Personal contacts reach the user's 3CX phonebook through 3CX's own Microsoft 365 sync.
        "MS365ContactsEnabled": options.personal_contacts,
        # A synced user is enabled: this re-enables a returning user the connector disabled.
        "Enabled": True,
    }
    if options.calendar:
        # 3CX's own calendar sync would write the status the connector drives: keep it off.
        fields["MS365CalendarEnabled"] = False
    if options.office_phone:
        phones = [phone for phone in user.business_phones if phone]
        fields["OutboundCallerID"] = normalize_phone(phones[0]) if phones else ""
    return fields


def same_value(name: str, wanted: Any, have: Any) -> bool:
    """Whether 3CX holds `wanted` in field `name`: a missing string equals '', e-mail ignores case."""
    if isinstance(wanted, str):
        return (have or "").casefold() == wanted.casefold() if name == "EmailAddress" else (have or "") == wanted
    return bool(have == wanted)


def field_changes(
    desired: Mapping[str, Any], current: TcxUser, kept: Mapping[str, KeptValue] | None = None
) -> dict[str, FieldChange]:
    """The fields whose value differs, except where 3CX keeps a value its own way (`kept`):
    such a field is left alone while Microsoft 365 still says what was written and 3CX still
    holds what it made of it."""
    actual = current.model_dump(by_alias=True)
    kept = kept or {}
    changes: dict[str, FieldChange] = {}
    for name, wanted in desired.items():
        have = actual.get(name)
        if same_value(name, wanted, have):
            continue
        known = kept.get(name)
        if known is not None and same_value(name, wanted, known.wanted) and same_value(name, known.kept, have):
            continue
        changes[name] = FieldChange(have, wanted)
    return changes


# -- scope and membership -------------------------------------------------------------------


def exclusion_reason(user: GraphUser, scope: ScopeRule) -> str | None:
    """Why this M365 user does not take part, or None if it does."""
    if user.is_removed:
        return "deleted in Microsoft 365"
    if user.account_enabled is False:
        return "disabled in Microsoft 365"
    if (user.user_type or "Member") != "Member":
        return "not a member account"
    if not user.has_exchange_mailbox():
        return _no_mailbox_reason(user)
    if not scope.admits(user):
        return "out of USER_SYNC_SCOPE"
    return None


def _no_mailbox_reason(user: GraphUser) -> str:
    """ "no Exchange mailbox", naming the state of the Exchange licence when it lapsed.

    Each state that no longer serves the mailbox is named once, in Graph's order; a working
    plan is not named (such a user lacks an address, not a licence).
    """
    lapsed = dict.fromkeys(
        plan.capability_status or "without a status" for plan in user.exchange_plans if not plan.is_working
    )
    return f"no Exchange mailbox (Exchange licence {', '.join(lapsed)})" if lapsed else "no Exchange mailbox"


class _NumberAllocator:
    """Hands out the lowest free extension number at or above a start."""

    def __init__(self, start: int, taken: Iterable[str]) -> None:
        self._next = start
        self._taken = {int(number) for number in taken if number.isdigit()}

    def take(self) -> str:
        while self._next in self._taken:
            self._next += 1
        number = self._next
        self._taken.add(number)
        return str(number)


# -- the plan ---------------------------------------------------------------------------------

_PHOTO_UNREAD = "avatar left as it is, tried again next run: its photo could not be read"
_NOT_CREATED = "disabled, not deleted: this 3CX user existed before the connector linked it"


def plan_users(
    source: Iterable[GraphUser],
    target: Iterable[TcxUser],
    links: Mapping[str, Link],
    options: Mapping[str, UserOptions],
    default_options: UserOptions,
    config: UserSyncConfig,
    photos: Mapping[str, PhotoInfo | PhotoUnreadable] | None = None,
    only: frozenset[str] | None = None,
) -> UserPlan:
    """Compute every change that brings 3CX in line with Microsoft 365.

    `source` holds every Graph user known (removed ones included, so their links can be
    deprovisioned); `only`, if given, limits the plan to those M365 ids (provision on demand).
    """
    photos = photos or {}
    plan = UserPlan()
    tcx_by_id = {user.id: user for user in target}
    linked_tcx_ids = {link.tcx_user_id for link in links.values()}
    tcx_by_email: dict[str, TcxUser] = {}
    linked_emails: dict[str, TcxUser] = {}
    for tcx_user in tcx_by_id.values():
        if tcx_user.email_address:
            index = linked_emails if tcx_user.id in linked_tcx_ids else tcx_by_email
            index.setdefault(tcx_user.email_address.casefold(), tcx_user)
    numbers_in_use = {user.number for user in tcx_by_id.values()}
    # Numbers of links whose 3CX user vanished stay reserved for their recreation.
    reserved = numbers_in_use | {link.extension for link in links.values()}
    allocator = _NumberAllocator(config.extension_start, reserved) if config.extension_start is not None else None

    participating: dict[str, GraphUser] = {}
    reasons: dict[str, str] = {}
    for user in source:
        if only is not None and user.id not in only:
            continue
        reason = exclusion_reason(user, config.scope)
        if reason is None:
            participating[user.id] = user
        else:
            reasons[user.id] = reason

    # Unlinked 3CX users matched in this run: each goes to one M365 user. (A linked 3CX user is
    # never a candidate: `tcx_by_email` holds unlinked ones only.)
    claimed: set[int] = set()
    for user in sorted(participating.values(), key=lambda u: _upn(u).lower()):
        user_options = options.get(user.id, default_options)
        desired = desired_fields(user, user_options)
        link = links.get(user.id)
        photo_link = link  # what the avatar is compared with: nothing for a 3CX user new to the link
        upn = _upn(user)
        if link is not None and link.tcx_user_id in tcx_by_id:
            current = tcx_by_id[link.tcx_user_id]
            changes = field_changes(desired, current, link.kept)
            if changes:
                plan.actions.append(UpdateUser(user.id, upn, current.id, current.number, changes))
            else:
                plan.unchanged += 1
        elif link is not None:
            photo_link = None
            match = _match_by_email(user, tcx_by_email, claimed)
            if match is not None:
                # An unlinked 3CX user with its address: made by a re-create whose answer was lost,
                # or again by hand. Linked, never a second extension beside it.
                claimed.add(match.id)
                plan.actions.append(LinkUser(user.id, upn, match.id, match.number, field_changes(desired, match)))
            else:
                number = link.extension if link.extension not in numbers_in_use else _allocate(allocator)
                plan.actions.append(CreateUser(user.id, upn, number, desired, recreate=True))
        else:
            match = _match_by_email(user, tcx_by_email, claimed)
            holder = linked_emails.get(str(desired["EmailAddress"]).casefold())
            if match is not None:
                claimed.add(match.id)
                plan.actions.append(LinkUser(user.id, upn, match.id, match.number, field_changes(desired, match)))
            elif holder is not None:
                # Another M365 user's extension already carries this address: a second 3CX user
                # with it would make sign-in and matching ambiguous. Say so instead.
                reason = f"e-mail {desired['EmailAddress']} is already used by extension {holder.number}"
                plan.skipped.append(Skip(upn, reason))
                continue
            else:
                plan.actions.append(CreateUser(user.id, upn, _allocate(allocator), desired))
        if user_options.photo:
            photo = photos.get(user.id)
            if isinstance(photo, PhotoUnreadable):
                plan.skipped.append(Skip(upn, f"{_PHOTO_UNREAD} ({photo.reason})"))
            else:
                avatar = _avatar_action(user, photo_link, photo)
                if avatar is not None:
                    plan.actions.append(avatar)

    _plan_deprovisioning(plan, links, tcx_by_id, participating, reasons, config, only)
    _hold_mass_creation(plan, links, config, only)
    return plan


def _upn(user: GraphUser) -> str:
    """The UPN of a user who takes part.

    GraphUser leaves it optional for delta tombstones, which never take part; Graph gives every
    other user one (it is in USER_SELECT). A participating user without one breaks the plan here,
    as the `.lower()` of the sort key always did.
    """
    upn = user.user_principal_name
    assert upn is not None
    return upn


def _allocate(allocator: _NumberAllocator | None) -> str | None:
    return allocator.take() if allocator is not None else None


def _match_by_email(user: GraphUser, by_email: Mapping[str, TcxUser], claimed: set[int]) -> TcxUser | None:
    for address in (user.user_principal_name, user.mail):
        if address:
            candidate = by_email.get(address.casefold())
            if candidate is not None and candidate.id not in claimed:
                return candidate
    return None


def _avatar_action(user: GraphUser, link: Link | None, photo: PhotoInfo | None) -> SetAvatar | None:
    if photo is None:
        return None  # photo metadata not read this run: no opinion
    known = link.photo_etag if link is not None else None
    if photo.etag == known:
        return None
    return SetAvatar(user.id, _upn(user), photo.etag)


def _hold_mass_creation(
    plan: UserPlan, links: Mapping[str, Link], config: UserSyncConfig, only: frozenset[str] | None
) -> None:
    """Hold every creation (and its avatar) when more are planned than the guard's limits allow.

    The count limit is of all creations; the share limit is of re-creations (linked users 3CX
    no longer has) among the users the connector links: those are what a short listing or a
    purge in 3CX produces, while new users in a small company are soon a large share of it.
    The share is of the links, not of the users the listing showed, so a listing that lost
    everyone trips it too. Not held: the first sync (nothing linked yet) creates everyone by
    nature; one creation is never mass creation; a run for named users creates just those.
    """
    if only is not None or not links or config.allow_mass_create:
        return
    creates = [action for action in plan.actions if isinstance(action, CreateUser)]
    recreated = sum(1 for action in creates if action.recreate)
    limit = config.guard.over_count(len(creates)) or config.guard.over_share(recreated, len(links))
    if limit is None or len(creates) == 1:
        return
    creating = {action.m365_id for action in creates}
    held = [action for action in plan.actions if action.m365_id in creating]
    plan.actions = [action for action in plan.actions if action.m365_id not in creating]
    plan.creation_guard = CreationHold(len(creates), recreated, len(links), limit, tuple(held))


def _plan_deprovisioning(
    plan: UserPlan,
    links: Mapping[str, Link],
    tcx_by_id: Mapping[int, TcxUser],
    participating: Mapping[str, GraphUser],
    reasons: Mapping[str, str],
    config: UserSyncConfig,
    only: frozenset[str] | None,
) -> None:
    removals: list[UserAction] = []
    synced = 0
    for m365_id, link in sorted(links.items(), key=lambda item: item[1].upn.lower()):
        present = link.tcx_user_id in tcx_by_id
        enabled = present and tcx_by_id[link.tcx_user_id].enabled is not False
        # A run for named users reads only their 3CX users; the guard's share is still of every
        # synced user, as the links remember them.
        if enabled if only is None else link.deprovisioned is None:
            synced += 1
        if m365_id in participating or (only is not None and m365_id not in only):
            continue
        reason = reasons.get(m365_id, "no longer in Microsoft 365")
        if not present:
            plan.actions.append(ForgetLink(m365_id, link.upn, link.extension, reason))
        elif config.deprovision is DeprovisionPolicy.DELETE and link.origin == "created":
            removals.append(DeleteUser(m365_id, link.upn, link.tcx_user_id, link.extension, reason))
        elif config.deprovision is DeprovisionPolicy.DELETE and enabled:
            # Linked by e-mail: the 3CX user was there before the connector, so it is not the
            # connector's to delete.
            reason += f" ({_NOT_CREATED})"
            removals.append(DisableUser(m365_id, link.upn, link.tcx_user_id, link.extension, reason))
        elif config.deprovision is DeprovisionPolicy.DISABLE and enabled:
            removals.append(DisableUser(m365_id, link.upn, link.tcx_user_id, link.extension, reason))
    if not removals:
        return
    limit = config.guard.exceeded(len(removals) + config.recent_removals, synced + config.recent_removals)
    if limit is not None and not config.allow_deprovision:
        plan.guard = GuardHold(len(removals), synced, limit, tuple(removals), config.recent_removals)
        return
    plan.actions.extend(removals)

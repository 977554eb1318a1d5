"""One user-sync run: read both sides, plan, apply, record.

The rules live in `sync.users`; this module only gathers their inputs (the Graph user
mirror kept current by delta queries, scope, links, options, photo metadata, the 3CX user
list), applies the resulting plan action by action, and leaves a run record and one
summary line. One failing user never stops the others; 3CX becoming unreachable does
stop the run, since every further write would fail the same way.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.errors import UpstreamUnavailable, one_line
from shared.graph_models import GraphUser, PhotoImage, PhotoInfo, PhotoUnreadable
from shared.settings import SyncScope
from shared.state import utcnow
from shared.telemetry import count_action, log_event
from shared.threecx import TcxApiError, TcxUnavailable
from shared.threecx_models import USER_FIELDS, Microsoft365Integration, TcxUser
from sync.eligibility import Audience
from sync.envelope import RunReport, run_envelope
from sync.options import UserOptions, tenant_defaults
from sync.own_sync import personal_contacts_notice, user_sync_refusal
from sync.records import HeldAction, KeptValue, Link
from sync.runtime import Runtime
from sync.users import (
    CreateUser,
    DeleteUser,
    DeprovisionGuard,
    DisableUser,
    FieldChange,
    ForgetLink,
    LinkUser,
    ScopeRule,
    SetAvatar,
    Skip,
    UpdateUser,
    UserAction,
    UserPlan,
    UserSyncConfig,
    exclusion_reason,
    plan_users,
    same_value,
)

USERS_DELTA = "users"
LOCK_NAME = "user-sync"
_TCX_SELECT = ("Id", "Number", *USER_FIELDS)
_APPLY_ORDER = ("link", "update", "create", "avatar", "disable", "delete", "forget")
_NUMBER_RETRIES = 20
# Linked users a listing may miss before it is distrusted (each is confirmed with a direct read).
MAX_UNLISTED = 200
GUARD_WINDOW = timedelta(hours=24)
# The most bytes an avatar may have. Photos are fetched at 96x96 (a few KB); only an original
# smaller than that comes as it is, and one this large would be a data URI 3CX stores per user.
AVATAR_MAX_BYTES = 64 * 1024

Progress = Callable[[int, int], None]


class RunAborted(UpstreamUnavailable):
    """The run could not go on (3CX unreachable); the message is one line for the admin."""


class AvatarUnfit(Exception):
    """The photo is not written as an avatar (too large, not an image); the message says why."""


class UserNotFound(Exception):
    """`--only` named a UPN that neither Graph nor the links know."""


@dataclass
class ActionOutcome:
    action: UserAction
    ok: bool
    error: str | None = None
    duration_ms: int = 0


@dataclass
class UserSyncResult:
    run_id: str
    plan: UserPlan
    dry_run: bool
    outcomes: list[ActionOutcome] = field(default_factory=list)
    aborted: str | None = None
    refused: str | None = None  # nothing applied on purpose (3CX's own user sync is on)

    @property
    def counts(self) -> dict[str, int]:
        done = [o.action.kind for o in self.outcomes if o.ok]
        if self.dry_run:
            done = [action.kind for action in self.plan.actions]
        return {
            "created": done.count("create"),
            "updated": done.count("update"),
            "linked": done.count("link"),
            "deprovisioned": done.count("disable") + done.count("delete"),
            "unchanged": self.plan.unchanged,
            "failed": sum(1 for o in self.outcomes if not o.ok),
            "skipped": len(self.plan.skipped),
            "held_by_guard": self.plan.guard.would_remove if self.plan.guard else 0,
            "held_creations": self.plan.creation_guard.would_create if self.plan.creation_guard else 0,
            "avatars": done.count("avatar"),
        }

    @property
    def status(self) -> str:
        if self.aborted or self.refused:
            return "failed"
        if any(not o.ok for o in self.outcomes) or self.plan.guard or self.plan.creation_guard:
            return "partial"
        return "succeeded"


def sync_config(
    rt: Runtime,
    allow_deprovision: bool = False,
    group_members: frozenset[str] = frozenset(),
    allow_mass_create: bool = False,
) -> UserSyncConfig:
    settings = rt.settings
    recent = rt.state.deprovisions_since(utcnow() - GUARD_WINDOW)
    return UserSyncConfig(
        recent_removals=recent,
        scope=ScopeRule(settings.user_sync_scope, frozenset(settings.user_sync_users), group_members),
        extension_start=settings.extension_start,
        deprovision=settings.deprovision,
        guard=DeprovisionGuard(settings.deprovision_max_count, settings.deprovision_max_percent),
        allow_deprovision=allow_deprovision,
        allow_mass_create=allow_mass_create,
    )


def run_user_sync(
    rt: Runtime,
    *,
    dry_run: bool = False,
    only_upn: str | None = None,
    allow_deprovision: bool = False,
    allow_mass_create: bool = False,
    full: bool = False,
    progress: Progress | None = None,
    only_user_id: str | None = None,
    trigger: str = "cli",
    approval: Approval | None = None,
) -> UserSyncResult:
    """Run one user sync (the nightly timer, `python -m sync users`, the admin route).

    `only_upn` / `only_user_id` limit it to one user (provision on demand, and the path a
    `/users` change notification takes). A dry run writes nothing, not even a run record.
    `allow_deprovision` and `allow_mass_create` release what the guard would hold back (after
    the administrator read the plan). `approval` applies exactly the actions a guard held in an
    earlier run, each still in a fresh plan, and nothing else (see `restrict_to_approved`).
    """
    if approval is not None:
        allow_deprovision = allow_mass_create = True
        only_upn = only_user_id = None
    approvals = Approvals(allow_deprovision, allow_mass_create)
    rt.settings.require_user_sync()
    only_upn = only_upn or only_user_id
    # The one user, before anything is locked or recorded: someone neither Graph nor the links
    # know (a deleted guest, a typo) is UserNotFound, not a failed run. Graph out of reach is a
    # failed run, recorded like any other.
    try:
        one = _source_for_one(rt, only_upn) if only_upn else None
    except UpstreamUnavailable as error:
        if dry_run:
            raise
        return _unreadable_one(rt, trigger, only_upn, error)
    if dry_run:
        run_id = uuid.uuid4().hex[:12]
        plan = _plan(rt, run_id, dry_run=True, one=one, approvals=approvals, full=full)
        return UserSyncResult(run_id, plan, dry_run=True)
    with run_envelope(rt.state, "users", trigger=trigger, lock=LOCK_NAME, subject=only_upn) as run:
        result = UserSyncResult(run.run_id, UserPlan(), dry_run=False)
        try:
            result.plan = _plan(rt, run.run_id, dry_run=False, one=one, approvals=approvals, full=full)
            if approval is not None:
                restrict_to_approved(result.plan, approval)
            result.refused = result.plan.refusal
            if result.refused is None:
                _apply(rt, result, progress)
        except RunAborted as error:
            result.aborted = str(error)
        finally:
            run.report = _report(result)
            if approval is not None:
                run.report.approves = approval.run_id
                run.report.notices.insert(0, f"approved by {approval.by}: the held actions of run {approval.run_id}")
        return result


def _unreadable_one(rt: Runtime, trigger: str, subject: str | None, error: UpstreamUnavailable) -> UserSyncResult:
    """A one-user run whose user Graph would not give: recorded as failed, nothing read or changed."""
    with run_envelope(rt.state, "users", trigger=trigger, lock=LOCK_NAME, subject=subject) as run:
        result = UserSyncResult(run.run_id, UserPlan(), dry_run=False, aborted=one_line(error))
        run.report = _report(result)
    return result


@dataclass(frozen=True)
class Approval:
    """An administrator's approval of what a guard held back in one run."""

    run_id: str
    actions: tuple[HeldAction, ...]
    by: str


def action_key(action: UserAction) -> tuple[str, str, int | None]:
    """What identifies an action across plans (`HeldAction.key`)."""
    tcx_user_id = getattr(action, "tcx_user_id", None)
    return (action.kind, action.m365_id, tcx_user_id if isinstance(tcx_user_id, int) else None)


def restrict_to_approved(plan: UserPlan, approval: Approval) -> None:
    """Keep only the approved actions a fresh plan still has; each one it no longer has is a skip.

    The fresh plan was made with both guards released, so it holds every held kind of action the
    tenant calls for now; an approved action missing from it is no longer valid (the user came
    back, the 3CX user is gone, the policy changed) and is not applied.
    """
    wanted = {action.key: action for action in approval.actions}
    plan.actions = [action for action in plan.actions if action_key(action) in wanted]
    planned = {action_key(action) for action in plan.actions}
    for key, held in wanted.items():
        if key not in planned:
            plan.skipped.append(Skip(held.upn, f"approved {held.kind} no longer valid, not applied"))
    plan.unchanged = 0
    plan.guard = None
    plan.creation_guard = None


def held_action(action: UserAction) -> HeldAction:
    """The machine-readable record of a held action."""
    kind, m365_id, tcx_user_id = action_key(action)
    extension = getattr(action, "extension", None)
    return HeldAction.model_validate(
        {
            "kind": kind,
            "m365_id": m365_id,
            "upn": action.upn,
            "tcx_user_id": tcx_user_id,
            "extension": extension if isinstance(extension, str) else None,
            "reason": str(getattr(action, "reason", "")),
        }
    )


def _report(result: UserSyncResult) -> RunReport:
    """The run's own account of itself, for the envelope's record and summary line."""
    guard, creation = result.plan.guard, result.plan.creation_guard
    if guard is not None:
        log_event(
            "ALERT deletion_guard",
            logging.ERROR,
            run=result.run_id,
            kind="users",
            would_remove=guard.would_remove,
            synced=guard.synced,
            limit=guard.limit,
        )
    if creation is not None:
        log_event(
            "ALERT creation_guard",
            logging.ERROR,
            run=result.run_id,
            kind="users",
            would_create=creation.would_create,
            recreated=creation.recreated,
            synced=creation.known,
            limit=creation.limit,
        )
    held = [*(guard.held if guard else ()), *(creation.held if creation else ())]
    reasons = [hold.describe() for hold in (guard, creation) if hold is not None]
    return RunReport(
        counts=result.counts,
        failures=[f"{o.action.upn}: {o.error}" for o in result.outcomes if not o.ok],
        skipped=[f"{skip.upn}: {skip.reason}" for skip in result.plan.skipped],
        held=[_describe_held(action) for action in held],
        held_actions=[held_action(action) for action in held],
        guard=" ".join(reasons) or None,
        aborted=result.aborted or result.refused,
        notices=[notice for notice in result.plan.notices if notice != result.refused],
    )


def _describe_held(action: UserAction) -> str:
    extension = getattr(action, "extension", None)
    reason = getattr(action, "reason", "")
    return (
        f"{action.kind} {action.upn}" + (f" (ext {extension})" if extension else "") + (f": {reason}" if reason else "")
    )


# -- reading the inputs ------------------------------------------------------------------------


def refresh_source(rt: Runtime, *, dry_run: bool, full: bool = False) -> list[GraphUser]:
    """Bring the Graph user mirror up to date with one delta round and return every user.

    Removed users stay in the returned list (marked removed) so their links are
    deprovisioned with the right reason; they leave the stored mirror.
    """
    link = None if full else rt.state.delta_link(USERS_DELTA)
    result = rt.graph.users_delta(link)
    stored = rt.state.mirror()
    mirror = {} if result.full else dict(stored)
    upserts: dict[str, dict[str, Any]] = {}
    removed: dict[str, GraphUser] = {}
    for user in result.users:
        if user.is_removed:
            mirror.pop(user.id, None)
            removed[user.id] = user
        else:
            raw = user.model_dump(by_alias=True, exclude_none=True)
            mirror[user.id] = raw
            upserts[user.id] = raw
    deletes = [user_id for user_id in stored if user_id not in mirror]
    if not dry_run:
        rt.state.update_mirror(upserts.values(), deletes)
        rt.state.save_delta_link(USERS_DELTA, result.delta_link)
    users = [GraphUser.model_validate(raw) for raw in mirror.values()]
    return users + list(removed.values())


def _source_for_one(rt: Runtime, upn: str) -> list[GraphUser]:
    """The one user of a provision-on-demand run; `upn` may also be the M365 object id."""
    user = rt.graph.get_user(upn)
    if user is not None:
        return [user]
    for link in rt.state.links().values():
        if upn.lower() in (link.upn.lower(), link.m365_id.lower()):
            return [
                GraphUser.model_validate(
                    {"id": link.m365_id, "userPrincipalName": link.upn, "@removed": {"reason": "deleted"}}
                )
            ]
    raise UserNotFound(f"{upn} is neither a Microsoft 365 user nor linked to a 3CX user")


@dataclass(frozen=True)
class Approvals:
    """What the administrator released beyond the guard for this run."""

    deprovision: bool = False
    mass_create: bool = False


def _plan(
    rt: Runtime, run_id: str, *, dry_run: bool, one: list[GraphUser] | None, approvals: Approvals, full: bool
) -> UserPlan:
    """The plan for everyone (from the delta mirror), or for `one` user (provision on demand)."""
    settings = rt.settings
    source = one if one is not None else refresh_source(rt, dry_run=dry_run, full=full)
    group_members: frozenset[str] = frozenset()
    if settings.user_sync_scope is SyncScope.SELECTED_GROUPS:
        members: set[str] = set()
        for group_id in settings.user_sync_groups:
            members |= rt.graph.group_member_user_ids(group_id)
        group_members = frozenset(members)
    config = sync_config(rt, approvals.deprovision, group_members, approvals.mass_create)
    links = rt.state.links()
    target = _list_tcx_users(rt, links) if one is None else _tcx_users_of(rt, one, links)
    audience = Audience(links, tenant_defaults(settings), rt.state.option_overrides())  # links read once
    defaults, options = audience.defaults, audience.effective_options()
    photos = _photo_infos(rt, source, config, options, defaults)
    only = frozenset(user.id for user in source) if one is not None else None
    plan = plan_users(source, target, links, options, defaults, config, photos, only)
    if one is not None and plan.of_kind("create"):
        # A creation needs the numbers in use (its own one, or the lowest free): read those, then plan again.
        target = _with_numbers_in_use(rt, target)
        plan = plan_users(source, target, links, options, defaults, config, photos, only)
    own_sync = _own_sync(rt)
    plan.refusal = user_sync_refusal(own_sync)
    asking = sum(
        1
        for user in source
        if exclusion_reason(user, config.scope) is None and options.get(user.id, defaults).personal_contacts
    )
    notices = [plan.refusal, personal_contacts_notice(own_sync, asking)]
    plan.notices = [notice for notice in notices if notice is not None]
    log_event("plan", run=run_id, kind="users", dry_run=dry_run, **_plan_counts(plan))
    return plan


def _list_tcx_users(rt: Runtime, links: Mapping[str, Link]) -> list[TcxUser]:
    """Every 3CX user, with each linked user the listing missed confirmed by a direct read.

    3CX pages `/Users` with `$skip`: a user deleted by someone else mid-listing shifts another
    one out of the pages. A linked user is planned for re-creation only once a direct read
    says it is gone; a listing missing more than MAX_UNLISTED linked users is not trusted at all.
    """
    try:
        listed = rt.tcx.list_users(select=_TCX_SELECT)
        present = {user.id for user in listed}
        missing = [link for link in links.values() if link.tcx_user_id not in present]
        if len(missing) > MAX_UNLISTED:
            raise RunAborted(
                f"3CX listed {len(listed)} users but {len(missing)} linked users were not among them; the listing"
                " looks incomplete, so nothing was changed (check the PBX, then run again)"
            )
        for link in missing:
            user = rt.tcx.get_user(link.tcx_user_id, select=USER_FIELDS)
            if user is not None:
                log_event("tcx_user_confirmed", kind="users", upn=link.upn, extension=user.number)
                listed.append(user)
    except TcxUnavailable as error:
        raise RunAborted(one_line(error)) from error
    return listed


def _own_sync(rt: Runtime) -> Microsoft365Integration | None:
    """3CX's own Microsoft 365 integration; None (said in the log) when 3CX will not show it."""
    try:
        return rt.tcx.microsoft365_integration()
    except TcxUnavailable as error:
        raise RunAborted(one_line(error)) from error
    except TcxApiError as error:
        log_event("own_sync_unreadable", logging.WARNING, kind="users", error=one_line(error))
        return None


def _tcx_users_of(rt: Runtime, source: list[GraphUser], links: Mapping[str, Link]) -> list[TcxUser]:
    """The 3CX users a run for these users needs, read one by one instead of listing every user.

    A linked user's 3CX user is read directly (gone: it is created again); an unlinked user's
    addresses are looked up, so an existing 3CX user with its e-mail is linked, not duplicated,
    and one that already belongs to someone else is seen.
    """
    found: dict[int, TcxUser] = {}
    try:
        for user in source:
            link = links.get(user.id)
            if link is not None:
                tcx_user = rt.tcx.get_user(link.tcx_user_id, select=USER_FIELDS)
                if tcx_user is not None:
                    found[tcx_user.id] = tcx_user
                    continue
            # Unlinked, or its 3CX user is gone: a 3CX user with its address is linked, not duplicated.
            for address in dict.fromkeys(name.casefold() for name in (user.user_principal_name, user.mail) if name):
                for tcx_user in rt.tcx.find_users_by_email(address, select=USER_FIELDS):
                    found.setdefault(tcx_user.id, tcx_user)
    except TcxUnavailable as error:
        raise RunAborted(one_line(error)) from error
    return list(found.values())


def _with_numbers_in_use(rt: Runtime, target: list[TcxUser]) -> list[TcxUser]:
    """`target` plus every other 3CX user by Id and Number only: the numbers a creation must avoid."""
    try:
        numbers = rt.tcx.list_users(select=())
    except TcxUnavailable as error:
        raise RunAborted(one_line(error)) from error
    read = {user.id for user in target}
    return target + [user for user in numbers if user.id not in read]


def _photo_infos(
    rt: Runtime, source: list[GraphUser], config: UserSyncConfig, options: dict[str, UserOptions], defaults: UserOptions
) -> dict[str, PhotoInfo | PhotoUnreadable]:
    wanted = [
        user.id
        for user in source
        if options.get(user.id, defaults).photo and exclusion_reason(user, config.scope) is None
    ]
    return rt.graph.photo_infos(wanted) if wanted else {}


def _plan_counts(plan: UserPlan) -> dict[str, int]:
    counts = {kind: len(plan.of_kind(kind)) for kind in _APPLY_ORDER}
    counts["unchanged"] = plan.unchanged
    counts["held_by_guard"] = plan.guard.would_remove if plan.guard else 0
    counts["held_creations"] = plan.creation_guard.would_create if plan.creation_guard else 0
    return counts


# -- applying the plan -------------------------------------------------------------------------


def _apply(rt: Runtime, result: UserSyncResult, progress: Progress | None) -> None:
    links = rt.state.links()
    ordered = sorted(result.plan.actions, key=lambda action: _APPLY_ORDER.index(action.kind))
    applier = _Applier(rt, links)
    try:
        _apply_each(result, ordered, applier, progress)
    finally:
        result.plan.skipped.extend(applier.notes)


def _apply_each(
    result: UserSyncResult, ordered: list[UserAction], applier: _Applier, progress: Progress | None
) -> None:
    for index, action in enumerate(ordered, start=1):
        started = time.monotonic()
        try:
            applier.apply(action)
            outcome = ActionOutcome(action, ok=True)
        except TcxUnavailable as error:
            outcome = ActionOutcome(action, ok=False, error=one_line(error))
            result.outcomes.append(outcome)
            _log_outcome(result.run_id, outcome)
            raise RunAborted(
                f"3CX became unreachable after {index - 1} of {len(ordered)} changes: {one_line(error)}"
            ) from error
        except TcxApiError as error:
            outcome = ActionOutcome(action, ok=False, error=one_line(error))
        except AvatarUnfit as error:
            outcome = ActionOutcome(action, ok=False, error=str(error))
        outcome.duration_ms = int((time.monotonic() - started) * 1000)
        result.outcomes.append(outcome)
        _log_outcome(result.run_id, outcome)
        if progress is not None:
            progress(index, len(ordered))


def _log_outcome(run_id: str, outcome: ActionOutcome) -> None:
    action = outcome.action
    count_action("users", action.kind, "ok" if outcome.ok else "failed")
    log_event(
        "user_action",
        logging.INFO if outcome.ok else logging.WARNING,
        run=run_id,
        kind="users",
        action=action.kind,
        user=action.m365_id,
        upn=action.upn,
        extension=getattr(action, "extension", None),
        fields=",".join(getattr(action, "changes", {}) or {}) or None,
        outcome="ok" if outcome.ok else "failed",
        duration_ms=outcome.duration_ms,
        error=outcome.error,
    )


class _Applier:
    """Applies one action at a time, updating links as it goes so a crash loses nothing."""

    def __init__(self, rt: Runtime, links: dict[str, Link]) -> None:
        self.rt = rt
        self.links = links
        self.notes: list[Skip] = []  # what 3CX keeps its own way, said once in the run record

    def apply(self, action: UserAction) -> None:
        match action:
            case LinkUser():
                self._link(action)
            case UpdateUser():
                self._update(action)
            case CreateUser():
                self._create(action)
            case SetAvatar():
                self._avatar(action)
            case DisableUser():
                self._disable(action)
            case DeleteUser():
                self._delete(action)
            case ForgetLink():
                self._forget(action)
            case _:
                raise TypeError(f"no way to apply {type(action).__name__}")

    def _save(self, link: Link) -> None:
        self.links[link.m365_id] = link
        self.rt.state.save_link(link)

    def _read_back(self, link: Link, written: Mapping[str, Any], stored: TcxUser | None = None) -> Link:
        """Compare what 3CX stored with what was written, and remember a field it kept its own way.

        3CX may compute a field (a display name from first and last name) or reformat it (a
        number); without this every run would write the same value again. A field newly kept is
        said once, as a note in the run record; one that now holds what was written is forgotten.
        """
        if stored is None:
            try:
                stored = self.rt.tcx.get_user(link.tcx_user_id, select=tuple(written))
            except TcxApiError:
                stored = None  # the write went through; the next run compares again
            if stored is None:
                return link
        have = stored.model_dump(by_alias=True)
        kept = dict(link.kept)
        for name, wanted in written.items():
            if name not in USER_FIELDS or same_value(name, wanted, have.get(name)):
                kept.pop(name, None)
                continue
            value = KeptValue(wanted=wanted, kept=have.get(name))
            if kept.get(name) != value:
                log_event("tcx_kept_value", kind="users", upn=link.upn, field=name)
                note = f"3CX keeps {name} as {have.get(name)!r}, not {wanted!r}; not written again until either changes"
                self.notes.append(Skip(link.upn, note))
            kept[name] = value
        if kept == link.kept:
            return link
        updated = link.model_copy(update={"kept": kept})
        self._save(updated)
        return updated

    def _link(self, action: LinkUser) -> None:
        # Claim the 3CX user first: if the update fails, the next run updates instead of re-matching.
        self._save(
            Link(
                m365_id=action.m365_id,
                upn=action.upn,
                tcx_user_id=action.tcx_user_id,
                extension=action.extension,
                origin="linked",
            )
        )
        if action.changes:
            written = _new_values(action.changes)
            self.rt.tcx.update_user(action.tcx_user_id, written)
            self._read_back(self.links[action.m365_id], written)

    def _update(self, action: UpdateUser) -> None:
        written = _new_values(action.changes)
        self.rt.tcx.update_user(action.tcx_user_id, written)
        link = self.links.get(action.m365_id)
        if link is not None and (link.upn != action.upn or link.deprovisioned):
            link = link.model_copy(update={"upn": action.upn, "deprovisioned": None})
            self._save(link)
        if link is not None:
            self._read_back(link, written)

    def _create(self, action: CreateUser) -> None:
        fields = dict(action.fields)
        number = action.extension
        for _attempt in range(_NUMBER_RETRIES):
            body = {**fields, "Number": number} if number else fields
            try:
                created = self.rt.tcx.create_user(body)
                break
            except TcxApiError as error:
                if number is None or not _number_taken(error):
                    raise
                if action.recreate:
                    # Its own number or none: the 3CX user may still exist where the list did not show it.
                    raise TcxApiError(
                        409,
                        "",
                        f"number {number} is in use, so the 3CX user it belonged to may still exist;"
                        " not created under another number",
                        "Number",
                        [],
                    ) from error
                # Taken by a DN the user list does not show (queue, ring group, ...): next one.
                number = str(int(number) + 1)
        else:
            raise TcxApiError(400, "NO_FREE_NUMBER", f"no free extension after {_NUMBER_RETRIES} tries", "Number", [])
        previous = self.links.get(action.m365_id)
        link = Link(
            m365_id=action.m365_id,
            upn=action.upn,
            tcx_user_id=created.id,
            extension=created.number,
            origin=previous.origin if previous else "created",
        )
        self._save(link)
        self._read_back(link, fields, created)  # 3CX answers a create with what it stored

    def _avatar(self, action: SetAvatar) -> None:
        link = self.links.get(action.m365_id)
        if link is None:
            raise TcxApiError(409, "NOT_LINKED", "the user has no 3CX user yet (its creation failed)", None, [])
        image = self.rt.graph.photo(action.m365_id) if action.photo_etag else None
        refusal = _unfit_avatar(image)
        if refusal is not None:
            # Remembered as seen, so the same photo is not fetched again every night; a new one is.
            self._save(link.model_copy(update={"photo_etag": action.photo_etag}))
            raise AvatarUnfit(f"{refusal}; avatar left as it is")
        if image is None:
            self.rt.tcx.update_user(link.tcx_user_id, {"ContactImage": ""})
        else:
            self.rt.tcx.set_avatar(link.tcx_user_id, image.content, image.content_type)
        self._save(link.model_copy(update={"photo_etag": action.photo_etag}))

    def _disable(self, action: DisableUser) -> None:
        self.rt.tcx.update_user(action.tcx_user_id, {"Enabled": False})
        self.rt.state.record_deprovision(action.m365_id, "disable")
        link = self.links[action.m365_id]
        self._save(link.model_copy(update={"deprovisioned": "disabled"}))

    def _delete(self, action: DeleteUser) -> None:
        self.rt.tcx.delete_user(action.tcx_user_id)
        self.rt.state.record_deprovision(action.m365_id, "delete")
        self._forget(action)

    def _forget(self, action: UserAction) -> None:
        self.links.pop(action.m365_id, None)
        self.rt.state.delete_link(action.m365_id)


def _unfit_avatar(image: PhotoImage | None) -> str | None:
    """Why this photo is not written as an avatar, or None when it fits."""
    if image is None:
        return None
    if not image.content_type.startswith("image/"):
        return f"the photo is {image.content_type}, not an image"
    if len(image.content) > AVATAR_MAX_BYTES:
        limit = f"{AVATAR_MAX_BYTES // 1024} KB"
        return f"the photo is {len(image.content):,} bytes, more than the {limit} an avatar may have"
    return None


def _new_values(changes: Mapping[str, FieldChange]) -> dict[str, Any]:
    """The fields to PATCH: each change's new value."""
    return {name: change.new for name, change in changes.items()}


def _number_taken(error: TcxApiError) -> bool:
    text = f"{error.code} {error.message} {error.target}".upper()
    return "ALREADY_IN_USE" in text or "DUPLICATE" in text

"""The user plan as an administrator reads it (Terraform-style) and as JSON for scripts."""

from __future__ import annotations

from typing import Any

from sync.users import (
    CreateUser,
    DeleteUser,
    DisableUser,
    ForgetLink,
    LinkUser,
    SetAvatar,
    UpdateUser,
    UserAction,
    UserPlan,
)

_SECTIONS = (
    ("create", "+", "create"),
    ("link", "=", "link existing 3CX user"),
    ("update", "~", "update"),
    ("avatar", "~", "set avatar"),
    ("disable", "-", "disable"),
    ("delete", "-", "delete"),
    ("forget", "-", "forget link (gone on both sides)"),
)
_MAX_SHOWN = 50  # per section; the counts always cover everything


def _value(value: Any) -> str:
    if value is None or value == "":
        return "(empty)"
    text = str(value)
    return repr(text[:40] + "…" if len(text) > 40 else text) if isinstance(value, str) else text


def describe_action(action: UserAction) -> str:
    """One line for one action, without the leading symbol."""
    if isinstance(action, CreateUser):
        number = action.extension or "next free number"
        note = " (its 3CX user was deleted in 3CX)" if action.recreate else ""
        return f"{action.upn} → extension {number}, {action.fields.get('DisplayName', '')!r}{note}"
    if isinstance(action, (LinkUser, UpdateUser)):
        changes = ", ".join(f"{name}: {_value(c.old)} → {_value(c.new)}" for name, c in action.changes.items())
        return f"{action.upn} (ext {action.extension})" + (f": {changes}" if changes else "")
    if isinstance(action, SetAvatar):
        return f"{action.upn}: " + ("photo changed" if action.photo_etag else "photo removed")
    if isinstance(action, (DisableUser, DeleteUser)):
        return f"{action.upn} (ext {action.extension}): {action.reason}"
    if isinstance(action, ForgetLink):
        return f"{action.upn} (ext {action.extension}): {action.reason}"
    return action.upn


def render_plan(plan: UserPlan, *, title: str = "User sync plan") -> str:
    """Text grouped by action with counts, like `terraform plan`."""
    lines = [title, ""]
    for kind, symbol, label in _SECTIONS:
        actions = plan.of_kind(kind)
        if not actions:
            continue
        lines.append(f"  {symbol} {label}: {len(actions)}")
        for action in actions[:_MAX_SHOWN]:
            lines.append(f"      {symbol} {describe_action(action)}")
        if len(actions) > _MAX_SHOWN:
            lines.append(f"      … and {len(actions) - _MAX_SHOWN} more (use --json for all)")
        lines.append("")
    for notice in plan.notices:
        lines.extend([f"  ! {notice}", ""])
    if plan.skipped:
        lines.append(f"  ! skipped: {len(plan.skipped)}")
        lines.extend(f"      ! {skip.upn}: {skip.reason}" for skip in plan.skipped[:_MAX_SHOWN])
        lines.append("")
    if plan.guard:
        lines.append(f"  ! held back: {plan.guard.describe()}")
        lines.extend(f"      ! {action.kind} {describe_action(action)}" for action in plan.guard.held[:_MAX_SHOWN])
        lines.append("")
    if plan.creation_guard:
        creation = plan.creation_guard
        lines.append(f"  ! held back: {creation.describe()}")
        lines.extend(f"      ! {action.kind} {describe_action(action)}" for action in creation.held[:_MAX_SHOWN])
        lines.append("")
    counts = [f"{len(plan.of_kind(kind))} to {kind}" for kind in ("create", "link", "update", "disable", "delete")]
    lines.append("Plan: " + ", ".join(counts) + f"; {plan.unchanged} unchanged.")
    if not plan.actions and not plan.guard and not plan.creation_guard:
        lines.insert(2, "  No changes. 3CX matches Microsoft 365.\n")
    return "\n".join(lines)


def action_to_json(action: UserAction) -> dict[str, Any]:
    data: dict[str, Any] = {"action": action.kind, "m365_id": action.m365_id, "upn": action.upn}
    for name in ("extension", "tcx_user_id", "reason", "photo_etag", "recreate"):
        if hasattr(action, name):
            data[name] = getattr(action, name)
    if isinstance(action, CreateUser):
        data["fields"] = dict(action.fields)
    if isinstance(action, (LinkUser, UpdateUser)):
        data["changes"] = {name: {"old": c.old, "new": c.new} for name, c in action.changes.items()}
    return data


def plan_to_json(plan: UserPlan) -> dict[str, Any]:
    return {
        "actions": [action_to_json(action) for action in plan.actions],
        "skipped": [{"upn": skip.upn, "reason": skip.reason} for skip in plan.skipped],
        "notices": list(plan.notices),
        "guard": None
        if plan.guard is None
        else {
            "message": plan.guard.describe(),
            "would_remove": plan.guard.would_remove,
            "synced": plan.guard.synced,
            "held": [action_to_json(action) for action in plan.guard.held],
        },
        "creation_guard": None
        if plan.creation_guard is None
        else {
            "message": plan.creation_guard.describe(),
            "would_create": plan.creation_guard.would_create,
            "recreated": plan.creation_guard.recreated,
            "synced": plan.creation_guard.known,
            "held": [action_to_json(action) for action in plan.creation_guard.held],
        },
    }

"""Per-user options, administered: list, show and set overrides (the CLI and the admin route)."""

from __future__ import annotations

from typing import Any

from sync.options import OPTION_NAMES, apply_assignments, effective_options, tenant_defaults
from sync.records import OptionOverrides
from sync.runtime import Runtime


class UnknownUser(Exception):
    """The UPN matches no Microsoft 365 user."""


def resolve_user(rt: Runtime, upn: str) -> tuple[str, str]:
    """(M365 id, UPN) for a UPN, from links, then the mirror, then Graph itself."""
    wanted = upn.strip().lower()
    for link in rt.state.links().values():
        if link.upn.lower() == wanted:
            return link.m365_id, link.upn
    for user_id, raw in rt.state.mirror().items():
        if str(raw.get("userPrincipalName", "")).lower() == wanted:
            return user_id, raw["userPrincipalName"]
    user = rt.graph.get_user(upn)
    if user is None:
        raise UnknownUser(f"no Microsoft 365 user {upn!r}")
    # Graph gives every user a UPN and USER_SELECT asks for it; GraphUser leaves it optional
    # only for delta tombstones, which a lookup by id or UPN never returns.
    assert user.user_principal_name is not None
    return user.id, user.user_principal_name


def options_report(rt: Runtime, upn: str | None = None) -> dict[str, Any]:
    """Defaults, and every override (or one user's override and effective options)."""
    defaults = tenant_defaults(rt.settings)
    overrides = rt.state.option_overrides()
    report: dict[str, Any] = {"defaults": defaults.as_dict()}
    if upn is None:
        report["users"] = [
            {
                "upn": o.upn,
                "m365_id": o.m365_id,
                "overrides": _set_values(o),
                "effective": effective_options(defaults, o).as_dict(),
            }
            for o in sorted(overrides.values(), key=lambda o: o.upn.lower())
        ]
        return report
    m365_id, canonical = resolve_user(rt, upn)
    override = overrides.get(m365_id)
    report["user"] = {
        "upn": canonical,
        "m365_id": m365_id,
        "overrides": _set_values(override) if override else {},
        "effective": effective_options(defaults, override).as_dict(),
    }
    return report


def set_user_options(rt: Runtime, upn: str, assignments: dict[str, bool | None]) -> dict[str, Any]:
    """Store a user's overrides (None clears one); returns the user's new report."""
    m365_id, canonical = resolve_user(rt, upn)
    current = rt.state.option_overrides().get(m365_id) or OptionOverrides(m365_id=m365_id, upn=canonical)
    updated = apply_assignments(current, assignments).model_copy(update={"upn": canonical})
    if all(getattr(updated, name) is None for name in OPTION_NAMES):
        rt.state.delete_option_overrides(m365_id)
    else:
        rt.state.save_option_overrides(updated)
    return options_report(rt, canonical)


def _set_values(overrides: OptionOverrides) -> dict[str, bool]:
    return {name: value for name in OPTION_NAMES if (value := getattr(overrides, name)) is not None}

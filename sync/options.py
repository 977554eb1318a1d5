"""Per-user options: tenant-wide defaults from settings, overridden per user in state.

3CX's own Microsoft 365 integration has these five switches ("Step 5"); here each one can
differ per user, and what a user effectively gets is the override if set, else the default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from shared.settings import Settings
from sync.records import OptionOverrides
from sync.runtime import Runtime

OPTION_NAMES = ("sso", "office_phone", "photo", "personal_contacts", "calendar")


@dataclass(frozen=True)
class UserOptions:
    """The effective options of one user."""

    sso: bool
    office_phone: bool
    photo: bool
    personal_contacts: bool
    calendar: bool

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


def tenant_defaults(settings: Settings) -> UserOptions:
    return UserOptions(
        sso=settings.sync_sso,
        office_phone=settings.sync_office_phone,
        photo=settings.sync_photo,
        personal_contacts=settings.sync_personal_contacts,
        calendar=settings.sync_calendar,
    )


def effective_options(defaults: UserOptions, overrides: OptionOverrides | None) -> UserOptions:
    if overrides is None:
        return defaults
    changes = {name: getattr(overrides, name) for name in OPTION_NAMES if getattr(overrides, name) is not None}
    return replace(defaults, **changes)


def parse_option_assignments(pairs: list[str]) -> dict[str, bool | None]:
    """Parse `name=true|false|default` pairs from the command line or an HTTP body.

    `default` removes the override so the tenant default applies again.
    """
    result: dict[str, bool | None] = {}
    for pair in pairs:
        name, separator, raw = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not separator or name not in OPTION_NAMES:
            raise ValueError(f"{pair!r}: expected NAME=true|false|default with NAME one of {', '.join(OPTION_NAMES)}")
        result[name] = parse_option_value(name, raw)
    return result


def parse_option_value(name: str, raw: Any) -> bool | None:
    if raw is None or isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    if text in ("default", ""):
        return None
    raise ValueError(f"{name}: expected true, false or default, got {raw!r}")


def apply_assignments(current: OptionOverrides, assignments: dict[str, bool | None]) -> OptionOverrides:
    return current.model_copy(update=assignments)


# -- administration (CLI and admin HTTP route) ------------------------------------------------


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

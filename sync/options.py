"""Per-user options: tenant-wide defaults from settings, overridden per user in state.

3CX's own Microsoft 365 integration has these five switches ("Step 5"); here each one can
differ per user, and what a user effectively gets is the override if set, else the default.
Pure: reading and storing overrides is `sync.option_admin`'s job.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from shared.settings import Settings
from sync.records import OptionOverrides

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

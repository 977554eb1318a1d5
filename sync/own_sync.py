"""3CX's own Microsoft 365 integration, as the user sync must respect it.

3CX can sync users, personal contacts and calendar status from Microsoft 365 itself
(`GET /Microsoft365Integration`). Its *user* sync is a second writer of the users the
connector syncs: it creates, overwrites and re-creates them on its own schedule, so the
user sync refuses to apply while it is on. Its personal-contacts sync is the only published
way into a user's personal phonebook: the `personal_contacts` option switches it per user
(`MS365ContactsEnabled`), and has no effect while the integration cannot copy contacts.

Pure: the caller reads the integration (None when it could not be read), this module decides.
"""

from __future__ import annotations

from shared.threecx_models import Microsoft365Integration

INTEGRATION_PLACE = "3CX Admin Console → Integrations → Microsoft 365"


def user_sync_refusal(integration: Microsoft365Integration | None) -> str | None:
    """Why the user sync must apply nothing, or None. An unreadable integration does not stop it."""
    if integration is None or not integration.user_sync:
        return None
    return (
        "3CX's own Microsoft 365 user sync is on: it writes the same users as the connector, so nothing was"
        f" applied. Turn it off in {INTEGRATION_PLACE} (Users), then run again; a dry run still shows the plan."
    )


def personal_contacts_notice(integration: Microsoft365Integration | None, users: int) -> str | None:
    """The one line a run says when `users` users have personal contacts on that 3CX will not copy."""
    if users == 0 or integration is None:
        return None
    if not integration.connected:
        why = "3CX's own Microsoft 365 integration is not connected"
    elif not integration.personal_contacts_sync:
        why = "3CX's own Microsoft 365 integration is connected, but its personal-contacts sync is off"
    else:
        return None
    return (
        f"personal contacts: on for {users} users, but 3CX copies none until its own sync does: {why}"
        f" ({INTEGRATION_PLACE}; `python -m sync check-pbx` lists the steps)."
    )

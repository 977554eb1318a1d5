"""3CX's own Microsoft 365 integration as the user sync respects it: data in, one line out."""

from __future__ import annotations

from typing import Any

import pytest

from shared.threecx_models import Microsoft365Integration
from sync.own_sync import personal_contacts_notice, user_sync_refusal


def integration(**fields: Any) -> Microsoft365Integration:
    return Microsoft365Integration.model_validate(fields)


CONNECTED = {"ApplicationId": "app", "TenantId": "tenant"}


@pytest.mark.parametrize(
    ("state", "refused"),
    [
        (None, False),  # unreadable: the run goes on (check-pbx says what it cannot tell)
        (integration(), False),
        (integration(**CONNECTED, AdUsers={"IsEnabled": False, "SyncPersonalContacts": True}), False),
        (integration(**CONNECTED, AdUsers={"IsEnabled": True}), True),
    ],
)
def test_only_3cxs_own_user_sync_refuses_the_run(state: Microsoft365Integration | None, refused: bool) -> None:
    refusal = user_sync_refusal(state)
    assert (refusal is not None) is refused
    if refusal is not None:
        assert refusal.startswith("3CX's own Microsoft 365 user sync is on: it writes the same users")
        assert "Integrations → Microsoft 365" in refusal


@pytest.mark.parametrize(
    ("state", "users", "why"),
    [
        (integration(), 4, "3CX's own Microsoft 365 integration is not connected"),
        (integration(ApplicationId="app"), 4, "3CX's own Microsoft 365 integration is not connected"),
        (integration(**CONNECTED), 1, "is connected, but its personal-contacts sync is off"),
        (integration(**CONNECTED, AdUsers={"SyncPersonalContacts": True}), 4, None),
        (integration(), 0, None),  # nobody asks for personal contacts
        (None, 4, None),  # unreadable: nothing to say here
    ],
)
def test_personal_contacts_3cx_will_not_copy_are_said_in_one_line(
    state: Microsoft365Integration | None, users: int, why: str | None
) -> None:
    notice = personal_contacts_notice(state, users)
    if why is None:
        assert notice is None
    else:
        assert notice is not None
        opening = f"personal contacts: on for {users} users, but 3CX copies none until its own sync does"
        assert notice.startswith(opening)
        assert why in notice and "check-pbx" in notice

"""Who takes part in what: the rules every capability asks, as data in, data out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.settings import load_settings
from sync.eligibility import Audience, calendar_is_stale, calendar_read_due, is_paused
from sync.options import UserOptions
from sync.records import Link, OptionOverrides, PresenceState

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DEFAULTS = UserOptions(sso=False, office_phone=False, photo=False, personal_contacts=True, calendar=True)


def link(uid: str, **extra: object) -> Link:
    return Link(m365_id=uid, upn=f"{uid}@contoso.com", tcx_user_id=1, extension="100", origin="created", **extra)


def overrides(uid: str, **values: bool) -> OptionOverrides:
    return OptionOverrides(m365_id=uid, upn=f"{uid}@contoso.com", **values)


AUDIENCE = Audience(
    {"ann": link("ann"), "bob": link("bob"), "cid": link("cid"), "gone": link("gone", deprovisioned="disabled")},
    DEFAULTS,
    {
        "bob": overrides("bob", calendar=False),
        "cid": overrides("cid", personal_contacts=False),
        "gone": overrides("gone"),
    },
)


def test_synced_means_linked_and_not_deprovisioned() -> None:
    assert set(AUDIENCE.synced()) == {"ann", "bob", "cid"}


def test_calendar_and_personal_contacts_follow_each_users_effective_option() -> None:
    assert set(AUDIENCE.calendar_users()) == {"ann", "cid"}
    assert set(AUDIENCE.personal_contact_users()) == {"ann", "bob"}
    assert [AUDIENCE.has_calendar(uid) for uid in ("ann", "bob", "gone", "nobody")] == [True, False, False, False]


def test_a_deprovisioned_user_gets_nothing_whatever_their_options() -> None:
    audience = Audience({"gone": link("gone", deprovisioned="disabled")}, DEFAULTS, {})
    assert audience.calendar_users() == {} and audience.personal_contact_users() == {}


def test_options_are_overrides_over_the_defaults() -> None:
    assert AUDIENCE.options("bob") == UserOptions(False, False, False, True, False)
    assert AUDIENCE.options("ann") == DEFAULTS
    assert set(AUDIENCE.effective_options()) == {"bob", "cid", "gone"}


def test_the_audience_reads_links_and_overrides_through_its_port() -> None:
    class State:
        def links(self) -> dict[str, Link]:
            return {"ann": link("ann")}

        def option_overrides(self) -> dict[str, OptionOverrides]:
            return {"ann": overrides("ann", calendar=False)}

    settings = load_settings(SYNC_CALENDAR="true", SYNC_PERSONAL_CONTACTS="true")
    audience = Audience.of(State(), settings)
    assert audience.calendar_users() == {}
    assert set(audience.personal_contact_users()) == {"ann"}


@pytest.mark.parametrize(
    ("refreshed", "stale"),
    [
        (None, True),
        (NOW - timedelta(minutes=15), False),  # exactly the refresh age: still fresh
        (NOW - timedelta(minutes=15, seconds=1), True),
        (NOW, False),
    ],
)
def test_a_calendar_is_stale_when_never_read_or_older_than_the_refresh_age(
    refreshed: datetime | None, stale: bool
) -> None:
    state = PresenceState(m365_id="ann", tcx_user_id=1, refreshed_at=refreshed)
    assert calendar_is_stale(state, NOW, 15) is stale
    assert calendar_is_stale(None, NOW, 15) is True


def test_paused_follows_sync_paused() -> None:
    assert is_paused(load_settings(SYNC_PAUSED="true")) is True
    assert is_paused(load_settings()) is False


@pytest.mark.parametrize(
    ("state", "everyone", "due"),
    [
        pytest.param(None, False, True, id="never read"),
        pytest.param(PresenceState(m365_id="a", tcx_user_id=1, refreshed_at=NOW), False, False, id="fresh"),
        pytest.param(PresenceState(m365_id="a", tcx_user_id=1, refreshed_at=NOW), True, True, id="fresh, nightly"),
        pytest.param(
            PresenceState(m365_id="a", tcx_user_id=1, refresh_queued_at=NOW - timedelta(minutes=14)),
            True,
            False,
            id="already queued",
        ),
        pytest.param(
            PresenceState(m365_id="a", tcx_user_id=1, refresh_queued_at=NOW - timedelta(minutes=15)),
            False,
            True,
            id="queued so long ago the message is taken as lost",
        ),
        pytest.param(
            PresenceState(m365_id="a", tcx_user_id=1, read_again_at=NOW + timedelta(seconds=1), unreadable="403 x"),
            True,
            False,
            id="unreadable until later, even at night",
        ),
        pytest.param(
            PresenceState(m365_id="a", tcx_user_id=1, read_again_at=NOW, read_failures=3),
            False,
            True,
            id="backoff over",
        ),
    ],
)
def test_a_calendar_read_is_due_once_stale_never_twice_queued_and_not_while_backing_off(
    state: PresenceState | None, everyone: bool, due: bool
) -> None:
    assert calendar_read_due(state, NOW, 15, everyone=everyone) is due

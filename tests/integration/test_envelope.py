"""The run envelope: lock, run record, summary line and status, the same for every kind of run."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.state import LockHeld, StateStore
from sync.envelope import run_envelope

# -- against real Table Storage ------------------------------------------------------------------


@pytest.mark.azurite
def test_a_crashed_holders_lease_expires_and_the_next_run_takes_the_lock(state: StateStore) -> None:
    state.lease("contacts:company", timedelta(seconds=-1)).acquire()  # took it, then died
    with run_envelope(state, "contacts", trigger="timer", lock="contacts:company") as run:
        run.report.counts = {"created": 3}
    (record,) = state.recent_runs("contacts")
    assert (record.status, record.trigger, record.counts) == ("succeeded", "timer", {"created": 3})


@pytest.mark.azurite
def test_a_live_lease_keeps_others_out_until_released(state: StateStore) -> None:
    with (
        run_envelope(state, "users", trigger="timer", lock="user-sync"),
        pytest.raises(LockHeld),
        run_envelope(state, "users", trigger="queue", lock="user-sync"),
    ):
        pytest.fail("the body must not run")
    with run_envelope(state, "users", trigger="queue", lock="user-sync", subject="ann@contoso.com"):
        pass
    newest, oldest = state.recent_runs("users")
    assert (newest.trigger, newest.subject, oldest.trigger) == ("queue", "ann@contoso.com", "timer")

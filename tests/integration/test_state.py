"""State in Table Storage (Azurite): links, mirror, options, runs and the run lock."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError

from shared.state import LockHeld, StateStore, utcnow
from sync.records import Link, OptionOverrides, RunRecord


def test_links_round_trip(state: StateStore) -> None:
    link = Link(m365_id="u1", upn="a@contoso.com", tcx_user_id=7, extension="105", origin="linked", photo_etag="e1")
    state.save_link(link)
    assert state.links() == {"u1": link}
    state.save_link(link.model_copy(update={"deprovisioned": "disabled", "photo_etag": None}))
    assert state.get_link("u1").deprovisioned == "disabled"
    assert state.get_link("u1").photo_etag is None
    state.delete_link("u1")
    assert state.get_link("u1") is None


def test_mirror_updates_in_batches_and_deletes(state: StateStore) -> None:
    users = [{"id": f"u{i}", "userPrincipalName": f"u{i}@contoso.com"} for i in range(250)]
    state.update_mirror(users, [])
    assert len(state.mirror()) == 250
    state.update_mirror([{"id": "u1", "userPrincipalName": "renamed@contoso.com"}], [f"u{i}" for i in range(100, 250)])
    mirror = state.mirror()
    assert len(mirror) == 100
    assert mirror["u1"]["userPrincipalName"] == "renamed@contoso.com"
    state.update_mirror([], ["u1", "not-there"])  # deleting an absent row is harmless
    assert "u1" not in state.mirror()


def test_delta_links(state: StateStore) -> None:
    assert state.delta_link("users") is None
    state.save_delta_link("users", "https://graph/delta?$deltatoken=abc")
    assert state.delta_link("users") == "https://graph/delta?$deltatoken=abc"


def test_option_overrides(state: StateStore) -> None:
    state.save_option_overrides(OptionOverrides(m365_id="u1", upn="a@contoso.com", photo=False))
    (stored,) = state.option_overrides().values()
    assert stored.photo is False and stored.sso is None
    state.delete_option_overrides("u1")
    assert state.option_overrides() == {}


def test_runs_newest_first(state: StateStore) -> None:
    start = utcnow()
    for offset in range(3):
        run = RunRecord(kind="users", run_id=f"r{offset}", started_at=start + timedelta(seconds=offset))
        run.status = "succeeded"
        run.counts = {"created": offset}
        state.save_run(run)
    assert [r.run_id for r in state.recent_runs("users", 2)] == ["r2", "r1"]
    assert state.recent_runs("users")[0].counts == {"created": 2}


def test_the_lock_excludes_a_second_holder_until_released(state: StateStore) -> None:
    with state.lock("job", ttl=timedelta(minutes=5)), pytest.raises(LockHeld) as held, state.lock("job"):
        pass
    assert "another job run is in progress" in str(held.value)
    with state.lock("job"):  # free again
        pass


def test_an_expired_lock_is_taken_over(state: StateStore) -> None:
    with state.lock("job", ttl=timedelta(seconds=-1)), state.lock("job", ttl=timedelta(minutes=1)) as second:
        # The first holder's lease had already expired; the second took it over.
        second.renew()


def _with_wrong_key(connection: str) -> str:
    """The same account with a key that is not its own: every request is refused (403)."""
    wrong = base64.b64encode(b"not the account key".ljust(64, b"!")).decode()
    return re.sub(r"AccountKey=[^;]+", f"AccountKey={wrong}", connection)


def test_a_subscription_lookup_tells_storage_failing_from_not_ours(
    state: StateStore, storage_connection: str, table_prefix: str
) -> None:
    assert state.get_subscription("never-made") is None
    assert state.get_subscription("bad/key") is None  # not a usable table key: simply not ours
    refused = StateStore.from_connection_string(_with_wrong_key(storage_connection), table_prefix)
    with pytest.raises(HttpResponseError) as failure:
        refused.get_subscription("never-made")
    assert failure.value.status_code == 403


def test_delta_link_names_by_prefix_and_deleting_them(state: StateStore) -> None:
    for name in ("users", "contacts-aa", "contacts-bb", "contacts", "contactsz", "contacts.x"):
        state.save_delta_link(name, f"https://graph/delta?$deltatoken={name}")
    assert sorted(state.delta_link_names("contacts-")) == ["contacts-aa", "contacts-bb"]
    state.delete_delta_links(["contacts-aa", "not-there"])  # deleting an absent row is harmless
    assert state.delta_link_names("contacts-") == ["contacts-bb"]
    assert state.delta_link("users") is not None and state.delta_link("contacts.x") is not None


def test_forgetting_contact_mailboxes_keeps_the_named_ones(state: StateStore) -> None:
    for mailbox in ("Sales@contoso.com", "8f2e6d4c-1b3a-4c5d-9e8f-0a1b2c3d4e5f"):
        contacts = [{"id": f"c{i}", "givenName": f"C{i}"} for i in range(120)]  # more than one transaction
        state.update_contact_mirror(mailbox, contacts, [])
        state.save_contact_folders(mailbox, ["f1"])
    assert state.forget_contact_mailboxes(keep=["sales@contoso.com"]) == (120, 1)
    assert len(state.contact_mirror("sales@contoso.com")) == 120
    assert state.contact_folders("sales@contoso.com") is not None
    assert state.contact_mirror("8f2e6d4c-1b3a-4c5d-9e8f-0a1b2c3d4e5f") == {}
    assert state.contact_folders("8f2e6d4c-1b3a-4c5d-9e8f-0a1b2c3d4e5f") is None
    assert not state.marker_set("once")
    state.set_marker("once")
    assert state.marker_set("once")

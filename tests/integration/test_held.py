"""Held-back plans: recorded machine-readably, approved exactly (and only while still valid), or dismissed."""

from __future__ import annotations

import json
import logging

import pytest

from sync.cli import main
from sync.held import HoldChanged, HoldNotFound, approve_hold, dismiss_hold, pending_holds
from sync.records import HeldAction, RunRecord, digest_of_held
from sync.user_sync import run_user_sync
from tests.conftest import Tenant

SETTINGS = {"DEPROVISION": "delete", "DEPROVISION_MAX_COUNT": "2"}


def _held_run(tenant: Tenant, removed: int = 3) -> tuple[list[str], RunRecord]:
    ids = tenant.add_users(6)
    run_user_sync(tenant.runtime(**SETTINGS))
    for user_id in ids[:removed]:
        tenant.graph.soft_delete_user(user_id)
    run_user_sync(tenant.runtime(**SETTINGS))
    record = tenant.state.recent_runs("users")[0]
    return ids, record


def test_a_held_plan_is_recorded_action_by_action_with_a_digest(tenant: Tenant) -> None:
    ids, record = _held_run(tenant)
    assert [(a.kind, a.m365_id) for a in record.held_actions] == [("delete", user_id) for user_id in ids[:3]]
    assert all(a.tcx_user_id is not None and a.extension for a in record.held_actions)
    assert record.held_digest == digest_of_held(record.held_actions)
    assert [a.describe() for a in record.held_actions] == record.held
    assert [run.run_id for run in pending_holds(tenant.runtime(**SETTINGS))] == [record.run_id]


def test_approval_applies_exactly_the_held_actions_still_valid_and_records_who(
    tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    ids, record = _held_run(tenant)
    tenant.graph.restore_user(ids[0])  # back since the hold: its deletion is no longer valid
    tenant.graph.update_user(ids[5], displayName="Renamed Meanwhile")  # not held: not part of the approval
    before = {user["Id"]: dict(user) for user in tenant.pbx.users.values()}

    with caplog.at_level(logging.INFO):
        result = approve_hold(
            tenant.runtime(**SETTINGS), record.run_id, "admin@contoso.com", record.held_digest, trigger="console"
        )

    assert result.counts["deprovisioned"] == 2 and result.counts["updated"] == 0
    remaining = {user["EmailAddress"] for user in tenant.pbx.users.values()}
    assert "user000@contoso.com" in remaining
    assert not {"user001@contoso.com", "user002@contoso.com"} & remaining
    renamed = next(u for u in tenant.pbx.users.values() if u["EmailAddress"] == "user005@contoso.com")
    assert renamed == before[renamed["Id"]]

    approval_run = tenant.state.get_run(result.run_id, "users")
    assert approval_run is not None and approval_run.approves == record.run_id
    assert approval_run.trigger == "console"
    assert any("admin@contoso.com" in line for line in approval_run.skipped)
    assert any(line.startswith("user000@contoso.com: approved delete no longer valid") for line in approval_run.skipped)
    decided = tenant.state.get_run(record.run_id, "users")
    assert decided is not None and decided.resolution is not None
    assert (decided.resolution.decision, decided.resolution.by) == ("approved", "admin@contoso.com")
    assert decided.resolution.run_id == result.run_id
    assert any("hold_approved" in r.getMessage() and "admin@contoso.com" in r.getMessage() for r in caplog.records)
    assert pending_holds(tenant.runtime(**SETTINGS)) == []


def test_an_approval_naming_other_content_or_a_decided_hold_is_refused(tenant: Tenant) -> None:
    _ids, record = _held_run(tenant)
    rt = tenant.runtime(**SETTINGS)
    with pytest.raises(HoldChanged):
        approve_hold(rt, record.run_id, "admin@contoso.com", "0" * 32, trigger="console")
    with pytest.raises(HoldNotFound):
        approve_hold(rt, "nosuchrun", "admin@contoso.com", trigger="console")
    assert len(tenant.pbx.users) == 6

    dismissed = dismiss_hold(rt, record.run_id, "admin@contoso.com", record.held_digest)
    assert dismissed.resolution is not None and dismissed.resolution.decision == "dismissed"
    assert len(tenant.pbx.users) == 6
    with pytest.raises(HoldChanged, match="dismissed by admin@contoso.com"):
        approve_hold(rt, record.run_id, "admin@contoso.com", record.held_digest, trigger="console")
    assert len(tenant.pbx.users) == 6


def test_held_creations_are_approved_with_their_avatars(tenant: Tenant) -> None:
    tenant.add_users(6)
    run_user_sync(tenant.runtime(EXTENSION_START="300"))
    for user in sorted(tenant.pbx.users.values(), key=lambda user: user["Number"])[:3]:
        tenant.pbx.delete_user(user["Id"])
    run_user_sync(tenant.runtime(EXTENSION_START="300", DEPROVISION_MAX_COUNT="2"))
    record = tenant.state.recent_runs("users")[0]
    assert {a.kind for a in record.held_actions} == {"create"}

    result = approve_hold(
        tenant.runtime(EXTENSION_START="300", DEPROVISION_MAX_COUNT="2"), record.run_id, "a@b", trigger="cli"
    )
    assert result.counts["created"] == 3
    assert len(tenant.pbx.users) == 6


def test_the_cli_approves_a_run(tenant_env: Tenant, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    for key, value in SETTINGS.items():
        monkeypatch.setenv(key, value)
    _ids, record = _held_run(tenant_env)
    assert main(["users", "--approve", record.run_id, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["deprovisioned"] == 3
    assert len(tenant_env.pbx.users) == 3
    assert main(["users", "--approve", record.run_id]) == 1
    assert "were approved by cli:" in capsys.readouterr().err
    assert main(["runs", "--kind", "users"]) == 0
    listing = capsys.readouterr().out
    assert "held actions approved by cli:" in listing and f"applies the held actions of run {record.run_id}" in listing


def test_many_held_actions_survive_the_table_s_property_limit(state) -> None:
    from datetime import UTC, datetime

    actions = [
        HeldAction(
            kind="delete",
            m365_id=f"id-{i:05d}",
            upn=f"user{i:05d}@contoso.com",
            tcx_user_id=i,
            extension=str(i),
            reason="no longer in Microsoft 365 " * 3,
        )
        for i in range(1500)
    ]
    record = RunRecord(
        kind="users",
        run_id="big",
        started_at=datetime.now(UTC),
        held_actions=actions,
        held_digest=digest_of_held(actions),
    )
    state.save_run(record)
    loaded = state.get_run("big", "users")
    assert loaded is not None and loaded.held_actions == actions
    assert loaded.held_digest == digest_of_held(loaded.held_actions)

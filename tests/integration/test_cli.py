"""`python -m sync`: output, exit codes and one-line errors, as an administrator sees them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sync.cli import main
from tests.conftest import Tenant

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "argv",
    [[], ["users"], ["options"], ["options", "set"], ["runs"], ["serve"], ["demo"]],
)
def test_every_command_has_help(argv: list[str]) -> None:
    completed = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "sync", *argv, "--help"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0
    assert "usage: python -m sync" in completed.stdout


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SYNC_PHOTO", "maybe", "configuration error: SYNC_PHOTO: must be true or false"),
        ("EXTENSION_START", "10a", "configuration error: EXTENSION_START: must be an extension number"),
        ("DEPROVISION", "purge", "configuration error: DEPROVISION: Input should be 'disable', 'delete' or 'keep'"),
        ("TCX_BASE_URL", "http://pbx.example.com", "configuration error: TCX_BASE_URL: must be an https:// URL"),
    ],
)
def test_a_malformed_setting_is_named(
    tenant_env: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["users", "--dry-run"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(expected)


def test_scope_lists_must_match_the_scope(tenant_env: Tenant, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("USER_SYNC_SCOPE", "selected_groups")
    assert main(["users"]) == 2
    assert "USER_SYNC_GROUPS is empty" in capsys.readouterr().err


def test_dry_run_json_is_one_object_with_the_contract_keys(
    tenant_env: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant_env.add_users(3)
    assert main(["users", "--dry-run", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    for key in ("created", "updated", "deprovisioned", "unchanged", "failed"):
        assert isinstance(payload[key], int)
    assert payload["created"] == 3 and payload["dry_run"] is True
    assert [a["action"] for a in payload["actions"]] == ["create"] * 3
    assert not tenant_env.pbx.users


def test_text_run_prints_the_plan_grouped_and_the_result(
    tenant_env: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant_env.add_users(2)
    assert main(["users"]) == 0
    out = capsys.readouterr().out
    assert "+ create: 2" in out
    assert "Plan: 2 to create" in out
    assert "Applied: 2 created" in out


def test_held_mass_creation_is_shown_in_the_plan_and_applied_only_when_allowed(
    tenant_env: Tenant, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant_env.add_users(4)
    assert main(["users"]) == 0
    tenant_env.add_users(3, prefix="hire")
    monkeypatch.setenv("DEPROVISION_MAX_COUNT", "2")
    capsys.readouterr()

    assert main(["users", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "! held back: creation guard: 3 3CX users would be created beside the 4 the connector links" in text
    assert "--allow-mass-create" in text
    assert text.count("      ! create hire") == 3
    assert main(["users", "--dry-run", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["held_creations"] == 3 and payload["created"] == 0
    assert [held["upn"] for held in payload["creation_guard"]["held"]] == [
        f"hire{i:03d}@contoso.com" for i in range(3)
    ]

    assert main(["users", "--allow-mass-create"]) == 0
    assert "Applied: 3 created" in capsys.readouterr().out
    assert len(tenant_env.pbx.users) == 7


def test_with_3cxs_own_user_sync_on_a_run_exits_1_with_the_one_line_and_a_dry_run_shows_why(
    tenant_env: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant_env.add_users(2)
    tenant_env.pbx.configure_microsoft365(ApplicationId="app", TenantId="tenant", AdUsers={"IsEnabled": True})

    assert main(["users", "--dry-run"]) == 0
    assert "  ! 3CX's own Microsoft 365 user sync is on" in capsys.readouterr().out
    assert main(["users"]) == 1
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert line.startswith("error: 3CX's own Microsoft 365 user sync is on")
    assert not tenant_env.pbx.users


def test_unreachable_pbx_exits_1_with_one_line(tenant_env: Tenant, capsys: pytest.CaptureFixture[str]) -> None:
    tenant_env.add_users(1)
    tenant_env.pbx.inject(503, count=50, retry_after=0)
    assert main(["users"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "Traceback" not in errors[0]


def test_options_set_show_list_and_reset(tenant_env: Tenant, capsys: pytest.CaptureFixture[str]) -> None:
    (user_id,) = tenant_env.add_users(1)
    assert main(["options", "set", "user000@contoso.com", "photo=true", "sso=false"]) == 0
    capsys.readouterr()
    assert main(["options", "show", "USER000@contoso.com", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["user"]["m365_id"] == user_id
    assert report["user"]["overrides"] == {"photo": True, "sso": False}
    assert report["user"]["effective"]["photo"] is True

    assert main(["options", "list"]) == 0
    assert "user000@contoso.com: overrides sso=off, photo=on" in capsys.readouterr().out

    assert main(["options", "reset", "user000@contoso.com"]) == 0
    assert tenant_env.state.option_overrides() == {}
    assert main(["options", "set", "user000@contoso.com", "colour=blue"]) == 2


def test_per_user_option_changes_what_the_sync_writes(tenant_env: Tenant) -> None:
    tenant_env.add_users(2)
    assert main(["options", "set", "user001@contoso.com", "sso=true"]) == 0
    assert main(["users"]) == 0
    by_email = {u["EmailAddress"]: u for u in tenant_env.pbx.users.values()}
    assert by_email["user001@contoso.com"]["MS365SignInEnabled"] is True
    assert by_email["user000@contoso.com"]["MS365SignInEnabled"] is False


def test_runs_lists_recorded_runs(tenant_env: Tenant, capsys: pytest.CaptureFixture[str]) -> None:
    tenant_env.add_users(1)
    main(["users"])
    capsys.readouterr()
    assert main(["runs", "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert run["status"] == "succeeded" and run["counts"]["created"] == 1


def test_presence_pass_json(tenant_env: Tenant, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime, timedelta

    (user_id,) = tenant_env.add_users(1)
    main(["users"])
    now = datetime.now(UTC)
    tenant_env.graph.add_event(user_id, start=now - timedelta(minutes=5), end=now + timedelta(hours=1))
    capsys.readouterr()
    assert main(["presence", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    for key in ("changed", "reverted", "unchanged", "failed"):
        assert isinstance(payload[key], int)
    assert payload["changed"] == 1
    assert next(iter(tenant_env.pbx.users.values()))["CurrentProfileName"] == "Out of office"


def test_subscriptions_need_the_webhook_url(tenant_env: Tenant, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["subscriptions"]) == 2
    assert "WEBHOOK_URL is missing" in capsys.readouterr().err


def test_subscriptions_command(tenant_env: Tenant, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    tenant_env.add_users(2)
    main(["users"])
    tenant_env.connect_webhook(monkeypatch)
    capsys.readouterr()
    assert main(["subscriptions", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["created"] == 3 and payload["failed"] == 0
    assert main(["subscriptions"]) == 0
    assert "0 created, 0 renewed, 0 deleted, 3 unchanged" in capsys.readouterr().out


def test_runs_lists_every_kind_newest_first_and_filters_by_kind(
    tenant_env: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fault: presence passes and subscription upkeep recorded no run, and `runs` showed user syncs only."""
    tenant_env.add_users(1)
    assert main(["users"]) == 0
    assert main(["presence"]) == 0
    capsys.readouterr()
    assert main(["runs", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [(run["kind"], run["trigger"], run["status"]) for run in runs] == [
        ("presence", "cli", "succeeded"),
        ("users", "cli", "succeeded"),
    ]
    assert main(["runs", "--kind", "presence"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and " presence " in lines[0] and " succeeded " in lines[0]

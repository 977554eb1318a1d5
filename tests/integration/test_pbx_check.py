"""`python -m sync check-pbx` against the simulated PBX: its own API description (the official
documents, served by the fake), its Microsoft 365 integration, the API client's role, and the
connector's options in state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sync.cli import main
from sync.pbx_check import OPERATIONS
from tests.conftest import TENANT_ID, Tenant
from tests.xapi_spec import locate_spec, missing_spec_reason

SPEC = locate_spec()
pytestmark = pytest.mark.skipif(SPEC is None, reason=missing_spec_reason())
CONNECTED = {"ApplicationId": "3a7c9e1b-5d2f-4a6b-8c0d-e1f2a3b4c5d6", "TenantId": TENANT_ID}


def _load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


@pytest.fixture
def pbx_env(tenant_env: Tenant) -> Tenant:
    """The simulated PBX serving the official 20.0.10 document as its own."""
    assert SPEC is not None
    tenant_env.pbx.api_description_text = SPEC.read_text()
    return tenant_env


def _check(capsys: pytest.CaptureFixture[str], *, as_json: bool = True) -> tuple[int, dict | str]:
    code = main(["check-pbx", "--json"] if as_json else ["check-pbx"])
    out = capsys.readouterr().out
    return code, (json.loads(out) if as_json else out)


def _statuses(report: dict) -> dict[str, str]:
    return {item["check"]: item["status"] for item in report["findings"]}


def test_the_current_document_offers_everything(pbx_env: Tenant, capsys: pytest.CaptureFixture[str]) -> None:
    pbx_env.pbx.add_user(Number="101")
    pbx_env.reset_pbx_counts()

    code, report = _check(capsys)

    assert code == 0
    assert report["ok"] is True
    assert report["present"] == len(OPERATIONS)
    assert report["missing_properties"] == {"Pbx.User": [], "Pbx.Contact": []}
    assert report["pbx_version"] == pbx_env.pbx.version
    assert report["microsoft365"]["connected"] is False
    assert set(_statuses(report).values()) == {"ok"}
    assert pbx_env.pbx_writes() == 0  # check-pbx reads; it never writes


def test_a_missing_operation_or_property_fails_with_exit_1(pbx_env: Tenant, capsys) -> None:
    assert SPEC is not None
    document = _load(SPEC)
    del document["paths"]["/Users({Id})"]["patch"]
    del document["components"]["schemas"]["Pbx.Contact"]["properties"]["Tag"]
    pbx_env.pbx.api_description_text = yaml.safe_dump(document)
    code, out = _check(capsys, as_json=False)
    assert code == 1
    assert "✗ PATCH  /Users({Id})" in out
    assert "Pbx.Contact lacks Tag" in out
    assert "NOT OK" in out


def test_3cxs_own_user_sync_fails_the_check_with_the_place_to_turn_it_off(pbx_env: Tenant, capsys) -> None:
    pbx_env.pbx.configure_microsoft365(**CONNECTED, AdUsers={"IsEnabled": True})

    code, out = _check(capsys, as_json=False)

    assert code == 1
    assert "✗ 3CX's own Microsoft 365 user sync is on: a second writer of the same users" in out
    assert "fix: turn it off in 3CX Admin Console → Integrations → Microsoft 365" in out
    assert f"connected (tenant {TENANT_ID}); its user sync on" in out


def test_personal_contacts_on_by_default_need_3cxs_own_sync(
    pbx_env: Tenant, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("SYNC_PERSONAL_CONTACTS", "true")

    code, report = _check(capsys)
    assert code == 1
    (personal,) = [item for item in report["findings"] if item["check"] == "personal_contacts"]
    assert "SYNC_PERSONAL_CONTACTS=true (tenant default)" in personal["text"]
    assert "not connected" in personal["text"]

    pbx_env.pbx.configure_microsoft365(**CONNECTED, AdUsers={"SyncPersonalContacts": True})
    code, report = _check(capsys)
    assert code == 0
    assert _statuses(report)["personal_contacts"] == "ok"


def test_one_users_personal_contacts_option_is_enough_to_need_it(pbx_env: Tenant, capsys) -> None:
    pbx_env.add_users(1)
    pbx_env.pbx.configure_microsoft365(**CONNECTED)  # connected, but not syncing personal contacts
    assert main(["options", "set", "user000@contoso.com", "personal_contacts=true"]) == 0
    capsys.readouterr()

    code, out = _check(capsys, as_json=False)

    assert code == 1
    assert "personal contacts are on for user000@contoso.com (per-user option)" in out
    assert "does not sync personal contacts" in out
    assert "personal_contacts=default" in out


def test_3cxs_own_calendar_status_is_a_warning(pbx_env: Tenant, capsys) -> None:
    pbx_env.pbx.configure_microsoft365(**CONNECTED, AdUsers={"SyncEvents": True})
    code, out = _check(capsys, as_json=False)
    assert code == 0
    assert "! 3CX's own calendar status is on" in out
    assert "read the lines marked !" in out


def test_an_api_client_without_a_writing_role_fails(pbx_env: Tenant, capsys) -> None:
    pbx_env.pbx.api_client_role = "users"  # as if the client had been given the role User in the console

    code, report = _check(capsys)

    assert code == 1
    (write,) = [item for item in report["findings"] if item["check"] == "write"]
    assert write["status"] == "fail" and "users in DEFAULT" in write["text"]
    assert "System Admin" in write["fix"]


@pytest.mark.parametrize(("path", "check"), [(r"/Users$", "read_users"), (r"/Contacts$", "read_contacts")])
def test_a_read_the_pbx_refuses_fails_the_check(pbx_env: Tenant, capsys, path: str, check: str) -> None:
    pbx_env.pbx.inject(403, count=1, path_pattern=path, method="GET")

    code, report = _check(capsys)

    assert code == 1
    assert _statuses(report)[check] == "fail"


@pytest.mark.parametrize(("served", "said"), [(None, "3CX 404"), ("just: text\n", "not an OpenAPI document")])
def test_an_api_description_that_cannot_be_read_is_one_failed_line_and_the_rest_still_checked(
    pbx_env: Tenant, capsys, served: str | None, said: str
) -> None:
    pbx_env.pbx.api_description_text = served

    code, report = _check(capsys)

    assert code == 1
    (api,) = [item for item in report["findings"] if item["check"] == "api"]
    assert api["status"] == "fail" and said in api["text"] and "TCX_BASE_URL" in api["fix"]
    assert {check: status for check, status in _statuses(report).items() if check != "api"} == dict.fromkeys(
        [
            "version",
            "read_users",
            "read_contacts",
            "write",
            "microsoft365",
            "user_sync",
            "personal_contacts",
            "calendar_sync",
            "shared_mailboxes",
        ],
        "ok",
    )

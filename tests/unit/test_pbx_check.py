"""`check-pbx`'s verdicts as data: an older PBX's API description, and the readiness checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from shared.threecx_models import Microsoft365Integration
from sync.eligibility import personal_contacts_asked_by
from sync.options import UserOptions
from sync.pbx_check import (
    OPERATIONS,
    CheckResult,
    Finding,
    PbxFacts,
    PbxReport,
    Unreadable,
    assess,
    check_description,
    render_report,
)
from sync.records import OptionOverrides
from tests.xapi_spec import PROJECT_ROOT, locate_spec, missing_spec_reason

SPEC = locate_spec()
OLD_SPEC = PROJECT_ROOT.parent / "shared" / "reference" / "3cx-xapi-20.0.8.yaml"


def _load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


@pytest.mark.skipif(SPEC is None, reason=missing_spec_reason())
@pytest.mark.skipif(not OLD_SPEC.exists(), reason=f"no 20.0.8 document at {OLD_SPEC}")
def test_a_20_0_8_pbx_lacks_only_the_renamed_bulk_delete() -> None:
    result = check_description(_load(OLD_SPEC))
    assert result.ok
    assert [f"{o.method} {o.path}" for o in result.missing_optional] == ["POST /Contacts/Pbx.DeleteContactsById"]


# -- the readiness verdict: what was read from the PBX and state in, one line per check out ----------------
TENANT = "8f2e6d4c-1b3a-4c5d-9e8f-0a1b2c3d4e5f"
CONNECTED = {"ApplicationId": "3a7c9e1b-5d2f-4a6b-8c0d-e1f2a3b4c5d6", "TenantId": TENANT}


def integration(**fields: object) -> Microsoft365Integration:
    return Microsoft365Integration.model_validate(fields)


def facts(**changes: object) -> PbxFacts:
    """A PBX that is ready: everything readable, the connector's role, 3CX's own sync out of the way."""
    ready = PbxFacts(
        client_id="m365connector",
        description=CheckResult(version="20.0.10"),
        version="20.0.10.1000",
        users=12,
        contacts=30,
        roles=[("DEFAULT", "system_admins")],
        integration=integration(),
        personal_contacts_asked_by=[],
        shared_mailboxes=False,
    )
    return replace(ready, **changes)


def finding(report: PbxReport, check: str) -> Finding:
    (found,) = [item for item in report.findings if item.check == check]
    return found


def test_a_ready_pbx_passes_with_one_line_per_check() -> None:
    report = assess(facts())
    assert report.ok
    assert [item.check for item in report.findings] == [
        "version",
        "api",
        "read_users",
        "read_contacts",
        "write",
        "microsoft365",
        "user_sync",
        "personal_contacts",
        "calendar_sync",
        "shared_mailboxes",
    ]
    assert all(item.status == "ok" and item.fix is None for item in report.findings)
    assert finding(report, "version").text == "3CX version 20.0.10.1000"
    assert "12 users" in finding(report, "read_users").text
    assert "30 entries" in finding(report, "read_contacts").text
    assert "not connected" in finding(report, "microsoft365").text


def test_3cxs_own_user_sync_is_a_second_writer_of_the_same_users_and_fails() -> None:
    report = assess(facts(integration=integration(**CONNECTED, AdUsers={"IsEnabled": True})))
    assert not report.ok
    user_sync = finding(report, "user_sync")
    assert user_sync.status == "fail"
    assert "second writer of the same users" in user_sync.text
    assert user_sync.fix is not None and "Integrations → Microsoft 365" in user_sync.fix


@pytest.mark.parametrize(
    "state",
    [
        {},  # never connected
        {"AdUsers": {"SyncPersonalContacts": True}},  # switched on, but not connected
        {"ApplicationId": "app", "TenantId": "", "AdUsers": {"SyncPersonalContacts": True}},  # half connected
        {**CONNECTED, "AdUsers": {"SyncPersonalContacts": False}},
        {**CONNECTED},
    ],
)
@pytest.mark.parametrize(
    "asked_by", [["SYNC_PERSONAL_CONTACTS=true (tenant default)"], ["ada@contoso.com (per-user option)"]]
)
def test_personal_contacts_asked_for_while_3cx_cannot_copy_them_fails_with_the_steps(
    state: dict, asked_by: list[str]
) -> None:
    report = assess(facts(integration=integration(**state), personal_contacts_asked_by=asked_by))
    assert not report.ok
    personal = finding(report, "personal_contacts")
    assert personal.status == "fail"
    assert asked_by[0] in personal.text
    assert personal.fix is not None
    assert "Integrations → Microsoft 365" in personal.fix and "personal_contacts=default" in personal.fix
    assert "SYNC_PERSONAL_CONTACTS=false" in personal.fix
    assert ("admin consent" in personal.fix) is not integration(**state).connected  # connect only what is not


def test_personal_contacts_asked_for_pass_when_3cx_copies_them() -> None:
    ready = integration(**CONNECTED, AdUsers={"SyncPersonalContacts": True})
    report = assess(facts(integration=ready, personal_contacts_asked_by=["ada@contoso.com (per-user option)"]))
    assert report.ok
    assert "MS365ContactsEnabled" in finding(report, "personal_contacts").text


def test_3cxs_own_calendar_status_warns_without_failing() -> None:
    report = assess(facts(integration=integration(**CONNECTED, AdUsers={"SyncEvents": True})))
    assert report.ok
    calendar = finding(report, "calendar_sync")
    assert calendar.status == "warn"
    assert "MS365CalendarEnabled" in calendar.text and calendar.fix is not None


def test_3cxs_shared_mailbox_sync_beside_shared_mailboxes_warns_of_doubles() -> None:
    on = integration(**CONNECTED, SharedMailboxesSync={"IsEnabled": True})
    assert finding(assess(facts(integration=on, shared_mailboxes=True)), "shared_mailboxes").status == "warn"
    assert finding(assess(facts(integration=on, shared_mailboxes=False)), "shared_mailboxes").status == "ok"


@pytest.mark.parametrize(
    ("roles", "status"),
    [
        ([("DEFAULT", "system_admins")], "ok"),
        ([("DEFAULT", "system_owners")], "ok"),
        ([("Sales", "users"), ("DEFAULT", "system_admins")], "ok"),  # one department where it may write is enough
        ([("Sales", "group_admins")], "fail"),
        ([("DEFAULT", "users")], "fail"),
        ([], "warn"),  # in no department: nothing to tell from
        (None, "warn"),  # no API client with this Client ID is listed
        (Unreadable("3CX 403"), "warn"),
    ],
)
def test_writes_are_judged_by_the_api_clients_role_never_tried(roles: object, status: str) -> None:
    report = assess(facts(roles=roles))
    write = finding(report, "write")
    assert write.status == status
    assert report.ok is (status != "fail")
    assert "not tried" in write.text or status == "fail"
    if status != "ok":
        assert write.fix is not None and "System Admin" in write.fix


@pytest.mark.parametrize("check", ["read_users", "read_contacts"])
def test_a_read_the_pbx_refuses_fails_with_the_fix(check: str) -> None:
    field = "users" if check == "read_users" else "contacts"
    report = assess(facts(**{field: Unreadable("3CX 403 WARNINGS.XAPI.FORBIDDEN")}))
    assert not report.ok
    refused = finding(report, check)
    assert refused.status == "fail" and "3CX 403" in refused.text and refused.fix is not None


def test_an_unreadable_integration_fails_both_of_its_checks() -> None:
    report = assess(facts(integration=Unreadable("3CX 403"), personal_contacts_asked_by=[]))
    assert not report.ok
    assert finding(report, "microsoft365").status == "fail"
    assert finding(report, "user_sync").status == "fail"  # cannot tell that 3CX's own user sync is off


def test_an_unreported_version_and_missing_operations() -> None:
    missing = CheckResult(version="20.0.10", missing_required=[OPERATIONS[0]])
    report = assess(facts(version=None, description=missing))
    assert finding(report, "version").status == "warn"
    assert finding(report, "api").status == "fail"
    assert not report.ok


def test_the_json_form_keeps_the_description_keys_and_adds_every_finding() -> None:
    report = assess(facts(integration=integration(**CONNECTED, AdUsers={"IsEnabled": True})))
    payload = report.as_dict()
    assert payload["ok"] is False
    assert {"version", "missing_required", "missing_optional", "present", "missing_properties"} <= set(payload)
    assert payload["pbx_version"] == "20.0.10.1000"
    assert payload["microsoft365"] == {
        "connected": True,
        "tenant_id": TENANT,
        "user_sync": True,
        "personal_contacts_sync": False,
        "calendar_sync": False,
        "shared_mailboxes_sync": False,
    }
    assert [item["check"] for item in payload["findings"] if item["status"] == "fail"] == ["user_sync"]
    text = render_report(report)
    assert "✗ 3CX's own Microsoft 365 user sync is on" in text
    assert "fix: " in text and text.rstrip().endswith("NOT OK: fix the lines marked ✗ first.")


def test_who_asks_for_personal_contacts_is_the_default_and_each_override_turning_it_on() -> None:
    off = UserOptions(sso=False, office_phone=False, photo=False, personal_contacts=False, calendar=True)
    overrides = [
        OptionOverrides(m365_id="b", upn="bob@contoso.com", personal_contacts=True),
        OptionOverrides(m365_id="a", upn="ada@contoso.com", personal_contacts=True),
        OptionOverrides(m365_id="c", upn="cy@contoso.com", personal_contacts=False),
        OptionOverrides(m365_id="d", upn="di@contoso.com", photo=True),
    ]
    assert personal_contacts_asked_by(off, overrides) == [
        "ada@contoso.com (per-user option)",
        "bob@contoso.com (per-user option)",
    ]
    on = replace(off, personal_contacts=True)
    assert personal_contacts_asked_by(on, overrides)[0] == "SYNC_PERSONAL_CONTACTS=true (tenant default)"
    assert personal_contacts_asked_by(off, []) == []

"""The user sync end to end: fakes for Graph and 3CX, real Table storage (Azurite)."""

from __future__ import annotations

import base64
import logging
from datetime import timedelta
from urllib.parse import unquote, urlsplit

import pytest

from fakes.transport import FakeResponse
from shared.state import LockHeld
from sync.records import OptionOverrides
from sync.user_sync import AVATAR_MAX_BYTES, LOCK_NAME, UserNotFound, run_user_sync
from tests.conftest import Tenant


def _by_email(tenant: Tenant) -> dict[str, dict]:
    return {str(u.get("EmailAddress", "")).lower(): u for u in tenant.pbx.users.values()}


def test_initial_sync_creates_links_and_records_then_a_rerun_writes_nothing(tenant: Tenant) -> None:
    tenant.add_users(12)
    tenant.graph.add_user("guest@contoso.com", user_type="Guest")
    tenant.graph.add_user("nomailbox@contoso.com", has_mailbox=False)
    tenant.graph.add_user("off@contoso.com", account_enabled=False)
    rt = tenant.runtime(EXTENSION_START="200")

    first = run_user_sync(rt)

    assert first.counts["created"] == 12
    assert first.counts["failed"] == 0
    created = _by_email(tenant)
    assert sorted(u["Number"] for u in created.values()) == [str(n) for n in range(200, 212)]
    assert "guest@contoso.com" not in created
    assert "nomailbox@contoso.com" not in created
    assert len(tenant.state.links()) == 12
    (record,) = tenant.state.recent_runs("users")
    assert record.status == "succeeded"
    assert record.counts["created"] == 12

    tenant.reset_pbx_counts()
    second = run_user_sync(tenant.runtime(EXTENSION_START="200"))
    assert second.counts["unchanged"] == 12
    assert not second.plan.actions
    assert tenant.pbx_writes() == 0


def test_changes_reach_3cx_through_delta_and_only_changed_fields_are_patched(tenant: Tenant) -> None:
    ids = tenant.add_users(3)
    run_user_sync(tenant.runtime())
    tenant.graph.update_user(ids[1], displayName="Renamed Person", mobilePhone="+44 (0)20 7946 0000")
    tenant.reset_pbx_counts()

    result = run_user_sync(tenant.runtime())

    assert result.counts["updated"] == 1
    patches = [r for r in tenant.mock.calls if r.request.method == "PATCH"]
    assert len(patches) == 1
    body = patches[0].request.body
    assert b"DisplayName" in body
    assert b"Mobile" in body
    assert b"FirstName" not in body
    assert _by_email(tenant)["user001@contoso.com"]["Mobile"] == "+442079460000"


def test_existing_3cx_user_is_linked_not_duplicated(tenant: Tenant) -> None:
    tenant.pbx.add_user(Number="150", EmailAddress="User000@Contoso.com", FirstName="Old", LastName="Name")
    tenant.add_users(1)

    result = run_user_sync(tenant.runtime())

    assert result.counts["linked"] == 1
    assert result.counts["created"] == 0
    (user,) = tenant.pbx.users.values()
    assert user["Number"] == "150"
    assert user["FirstName"] == "User0"
    assert next(iter(tenant.state.links().values())).origin == "linked"


def test_user_deleted_in_3cx_comes_back_with_its_number(tenant: Tenant) -> None:
    tenant.add_users(2)
    run_user_sync(tenant.runtime(EXTENSION_START="300"))
    victim = _by_email(tenant)["user001@contoso.com"]
    tenant.pbx.delete_user(victim["Id"])

    result = run_user_sync(tenant.runtime(EXTENSION_START="300"))

    assert result.counts["created"] == 1
    back = _by_email(tenant)["user001@contoso.com"]
    assert back["Number"] == victim["Number"]
    assert back["Id"] != victim["Id"]


def test_leavers_are_disabled_and_returners_enabled(tenant: Tenant) -> None:
    ids = tenant.add_users(10)
    run_user_sync(tenant.runtime())
    tenant.graph.update_user(ids[0], accountEnabled=False)

    result = run_user_sync(tenant.runtime())
    assert result.counts["deprovisioned"] == 1
    assert _by_email(tenant)["user000@contoso.com"]["Enabled"] is False

    tenant.graph.update_user(ids[0], accountEnabled=True)
    result = run_user_sync(tenant.runtime())
    assert result.counts["updated"] == 1
    assert _by_email(tenant)["user000@contoso.com"]["Enabled"] is True


def test_with_deprovision_delete_a_3cx_user_that_existed_before_the_connector_is_disabled_not_deleted(
    tenant: Tenant,
) -> None:
    """DEPROVISION=delete removes what the connector created; a 3CX user it only linked is disabled."""
    tenant.pbx.add_user(Number="150", EmailAddress="user000@contoso.com", FirstName="Old", LastName="Name")
    ids = tenant.add_users(10)
    run_user_sync(tenant.runtime(DEPROVISION="delete"))
    assert tenant.state.links()[ids[0]].origin == "linked"
    tenant.graph.soft_delete_user(ids[0])  # linked by e-mail
    tenant.graph.soft_delete_user(ids[1])  # created by the connector

    result = run_user_sync(tenant.runtime(DEPROVISION="delete"))

    assert result.counts["deprovisioned"] == 2
    users = _by_email(tenant)
    assert "user001@contoso.com" not in users
    assert users["user000@contoso.com"]["Number"] == "150"
    assert users["user000@contoso.com"]["Enabled"] is False
    assert tenant.state.links()[ids[0]].deprovisioned == "disabled"
    assert ids[1] not in tenant.state.links()

    tenant.graph.restore_user(ids[0])
    run_user_sync(tenant.runtime(DEPROVISION="delete"))
    assert _by_email(tenant)["user000@contoso.com"]["Enabled"] is True


def test_the_guard_stops_mass_deprovisioning_records_why_and_alerts(
    tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    ids = tenant.add_users(10)
    run_user_sync(tenant.runtime(DEPROVISION="delete"))
    for user_id in ids[:6]:
        tenant.graph.soft_delete_user(user_id)
    tenant.graph.add_user("newcomer@contoso.com")

    with caplog.at_level(logging.INFO):
        result = run_user_sync(tenant.runtime(DEPROVISION="delete", DEPROVISION_MAX_COUNT="5"))

    assert result.counts["created"] == 1
    assert result.counts["deprovisioned"] == 0
    assert len(tenant.pbx.users) == 11
    record = tenant.state.recent_runs("users")[0]
    assert record.status == "partial"
    assert "6 of 10" in (record.guard or "")
    assert record.trigger == "cli"
    assert len(record.held) == 6  # every held-back action, by name, for the approval
    assert all(held.startswith("delete user00") and "(ext " in held for held in record.held)
    assert any("ALERT deletion_guard" in r.getMessage() for r in caplog.records)

    approved = run_user_sync(tenant.runtime(DEPROVISION="delete", DEPROVISION_MAX_COUNT="5"), allow_deprovision=True)
    assert approved.counts["deprovisioned"] == 6
    assert len(tenant.pbx.users) == 5


def test_fault_mass_recreation_is_held_back_recorded_and_alerted_until_approved(
    tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """Four linked 3CX users deleted in 3CX at once: re-creating them all waits for the administrator."""
    tenant.add_users(10)
    run_user_sync(tenant.runtime(EXTENSION_START="300"))
    gone = sorted(tenant.pbx.users.values(), key=lambda user: user["Number"])[:4]
    for user in gone:
        tenant.pbx.delete_user(user["Id"])

    with caplog.at_level(logging.INFO):
        result = run_user_sync(tenant.runtime(EXTENSION_START="300", DEPROVISION_MAX_COUNT="3"))

    assert result.counts["created"] == 0
    assert result.counts["held_creations"] == 4
    assert len(tenant.pbx.users) == 6
    record = tenant.state.recent_runs("users")[0]
    assert record.status == "partial"
    assert "creation guard: 4 3CX users would be created (4 of them linked users" in (record.guard or "")
    assert sorted(record.held) == [f"create user00{i}@contoso.com (ext 30{i})" for i in range(4)]
    assert any(r.getMessage().startswith("ALERT creation_guard ") for r in caplog.records)

    approved = run_user_sync(
        tenant.runtime(EXTENSION_START="300", DEPROVISION_MAX_COUNT="3"), allow_mass_create=True
    )
    assert approved.counts["created"] == 4
    assert sorted(user["Number"] for user in tenant.pbx.users.values()) == [str(n) for n in range(300, 310)]


def test_one_failing_user_does_not_stop_the_others(tenant: Tenant) -> None:
    tenant.add_users(4)
    tenant.pbx.inject(400, count=1, path_pattern=r"^/xapi/v1/Users$", method="POST")

    result = run_user_sync(tenant.runtime())

    assert result.counts["created"] == 3
    assert result.counts["failed"] == 1
    assert result.status == "partial"
    assert tenant.state.recent_runs("users")[0].errors
    # The next run repairs it, and creates no duplicates.
    again = run_user_sync(tenant.runtime())
    assert again.counts["created"] == 1
    assert len(tenant.pbx.users) == 4


def test_an_unreachable_pbx_fails_the_run_with_one_line(tenant: Tenant) -> None:
    tenant.add_users(2)
    tenant.pbx.inject(503, count=50, retry_after=0)

    result = run_user_sync(tenant.runtime())

    assert result.aborted
    assert "\n" not in result.aborted
    assert result.status == "failed"
    assert tenant.state.recent_runs("users")[0].status == "failed"


def test_dry_run_writes_nothing_anywhere(tenant: Tenant) -> None:
    tenant.add_users(3)
    tenant.reset_pbx_counts()

    result = run_user_sync(tenant.runtime(), dry_run=True)

    assert result.counts["created"] == 3
    assert tenant.pbx_writes() == 0
    assert not tenant.pbx.users
    assert tenant.state.links() == {}
    assert tenant.state.mirror() == {}
    assert tenant.state.delta_link("users") is None
    assert tenant.state.recent_runs("users") == []


def test_provision_on_demand_syncs_just_that_user(tenant: Tenant) -> None:
    tenant.add_users(5)

    result = run_user_sync(tenant.runtime(), only_upn="user003@contoso.com")

    assert [a.upn for a in result.plan.actions] == ["user003@contoso.com"]
    assert list(_by_email(tenant)) == ["user003@contoso.com"]
    with pytest.raises(UserNotFound):
        run_user_sync(tenant.runtime(), only_upn="nobody@contoso.com")


def _user_reads(tenant: Tenant) -> tuple[list[str], list[str]]:
    """The `/Users` listings and the single-user reads sent to 3CX, as query strings / paths."""
    gets = [r.request for r in tenant.mock.calls if r.request.method == "GET" and "/xapi/v1/Users" in r.request.url]
    listings = [unquote(r.url.split("?", 1)[1]) for r in gets if urlsplit(r.url).path == "/xapi/v1/Users"]
    singles = [urlsplit(r.url).path for r in gets if urlsplit(r.url).path != "/xapi/v1/Users"]
    return listings, singles


def test_fault_a_one_user_sync_reads_that_3cx_user_not_the_whole_list(tenant: Tenant) -> None:
    """The fault: each `/users` notification re-listed every 3CX user, with every property."""
    ids = tenant.add_users(30)
    run_user_sync(tenant.runtime())
    tenant.graph.update_user(ids[7], displayName="Renamed Person")
    tcx_id = tenant.state.links()[ids[7]].tcx_user_id
    tenant.mock.calls.reset()

    result = run_user_sync(tenant.runtime(), only_user_id=ids[7])

    assert [(a.kind, a.upn) for a in result.plan.actions] == [("update", "user007@contoso.com")]
    listings, singles = _user_reads(tenant)
    assert listings == []
    assert set(singles) == {f"/xapi/v1/Users({tcx_id})"}  # read, then the written field read back
    assert len(singles) == 2
    assert tenant.pbx.users[tcx_id]["DisplayName"] == "Renamed Person"


def test_a_one_user_sync_links_an_existing_3cx_user_found_by_its_e_mail(tenant: Tenant) -> None:
    tenant.add_users(5)
    run_user_sync(tenant.runtime())
    hand_made = tenant.pbx.add_user(FirstName="Nia", EmailAddress="NIA@contoso.com", Number="777")
    nia = tenant.graph.add_user("nia@contoso.com")
    tenant.mock.calls.reset()

    result = run_user_sync(tenant.runtime(), only_user_id=nia)

    assert [(a.kind, a.upn) for a in result.plan.actions] == [("link", "nia@contoso.com")]
    assert tenant.state.links()[nia].tcx_user_id == hand_made["Id"]
    listings, _singles = _user_reads(tenant)
    assert listings and all("$filter=tolower(EmailAddress) eq 'nia@contoso.com'" in query for query in listings)
    assert len(tenant.pbx.users) == 6


def test_a_one_user_sync_creates_under_the_lowest_free_number_reading_numbers_only(tenant: Tenant) -> None:
    tenant.add_users(5)
    run_user_sync(tenant.runtime(EXTENSION_START="100"))
    hire = tenant.graph.add_user("hire@contoso.com")
    tenant.mock.calls.reset()

    run_user_sync(tenant.runtime(EXTENSION_START="100"), only_user_id=hire)

    assert tenant.state.links()[hire].extension == "105"
    listings, _singles = _user_reads(tenant)
    numbers = [query for query in listings if "$filter" not in query]
    assert numbers and all("$select=Id,Number&" in query + "&" for query in numbers)


def test_a_one_user_sync_re_creates_a_user_deleted_in_3cx_under_its_own_number(tenant: Tenant) -> None:
    ids = tenant.add_users(4)
    run_user_sync(tenant.runtime(EXTENSION_START="100"))
    old = tenant.state.links()[ids[2]]
    tenant.pbx.delete_user(old.tcx_user_id)

    run_user_sync(tenant.runtime(EXTENSION_START="100"), only_user_id=ids[2])

    assert tenant.state.links()[ids[2]].extension == old.extension
    assert len(tenant.pbx.users) == 4


def test_fault_a_leaver_arriving_alone_is_measured_against_every_synced_user(tenant: Tenant) -> None:
    """A one-user run reads one 3CX user; the guard's share is still of all the users it links."""
    ids = tenant.add_users(10)
    run_user_sync(tenant.runtime())
    tenant.graph.update_user(ids[4], accountEnabled=False)

    result = run_user_sync(tenant.runtime(DEPROVISION_MAX_COUNT="", DEPROVISION_MAX_PERCENT="20"), only_user_id=ids[4])

    assert result.plan.guard is None
    assert result.counts["deprovisioned"] == 1


def test_fields_3cx_manages_itself_are_noticed_remembered_and_not_written_every_night(tenant: Tenant) -> None:
    """The fault: 3CX computing a display name (or reformatting a number) made every run write it again."""
    ids = tenant.add_users(2, mobile_phone="+49 30 1234567")
    tenant.pbx.normalisers["DisplayName"] = lambda user: f"{user['LastName']}, {user['FirstName']}"
    tenant.pbx.normalisers["Mobile"] = lambda user: (user["Mobile"] or "").replace("+49", "0049 ", 1)

    run_user_sync(tenant.runtime())
    first = tenant.state.recent_runs("users")[0]
    notes = [line for line in first.skipped if "3CX keeps" in line]
    assert len(notes) == 4  # each field of each user, said once
    assert any("DisplayName as 'Example, User0'" in line for line in notes)
    tenant.reset_pbx_counts()

    again = run_user_sync(tenant.runtime())
    assert again.counts["updated"] == 0
    assert tenant.pbx_writes() == 0
    assert not [line for line in tenant.state.recent_runs("users")[0].skipped if "3CX keeps" in line]

    tenant.graph.update_user(ids[1], displayName="New Display Name")  # a new source value is written once more
    renamed = run_user_sync(tenant.runtime())
    assert renamed.counts["updated"] == 1
    assert run_user_sync(tenant.runtime()).counts["updated"] == 0


SECOND_WRITER = "3CX's own Microsoft 365 user sync is on"


def test_fault_with_3cxs_own_user_sync_on_the_user_sync_applies_nothing_and_says_why(
    tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """Two writers of the same users: 3CX's own sync re-creates and overwrites what the connector does."""
    tenant.add_users(3)
    tenant.pbx.configure_microsoft365(ApplicationId="app", TenantId="tenant", AdUsers={"IsEnabled": True})

    planned = run_user_sync(tenant.runtime(), dry_run=True)
    assert planned.counts["created"] == 3  # a dry run still shows the plan, and says it would not apply
    assert any(notice.startswith(SECOND_WRITER) for notice in planned.plan.notices)

    with caplog.at_level(logging.INFO):
        result = run_user_sync(tenant.runtime())

    assert not tenant.pbx.users
    assert result.status == "failed" and result.refused is not None
    (record,) = tenant.state.recent_runs("users")
    assert record.status == "failed"
    (error,) = record.errors
    assert error.startswith(SECOND_WRITER) and "Integrations → Microsoft 365" in error
    assert any("run_summary" in r.getMessage() and SECOND_WRITER in r.getMessage() for r in caplog.records)

    tenant.pbx.configure_microsoft365(AdUsers={"IsEnabled": False})
    assert run_user_sync(tenant.runtime()).counts["created"] == 3


@pytest.mark.parametrize(
    ("integration", "notice"),
    [
        ({}, "3CX's own Microsoft 365 integration is not connected"),
        ({"ApplicationId": "app", "TenantId": "tenant"}, "its personal-contacts sync is off"),
        ({"ApplicationId": "app", "TenantId": "tenant", "AdUsers": {"SyncPersonalContacts": True}}, None),
    ],
)
def test_personal_contacts_that_3cx_cannot_copy_are_said_once_in_the_plan_and_the_summary(
    tenant: Tenant, caplog: pytest.LogCaptureFixture, integration: dict, notice: str | None
) -> None:
    tenant.add_users(3)
    if integration:
        tenant.pbx.configure_microsoft365(**integration)

    with caplog.at_level(logging.INFO):
        result = run_user_sync(tenant.runtime(SYNC_PERSONAL_CONTACTS="true"))

    assert result.counts["created"] == 3
    assert all(user["MS365ContactsEnabled"] is True for user in tenant.pbx.users.values())
    summary = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("run_summary "))
    record = tenant.state.recent_runs("users")[0]
    if notice is None:
        assert result.plan.notices == []
        assert "notice=" not in summary
    else:
        (said,) = result.plan.notices
        assert said.startswith("personal contacts: on for 3 users, but 3CX copies none") and notice in said
        assert summary.count("personal contacts: on for 3 users") == 1
        assert said in record.skipped


def test_a_queued_user_change_while_3cx_syncs_users_itself_is_done_not_retried(tenant_env: Tenant) -> None:
    from shared.work_items import UserWork
    from sync.worker import Done, handle_work

    (user_id,) = tenant_env.add_users(1)
    tenant_env.pbx.configure_microsoft365(ApplicationId="app", TenantId="tenant", AdUsers={"IsEnabled": True})

    outcome = handle_work(tenant_env.runtime(), UserWork(user_id=user_id), scheduler=lambda *_: None)

    assert isinstance(outcome, Done)
    assert not tenant_env.pbx.users


def test_personal_contacts_reach_a_users_3cx_phonebook_through_3cxs_own_sync(tenant: Tenant) -> None:
    """The published route end to end: the option sets `MS365ContactsEnabled`, 3CX's own sync copies."""
    ids = tenant.add_users(3)
    for user_id in ids:
        tenant.graph.add_contact(user_id, givenName="Pat", surname="Friend", mobilePhone="+44 7700 900123")
    tenant.state.save_option_overrides(
        OptionOverrides(m365_id=ids[2], upn="user002@contoso.com", personal_contacts=False)
    )
    run_user_sync(tenant.runtime(SYNC_PERSONAL_CONTACTS="true"))
    tcx = {link.m365_id: link.tcx_user_id for link in tenant.state.links().values()}

    assert tenant.pbx.run_own_microsoft365_sync(tenant.graph.outlook_contacts) == {}  # not connected: nothing
    tenant.pbx.configure_microsoft365(ApplicationId="app", TenantId="tenant", AdUsers={"SyncPersonalContacts": True})
    copied = tenant.pbx.run_own_microsoft365_sync(tenant.graph.outlook_contacts)

    assert copied == {tcx[ids[0]]: 1, tcx[ids[1]]: 1}  # the per-user option off: nothing copied
    assert tenant.pbx.personal_contacts(tcx[ids[0]]) == [
        {"FirstName": "Pat", "LastName": "Friend", "PhoneNumbers": ["+44 7700 900123"]}
    ]
    assert tenant.pbx.personal_contacts(tcx[ids[2]]) == []


def test_fault_a_one_user_sync_that_cannot_read_graph_is_recorded_as_failed(tenant: Tenant) -> None:
    """Found by the chaos soak: the one user was read before the run began, so a Graph outage left no record."""
    (user_id,) = tenant.add_users(1)
    tenant.graph.inject(503, count=100, retry_after=0, path_pattern=r"^/v1\.0/users/")

    result = run_user_sync(tenant.runtime(), only_user_id=user_id, trigger="queue")

    assert result.aborted is not None and "503" in result.aborted
    (record,) = tenant.state.recent_runs("users")
    assert (record.status, record.subject, record.trigger) == ("failed", user_id, "queue")


def test_fault_a_re_create_whose_answer_was_lost_makes_no_second_extension(tenant: Tenant) -> None:
    """Found by the chaos soak: 3CX made the user, the answer was lost, and the next run made another."""
    ids = tenant.add_users(2)
    run_user_sync(tenant.runtime(EXTENSION_START="100"))
    old = tenant.state.links()[ids[0]]
    tenant.pbx.delete_user(old.tcx_user_id)
    tenant.pbx.inject_drop(after_handling=True, method="POST", path_pattern=r"/Users$")

    run_user_sync(tenant.runtime(EXTENSION_START="100"))  # the re-create happens; its answer is lost
    run_user_sync(tenant.runtime(EXTENSION_START="100"))

    addresses = sorted(str(user["EmailAddress"]).lower() for user in tenant.pbx.users.values())
    assert addresses == ["user000@contoso.com", "user001@contoso.com"]
    relinked = tenant.state.links()[ids[0]]
    assert relinked.extension == old.extension
    assert tenant.pbx.users[relinked.tcx_user_id]["Number"] == old.extension


def test_3cxs_own_calendar_sync_never_writes_the_status_of_a_user_the_connector_drives(tenant: Tenant) -> None:
    """3CX's own calendar sync sets statuses from meetings: for users with the calendar option the
    connector keeps it off (`MS365CalendarEnabled`), so only one writer sets their status."""
    ids = tenant.add_users(2)
    tenant.state.save_option_overrides(OptionOverrides(m365_id=ids[1], upn="user001@contoso.com", calendar=False))
    run_user_sync(tenant.runtime())
    tcx = {link.m365_id: link.tcx_user_id for link in tenant.state.links().values()}
    for user_id in ids:  # an administrator switches 3CX's own calendar sync on for everyone
        tenant.runtime().tcx.update_user(tcx[user_id], {"MS365CalendarEnabled": True})
    tenant.pbx.configure_microsoft365(ApplicationId="app", TenantId="tenant", AdUsers={"SyncEvents": True})

    result = run_user_sync(tenant.runtime())
    tenant.pbx.run_own_microsoft365_sync(tenant.graph.outlook_contacts, in_meeting=lambda email: True)

    assert [(a.kind, a.upn) for a in result.plan.actions] == [("update", "user000@contoso.com")]
    assert tenant.pbx.users[tcx[ids[0]]]["CurrentProfileName"] == "Available"  # the connector's to set
    assert tenant.pbx.users[tcx[ids[1]]]["CurrentProfileName"] == "Out of office"  # left to 3CX


def test_runs_never_overlap(tenant: Tenant) -> None:
    tenant.add_users(1)
    with tenant.state.lock(LOCK_NAME, ttl=timedelta(minutes=5)), pytest.raises(LockHeld):
        run_user_sync(tenant.runtime())
    assert not tenant.pbx.users
    run_user_sync(tenant.runtime())  # released again
    assert len(tenant.pbx.users) == 1


def test_an_expired_delta_link_falls_back_to_a_full_round(tenant: Tenant) -> None:
    ids = tenant.add_users(10)
    run_user_sync(tenant.runtime())
    tenant.graph.hard_delete_user(ids[9])
    tenant.graph.expire_delta_tokens()

    result = run_user_sync(tenant.runtime())

    assert result.counts["deprovisioned"] == 1
    assert set(tenant.state.mirror()) == set(ids[:9])


def test_selected_groups_count_nested_members(tenant: Tenant) -> None:
    ids = tenant.add_users(4)
    inner = tenant.graph.add_group("Inner", members=[ids[2]])
    outer = tenant.graph.add_group("Outer", members=[ids[0], inner])

    result = run_user_sync(tenant.runtime(USER_SYNC_SCOPE="selected_groups", USER_SYNC_GROUPS=outer))

    assert {a.upn for a in result.plan.of_kind("create")} == {"user000@contoso.com", "user002@contoso.com"}


def test_photos_become_avatars_only_when_they_change(tenant: Tenant) -> None:
    ids = tenant.add_users(2)
    tenant.graph.set_photo(ids[0], b"\xff\xd8first-photo")
    run_user_sync(tenant.runtime(SYNC_PHOTO="true"))
    avatar = _by_email(tenant)["user000@contoso.com"].get("ContactImage")
    assert avatar
    assert avatar.startswith("data:image/jpeg;base64,")

    tenant.reset_pbx_counts()
    run_user_sync(tenant.runtime(SYNC_PHOTO="true"))
    assert tenant.pbx_writes() == 0

    tenant.graph.set_photo(ids[0], b"\xff\xd8second-photo")
    result = run_user_sync(tenant.runtime(SYNC_PHOTO="true"))
    assert result.counts["avatars"] == 1
    assert _by_email(tenant)["user000@contoso.com"]["ContactImage"] != avatar


def test_an_avatar_is_the_photo_at_the_avatar_size_with_its_real_content_type(tenant: Tenant) -> None:
    """The fault: the original photo (any size Entra holds) was written, always labelled JPEG."""
    [user_id] = tenant.add_users(1)
    tenant.graph.set_photo(user_id, b"\x89PNG large original " * 5000, content_type="image/png")

    run_user_sync(tenant.runtime(SYNC_PHOTO="true"))

    sized = base64.b64encode(tenant.graph.photo_content(user_id, "96x96")).decode()
    assert _by_email(tenant)["user000@contoso.com"]["ContactImage"] == f"data:image/png;base64,{sized}"


def test_fault_a_photo_beyond_the_avatar_cap_is_not_written_nor_fetched_again_until_it_changes(
    tenant: Tenant,
) -> None:
    [user_id] = tenant.add_users(1)
    too_big = b"\xff\xd8" + b"x" * AVATAR_MAX_BYTES  # 48 pixels: no 96x96 version, the original is taken
    tenant.graph.set_photo(user_id, too_big, width=48, height=48)

    first = run_user_sync(tenant.runtime(SYNC_PHOTO="true"))

    assert first.counts["avatars"] == 0
    (failure,) = tenant.state.recent_runs("users")[0].errors
    assert failure.startswith("user000@contoso.com: the photo is ") and "avatar left as it is" in failure
    assert not _by_email(tenant)["user000@contoso.com"].get("ContactImage")
    again = run_user_sync(tenant.runtime(SYNC_PHOTO="true"))
    assert again.plan.of_kind("avatar") == []  # the same photo is not fetched every night

    tenant.graph.set_photo(user_id, b"\xff\xd8small", width=48, height=48)
    changed = run_user_sync(tenant.runtime(SYNC_PHOTO="true"))
    assert changed.counts["avatars"] == 1


def test_a_photo_that_is_not_an_image_is_never_written_as_an_avatar(tenant: Tenant) -> None:
    [user_id] = tenant.add_users(1)
    tenant.graph.set_photo(user_id, b"<html>", content_type="text/html")

    run_user_sync(tenant.runtime(SYNC_PHOTO="true"))

    (failure,) = tenant.state.recent_runs("users")[0].errors
    assert failure == "user000@contoso.com: the photo is text/html, not an image; avatar left as it is"
    assert not _by_email(tenant)["user000@contoso.com"].get("ContactImage")


def test_one_users_photo_failing_inside_the_batch_skips_only_that_avatar(tenant: Tenant) -> None:
    """A 500 for one photo inside the `$batch`: everyone is synced, that avatar waits for a later run."""
    ids = tenant.add_users(3)
    for user_id in ids:
        tenant.graph.set_photo(user_id, b"\xff\xd8first-" + user_id.encode())
    tenant.graph.inject_batch_item(500, count=100, url_pattern=f"/users/{ids[1]}/photo$")  # every run, until fixed

    first = run_user_sync(tenant.runtime(SYNC_PHOTO="true"))

    assert first.counts["created"] == 3
    assert first.counts["avatars"] == 2
    users = _by_email(tenant)
    assert not users["user001@contoso.com"].get("ContactImage")
    assert users["user000@contoso.com"]["ContactImage"]
    (record,) = tenant.state.recent_runs("users")
    assert record.status == "succeeded"
    assert record.skipped == [
        "user001@contoso.com: avatar left as it is, tried again next run: its photo could not be read"
        " (Graph answered 500 generalException: Injected failure 500.)"
    ]

    # A photo change meanwhile, read while Graph still fails: the avatar and the stored etag stay.
    tenant.graph.set_photo(ids[0], b"\xff\xd8second")
    tenant.graph.inject_batch_item(500, count=100, url_pattern=f"/users/{ids[0]}/photo$")
    before = _by_email(tenant)["user000@contoso.com"]["ContactImage"]
    etag = tenant.state.links()[ids[0]].photo_etag
    second = run_user_sync(tenant.runtime(SYNC_PHOTO="true"))
    assert second.counts["avatars"] == 0
    assert _by_email(tenant)["user000@contoso.com"]["ContactImage"] == before
    assert tenant.state.links()[ids[0]].photo_etag == etag
    assert tenant.state.links()[ids[1]].photo_etag is None

    tenant.graph.batch_item_faults.clear()  # Graph reads the photos again
    third = run_user_sync(tenant.runtime(SYNC_PHOTO="true"))
    assert third.counts["avatars"] == 2
    assert tenant.state.links()[ids[0]].photo_etag == tenant.graph.photo_etag(ids[0])
    assert tenant.state.links()[ids[1]].photo_etag == tenant.graph.photo_etag(ids[1])
    assert _by_email(tenant)["user001@contoso.com"]["ContactImage"]


def test_messy_directory_data_never_crashes_a_run(tenant: Tenant) -> None:
    tenant.graph.add_user("nosurname@contoso.com", given_name="Cher", surname=None)
    tenant.graph.add_user(
        "greek@contoso.com", given_name="Αλέξανδρος", surname="Παπαδόπουλος", display_name="Αλέξανδρος Π."
    )
    tenant.graph.add_user("cjk@contoso.com", given_name="太郎", surname="山田")
    tenant.graph.add_user("long@contoso.com", given_name="L" * 200, surname="N" * 200, display_name="D" * 200)
    tenant.graph.add_user(
        "phones@contoso.com", mobile_phone="call me maybe", business_phones=["+1 (555) 010-0199 ext 5", ""]
    )
    tenant.graph.add_user("empty@contoso.com", given_name=None, surname=None, display_name=None)

    result = run_user_sync(tenant.runtime(SYNC_OFFICE_PHONE="true"))

    assert result.aborted is None
    assert result.counts["created"] + result.counts["failed"] == 6
    emails = _by_email(tenant)
    assert emails["greek@contoso.com"]["LastName"] == "Παπαδόπουλος"
    assert emails["phones@contoso.com"]["Mobile"] == ""
    assert emails["phones@contoso.com"]["OutboundCallerID"] == "+15550100199"


def test_a_number_held_by_a_queue_is_skipped_over(tenant: Tenant) -> None:
    tenant.pbx.other_dn_numbers.update({"400", "401"})  # e.g. a queue and a ring group
    tenant.add_users(2)

    result = run_user_sync(tenant.runtime(EXTENSION_START="400"))

    assert result.counts["created"] == 2
    assert sorted(u["Number"] for u in tenant.pbx.users.values()) == ["402", "403"]
    assert sorted(link.extension for link in tenant.state.links().values()) == ["402", "403"]


def test_removals_arriving_one_at_a_time_add_up_against_the_guard(tenant: Tenant) -> None:
    ids = tenant.add_users(10)
    run_user_sync(tenant.runtime())
    results = []
    for user_id in ids[:3]:  # as three /users notifications would, minutes apart
        tenant.graph.update_user(user_id, accountEnabled=False)
        results.append(run_user_sync(tenant.runtime(DEPROVISION_MAX_COUNT="2"), only_user_id=user_id))

    assert [r.counts["deprovisioned"] for r in results] == [1, 1, 0]
    guard = results[2].plan.guard
    assert guard is not None
    assert "after 2 in the last 24 hours" in guard.describe()
    assert sum(1 for u in tenant.pbx.users.values() if u["Enabled"] is False) == 2


def test_a_linked_user_shifted_out_of_a_listing_page_is_confirmed_and_never_duplicated(tenant: Tenant) -> None:
    """The fault: `/Users` pages with $skip, so a user someone deletes mid-listing shifts another
    linked user out of the pages; that user was re-created under a new number, the old one orphaned."""
    hand_made = tenant.pbx.add_user(FirstName="Temp", EmailAddress="temp@contoso.com")  # nobody's, the lowest Id
    tenant.add_users(25)
    run_user_sync(tenant.runtime())
    pages = 0
    original_route = tenant.pbx.route

    def route(request):  # someone deletes the hand-made user right after the first page
        nonlocal pages
        answer = original_route(request)
        if request.method == "GET" and request.path.endswith("/Users"):
            pages += 1
            if pages == 1 and hand_made["Id"] in tenant.pbx.users:
                tenant.pbx.delete_user(hand_made["Id"])
        return answer

    tenant.pbx.route = route  # type: ignore[method-assign]
    before = {user["Number"] for user in tenant.pbx.users.values()} - {hand_made["Number"]}
    rt = tenant.runtime()
    rt.tcx.page_size = 10

    result = run_user_sync(rt)

    assert pages >= 2
    assert result.counts["created"] == 0
    assert {user["Number"] for user in tenant.pbx.users.values()} == before  # no duplicate, none orphaned


def _empty_user_listing(tenant: Tenant) -> None:
    """3CX answers one `/Users` listing with no users at all (a PBX restarting, say)."""
    original_route = tenant.pbx.route
    answered: list[bool] = []

    def route(request):
        if request.method == "GET" and request.path.endswith("/Users") and not answered:
            answered.append(True)
            return FakeResponse(200, {"@odata.count": 0, "value": []})
        return original_route(request)

    tenant.pbx.route = route  # type: ignore[method-assign]


def test_an_empty_user_listing_makes_no_duplicate(tenant: Tenant) -> None:
    """The fault: one empty `/Users` answer made 19 duplicate extensions out of 30 users."""
    tenant.add_users(30)
    run_user_sync(tenant.runtime())
    numbers = sorted(user["Number"] for user in tenant.pbx.users.values())
    _empty_user_listing(tenant)

    result = run_user_sync(tenant.runtime())

    assert (result.status, result.counts["created"], result.counts["unchanged"]) == ("succeeded", 0, 30)
    assert sorted(user["Number"] for user in tenant.pbx.users.values()) == numbers


def test_a_listing_missing_too_many_linked_users_is_not_trusted(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sync import user_sync

    tenant.add_users(8)
    run_user_sync(tenant.runtime())
    monkeypatch.setattr(user_sync, "MAX_UNLISTED", 5)
    _empty_user_listing(tenant)

    result = run_user_sync(tenant.runtime())

    assert result.status == "failed"
    assert "8 linked users were not among them" in (result.aborted or "")
    assert len(tenant.pbx.users) == 8


def test_a_user_deleted_in_3cx_comes_back_only_under_its_own_number(tenant: Tenant) -> None:
    """A re-create never steps to another number: if its number is taken where the user list
    cannot see (the old user may still exist), the action fails and says so; no second extension."""
    (user_id,) = tenant.add_users(1)
    run_user_sync(tenant.runtime())
    (old,) = tenant.pbx.users.values()
    tenant.pbx.delete_user(old["Id"])
    tenant.pbx.other_dn_numbers.add(old["Number"])  # its number now answers ALREADY_IN_USE

    result = run_user_sync(tenant.runtime())

    assert tenant.pbx.users == {}
    assert result.counts["created"] == 0 and result.counts["failed"] == 1
    (failure,) = [o.error for o in result.outcomes if not o.ok]
    assert f"number {old['Number']}" in (failure or "")
    assert tenant.state.links()[user_id].extension == old["Number"]  # kept for when it is free again

"""The user-sync rules as data in, data out: no HTTP, no storage."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.graph_models import GraphUser, PhotoInfo, PhotoUnreadable
from shared.settings import DeprovisionPolicy, SyncScope
from shared.threecx_models import TcxUser
from sync.options import UserOptions
from sync.records import KeptValue, Link
from sync.users import (
    CreateUser,
    CreationHold,
    DeleteUser,
    DeprovisionGuard,
    DisableUser,
    FieldChange,
    ForgetLink,
    GuardHold,
    LinkUser,
    ScopeRule,
    SetAvatar,
    Skip,
    UpdateUser,
    UserSyncConfig,
    desired_fields,
    field_changes,
    plan_users,
    same_value,
)

DEFAULTS = UserOptions(sso=False, office_phone=False, photo=False, personal_contacts=False, calendar=True)
EXCHANGE = [
    {"service": "exchange", "capabilityStatus": "Enabled", "servicePlanId": "efb87545-963c-4e0d-99df-69c6916d9eb0"}
]


def graph_user(upn: str, uid: str | None = None, **fields: Any) -> GraphUser:
    local = upn.split("@")[0]
    data: dict[str, Any] = {
        "id": uid or f"id-{local}",
        "userPrincipalName": upn,
        "mail": upn,
        "givenName": local.capitalize(),
        "surname": "Example",
        "displayName": f"{local.capitalize()} Example",
        "mobilePhone": None,
        "businessPhones": [],
        "accountEnabled": True,
        "userType": "Member",
        "assignedPlans": EXCHANGE,
    }
    data.update(fields)
    return GraphUser.model_validate(data)


def tcx_user(uid: int, number: str, email: str | None = None, **fields: Any) -> TcxUser:
    return TcxUser.model_validate({"Id": uid, "Number": number, "EmailAddress": email, "Enabled": True, **fields})


def synced_tcx(user: GraphUser, uid: int, number: str, options: UserOptions = DEFAULTS) -> TcxUser:
    """A 3CX user that already has exactly what `user` should give it."""
    return TcxUser.model_validate({"Id": uid, "Number": number, **desired_fields(user, options)})


def link(user: GraphUser, tcx_id: int, number: str, **fields: Any) -> Link:
    return Link.model_validate(
        {
            "m365_id": user.id,
            "upn": user.user_principal_name or "",
            "tcx_user_id": tcx_id,
            "extension": number,
            "origin": "created",
            **fields,
        }
    )


NO_CONFIG = UserSyncConfig()
NO_LIMITS_CONFIG = UserSyncConfig(allow_mass_create=True)


def plan(source, target, links=(), config=NO_CONFIG, options=None, photos=None, only=None):
    return plan_users(
        source, target, {lnk.m365_id: lnk for lnk in links}, options or {}, DEFAULTS, config, photos, only
    )


# -- who takes part -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "takes_part"),
    [
        ({}, True),
        ({"userType": None}, True),  # Graph leaves the type out for some members: that is a member
        ({"accountEnabled": False}, False),
        ({"userType": "Guest"}, False),
        ({"assignedPlans": []}, False),
        ({"assignedPlans": [{**EXCHANGE[0], "capabilityStatus": "Suspended"}]}, False),
        ({"assignedPlans": [{"service": "SharePoint", "capabilityStatus": "Enabled"}]}, False),
    ],
)
def test_only_enabled_members_with_a_mailbox_take_part(fields: dict[str, Any], takes_part: bool) -> None:
    result = plan([graph_user("ann@contoso.com", **fields)], [])
    assert bool(result.of_kind("create")) is takes_part


@pytest.mark.parametrize(
    ("scope", "created"),
    [
        (ScopeRule(SyncScope.ALL), {"ann", "bob", "cid"}),
        (ScopeRule(SyncScope.ALL_EXCEPT, frozenset({"bob@contoso.com"})), {"ann", "cid"}),
        (ScopeRule(SyncScope.SELECTED_USERS, frozenset({"bob@contoso.com"})), {"bob"}),
        (ScopeRule(SyncScope.SELECTED_GROUPS, group_member_ids=frozenset({"id-ann", "id-cid"})), {"ann", "cid"}),
    ],
)
def test_scope_decides_who_is_created(scope: ScopeRule, created: set[str]) -> None:
    users = [graph_user(f"{name}@contoso.com") for name in ("ann", "bob", "cid")]
    result = plan(users, [], config=UserSyncConfig(scope=scope))
    assert {a.upn.split("@")[0] for a in result.of_kind("create")} == created


@pytest.mark.parametrize(
    ("upn", "mail", "listed"),
    [
        ("Bob@Contoso.com", "robert@contoso.com", True),  # the UPN, case ignored
        ("rob@contoso.onmicrosoft.com", "BOB@Contoso.com", True),  # the mail, case ignored
        ("bob@contoso.com", None, True),  # no mail: the UPN alone decides
        ("ann@contoso.com", None, False),
        ("ann@contoso.com", "ann@contoso.com", False),
    ],
)
def test_scope_lists_match_upn_or_mail_ignoring_case(upn: str, mail: str | None, listed: bool) -> None:
    """USER_SYNC_USERS names a user by UPN or by mail, in any letter case."""
    user = graph_user(upn, mail=mail)
    names = frozenset({"bob@contoso.com"})
    assert ScopeRule(SyncScope.SELECTED_USERS, names).admits(user) is listed
    assert ScopeRule(SyncScope.ALL_EXCEPT, names).admits(user) is not listed


# -- matching and numbers -------------------------------------------------------------------------


def test_existing_3cx_user_with_the_upn_as_email_is_linked_not_duplicated() -> None:
    ann = graph_user("Ann@Contoso.com")
    names = {"FirstName": "Ann", "LastName": "Example", "DisplayName": "A. Example"}
    switches = {"MS365SignInEnabled": False, "MS365ContactsEnabled": False, "MS365CalendarEnabled": False}
    existing = tcx_user(7, "105", "ann@contoso.com", **names, Mobile="+15550100", **switches)
    result = plan([ann], [existing])
    # The link carries who, which 3CX user and number, and what it changes there (old and new);
    # the e-mail differs in case only, which is no change.
    changes = {"DisplayName": FieldChange("A. Example", "Ann Example"), "Mobile": FieldChange("+15550100", "")}
    assert result.actions == [LinkUser(ann.id, "Ann@Contoso.com", 7, "105", changes)]


def test_one_3cx_user_is_never_linked_to_two_m365_users() -> None:
    """Two M365 users matching one unlinked 3CX user: the first by UPN (case ignored) takes it."""
    # Lower-cased, 'ann_lee' sorts before 'annie'; upper-cased or case-sensitive it would not.
    first = graph_user("ann_lee@contoso.com", mail="team@contoso.com")
    second = graph_user("Annie@contoso.com", mail="team@contoso.com")
    result = plan([second, first], [tcx_user(7, "105", "team@contoso.com")])
    assert [(a.m365_id, a.upn, a.tcx_user_id) for a in result.of_kind("link")] == [(first.id, "ann_lee@contoso.com", 7)]


def test_match_also_uses_mail_when_it_differs_from_the_upn() -> None:
    ann = graph_user("ann@contoso.onmicrosoft.com", mail="ann.example@contoso.com")
    result = plan([ann], [tcx_user(7, "105", "ANN.EXAMPLE@contoso.com")])
    assert [a.kind for a in result.actions] == ["link"]


def test_a_3cx_user_linked_to_someone_else_is_not_matched_again() -> None:
    ann, bob = graph_user("ann@contoso.com"), graph_user("bob@contoso.com", mail="ann@contoso.com")
    cid = graph_user("cid@contoso.com")  # after bob in UPN order: the skip does not end the plan
    existing = synced_tcx(ann, 7, "105")
    result = plan([ann, bob, cid], [existing], links=[link(ann, 7, "105")])
    assert [(a.kind, a.upn) for a in result.actions] == [("create", "cid@contoso.com")]
    (skip,) = result.skipped
    assert skip.upn == "bob@contoso.com"
    assert skip.reason == "e-mail ann@contoso.com is already used by extension 105"


def test_new_users_get_the_lowest_free_numbers_from_extension_start() -> None:
    users = [graph_user(f"u{i}@contoso.com") for i in range(3)]
    target = [tcx_user(1, "100"), tcx_user(2, "102"), tcx_user(3, "099")]
    result = plan(users, target, config=UserSyncConfig(extension_start=100))
    assert sorted(a.extension for a in result.of_kind("create")) == ["101", "103", "104"]


def test_without_extension_start_3cx_picks_the_number() -> None:
    ann = graph_user("ann@contoso.com", mobilePhone="+44 20 7946 0000")
    result = plan([ann], [])
    # The creation carries who and every field the new 3CX user gets; no number: 3CX picks it.
    assert result.actions == [
        CreateUser(
            ann.id,
            "ann@contoso.com",
            None,
            {
                "FirstName": "Ann",
                "LastName": "Example",
                "DisplayName": "Ann Example",
                "EmailAddress": "ann@contoso.com",
                "Mobile": "+442079460000",
                "MS365SignInEnabled": False,
                "MS365ContactsEnabled": False,
                "Enabled": True,
                "MS365CalendarEnabled": False,
            },
        )
    ]


def test_fault_a_re_create_whose_answer_was_lost_is_linked_next_run_not_made_twice() -> None:
    """3CX made the re-created user but the answer never came: the next run finds an unlinked
    3CX user with the link's address (and number) and links it, instead of a second extension."""
    ann = graph_user("ann@contoso.com")
    made_unseen = tcx_user(2, "100", "ann@contoso.com", **desired_fields(ann, DEFAULTS))
    result = plan([ann], [made_unseen], [link(ann, 1, "100")], config=UserSyncConfig(extension_start=100))
    assert result.actions == [LinkUser(ann.id, "ann@contoso.com", 2, "100", {})]


def test_a_3cx_user_found_for_a_re_link_is_not_linked_twice() -> None:
    ann = graph_user("ann@contoso.com")
    bob = graph_user("bob@contoso.com", mail="ann@contoso.com")  # after ann in UPN order, same address
    made_unseen = tcx_user(3, "100", "ann@contoso.com", **desired_fields(ann, DEFAULTS))
    result = plan([ann, bob], [made_unseen], [link(ann, 1, "100"), link(bob, 2, "101")], config=NO_LIMITS_CONFIG)
    assert [(a.kind, a.upn) for a in result.actions] == [("link", "ann@contoso.com"), ("create", "bob@contoso.com")]


def test_fault_a_re_created_user_gets_its_avatar_again() -> None:
    ann = graph_user("ann@contoso.com")
    photo_on = UserOptions(**{**DEFAULTS.as_dict(), "photo": True})
    result = plan(
        [ann],
        [],
        [link(ann, 1, "100", photo_etag="e1")],
        options={ann.id: photo_on},
        photos={ann.id: PhotoInfo(user_id=ann.id, etag="e1")},
    )
    assert [(a.kind, getattr(a, "photo_etag", None)) for a in result.actions] == [("create", None), ("avatar", "e1")]


def test_a_re_linked_user_gets_its_avatar_again() -> None:
    ann = graph_user("ann@contoso.com")
    photo_on = UserOptions(**{**DEFAULTS.as_dict(), "photo": True})
    made_unseen = tcx_user(2, "100", "ann@contoso.com", **desired_fields(ann, photo_on))
    result = plan(
        [ann],
        [made_unseen],
        [link(ann, 1, "100", photo_etag="e1")],
        options={ann.id: photo_on},
        photos={ann.id: PhotoInfo(user_id=ann.id, etag="e1")},
    )
    assert [a.kind for a in result.actions] == ["link", "avatar"]


def test_numbers_of_vanished_linked_users_are_not_handed_to_newcomers() -> None:
    gone, new = graph_user("gone@contoso.com"), graph_user("new@contoso.com")
    config = UserSyncConfig(extension_start=100, allow_mass_create=True)  # two creations beside one link
    result = plan([gone, new], [], links=[link(gone, 9, "100")], config=config)
    creates = {a.upn: a for a in result.of_kind("create")}
    assert creates["gone@contoso.com"].extension == "100"
    assert creates["gone@contoso.com"].recreate
    assert creates["new@contoso.com"].extension == "101"


def test_a_linked_user_deleted_in_3cx_comes_back_with_a_new_number_if_its_own_was_taken() -> None:
    ann = graph_user("ann@contoso.com")
    result = plan(
        [ann],
        [tcx_user(20, "100", "someone@else.com")],
        links=[link(ann, 9, "100")],
        config=UserSyncConfig(extension_start=100),
    )
    assert result.actions == [
        CreateUser(ann.id, "ann@contoso.com", "101", desired_fields(ann, DEFAULTS), recreate=True)
    ]


def test_numbers_never_change_and_are_never_written() -> None:
    ann = graph_user("ann@contoso.com", displayName="Ann Renamed")
    result = plan([ann], [synced_tcx(graph_user("ann@contoso.com"), 7, "105")], links=[link(ann, 7, "105")])
    assert result.actions == [
        UpdateUser(ann.id, "ann@contoso.com", 7, "105", {"DisplayName": FieldChange("Ann Example", "Ann Renamed")})
    ]


# -- fields ----------------------------------------------------------------------------------------


def test_only_differing_fields_are_updated_and_unchanged_users_are_counted() -> None:
    ann, bob = graph_user("ann@contoso.com", mobilePhone="+44 20 7946 0000"), graph_user("bob@contoso.com")
    cid = graph_user("cid@contoso.com")
    target = [synced_tcx(graph_user("ann@contoso.com"), 1, "100"), synced_tcx(bob, 2, "101"), synced_tcx(cid, 3, "102")]
    result = plan([ann, bob, cid], target, links=[link(ann, 1, "100"), link(bob, 2, "101"), link(cid, 3, "102")])
    (action,) = result.actions
    assert action.changes == {"Mobile": FieldChange("", "+442079460000")}
    assert result.unchanged == 2  # bob and cid: every unchanged user counts


def test_a_name_differing_only_in_case_is_rewritten_but_an_email_is_not() -> None:
    """Letter case is part of a name as people see it; e-mail addresses ignore case."""
    ann = graph_user("ann@contoso.com")
    current = synced_tcx(ann, 7, "105").model_copy(
        update={"display_name": "ann example", "email_address": "ANN@CONTOSO.COM"}
    )
    result = plan([ann], [current], links=[link(ann, 7, "105")])
    assert result.actions == [
        UpdateUser(ann.id, "ann@contoso.com", 7, "105", {"DisplayName": FieldChange("ann example", "Ann Example")})
    ]


@pytest.mark.parametrize(
    ("current", "wanted", "changed"),
    [
        (None, "", False),  # a missing string is ''
        ("", "", False),
        (None, "ann@contoso.com", True),
        ("ann@contoso.com", "", True),
    ],
)
def test_a_missing_string_equals_empty_in_every_field(current: str | None, wanted: str, changed: bool) -> None:
    tcx = tcx_user(7, "105", current, Mobile=current)
    changes = field_changes({"EmailAddress": wanted, "Mobile": wanted}, tcx)
    expected = {"EmailAddress": FieldChange(current, wanted), "Mobile": FieldChange(current, wanted)}
    assert changes == (expected if changed else {})


def test_office_phone_becomes_caller_id_only_with_the_option() -> None:
    ann = graph_user("ann@contoso.com", businessPhones=["+1 (555) 010-0199 x12", "+1 555 0100"])
    assert "OutboundCallerID" not in desired_fields(ann, DEFAULTS)
    with_phone = UserOptions(**{**DEFAULTS.as_dict(), "office_phone": True})
    assert desired_fields(ann, with_phone)["OutboundCallerID"] == "+15550100199"
    # No business phone: the caller ID is cleared, not left as it was.
    for none in ([], [""]):
        assert desired_fields(graph_user("bob@contoso.com", businessPhones=none), with_phone)["OutboundCallerID"] == ""


def test_sso_option_sets_ms365_sign_in_per_user() -> None:
    ann, bob = graph_user("ann@contoso.com"), graph_user("bob@contoso.com")
    sso = UserOptions(**{**DEFAULTS.as_dict(), "sso": True})
    result = plan([ann, bob], [], options={ann.id: sso})
    fields = {a.upn: a.fields for a in result.of_kind("create")}
    assert fields["ann@contoso.com"]["MS365SignInEnabled"] is True
    assert fields["bob@contoso.com"]["MS365SignInEnabled"] is False


def test_personal_contacts_option_switches_3cxs_own_contacts_sync_per_user() -> None:
    """3CX copies a user's Outlook contacts itself when `MS365ContactsEnabled` is on (the
    published route); the option drives that switch like any other field."""
    ann, bob = graph_user("ann@contoso.com"), graph_user("bob@contoso.com")
    contacts = UserOptions(**{**DEFAULTS.as_dict(), "personal_contacts": True})
    target = [synced_tcx(ann, 1, "100"), synced_tcx(bob, 2, "101")]
    links = [link(ann, 1, "100"), link(bob, 2, "101")]
    result = plan([ann, bob], target, links, options={ann.id: contacts})
    assert result.actions == [
        UpdateUser(ann.id, "ann@contoso.com", 1, "100", {"MS365ContactsEnabled": FieldChange(False, True)})
    ]
    assert desired_fields(bob, DEFAULTS)["MS365ContactsEnabled"] is False


def test_the_calendar_option_keeps_3cxs_own_calendar_sync_off() -> None:
    """3CX's own calendar sync writes the same status field: for a user whose status the
    connector drives it stays off; for the others it is left to the administrator."""
    ann = graph_user("ann@contoso.com")
    own_calendar = tcx_user(1, "100", **{**desired_fields(ann, DEFAULTS), "MS365CalendarEnabled": True})
    result = plan([ann], [own_calendar], [link(ann, 1, "100")])
    assert result.actions == [
        UpdateUser(ann.id, "ann@contoso.com", 1, "100", {"MS365CalendarEnabled": FieldChange(True, False)})
    ]
    no_calendar = UserOptions(**{**DEFAULTS.as_dict(), "calendar": False})
    assert "MS365CalendarEnabled" not in desired_fields(ann, no_calendar)
    assert plan([ann], [own_calendar], [link(ann, 1, "100")], options={ann.id: no_calendar}).actions == []


# -- fields 3CX manages itself ----------------------------------------------------------------------


def _kept_by_3cx(user: GraphUser, **kept: tuple[Any, Any]) -> tuple[TcxUser, Link]:
    """`user`'s 3CX user after 3CX stored (wanted, kept) its own way, and the link remembering it."""
    stored = {**desired_fields(user, DEFAULTS), **{name: value for name, (_wanted, value) in kept.items()}}
    remembered = {name: KeptValue(wanted=wanted, kept=value) for name, (wanted, value) in kept.items()}
    return tcx_user(1, "100", **stored), link(user, 1, "100", kept=remembered)


def test_a_value_3cx_keeps_its_own_way_is_not_written_again_while_the_source_is_unchanged() -> None:
    ann = graph_user("ann@contoso.com")
    current, remembered = _kept_by_3cx(ann, DisplayName=("Ann Example", "Example, Ann"), Mobile=("", None))
    assert plan([ann], [current], [remembered]).actions == []


def test_a_new_source_value_is_written_again_even_where_3cx_kept_the_old_its_own_way() -> None:
    ann = graph_user("ann@contoso.com", displayName="Ann B. Example")
    current, remembered = _kept_by_3cx(ann, DisplayName=("Ann Example", "Example, Ann"))
    (action,) = plan([ann], [current], [remembered]).actions
    assert isinstance(action, UpdateUser)
    assert action.changes == {"DisplayName": FieldChange("Example, Ann", "Ann B. Example")}


def test_kept_values_are_compared_the_way_3cx_compares_them() -> None:
    """An e-mail 3CX kept its own way stays left alone whatever the letter case on either side."""
    ann = graph_user("ann@contoso.com")
    current, remembered = _kept_by_3cx(ann, EmailAddress=("ANN@CONTOSO.COM", "ANN@MAIL.contoso.com"))
    current = current.model_copy(update={"email_address": "ann@mail.contoso.com"})
    assert plan([ann], [current], [remembered]).actions == []


def test_a_kept_field_leaves_the_fields_after_it_to_be_compared() -> None:
    ann = graph_user("ann@contoso.com", mobilePhone="+1 555 0100")
    current, remembered = _kept_by_3cx(ann, DisplayName=("Ann Example", "Example, Ann"))
    current = current.model_copy(update={"mobile": "+15550199"})
    (action,) = plan([ann], [current], [remembered]).actions
    assert isinstance(action, UpdateUser)
    assert action.changes == {"Mobile": FieldChange("+15550199", "+15550100")}


def test_a_value_changed_in_3cx_since_is_written_again() -> None:
    ann = graph_user("ann@contoso.com")
    current, remembered = _kept_by_3cx(ann, DisplayName=("Ann Example", "Example, Ann"))
    edited = current.model_copy(update={"display_name": "Someone Else"})
    (action,) = plan([ann], [edited], [remembered]).actions
    assert isinstance(action, UpdateUser)
    assert action.changes == {"DisplayName": FieldChange("Someone Else", "Ann Example")}


@pytest.mark.parametrize(
    ("name", "wanted", "have", "same"),
    [
        ("EmailAddress", "Ann@Contoso.com", "ann@contoso.com", True),
        ("DisplayName", "Ann", "ann", False),
        ("Mobile", "", None, True),
        ("Enabled", False, None, False),
        ("Enabled", True, True, True),
    ],
)
def test_same_value_follows_3cxs_notion_of_equal(name: str, wanted: Any, have: Any, same: bool) -> None:
    assert same_value(name, wanted, have) is same


def test_missing_names_fall_back_sensibly() -> None:
    no_surname = desired_fields(graph_user("ann@contoso.com", surname=None), DEFAULTS)
    assert (no_surname["FirstName"], no_surname["LastName"]) == ("Ann", "")
    no_names = desired_fields(graph_user("x@contoso.com", givenName=None, surname=None, displayName=None), DEFAULTS)
    assert no_names["FirstName"] == "x"
    assert no_names["DisplayName"] == "x"


@pytest.mark.parametrize(
    ("upn", "first"),
    [
        ("ann.lee+pbx@contoso.com", "ann.lee+pbx"),
        # Everything before the FIRST '@': no part of a domain ever becomes a name.
        ("ann@lee@contoso.com", "ann"),
    ],
)
def test_without_any_name_the_upn_local_part_is_the_name(upn: str, first: str) -> None:
    fields = desired_fields(graph_user(upn, givenName=" ", surname=None, displayName=None), DEFAULTS)
    assert (fields["FirstName"], fields["LastName"], fields["DisplayName"]) == (first, "", first)


@settings(max_examples=200, deadline=None)
@given(
    given_name=st.one_of(st.none(), st.text(max_size=200)),
    surname=st.one_of(st.none(), st.text(max_size=200)),
    display=st.one_of(st.none(), st.text(max_size=250)),
    mobile=st.one_of(st.none(), st.text(max_size=40)),
    phones=st.lists(st.one_of(st.text(max_size=30)), max_size=3),
)
def test_messy_directory_data_never_breaks_the_plan(given_name, surname, display, mobile, phones) -> None:
    user = graph_user(
        "ann@contoso.com",
        givenName=given_name,
        surname=surname,
        displayName=display,
        mobilePhone=mobile,
        businessPhones=phones,
    )
    options = UserOptions(**{**DEFAULTS.as_dict(), "office_phone": True})
    result = plan([user], [], options={user.id: options})
    (action,) = result.actions
    assert isinstance(action, CreateUser)
    fields = action.fields
    assert all(
        isinstance(fields[name], str) for name in ("FirstName", "LastName", "DisplayName", "Mobile", "OutboundCallerID")
    )
    assert set(fields["Mobile"]) <= set("+0123456789")


# -- photos -----------------------------------------------------------------------------------------


def test_avatar_is_set_only_when_the_photo_changed() -> None:
    ann = graph_user("ann@contoso.com")
    photo_on = UserOptions(**{**DEFAULTS.as_dict(), "photo": True})
    target = [synced_tcx(ann, 1, "100", photo_on)]
    same = plan(
        [ann],
        target,
        links=[link(ann, 1, "100", photo_etag="e1")],
        options={ann.id: photo_on},
        photos={ann.id: PhotoInfo(user_id=ann.id, etag="e1")},
    )
    changed = plan(
        [ann],
        target,
        links=[link(ann, 1, "100", photo_etag="e1")],
        options={ann.id: photo_on},
        photos={ann.id: PhotoInfo(user_id=ann.id, etag="e2")},
    )
    removed = plan(
        [ann],
        target,
        links=[link(ann, 1, "100", photo_etag="e1")],
        options={ann.id: photo_on},
        photos={ann.id: PhotoInfo(user_id=ann.id, etag=None)},
    )
    assert same.actions == []
    assert changed.actions == [SetAvatar(ann.id, ann.user_principal_name, "e2")]
    assert removed.actions == [SetAvatar(ann.id, ann.user_principal_name, None)]


def test_a_new_user_gets_the_photo_too() -> None:
    ann = graph_user("ann@contoso.com")
    photo_on = UserOptions(**{**DEFAULTS.as_dict(), "photo": True})
    result = plan([ann], [], options={ann.id: photo_on}, photos={ann.id: PhotoInfo(user_id=ann.id, etag="e1")})
    assert [a.kind for a in result.actions] == ["create", "avatar"]
    assert result.actions[1] == SetAvatar(ann.id, "ann@contoso.com", "e1")


def test_a_photo_graph_could_not_read_leaves_the_avatar_as_it_is_and_says_so() -> None:
    """No SetAvatar (not even a clearing one) and the stored etag stays, so the next run tries again."""
    ann, bob = graph_user("ann@contoso.com"), graph_user("bob@contoso.com", displayName="Bob Renamed")
    photo_on = UserOptions(**{**DEFAULTS.as_dict(), "photo": True})
    unreadable = PhotoUnreadable(user_id=bob.id, reason="Graph answered 500 generalException: boom")
    result = plan(
        [ann, bob],
        [synced_tcx(ann, 1, "100", photo_on), synced_tcx(graph_user("bob@contoso.com"), 2, "101", photo_on)],
        links=[link(ann, 1, "100", photo_etag="e1"), link(bob, 2, "101", photo_etag="e1")],
        options={ann.id: photo_on, bob.id: photo_on},
        photos={ann.id: PhotoInfo(user_id=ann.id, etag="e2"), bob.id: unreadable},
    )
    # Bob's other fields are still written; only his avatar waits.
    assert result.actions == [
        SetAvatar(ann.id, "ann@contoso.com", "e2"),
        UpdateUser(bob.id, "bob@contoso.com", 2, "101", {"DisplayName": FieldChange("Bob Example", "Bob Renamed")}),
    ]
    assert result.skipped == [
        Skip(
            "bob@contoso.com",
            "avatar left as it is, tried again next run: its photo could not be read"
            " (Graph answered 500 generalException: boom)",
        )
    ]


def test_a_new_user_whose_photo_could_not_be_read_is_created_without_an_avatar() -> None:
    ann = graph_user("ann@contoso.com")
    photo_on = UserOptions(**{**DEFAULTS.as_dict(), "photo": True})
    photos = {ann.id: PhotoUnreadable(user_id=ann.id, reason="Graph answered 502 BadGateway: down")}
    result = plan([ann], [], options={ann.id: photo_on}, photos=photos)
    assert [a.kind for a in result.actions] == ["create"]
    assert [skip.upn for skip in result.skipped] == ["ann@contoso.com"]


def test_no_avatar_without_the_photo_option() -> None:
    ann = graph_user("ann@contoso.com")
    result = plan(
        [ann],
        [synced_tcx(ann, 1, "100")],
        links=[link(ann, 1, "100")],
        photos={ann.id: PhotoInfo(user_id=ann.id, etag="e2")},
    )
    assert result.actions == []


# -- deprovisioning and the guard ---------------------------------------------------------------------


def _tenant(count: int) -> tuple[list[GraphUser], list[TcxUser], list[Link]]:
    users = [graph_user(f"u{i:03d}@contoso.com") for i in range(count)]
    target = [synced_tcx(user, i + 1, str(100 + i)) for i, user in enumerate(users)]
    links = [link(user, i + 1, str(100 + i)) for i, user in enumerate(users)]
    return users, target, links


# The reasons are shown to the administrator verbatim: they are the contract.
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"accountEnabled": False}, "disabled in Microsoft 365"),
        ({"@removed": {"reason": "deleted"}}, "deleted in Microsoft 365"),
        ({"userType": "Guest"}, "not a member account"),
        ({"assignedPlans": []}, "no Exchange mailbox"),
    ],
)
def test_a_synced_user_who_leaves_is_disabled_by_default(change: dict[str, Any], reason: str) -> None:
    users, target, links = _tenant(10)
    users[3] = graph_user(users[3].user_principal_name, **change)
    result = plan(users, target, links)
    assert result.actions == [DisableUser(users[3].id, "u003@contoso.com", 4, "103", reason)]


# assignedPlans[].capabilityStatus of the Exchange plan, in the order a licence that is not renewed
# goes through them (Graph's assignedPlan resource). Enabled and Warning (the grace period) still
# serve the mailbox, so the user stays; from Suspended on the mailbox is gone and the user leaves.
@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("Enabled", None),
        ("Warning", None),
        ("warning", None),  # Graph's enum values, compared as Graph compares them: case ignored
        ("Suspended", "no Exchange mailbox (Exchange licence Suspended)"),
        ("LockedOut", "no Exchange mailbox (Exchange licence LockedOut)"),
        ("Deleted", "no Exchange mailbox (Exchange licence Deleted)"),
    ],
)
def test_a_licence_in_its_grace_period_keeps_the_user_a_lapsed_one_makes_a_leaver(
    status: str, reason: str | None
) -> None:
    users, target, links = _tenant(10)
    users[3] = graph_user("u003@contoso.com", assignedPlans=[{**EXCHANGE[0], "capabilityStatus": status}])
    result = plan(users, target, links)
    expected = [] if reason is None else [DisableUser(users[3].id, "u003@contoso.com", 4, "103", reason)]
    assert result.actions == expected
    assert result.unchanged == (10 if reason is None else 9)


def test_users_whose_licence_is_in_its_grace_period_are_not_deprovisioned() -> None:
    """15 of 100 users on a lapsed licence still have their mailbox: nothing is planned for them."""
    users, target, links = _tenant(100)
    grace = [{**EXCHANGE[0], "capabilityStatus": "Warning"}]
    users[:15] = [graph_user(user.user_principal_name or "", assignedPlans=grace) for user in users[:15]]
    result = plan(users, target, links, config=UserSyncConfig(guard=NO_LIMITS))
    assert result.actions == []
    assert result.guard is None
    assert result.unchanged == 100


@pytest.mark.parametrize(
    ("plans", "reason"),
    [
        # A licence change leaves the old plan Deleted beside the new Enabled one: the new one counts.
        ([{**EXCHANGE[0], "capabilityStatus": "Deleted"}, EXCHANGE[0]], None),
        ([{**EXCHANGE[0], "capabilityStatus": "Deleted"}, {**EXCHANGE[0], "capabilityStatus": "Warning"}], None),
        # Every Exchange plan lapsed: each state is named once, in Graph's order.
        (
            [
                {**EXCHANGE[0], "capabilityStatus": "Suspended"},
                {**EXCHANGE[0], "capabilityStatus": "Deleted"},
                {**EXCHANGE[0], "capabilityStatus": "Suspended"},
            ],
            "no Exchange mailbox (Exchange licence Suspended, Deleted)",
        ),
        # Another service's working plan is no mailbox; nor is an Exchange plan without a status.
        (
            [{"service": "SharePoint", "capabilityStatus": "Enabled"}, {**EXCHANGE[0], "capabilityStatus": None}],
            "no Exchange mailbox (Exchange licence without a status)",
        ),
        ([{"service": "SharePoint", "capabilityStatus": "Warning"}], "no Exchange mailbox"),
        ([], "no Exchange mailbox"),
    ],
)
def test_any_working_exchange_plan_keeps_the_user(plans: list[dict[str, Any]], reason: str | None) -> None:
    users, target, links = _tenant(10)
    users[3] = graph_user("u003@contoso.com", assignedPlans=plans)
    result = plan(users, target, links)
    expected = [] if reason is None else [DisableUser(users[3].id, "u003@contoso.com", 4, "103", reason)]
    assert result.actions == expected


def test_a_user_leaving_the_scope_is_disabled_as_out_of_scope() -> None:
    users, target, links = _tenant(10)
    scope = ScopeRule(SyncScope.ALL_EXCEPT, frozenset({"u003@contoso.com"}))
    result = plan(users, target, links, config=UserSyncConfig(scope=scope))
    assert result.actions == [DisableUser(users[3].id, "u003@contoso.com", 4, "103", "out of USER_SYNC_SCOPE")]


def test_a_user_missing_from_the_source_is_deprovisioned_too() -> None:
    users, target, links = _tenant(10)
    result = plan(users[1:], target, links)
    assert result.actions == [DisableUser(users[0].id, "u000@contoso.com", 1, "100", "no longer in Microsoft 365")]


def test_deprovision_policies() -> None:
    users, target, links = _tenant(10)
    delete = plan(users[1:], target, links, config=UserSyncConfig(deprovision=DeprovisionPolicy.DELETE))
    keep = plan(users[1:], target, links, config=UserSyncConfig(deprovision=DeprovisionPolicy.KEEP))
    assert delete.actions == [DeleteUser(users[0].id, "u000@contoso.com", 1, "100", "no longer in Microsoft 365")]
    assert keep.actions == []


NOT_CREATED = " (disabled, not deleted: this 3CX user existed before the connector linked it)"


@pytest.mark.parametrize(
    ("policy", "origin", "enabled", "expected"),
    [
        (DeprovisionPolicy.DELETE, "created", True, "delete"),
        (DeprovisionPolicy.DELETE, "created", False, "delete"),
        # Linked by e-mail: the 3CX user was there first, so it is only ever disabled.
        (DeprovisionPolicy.DELETE, "linked", True, "disable, not delete"),
        (DeprovisionPolicy.DELETE, "linked", False, None),  # already disabled: nothing left to do
        (DeprovisionPolicy.DISABLE, "created", True, "disable"),
        (DeprovisionPolicy.DISABLE, "linked", True, "disable"),
        (DeprovisionPolicy.DISABLE, "linked", False, None),
        (DeprovisionPolicy.KEEP, "created", True, None),
        (DeprovisionPolicy.KEEP, "linked", True, None),
    ],
)
def test_a_3cx_user_the_connector_did_not_create_is_disabled_never_deleted(
    policy: DeprovisionPolicy, origin: str, enabled: bool, expected: str | None
) -> None:
    users, target, links = _tenant(10)
    links[0] = links[0].model_copy(update={"origin": origin})
    target[0] = target[0].model_copy(update={"enabled": enabled})
    result = plan(users[1:], target, links, config=UserSyncConfig(deprovision=policy))
    reason = "no longer in Microsoft 365"
    planned = {
        None: [],
        "delete": [DeleteUser(users[0].id, "u000@contoso.com", 1, "100", reason)],
        "disable": [DisableUser(users[0].id, "u000@contoso.com", 1, "100", reason)],
        "disable, not delete": [DisableUser(users[0].id, "u000@contoso.com", 1, "100", reason + NOT_CREATED)],
    }[expected]
    assert result.actions == planned


def test_with_deprovision_delete_created_users_are_deleted_and_linked_ones_disabled_in_one_run() -> None:
    users, target, links = _tenant(10)
    links[1] = links[1].model_copy(update={"origin": "linked"})
    leavers = {users[0].id, users[1].id}
    stayers = [user for user in users if user.id not in leavers]
    result = plan(stayers, target, links, config=UserSyncConfig(deprovision=DeprovisionPolicy.DELETE))
    assert result.actions == [
        DeleteUser(users[0].id, "u000@contoso.com", 1, "100", "no longer in Microsoft 365"),
        DisableUser(users[1].id, "u001@contoso.com", 2, "101", "no longer in Microsoft 365" + NOT_CREATED),
    ]


def test_the_guard_counts_disabling_a_linked_user_like_deleting_a_created_one() -> None:
    users, target, links = _tenant(20)
    for index in (0, 2):
        links[index] = links[index].model_copy(update={"origin": "linked"})
    config = UserSyncConfig(deprovision=DeprovisionPolicy.DELETE, guard=COUNT_3)
    assert plan(users[3:], target, links, config=config).guard is None  # 3: exactly the limit
    result = plan(users[4:], target, links, config=config)
    assert result.actions == []
    assert result.guard is not None
    assert result.guard.would_remove == 4
    assert [action.kind for action in result.guard.held] == ["disable", "delete", "disable", "delete"]


def test_leavers_are_deprovisioned_in_upn_order_case_ignored() -> None:
    """The order does not follow M365 ids nor letter case, so runs and their output are stable."""
    stay = graph_user("stay@contoso.com")
    # ids in the opposite order; lower-cased, '_' sorts before letters ('ann_lee' < 'annie').
    leavers = [graph_user("Zed@contoso.com", "id-1"), graph_user("annie@contoso.com", "id-2")]
    leavers.append(graph_user("ann_lee@contoso.com", "id-3"))
    everyone = [stay, *leavers]
    target = [synced_tcx(user, i + 1, str(100 + i)) for i, user in enumerate(everyone)]
    links = [link(user, i + 1, str(100 + i)) for i, user in enumerate(everyone)]
    config = UserSyncConfig(guard=DeprovisionGuard(max_count=None, max_percent=None))
    result = plan([stay], target, links, config=config)
    assert [a.upn for a in result.actions] == ["ann_lee@contoso.com", "annie@contoso.com", "Zed@contoso.com"]


def test_an_already_disabled_user_is_not_disabled_again() -> None:
    users, target, links = _tenant(10)
    target[0] = target[0].model_copy(update={"enabled": False})
    assert plan(users[1:], target, links).actions == []


def test_a_returning_user_is_enabled_again() -> None:
    users, target, links = _tenant(3)
    target[0] = target[0].model_copy(update={"enabled": False})
    (action,) = plan(users, target, links).actions
    assert isinstance(action, UpdateUser)
    assert action.changes["Enabled"].new is True


def test_unlinked_3cx_users_are_never_touched() -> None:
    users, target, links = _tenant(3)
    target.append(tcx_user(99, "999", "manual@contoso.com"))
    for policy in DeprovisionPolicy:
        assert plan(users, target, links, config=UserSyncConfig(deprovision=policy)).actions == []


def test_gone_on_both_sides_only_forgets_the_link() -> None:
    users, target, links = _tenant(3)
    result = plan(users[1:], target[1:], links)
    assert result.actions == [ForgetLink(users[0].id, "u000@contoso.com", "100", "no longer in Microsoft 365")]


def test_guard_holds_back_mass_deprovisioning_but_not_the_rest() -> None:
    users, target, links = _tenant(20)
    newcomer = graph_user("new@contoso.com")
    survivors = users[:10] + [newcomer]
    result = plan(
        survivors, target, links, config=UserSyncConfig(guard=DeprovisionGuard(max_count=5, max_percent=None))
    )
    assert result.guard is not None
    assert result.guard.would_remove == 10
    assert result.guard.synced == 20
    assert "DEPROVISION_MAX_COUNT" in result.guard.describe()
    assert [a.kind for a in result.actions] == ["create"]


def test_guard_share_limit_and_admin_override() -> None:
    users, target, links = _tenant(20)
    config = UserSyncConfig(guard=DeprovisionGuard(max_count=None, max_percent=10))
    assert plan(users[2:], target, links, config=config).guard is None  # exactly 10% is allowed
    held = plan(users[3:], target, links, config=config)
    assert held.guard is not None
    assert "DEPROVISION_MAX_PERCENT" in held.guard.limit
    approved = plan(users[3:], target, links, config=UserSyncConfig(guard=config.guard, allow_deprovision=True))
    assert approved.guard is None
    assert len(approved.of_kind("disable")) == 3


COUNT_3 = DeprovisionGuard(max_count=3, max_percent=None)


@pytest.mark.parametrize(
    ("leavers", "recent", "guard", "held"),
    [
        (3, 0, COUNT_3, False),  # exactly the limit is allowed
        (4, 0, COUNT_3, True),  # one more is held
        (2, 1, COUNT_3, False),  # with the earlier removal: exactly the limit
        (2, 2, COUNT_3, True),  # only the earlier removals make it trip
        (2, 0, DeprovisionGuard(max_count=None, max_percent=10), False),  # 2 of 20: exactly 10%
        (3, 0, DeprovisionGuard(max_count=None, max_percent=10), True),
        (2, 2, DeprovisionGuard(max_count=None, max_percent=15), True),  # 4 of 22: only the earlier ones trip it
        # The users removed earlier were synced users too: 4 of 22 is under 20% (4 of 18 would not be).
        (2, 2, DeprovisionGuard(max_count=None, max_percent=20), False),
    ],
)
def test_guard_limits_are_inclusive_and_count_the_last_24_hours(
    leavers: int, recent: int, guard: DeprovisionGuard, held: bool
) -> None:
    users, target, links = _tenant(20)
    result = plan(users[leavers:], target, links, config=UserSyncConfig(guard=guard, recent_removals=recent))
    assert (result.guard is not None) is held
    assert len(result.of_kind("disable")) == (0 if held else leavers)


def test_guard_hold_carries_the_held_removals_and_the_earlier_ones() -> None:
    users, target, links = _tenant(20)
    config = UserSyncConfig(guard=COUNT_3, recent_removals=2)
    result = plan(users[2:], target, links, config=config)
    assert result.actions == []
    assert result.guard == GuardHold(
        would_remove=2,
        synced=20,
        limit="the limit of 3 users (DEPROVISION_MAX_COUNT)",
        held=(
            DisableUser(users[0].id, "u000@contoso.com", 1, "100", "no longer in Microsoft 365"),
            DisableUser(users[1].id, "u001@contoso.com", 2, "101", "no longer in Microsoft 365"),
        ),
        recent=2,
    )


def test_guard_message_names_earlier_removals_only_when_there_were_some() -> None:
    # The administrator reads this message and copies the command from it: its wording is the contract.
    limit = "the limit of 3 users (DEPROVISION_MAX_COUNT)"
    hint = "; none were. Check the tenant, then run `python -m sync users --allow-deprovision` to apply them."
    assert GuardHold(2, 20, limit, (), recent=2).describe() == (
        "deletion guard: 2 of 20 synced users would be disabled or deleted (after 2 in the last 24 hours),"
        f" more than {limit}{hint}"
    )
    assert GuardHold(4, 20, limit, ()).describe() == (
        f"deletion guard: 4 of 20 synced users would be disabled or deleted, more than {limit}{hint}"
    )


# -- the creation guard: mass creation is held back like mass deletion --------------------------------


def _missing_from_listing(count: int, gone: int) -> tuple[list[GraphUser], list[TcxUser], list[Link]]:
    """A tenant whose first `gone` linked 3CX users a listing (or someone) lost."""
    users, target, links = _tenant(count)
    return users, target[gone:], links


def test_fault_mass_recreation_after_a_short_listing_is_held_back_but_not_the_rest() -> None:
    users, target, links = _missing_from_listing(20, 4)
    renamed = [*users[:19], graph_user("u019@contoso.com", displayName="Renamed")]
    result = plan(renamed, target, links, config=UserSyncConfig(guard=COUNT_3))
    assert result.of_kind("create") == []
    assert [a.upn for a in result.actions] == ["u019@contoso.com"]  # the update still applies
    assert result.creation_guard is not None
    assert result.creation_guard.would_create == 4
    assert result.creation_guard.recreated == 4
    assert result.creation_guard.known == 20
    assert [(a.kind, a.upn) for a in result.creation_guard.held] == [
        ("create", f"u00{i}@contoso.com") for i in range(4)
    ]


@pytest.mark.parametrize(
    ("gone", "newcomers", "guard", "held"),
    [
        (3, 0, COUNT_3, False),  # exactly the limit is allowed
        (4, 0, COUNT_3, True),
        (2, 1, COUNT_3, False),  # new users and re-created ones count together
        (2, 2, COUNT_3, True),
        (0, 4, COUNT_3, True),  # new users alone
        (2, 0, DeprovisionGuard(max_count=None, max_percent=10), False),  # 2 of 20 known: exactly 10%
        (3, 0, DeprovisionGuard(max_count=None, max_percent=10), True),
        (2, 9, DeprovisionGuard(max_count=None, max_percent=10), False),  # the share is of re-creations
        (2, 9, DeprovisionGuard(max_count=10, max_percent=10), True),  # the count is of all creations
    ],
)
def test_creation_guard_limits_are_the_deletion_guards_and_inclusive(
    gone: int, newcomers: int, guard: DeprovisionGuard, held: bool
) -> None:
    users, target, links = _missing_from_listing(20, gone)
    source = users + [graph_user(f"new{i}@contoso.com") for i in range(newcomers)]
    result = plan(source, target, links, config=UserSyncConfig(guard=guard))
    assert (result.creation_guard is not None) is held
    assert len(result.of_kind("create")) == (0 if held else gone + newcomers)


def test_fault_a_listing_missing_every_linked_user_is_held_by_the_share_limit_too() -> None:
    """Nothing listed means no synced user to compare with: the share is of the users the connector knows."""
    users, _target, links = _tenant(10)
    result = plan(users, [], links, config=UserSyncConfig(guard=DeprovisionGuard(max_count=None, max_percent=20)))
    assert result.creation_guard is not None
    assert "DEPROVISION_MAX_PERCENT" in result.creation_guard.limit
    assert result.of_kind("create") == []


def test_the_first_sync_creates_everyone_whatever_the_limits() -> None:
    users = [graph_user(f"u{i:03d}@contoso.com") for i in range(30)]
    result = plan(users, [], [], config=UserSyncConfig(guard=COUNT_3))
    assert result.creation_guard is None
    assert len(result.of_kind("create")) == 30


def test_new_users_count_against_the_count_limit_alone_and_one_creation_is_never_mass() -> None:
    """In a small company two hires are soon a large share: only re-creations count against it."""
    users, target, links = _tenant(2)
    hires = [graph_user("new1@contoso.com"), graph_user("new2@contoso.com")]
    assert plan([*users, *hires], target, links).creation_guard is None
    assert plan(users, target[1:], links).creation_guard is None  # one re-creation: 50 %, but one
    held = plan(users, [], links)
    assert held.creation_guard is not None
    assert held.creation_guard.recreated == 2
    assert "DEPROVISION_MAX_PERCENT" in held.creation_guard.limit


def test_approved_mass_creation_is_applied() -> None:
    users, target, links = _missing_from_listing(20, 5)
    result = plan(users, target, links, config=UserSyncConfig(guard=COUNT_3, allow_mass_create=True))
    assert result.creation_guard is None
    assert len(result.of_kind("create")) == 5


def test_approving_deprovisioning_does_not_approve_mass_creation() -> None:
    users, target, links = _missing_from_listing(20, 5)
    result = plan(users, target, links, config=UserSyncConfig(guard=COUNT_3, allow_deprovision=True))
    assert result.creation_guard is not None


def test_fault_a_one_user_run_measures_the_guard_against_every_user_it_links() -> None:
    """A run for one user reads only that 3CX user; the share is still of all the synced users
    (those the links remember as not deprovisioned), not of the one 3CX user read."""
    users, target, links = _tenant(10)
    links[9] = links[9].model_copy(update={"deprovisioned": "disabled"})  # not synced any more
    leaver = graph_user("u004@contoso.com", accountEnabled=False)
    config = UserSyncConfig(guard=DeprovisionGuard(max_count=None, max_percent=11.2))
    result = plan([leaver], [target[4]], links, config=config, only=frozenset({leaver.id}))
    assert result.guard is None
    assert result.of_kind("disable") == [
        DisableUser(leaver.id, "u004@contoso.com", 5, "104", "disabled in Microsoft 365")
    ]
    tighter = UserSyncConfig(guard=DeprovisionGuard(max_count=None, max_percent=11.1))  # 1 of 9 is 11.11 %
    held = plan([leaver], [target[4]], links, config=tighter, only=frozenset({leaver.id}))
    assert held.guard is not None
    assert held.guard.synced == 9


def test_a_full_run_measures_the_guard_against_the_3cx_users_it_reads() -> None:
    """A full run reads every 3CX user: one disabled by hand in 3CX is not a synced user now,
    whatever its link remembers."""
    users, target, links = _tenant(10)
    for index in (0, 1):
        target[index] = target[index].model_copy(update={"enabled": False})
    config = UserSyncConfig(guard=DeprovisionGuard(max_count=None, max_percent=12))
    result = plan(users[:9], target, links, config=config)  # u009 leaves: 1 of 8 synced is 12.5 %
    assert result.guard is not None
    assert result.guard.synced == 8


def test_users_provisioned_on_demand_are_never_held_as_mass_creation() -> None:
    """The administrator named them: a run limited to named users creates just those."""
    users, target, links = _tenant(3)
    newcomers = [graph_user("new1@contoso.com"), graph_user("new2@contoso.com")]
    config = UserSyncConfig(guard=DeprovisionGuard(max_count=0, max_percent=1))
    result = plan(newcomers, target, links, config=config, only=frozenset(user.id for user in newcomers))
    assert result.creation_guard is None
    assert [a.upn for a in result.of_kind("create")] == ["new1@contoso.com", "new2@contoso.com"]


def test_the_avatar_of_a_held_creation_is_held_with_it() -> None:
    users, target, links = _missing_from_listing(5, 0)
    photo_on = UserOptions(**{**DEFAULTS.as_dict(), "photo": True})
    newcomers = [graph_user(f"new{i}@contoso.com") for i in range(2)]
    result = plan(
        users + newcomers,
        target,
        links,
        config=UserSyncConfig(guard=DeprovisionGuard(max_count=1, max_percent=None)),
        options={user.id: photo_on for user in newcomers},
        photos={user.id: PhotoInfo(user_id=user.id, etag="e1") for user in newcomers},
    )
    assert result.actions == []
    assert result.creation_guard is not None
    assert [(a.kind, a.upn) for a in result.creation_guard.held] == [
        ("create", "new0@contoso.com"),
        ("avatar", "new0@contoso.com"),
        ("create", "new1@contoso.com"),
        ("avatar", "new1@contoso.com"),
    ]
    assert result.creation_guard.would_create == 2


def test_creation_guard_message_names_re_creations_and_the_approval() -> None:
    # The administrator reads this message and copies the command from it: its wording is the contract.
    limit = "the limit of 3 users (DEPROVISION_MAX_COUNT)"
    hint = (
        "; none were. Check that 3CX lists every user and that the tenant change is intended, then run"
        " `python -m sync users --allow-mass-create` to apply them."
    )
    assert CreationHold(5, 4, 20, limit, ()).describe() == (
        f"creation guard: 5 3CX users would be created (4 of them linked users 3CX no longer lists)"
        f" beside the 20 the connector links, more than {limit}{hint}"
    )
    assert CreationHold(5, 0, 20, limit, ()).describe() == (
        f"creation guard: 5 3CX users would be created beside the 20 the connector links, more than {limit}{hint}"
    )


# -- provision on demand ------------------------------------------------------------------------------


def test_only_limits_the_plan_to_one_user() -> None:
    users, target, links = _tenant(5)
    renamed = [graph_user(u.user_principal_name, displayName="New Name") for u in users]
    result = plan(renamed[:1], target, links, only=frozenset({users[0].id}))
    assert [(a.kind, a.upn) for a in result.actions] == [("update", users[0].user_principal_name)]


# The guard is off, so a broken `only` would really plan the others' removal instead of holding it.
NO_LIMITS = DeprovisionGuard(max_count=None, max_percent=None)


@pytest.mark.parametrize("policy", [DeprovisionPolicy.DISABLE, DeprovisionPolicy.DELETE])
def test_only_never_moves_another_user(policy: DeprovisionPolicy) -> None:
    """Provisioning one user on demand changes that user and nobody else, whatever the others' state."""
    users, target, links = _tenant(6)
    source = [
        users[0],
        graph_user("u001@contoso.com", accountEnabled=False),  # a leaver
        graph_user("u002@contoso.com", displayName="Renamed"),  # the one asked for, after others in the source
        graph_user("u003@contoso.com", displayName="Also Renamed"),
        # u004 is missing from the source
        graph_user("u005@contoso.com", **{"@removed": {"reason": "deleted"}}),
        graph_user("new@contoso.com"),  # not linked yet
    ]
    config = UserSyncConfig(deprovision=policy, guard=NO_LIMITS)
    result = plan(source, target, links, config=config, only=frozenset({users[2].id}))
    assert result.actions == [
        UpdateUser(users[2].id, "u002@contoso.com", 3, "102", {"DisplayName": FieldChange("U002 Example", "Renamed")})
    ]
    assert result.guard is None

    # Asked for the leaver: only the leaver is deprovisioned.
    result = plan(source, target, links, config=config, only=frozenset({users[1].id}))
    removal = DisableUser if policy is DeprovisionPolicy.DISABLE else DeleteUser
    assert result.actions == [removal(users[1].id, "u001@contoso.com", 2, "101", "disabled in Microsoft 365")]

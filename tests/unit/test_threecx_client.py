"""The 3CX client against the stateful fake: paging, retries, token rules, errors."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import responses
from pydantic import ValidationError

from fakes.threecx import XAPI_JOURNAL, ThreeCXFake
from fakes.transport import install
from shared.http import RetryPolicy
from shared.threecx import (
    TcxApiError,
    TcxAuthError,
    TcxRequestRefused,
    TcxUnavailable,
    ThreeCXClient,
)
from shared.threecx_models import USER_SELECT, Microsoft365Integration, TokenResponse
from tests.pbx_fake_support import BASE, CLIENT_ID, SECRET, Clock


class Sleeps(list[float]):
    """An injected `sleep` that records how long it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as requests_mock:
        yield requests_mock


def make_pbx(mock: responses.RequestsMock, clock: Clock, **options: Any) -> ThreeCXFake:
    fake = ThreeCXFake(client_id=CLIENT_ID, client_secret=SECRET, clock=clock, **options)
    install(mock, BASE, fake)
    return fake


def make_client(clock: Clock, sleeps: Sleeps, secret: str = SECRET, **options: Any) -> ThreeCXClient:
    return ThreeCXClient(BASE, CLIENT_ID, secret, clock=clock, sleep=sleeps, **options)


@pytest.fixture
def pbx(mock: responses.RequestsMock, clock: Clock) -> ThreeCXFake:
    return make_pbx(mock, clock)


@pytest.fixture
def client(pbx: ThreeCXFake, clock: Clock, sleeps: Sleeps) -> ThreeCXClient:
    return make_client(clock, sleeps)


def journal_since(mark: int) -> list[tuple[str, str]]:
    return [(request.method, request.path) for request in XAPI_JOURNAL[mark:]]


# -- paging ----------------------------------------------------------------------------------------------
def test_list_users_pages_through_2500_users(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    for _ in range(2500):
        pbx.add_user()
    mark = len(XAPI_JOURNAL)

    users = client.list_users()

    assert len(users) == 2500
    assert [user.id for user in users] == sorted(pbx.users)
    pages = XAPI_JOURNAL[mark:]
    assert [request.query["$skip"] for request in pages] == ["0", "1000", "2000"]
    assert {request.query["$orderby"] for request in pages} == {"Id"}
    assert pbx.tokens_issued == 1


def test_list_users_survives_a_server_that_caps_pages(
    mock: responses.RequestsMock, clock: Clock, sleeps: Sleeps
) -> None:
    pbx = make_pbx(mock, clock, max_page_size=100)
    for _ in range(250):
        pbx.add_user()
    mark = len(XAPI_JOURNAL)

    users = make_client(clock, sleeps, page_size=1000).list_users()

    assert len({user.id for user in users}) == 250
    assert len(XAPI_JOURNAL) - mark == 3


def test_list_users_of_an_empty_pbx_is_one_request(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    mark = len(XAPI_JOURNAL)

    assert client.list_users() == []
    assert len(XAPI_JOURNAL) - mark == 1


def test_list_users_with_select_always_keeps_identity(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    pbx.add_user(FirstName="Ada", EmailAddress="ada@example.com", Mobile="+4930123")
    mark = len(XAPI_JOURNAL)

    [user] = client.list_users(select=["EmailAddress"])

    assert XAPI_JOURNAL[mark].query["$select"] == "Id,Number,EmailAddress"
    assert user.email_address == "ada@example.com"
    assert user.mobile is None  # not selected, so not sent


def test_user_select_is_accepted_by_the_pbx(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    pbx.add_user(FirstName="Ada")

    [user] = client.list_users(select=USER_SELECT)

    assert user.first_name == "Ada"
    assert user.current_profile_name == "Available"


# -- retries ---------------------------------------------------------------------------------------------
def test_throttling_waits_the_retry_after_seconds(pbx: ThreeCXFake, client: ThreeCXClient, sleeps: Sleeps) -> None:
    pbx.add_user()
    pbx.inject(429, count=2, retry_after=7, path_pattern=r"/Users$", method="GET")

    users = client.list_users()

    assert len(users) == 1
    assert sleeps == [7.0, 7.0]


def test_throttled_create_is_retried(pbx: ThreeCXFake, client: ThreeCXClient, sleeps: Sleeps) -> None:
    pbx.inject(429, retry_after=2, path_pattern=r"/Users$", method="POST")

    created = client.create_user({"FirstName": "Ada"})

    assert sleeps == [2.0]
    assert list(pbx.users) == [created.id]


def test_create_is_not_repeated_after_a_5xx(pbx: ThreeCXFake, client: ThreeCXClient, sleeps: Sleeps) -> None:
    pbx.inject(503, count=3, path_pattern=r"/Users$", method="POST")
    mark = len(XAPI_JOURNAL)

    with pytest.raises(TcxUnavailable, match="pbx.example.com") as raised:
        client.create_user({"FirstName": "Ada"})

    assert raised.value.status == 503
    assert journal_since(mark).count(("POST", "/xapi/v1/Users")) == 1
    assert sleeps == []


def test_transient_504_on_read_is_retried(pbx: ThreeCXFake, client: ThreeCXClient, sleeps: Sleeps) -> None:
    pbx.add_user()
    pbx.inject(504, count=2, path_pattern=r"/Users$")

    assert len(client.list_users()) == 1
    assert len(sleeps) == 2


def test_persistent_503_gives_up_with_unavailable(pbx: ThreeCXFake, client: ThreeCXClient, sleeps: Sleeps) -> None:
    pbx.inject(503, count=10, path_pattern=r"/Users")

    with pytest.raises(TcxUnavailable) as raised:
        client.get_user(1)

    message = str(raised.value)
    assert BASE in message
    assert "\n" not in message
    assert len(sleeps) == RetryPolicy().max_attempts - 1


def test_unreachable_pbx_is_unavailable(mock: responses.RequestsMock, clock: Clock, sleeps: Sleeps) -> None:
    client = ThreeCXClient("https://nowhere.example.com", CLIENT_ID, SECRET, clock=clock, sleep=sleeps)

    with pytest.raises(TcxUnavailable, match=r"https://nowhere\.example\.com is unreachable"):
        client.list_users()


@pytest.mark.parametrize(
    "path",
    [
        "@attacker.test/Users",  # would read as user info before another host
        "attacker.test/Users",
        ":8443/Users",  # another port
        "",
    ],
)
def test_a_request_outside_the_pbx_is_refused_before_a_token_is_sent(
    pbx: ThreeCXFake, client: ThreeCXClient, mock: responses.RequestsMock, sleeps: Sleeps, path: str
) -> None:
    """Every request goes to TCX_BASE_URL's scheme, host and port under /xapi/v1, whatever path a caller passes."""
    with pytest.raises(TcxRequestRefused) as raised:
        client._call("POST", path, json_body={})
    assert len(mock.calls) == 0  # not even a token was asked for
    assert sleeps == []
    assert "not sent to 3CX" in str(raised.value)


# -- tokens -----------------------------------------------------------------------------------------------------
def test_token_is_reused_between_calls(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    client.list_users()
    client.get_user(1)
    client.version()

    assert pbx.tokens_issued == 1


def test_wrong_secret_is_a_clear_auth_error_without_the_secret(pbx: ThreeCXFake, clock: Clock, sleeps: Sleeps) -> None:
    client = make_client(clock, sleeps, secret="not-the-key")

    with pytest.raises(TcxAuthError) as raised:
        client.list_users()

    message = str(raised.value)
    assert "3CX rejected the API client credentials (401)" in message
    assert "TCX_CLIENT_ID / TCX_CLIENT_SECRET" in message
    assert "not-the-key" not in message
    assert "not-the-key" not in repr(client)


def test_token_endpoint_outage_is_unavailable(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    pbx.inject(503, count=10, path_pattern="/connect/token")

    with pytest.raises(TcxUnavailable, match="pbx.example.com"):
        client.list_users()


def test_revoked_token_is_renewed_once_and_the_call_repeated(
    pbx: ThreeCXFake, client: ThreeCXClient, clock: Clock, sleeps: Sleeps
) -> None:
    pbx.add_user(FirstName="Ada")
    client.list_users()
    make_client(clock, sleeps).version()  # another process takes the one token of this client id

    users = client.list_users()

    assert [user.first_name for user in users] == ["Ada"]
    assert pbx.tokens_issued == 3
    assert pbx.rejected_tokens == 1


def test_second_401_is_an_auth_error(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    pbx.inject(401, count=2, path_pattern="/xapi/")

    with pytest.raises(TcxAuthError, match="one active token"):
        client.list_users()

    assert pbx.tokens_issued == 2


@pytest.mark.parametrize("unit", ["seconds", "minutes"])
@pytest.mark.parametrize("opaque", [False, True], ids=["jwt", "opaque"])
def test_renewal_happens_five_minutes_before_expiry_in_either_unit(
    mock: responses.RequestsMock, clock: Clock, sleeps: Sleeps, unit: str, opaque: bool
) -> None:
    pbx = make_pbx(mock, clock, expires_in_unit=unit, opaque_tokens=opaque)
    client = make_client(clock, sleeps)
    client.list_users()

    clock.advance(3299)  # an hour minus 5 minutes minus a second
    client.list_users()
    assert pbx.tokens_issued == 1

    clock.advance(2)
    client.list_users()
    assert pbx.tokens_issued == 2
    assert pbx.rejected_tokens == 0  # renewed ahead of time, never by tripping over a 401


def test_short_lifetime_renews_at_ten_percent(mock: responses.RequestsMock, clock: Clock, sleeps: Sleeps) -> None:
    pbx = make_pbx(mock, clock, token_lifetime_seconds=1800, opaque_tokens=True)
    client = make_client(clock, sleeps)
    client.version()

    clock.advance(1619)
    client.version()
    assert pbx.tokens_issued == 1
    clock.advance(2)
    client.version()
    assert pbx.tokens_issued == 2
    assert pbx.rejected_tokens == 0


def test_jwt_lifetime_wins_over_an_ambiguous_expires_in(
    mock: responses.RequestsMock, clock: Clock, sleeps: Sleeps
) -> None:
    # expires_in=100 would read as 100 minutes; the JWT says 100 seconds.
    pbx = make_pbx(mock, clock, token_lifetime_seconds=100)
    client = make_client(clock, sleeps)
    client.version()

    clock.advance(89)
    client.version()
    assert pbx.tokens_issued == 1
    clock.advance(2)
    client.version()
    assert pbx.tokens_issued == 2
    assert pbx.rejected_tokens == 0


class CountingLock:
    """A lock that lets a test see how many callers have reached it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals = threading.Condition()
        self.attempts = 0

    def __enter__(self) -> CountingLock:
        with self._arrivals:
            self.attempts += 1
            self._arrivals.notify_all()
        self._lock.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()

    def wait_for_attempts(self, count: int, timeout: float) -> bool:
        with self._arrivals:
            return self._arrivals.wait_for(lambda: self.attempts >= count, timeout=timeout)


def test_concurrent_callers_share_one_token_fetch(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    pbx.add_user(FirstName="Ada")
    callers = 8
    release = threading.Event()
    route = pbx.route

    def held_token_endpoint(request: Any) -> Any:
        if request.path == "/connect/token":
            release.wait(timeout=10)  # hold the first fetch until every caller has arrived
        return route(request)

    pbx.route = held_token_endpoint  # type: ignore[method-assign]
    lock = CountingLock()
    client._tokens._lock = lock  # type: ignore[assignment]  # observe the one-fetcher rule
    results: list[int] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(len(client.list_users()))
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    all_arrived = lock.wait_for_attempts(callers, timeout=10)
    release.set()
    for thread in threads:
        thread.join(timeout=10)

    assert all_arrived, "callers did not queue on the token lock"
    assert errors == []
    assert results == [1] * callers
    assert pbx.tokens_issued == 1
    assert pbx.rejected_tokens == 0


def test_secrets_and_tokens_stay_out_of_logs_and_reprs(
    pbx: ThreeCXFake, client: ThreeCXClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pbx.inject(429, count=2, retry_after=1)  # the token request, then the create
    client.create_user({"FirstName": "Ada"})
    token = client._tokens.current()

    assert SECRET not in caplog.text
    assert token not in caplog.text
    assert "3CX token issued" in caplog.text
    assert token not in repr(TokenResponse(access_token=token, expires_in=3600))


# -- users ------------------------------------------------------------------------------------------------------
def test_create_without_number_gets_the_first_free_one(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    pbx.add_user(Number="100")

    created = client.create_user({"FirstName": "Ada", "LastName": "Lovelace", "EmailAddress": "ada@example.com"})

    assert created.number == "101"
    assert created.display_name == "Ada Lovelace"
    assert pbx.user_by_number("101")["EmailAddress"] == "ada@example.com"


def test_get_user_and_missing_user(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    ada = pbx.add_user(FirstName="Ada", MS365SignInEnabled=True)

    user = client.get_user(ada["Id"])

    assert user is not None
    assert (user.first_name, user.ms365_sign_in_enabled, user.number) == ("Ada", True, ada["Number"])
    assert client.get_user(ada["Id"] + 1000) is None


def test_get_user_can_select_only_what_the_caller_needs(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    ada = pbx.add_user(FirstName="Ada", Mobile="+4930111")
    mark = len(XAPI_JOURNAL)

    user = client.get_user(ada["Id"], select=["FirstName"])

    assert XAPI_JOURNAL[mark].query["$select"] == "Id,Number,FirstName"
    assert user is not None and (user.first_name, user.mobile) == ("Ada", None)


def test_find_users_by_email_ignores_case_and_quotes_the_literal(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    pat = pbx.add_user(FirstName="Pat", EmailAddress="Pat.O'Brien@Contoso.com")
    pbx.add_user(FirstName="Other", EmailAddress="other@contoso.com")
    mark = len(XAPI_JOURNAL)

    found = client.find_users_by_email("pat.o'brien@CONTOSO.com", select=["EmailAddress"])

    assert [user.id for user in found] == [pat["Id"]]
    assert XAPI_JOURNAL[mark].query["$filter"] == "tolower(EmailAddress) eq 'pat.o''brien@contoso.com'"
    assert client.find_users_by_email("nobody@contoso.com") == []


def test_update_user_is_idempotent(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    ada = pbx.add_user(FirstName="Ada", Mobile="+4930111")
    change = {"LastName": "Lovelace", "Mobile": None, "Enabled": False}

    client.update_user(ada["Id"], change)
    once = pbx.users[ada["Id"]]
    client.update_user(ada["Id"], change)

    assert pbx.users[ada["Id"]] == once
    assert (once["LastName"], once["Mobile"], once["Enabled"]) == ("Lovelace", None, False)


def test_delete_user_treats_missing_as_done(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    ada = pbx.add_user()

    client.delete_user(ada["Id"])
    client.delete_user(ada["Id"])

    assert pbx.users == {}


def test_unknown_or_mistyped_fields_fail_before_sending(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    mark = len(XAPI_JOURNAL)

    with pytest.raises(ValidationError):
        client.create_user({"UserPrincipalName": "ada@example.com"})
    with pytest.raises(ValidationError):
        client.update_user(1, {"Enabled": "yes"})

    assert len(XAPI_JOURNAL) == mark


# -- errors -----------------------------------------------------------------------------------------------------
def test_duplicate_number_error_is_parsed(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    pbx.add_user(Number="101")

    with pytest.raises(TcxApiError) as raised:
        client.create_user({"Number": "101", "FirstName": "Bob"})

    error = raised.value
    assert (error.status, error.code, error.target) == (400, "WARNINGS.XAPI.ALREADY_IN_USE", "Number")
    assert str(error) == "3CX 400 WARNINGS.XAPI.ALREADY_IN_USE on Number"
    assert error.details == [{"code": "", "message": "WARNINGS.XAPI.ALREADY_IN_USE", "target": "Number"}]


def test_changing_a_number_is_a_forbidden_change(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    ada = pbx.add_user(Number="101")

    with pytest.raises(TcxApiError, match=r"^3CX 400 WARNINGS.XAPI.FORBIDDEN_CHANGE on Number$"):
        client.update_user(ada["Id"], {"Number": "102"})


def test_error_without_warning_key_keeps_the_message(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    pbx.inject(403, path_pattern=r"/Users")

    with pytest.raises(TcxApiError) as raised:
        client.list_users()

    assert raised.value.status == 403
    assert str(raised.value) == "3CX 403: Forbidden"


# -- status, avatar, version ------------------------------------------------------------------------------------
def test_set_status_takes_a_profile_name(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    ada = pbx.add_user()

    client.set_status(ada["Id"], "Out of office")

    assert pbx.users[ada["Id"]]["CurrentProfileName"] == "Out of office"
    with pytest.raises(TcxApiError, match="on CurrentProfileName"):
        client.set_status(ada["Id"], "Lunch")


def test_set_avatar_stores_a_data_uri(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    ada = pbx.add_user()
    picture = b"\x89PNG\r\n\x1a\n-not-really-a-png"

    client.set_avatar(ada["Id"], picture, "image/png")

    stored = pbx.users[ada["Id"]]["ContactImage"]
    prefix, _, encoded = stored.partition(",")
    assert prefix == "data:image/png;base64"
    assert base64.b64decode(encoded) == picture


def test_version_from_system_status(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    assert client.version() == pbx.version


def test_version_falls_back_to_the_defs_header(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    pbx.inject(403, path_pattern="/SystemStatus")

    assert client.version() == pbx.version


def test_without_sharing_two_instances_revoke_each_other() -> None:
    """Why the shared token exists: the PBX keeps only the newest token valid."""
    import responses as responses_lib

    from fakes.threecx import ThreeCXFake
    from fakes.transport import install
    from shared.threecx import ThreeCXClient

    fake = ThreeCXFake(client_id="solo", client_secret="solo-secret")
    with responses_lib.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, "https://pbx.solo.test", fake)
        first, second = (ThreeCXClient("https://pbx.solo.test", "solo", "solo-secret") for _ in range(2))
        first.list_users()
        second.list_users()
        first.list_users()
    assert fake.tokens_issued == 3
    assert fake.rejected_tokens == 1


# -- what check-pbx reads: 3CX's own Microsoft 365 integration, the client's role, counts --------------------
def test_the_microsoft_365_integration_is_read_typed(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    assert client.microsoft365_integration().connected is False

    pbx.configure_microsoft365(
        ApplicationId="3a7c9e1b-5d2f-4a6b-8c0d-e1f2a3b4c5d6",
        TenantId="8f2e6d4c-1b3a-4c5d-9e8f-0a1b2c3d4e5f",
        AdUsers={"IsEnabled": True, "SyncPersonalContacts": True, "SyncEvents": False},
        SharedMailboxesSync={"IsEnabled": True},
    )
    mark = len(XAPI_JOURNAL)
    integration = client.microsoft365_integration()

    assert journal_since(mark) == [("GET", "/xapi/v1/Microsoft365Integration")]
    assert integration.connected is True
    assert integration.tenant_id == "8f2e6d4c-1b3a-4c5d-9e8f-0a1b2c3d4e5f"
    assert (integration.user_sync, integration.personal_contacts_sync, integration.calendar_sync) == (True, True, False)
    assert integration.shared_mailboxes_sync is True


@pytest.mark.parametrize(
    ("answer", "connected", "flags"),
    [
        ({"ApplicationId": "app", "TenantId": ""}, False, (False, False, False)),  # half set up
        ({"ApplicationId": " ", "TenantId": "t"}, False, (False, False, False)),
        ({"ApplicationId": "app", "TenantId": "t", "AdUsers": None}, True, (False, False, False)),
        ({"AdUsers": {"IsEnabled": None, "SyncPersonalContacts": True}}, False, (False, True, False)),
        ({}, False, (False, False, False)),
    ],
)
def test_an_integration_answer_missing_parts_reads_as_off(answer: dict, connected: bool, flags: tuple) -> None:
    integration = Microsoft365Integration.model_validate(answer)
    assert integration.connected is connected
    assert (integration.user_sync, integration.personal_contacts_sync, integration.calendar_sync) == flags


def test_the_api_clients_role_is_read_from_its_service_principal(
    mock: responses.RequestsMock, clock: Clock, sleeps: Sleeps
) -> None:
    make_pbx(mock, clock, api_client_role="group_admins", api_client_department="Sales")
    mark = len(XAPI_JOURNAL)

    roles = make_client(clock, sleeps).api_client_roles()

    assert roles == [("Sales", "group_admins")]
    (request,) = XAPI_JOURNAL[mark:]
    assert request.query["$filter"] == f"Number eq '{CLIENT_ID}'"
    assert request.query["$expand"] == "Groups($expand=Rights)"


def test_a_client_id_with_a_quote_is_an_odata_literal(mock: responses.RequestsMock, clock: Clock) -> None:
    fake = ThreeCXFake(client_id="o'brien", client_secret=SECRET, clock=clock)
    install(mock, BASE, fake)
    mark = len(XAPI_JOURNAL)

    roles = ThreeCXClient(BASE, "o'brien", SECRET, clock=clock, sleep=lambda _s: None).api_client_roles()

    assert roles == [("DEFAULT", "system_admins")]
    assert XAPI_JOURNAL[mark:][-1].query["$filter"] == "Number eq 'o''brien'"


def test_no_service_principal_with_this_client_id_is_none(
    pbx: ThreeCXFake, client: ThreeCXClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pbx, "_service_principals", lambda: [])  # e.g. a PBX that lists them otherwise
    assert client.api_client_roles() is None


def test_counts_read_one_entry_at_most(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    for number in ("101", "102", "103"):
        pbx.add_user(Number=number)
    pbx.add_contact(FirstName="Ada", PhoneNumber="+4930123456")
    mark = len(XAPI_JOURNAL)

    assert (client.count_users(), client.count_contacts()) == (3, 1)

    requests_sent = XAPI_JOURNAL[mark:]
    assert [request.path for request in requests_sent] == ["/xapi/v1/Users", "/xapi/v1/Contacts"]
    assert all(request.query == {"$top": "1", "$select": "Id", "$count": "true"} for request in requests_sent)


def test_a_refused_read_is_the_pbxs_answer(pbx: ThreeCXFake, client: ThreeCXClient) -> None:
    pbx.inject(403, count=1, path_pattern=r"/Microsoft365Integration$")
    with pytest.raises(TcxApiError) as raised:
        client.microsoft365_integration()
    assert raised.value.status == 403

"""Calendars: the Graph fake's calendarView and /events, GraphClient.calendar_view, GraphEvent.

The fake enforces Graph's calendar rules (window parameters, overlap, series expansion,
paging, $select); the client must read one window in one request, in UTC, without
private properties.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
import responses
from pydantic import ValidationError

from fakes.graph import GraphFake, exchange_plan
from fakes.transport import FakeRequest, FakeResponse, install
from shared.graph import GraphApiError, GraphClient
from shared.graph_models import EVENT_SELECT, GraphEvent, parse_graph_datetime

ROOT = "https://graph.fake.test"
GRAPH = f"{ROOT}/v1.0"
TENANT = "6f1c2b9e-0d7a-4c55-9d0e-3b1f2a4c5d6e"
CLIENT = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
SECRET = "s3cr3t-value~for.tests"
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday, midnight UTC


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in the week of MONDAY (day 0 = Monday)."""
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute)


@pytest.fixture
def fake() -> Iterator[GraphFake]:
    graph = GraphFake(tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET, clock=lambda: MONDAY.timestamp())
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, ROOT, graph)
        yield graph


@pytest.fixture
def client(fake: GraphFake) -> GraphClient:
    token = fake.issue_token()
    return GraphClient(ROOT, lambda: token, sleep=lambda _: None)


@pytest.fixture
def http(fake: GraphFake) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {fake.issue_token()}"
    return session


@pytest.fixture
def ada(fake: GraphFake) -> str:
    return fake.add_user("ada@contoso.test")


def view_params(start: datetime, end: datetime, **extra: str) -> dict[str, str]:
    return {"startDateTime": start.isoformat(), "endDateTime": end.isoformat(), **extra}


# -- window and overlap ------------------------------------------------------------------------
def test_window_includes_only_overlapping_events(fake: GraphFake, client: GraphClient, ada: str) -> None:
    window = (at(0, 9), at(0, 17))
    ends_at_start = fake.add_event(ada, start=at(0, 8), end=at(0, 9))
    starts_at_end = fake.add_event(ada, start=at(0, 17), end=at(0, 18))
    straddles_start = fake.add_event(ada, start=at(0, 8, 30), end=at(0, 9, 30))
    inside = fake.add_event(ada, start=at(0, 12), end=at(0, 13), show_as="tentative")
    spans_all = fake.add_event(ada, start=at(0, 6), end=at(0, 20), show_as="oof")
    fake.add_event(ada, start=at(1, 9), end=at(1, 10))  # another day

    fake.reset_counts()
    events = {event.id: event for event in client.calendar_view(ada, *window)}

    assert set(events) == {straddles_start, inside, spans_all}
    assert ends_at_start not in events
    assert starts_at_end not in events
    assert events[inside].show_as == "tentative"
    assert events[spans_all].show_as == "oof"
    assert events[inside].start == at(0, 12)
    assert events[inside].start.utcoffset() == timedelta(0)
    assert events[inside].type == "singleInstance"
    assert fake.request_counts == {"GET": 1}
    assert fake.route_counts["GET /users/{key}/calendarView"] == 1


def test_window_accepts_any_offset_and_user_principal_name(fake: GraphFake, client: GraphClient, ada: str) -> None:
    meeting = fake.add_event(ada, start=at(0, 9), end=at(0, 10))
    berlin = ZoneInfo("Europe/Berlin")
    # 10:30-11:30 Berlin is 09:30-10:30 UTC: overlaps the meeting.
    start = datetime(2026, 11, 23, 10, 30, tzinfo=berlin)
    assert [event.id for event in client.calendar_view("ada@contoso.test", start, start + timedelta(hours=1))] == [
        meeting
    ]
    # 11:00-12:00 Berlin is 10:00-11:00 UTC: the meeting has just ended.
    later = datetime(2026, 11, 23, 11, 0, tzinfo=berlin)
    assert client.calendar_view(ada, later, later + timedelta(hours=1)) == []


def test_client_refuses_naive_window(client: GraphClient, ada: str) -> None:
    with pytest.raises(ValueError, match="naive"):
        client.calendar_view(ada, datetime(2026, 11, 23, 9), datetime(2026, 11, 23, 10))


# -- what the client asks for -----------------------------------------------------------------
def test_client_asks_for_utc_and_no_private_properties(
    fake: GraphFake, client: GraphClient, ada: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.add_event(ada, start=at(0, 9), end=at(0, 10), subject="Salary review with Bob")
    seen: list[FakeRequest] = []
    answers: list[FakeResponse] = []
    original_route = fake.route

    def recording_route(request: FakeRequest) -> FakeResponse:
        seen.append(request)
        answers.append(original_route(request))
        return answers[-1]

    monkeypatch.setattr(fake, "route", recording_route)
    [event] = client.calendar_view(ada, at(0, 0), at(1, 0))

    [request] = seen
    assert request.headers["Prefer"] == 'outlook.timezone="UTC"'
    assert request.query["$select"].split(",") == list(EVENT_SELECT)
    assert "subject" not in request.query["$select"].lower()
    assert request.query["$top"] == "500"
    assert answers[0].headers["Preference-Applied"] == 'outlook.timezone="UTC"'
    assert "subject" not in answers[0].body["value"][0]
    assert event.start == at(0, 9)


def test_raw_shape_of_a_calendar_view_item(fake: GraphFake, http: requests.Session, ada: str) -> None:
    fake.add_event(ada, start=at(0, 9, 15), end=at(0, 10), subject="Standup")
    answer = http.get(f"{GRAPH}/users/{ada}/calendarView", params=view_params(at(0, 0), at(1, 0)), timeout=5)
    assert answer.status_code == 200
    assert "Preference-Applied" not in answer.headers  # not asked for: not claimed
    [item] = answer.json()["value"]
    assert item["start"] == {"dateTime": "2026-11-23T09:15:00.0000000", "timeZone": "UTC"}
    assert item["end"] == {"dateTime": "2026-11-23T10:00:00.0000000", "timeZone": "UTC"}
    assert item["subject"] == "Standup"
    assert item["showAs"] == "busy"
    assert item["isAllDay"] is False
    assert item["isCancelled"] is False
    assert item["type"] == "singleInstance"
    assert item["seriesMasterId"] is None
    assert item["lastModifiedDateTime"].endswith("Z")
    assert item["@odata.etag"].startswith('W/"')


def test_select_limits_properties_and_rejects_unknown_ones(fake: GraphFake, http: requests.Session, ada: str) -> None:
    fake.add_event(ada, start=at(0, 9), end=at(0, 10))
    url = f"{GRAPH}/users/{ada}/calendarView"
    [item] = http.get(url, params=view_params(at(0, 0), at(1, 0), **{"$select": "showAs"}), timeout=5).json()["value"]
    assert set(item) == {"@odata.etag", "id", "showAs"}

    refused = http.get(url, params=view_params(at(0, 0), at(1, 0), **{"$select": "showAs,mood"}), timeout=5)
    assert refused.status_code == 400
    assert "mood" in refused.json()["error"]["message"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"startDateTime": "2026-11-23T00:00:00Z"},
        {"endDateTime": "2026-11-24T00:00:00Z"},
        {"startDateTime": "yesterday", "endDateTime": "2026-11-24T00:00:00Z"},
        {"startDateTime": "2026-11-24T00:00:00Z", "endDateTime": "2026-11-23T00:00:00Z"},
    ],
)
def test_window_parameters_are_required_and_valid(http: requests.Session, ada: str, params: dict[str, str]) -> None:
    answer = http.get(f"{GRAPH}/users/{ada}/calendarView", params=params, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "ErrorInvalidParameter"


def test_users_without_a_mailbox_have_no_calendar(fake: GraphFake, client: GraphClient) -> None:
    no_mailbox = fake.add_user("kiosk@contoso.test", has_mailbox=False)
    with pytest.raises(GraphApiError) as raised:
        client.calendar_view(no_mailbox, at(0, 0), at(1, 0))
    assert (raised.value.status, raised.value.code) == (404, "MailboxNotEnabledForRESTAPI")
    with pytest.raises(GraphApiError) as unknown:
        client.calendar_view("nobody@contoso.test", at(0, 0), at(1, 0))
    assert unknown.value.status == 404


@pytest.mark.parametrize(("status", "served"), [("Warning", True), ("Suspended", False), ("Deleted", False)])
def test_a_mailbox_serves_its_calendar_until_the_licence_grace_period_ends(
    fake: GraphFake, client: GraphClient, status: str, served: bool
) -> None:
    user = fake.add_user("lapsing@contoso.test")
    fake.update_user(user, assignedPlans=[exchange_plan("2024-01-01T00:00:00Z", capability_status=status)])
    if served:
        assert client.calendar_view(user, at(0, 0), at(1, 0)) == []
    else:
        with pytest.raises(GraphApiError) as raised:
            client.calendar_view(user, at(0, 0), at(1, 0))
        assert (raised.value.status, raised.value.code) == (404, "MailboxNotEnabledForRESTAPI")


# -- paging -----------------------------------------------------------------------------------------
def test_default_page_is_ten_with_next_links(fake: GraphFake, http: requests.Session, ada: str) -> None:
    ids = [fake.add_event(ada, start=at(0, 8, minute), end=at(0, 8, minute + 1)) for minute in range(25)]
    url: str | None = f"{GRAPH}/users/{ada}/calendarView"
    params: dict[str, str] | None = view_params(at(0, 0), at(1, 0))
    pages: list[list[str]] = []
    while url:
        body = http.get(url, params=params, timeout=5).json()
        pages.append([item["id"] for item in body["value"]])
        url, params = body.get("@odata.nextLink"), None
    assert [len(page) for page in pages] == [10, 10, 5]
    assert [event_id for page in pages for event_id in page] == ids  # by start time, none lost or repeated


def test_client_reads_a_busy_calendar_in_few_requests(fake: GraphFake, client: GraphClient, ada: str) -> None:
    ids = {fake.add_event(ada, start=at(0, 0, minute), end=at(0, 0, minute + 1)) for minute in range(1200)}
    client.calendar_view(ada, at(0, 0), at(0, 1))
    fake.reset_counts()
    events = client.calendar_view(ada, at(0, 0), at(1, 0))
    assert {event.id for event in events} == ids
    assert fake.request_counts == {"GET": 3}  # 500 + 500 + 200
    assert fake.route_counts == {"GET /users/{key}/calendarView": 3}


def test_throttled_calendar_view_is_retried(fake: GraphFake, ada: str) -> None:
    fake.add_event(ada, start=at(0, 9), end=at(0, 10))
    sleeps: list[float] = []
    token = fake.issue_token()
    client = GraphClient(ROOT, lambda: token, sleep=sleeps.append)
    fake.inject(429, retry_after=3, path_pattern="/calendarView$")
    assert len(client.calendar_view(ada, at(0, 0), at(1, 0))) == 1
    assert sleeps == [3.0]


# -- recurrence -------------------------------------------------------------------------------------
def test_daily_series_is_expanded_into_occurrences(
    fake: GraphFake, client: GraphClient, http: requests.Session, ada: str
) -> None:
    master = fake.add_event(ada, start=at(0, 9), end=at(0, 9, 30), recurrence={"pattern": "daily", "count": 5})

    week = client.calendar_view(ada, at(0, 0), at(7, 0))
    assert [event.start for event in week] == [at(day, 9) for day in range(5)]
    assert {event.type for event in week} == {"occurrence"}
    assert {event.series_master_id for event in week} == {master}
    assert len({event.id for event in week}) == 5
    assert master not in {event.id for event in week}

    # A window over Wednesday alone holds Wednesday's occurrence only.
    [wednesday] = client.calendar_view(ada, at(2, 0), at(3, 0))
    assert wednesday.end == at(2, 9, 30)

    # /events shows the series master, with its recurrence, not the occurrences.
    [listed] = http.get(f"{GRAPH}/users/{ada}/events", timeout=5).json()["value"]
    assert listed["id"] == master
    assert listed["type"] == "seriesMaster"
    assert listed["recurrence"]["pattern"]["type"] == "daily"
    assert listed["recurrence"]["range"] == {
        "type": "numbered",
        "startDate": "2026-11-23",
        "endDate": "0001-01-01",
        "recurrenceTimeZone": "UTC",
        "numberOfOccurrences": 5,
    }


def test_weekly_series_and_changed_occurrences(fake: GraphFake, client: GraphClient, ada: str) -> None:
    master = fake.add_event(ada, start=at(0, 14), end=at(0, 15), recurrence={"pattern": "weekly", "count": 4})
    occurrences = client.calendar_view(ada, at(0, 0), at(28, 0))
    assert [event.start for event in occurrences] == [at(7 * week, 14) for week in range(4)]

    second, third, fourth = (event.id for event in occurrences[1:])
    fake.update_event(ada, second, show_as="free")
    fake.cancel_event(ada, third)
    fake.delete_event(ada, fourth)

    by_id = {event.id: event for event in client.calendar_view(ada, at(0, 0), at(28, 0))}
    assert set(by_id) == {occurrences[0].id, second, third}
    assert by_id[second].type == "exception"
    assert by_id[second].show_as == "free"
    assert by_id[third].is_cancelled
    assert by_id[occurrences[0].id].type == "occurrence"
    assert by_id[occurrences[0].id].show_as == "busy"

    fake.delete_event(ada, master)  # the whole series
    assert client.calendar_view(ada, at(0, 0), at(28, 0)) == []


def test_moving_an_occurrence_moves_it_in_the_view(fake: GraphFake, client: GraphClient, ada: str) -> None:
    fake.add_event(ada, start=at(0, 9), end=at(0, 10), recurrence={"pattern": "daily", "count": 3})
    tuesday = client.calendar_view(ada, at(1, 0), at(2, 0))[0].id
    fake.update_event(ada, tuesday, start=at(1, 16), end=at(1, 17))
    assert client.calendar_view(ada, at(1, 8), at(1, 12)) == []
    [moved] = client.calendar_view(ada, at(1, 12), at(1, 18))
    assert (moved.id, moved.type, moved.start) == (tuesday, "exception", at(1, 16))


# -- all-day and cancelled ----------------------------------------------------------------------------
def test_all_day_events_span_midnight_to_midnight(
    fake: GraphFake, client: GraphClient, http: requests.Session, ada: str
) -> None:
    holiday = fake.add_event(ada, start=date(2026, 11, 25), end=date(2026, 11, 27), is_all_day=True, show_as="oof")

    [event] = client.calendar_view(ada, at(2, 12), at(2, 13))
    assert event.id == holiday
    assert event.is_all_day
    assert (event.start, event.end) == (at(2, 0), at(4, 0))
    assert client.calendar_view(ada, at(1, 0), at(2, 0)) == []  # the window ends where the holiday starts
    assert client.calendar_view(ada, at(4, 0), at(5, 0)) == []  # the end day is exclusive

    [raw] = http.get(f"{GRAPH}/users/{ada}/calendarView", params=view_params(at(2, 0), at(3, 0)), timeout=5).json()[
        "value"
    ]
    assert raw["start"] == {"dateTime": "2026-11-25T00:00:00.0000000", "timeZone": "UTC"}
    assert raw["end"] == {"dateTime": "2026-11-27T00:00:00.0000000", "timeZone": "UTC"}


def test_all_day_events_need_whole_days(fake: GraphFake, ada: str) -> None:
    with pytest.raises(ValueError, match="later day"):
        fake.add_event(ada, start=date(2026, 11, 25), end=date(2026, 11, 25), is_all_day=True)


def test_cancelled_events_are_returned_marked(fake: GraphFake, client: GraphClient, ada: str) -> None:
    kept = fake.add_event(ada, start=at(0, 9), end=at(0, 10))
    called_off = fake.add_event(ada, start=at(0, 11), end=at(0, 12))
    fake.cancel_event(ada, called_off)
    by_id = {event.id: event for event in client.calendar_view(ada, at(0, 0), at(1, 0))}
    assert by_id[called_off].is_cancelled
    assert not by_id[kept].is_cancelled


def test_updates_and_deletes_show_in_the_view(fake: GraphFake, client: GraphClient, ada: str) -> None:
    meeting = fake.add_event(ada, start=at(0, 9), end=at(0, 10))
    fake.update_event(ada, meeting, show_as="workingElsewhere", end=at(0, 11))
    [event] = client.calendar_view(ada, at(0, 10, 30), at(0, 12))
    assert (event.show_as, event.end) == ("workingElsewhere", at(0, 11))
    fake.delete_event(ada, meeting)
    assert client.calendar_view(ada, at(0, 0), at(1, 0)) == []
    with pytest.raises(KeyError):
        fake.update_event(ada, meeting, show_as="free")


def test_event_helpers_validate_their_input(fake: GraphFake, ada: str) -> None:
    with pytest.raises(ValueError, match="aware"):
        fake.add_event(ada, start=datetime(2026, 11, 23, 9), end=datetime(2026, 11, 23, 10))
    with pytest.raises(ValueError, match="showAs"):
        fake.add_event(ada, start=at(0, 9), end=at(0, 10), show_as="away")
    with pytest.raises(ValueError, match="pattern"):
        fake.add_event(ada, start=at(0, 9), end=at(0, 10), recurrence={"pattern": "monthly", "count": 2})
    with pytest.raises(TypeError, match="location"):
        fake.update_event(ada, fake.add_event(ada, start=at(0, 9), end=at(0, 10)), location="Room 1")


# -- the model ------------------------------------------------------------------------------------
def test_graph_datetimes_with_seven_fractional_digits() -> None:
    assert parse_graph_datetime("2026-11-26T10:00:00.1234567") == datetime(2026, 11, 26, 10, 0, 0, 123456, UTC)
    assert parse_graph_datetime("2026-11-26T10:00:00.0000000Z") == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert parse_graph_datetime("2026-11-26T10:00:00+01:00") == datetime(2026, 11, 26, 9, tzinfo=UTC)


def test_event_times_become_aware_utc_from_any_iana_zone() -> None:
    event = GraphEvent.model_validate(
        {
            "id": "e1",
            "showAs": "busy",
            "start": {"dateTime": "2026-07-01T09:00:00.0000000", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-07-01T10:00:00.0000000", "timeZone": "UTC"},
        }
    )
    assert event.start == datetime(2026, 7, 1, 7, tzinfo=UTC)  # summer time: UTC+2
    assert event.start.tzinfo is not None
    assert event.end == datetime(2026, 7, 1, 10, tzinfo=UTC)


def test_windows_zone_names_fail_clearly() -> None:
    with pytest.raises(ValidationError, match="W. Europe Standard Time"):
        GraphEvent.model_validate(
            {
                "id": "e1",
                "start": {"dateTime": "2026-07-01T09:00:00.0000000", "timeZone": "W. Europe Standard Time"},
                "end": {"dateTime": "2026-07-01T10:00:00.0000000", "timeZone": "UTC"},
            }
        )


@pytest.mark.parametrize(
    ("sent", "read"), [("busy", "busy"), ("workingElsewhere", "workingElsewhere"), ("x", "unknown")]
)
def test_unknown_show_as_values_read_as_unknown(sent: str, read: str) -> None:
    times = {"dateTime": "2026-07-01T09:00:00.0000000", "timeZone": "UTC"}
    assert GraphEvent.model_validate({"id": "e", "showAs": sent, "start": times, "end": times}).show_as == read

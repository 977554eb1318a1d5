"""Queue messages: one typed model per kind; anything no producer writes is refused."""

from __future__ import annotations

import json

import pytest

from shared.work_items import CalendarWork, ContactsWork, UserWork, parse_work, traceparent_of

USER = "8f2e6d4c-1b3a-4c5d-9e8f-0a1b2c3d4e5f"
SUBSCRIPTION = "0c9e7a5b-3d1f-4e2a-8b6c-9d0e1f2a3b4c"


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "calendar", "user_id": USER},
        {"kind": "user", "user_id": USER},
        {"kind": "boundary", "user_id": USER, "due": "2026-11-26T09:30:00Z"},
        {"kind": "contacts", "user_id": USER},
        {"kind": "contacts", "user_id": "sales@contoso.com"},  # a shared mailbox
        {"kind": "lifecycle", "subscription_id": SUBSCRIPTION, "lifecycle_event": "missed", "user_id": USER},
        {"kind": "lifecycle", "subscription_id": SUBSCRIPTION, "lifecycle_event": "missed"},
    ],
)
def test_what_the_producers_write_is_read_back(fields: dict[str, str]) -> None:
    assert parse_work(json.dumps(fields)).kind == fields["kind"]


@pytest.mark.parametrize("bad", ["..", ".", "", "ada", "../x@contoso.com", "user-a", "{" + USER + "}"])
@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "calendar"},
        {"kind": "user"},
        {"kind": "boundary", "due": "2026-11-26T09:30:00Z"},
        {"kind": "contacts"},
        {"kind": "lifecycle", "subscription_id": SUBSCRIPTION, "lifecycle_event": "missed"},
    ],
    ids=lambda fields: fields["kind"],
)
def test_a_message_with_a_malformed_user_id_is_refused(fields: dict[str, str], bad: str) -> None:
    """Fault: a user id such as ".." became a Graph URL (GET /v1.0/) and a poison message."""
    with pytest.raises(ValueError, match="user_id"):
        parse_work(json.dumps({**fields, "user_id": bad}))


@pytest.mark.parametrize("model", [CalendarWork, UserWork])
def test_calendar_and_user_work_name_a_user_by_object_id_only(model: type[CalendarWork | UserWork]) -> None:
    """Graph's notifications and our links name users by object id; an address there is no producer's."""
    with pytest.raises(ValueError, match="user_id"):
        model(user_id="ada@contoso.com")
    assert ContactsWork(user_id="ada@contoso.com").user_id == "ada@contoso.com"


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_message_carries_the_trace_of_whoever_queued_it() -> None:
    item = UserWork(user_id=USER)
    traced = item.traced(TRACEPARENT)
    assert parse_work(traced.to_message()).traceparent == TRACEPARENT
    assert traced.traced("00-" + "1" * 32 + "-" + "2" * 16 + "-01") is traced, "a message put back keeps its trace"
    assert item.traced(None) is item
    assert "traceparent" not in item.to_message()


@pytest.mark.parametrize("bad", ["", "00-abc-def-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"])
def test_a_traceparent_that_is_not_w3c_is_no_producers(bad: str) -> None:
    with pytest.raises(ValueError, match="traceparent"):
        parse_work(json.dumps({"kind": "user", "user_id": USER, "traceparent": bad}))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (json.dumps({"kind": "user", "user_id": USER, "traceparent": TRACEPARENT}), TRACEPARENT),
        (json.dumps({"kind": "reboot", "traceparent": TRACEPARENT}), TRACEPARENT),  # read before judging the rest
        (json.dumps({"kind": "user", "user_id": USER}), None),
        (json.dumps({"traceparent": "nonsense"}), None),
        ("not json", None),
        ("[1, 2]", None),
    ],
)
def test_the_worker_reads_the_trace_before_the_work(text: str, expected: str | None) -> None:
    assert traceparent_of(text) == expected

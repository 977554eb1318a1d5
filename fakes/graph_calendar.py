"""Calendars for the Graph fake: events per mailbox, `/events` and `/calendarView`.

Mixed into `GraphFake`. Tests change calendars through plain methods (`add_event`,
`update_event`, `cancel_event`, `delete_event`); every change tells the subscription side
(`_notify_event_change`), which delivers Graph change notifications to subscribers.

What the fake enforces, as Graph does (facts: shared/reference/graph.md §3): calendarView
needs both window parameters, returns only events overlapping the window
(start < window end and end > window start), expands recurring series into occurrences,
answers ten events a page unless `$top` says otherwise, and rejects unknown `$select`
names. Times always come back in UTC; `Prefer: outlook.timezone="UTC"` is acknowledged with
`Preference-Applied`. A user without a mailbox has no calendar (404
`MailboxNotEnabledForRESTAPI`); the mailbox works while an Exchange plan is `Enabled` or
`Warning` (a lapsed licence's grace period: "available for normal use", per Graph's
assignedPlan resource type), not once it is `Suspended`, `LockedOut` or `Deleted`.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote

from fakes.graph_errors import GraphQueryError
from fakes.transport import FakeRequest, FakeResponse

SHOW_AS_VALUES = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
DEFAULT_EVENT_PAGE_SIZE = 10  # calendarView's and /events' default page (graph.md §2.6)
MAX_EVENT_PAGE_SIZE = 1000  # a larger $top is served as 1000 a page
RECURRENCE_STEPS = {"daily": timedelta(days=1), "weekly": timedelta(weeks=1)}
EXCHANGE_SERVICE = "exchange"
WORKING_CAPABILITIES = ("enabled", "warning")  # capabilityStatus values that still serve the mailbox

# Properties `$select` accepts on events. The fake stores the ones a phone status needs and
# answers null for the rest, but it refuses names Graph does not know.
KNOWN_EVENT_PROPERTIES: tuple[str, ...] = (
    "id",
    "subject",
    "showAs",
    "isAllDay",
    "isCancelled",
    "type",
    "seriesMasterId",
    "start",
    "end",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "recurrence",
    "importance",
    "sensitivity",
    "isOrganizer",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "hasAttachments",
    "bodyPreview",
    "body",
    "location",
    "locations",
    "attendees",
    "organizer",
    "categories",
    "webLink",
    "onlineMeeting",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "allowNewTimeProposals",
    "isDraft",
    "hideAttendees",
    "iCalUId",
    "originalStart",
    "responseStatus",
    "transactionId",
)
_CANONICAL_EVENT_PROPERTY = {name.lower(): name for name in KNOWN_EVENT_PROPERTIES}
_UPDATABLE = frozenset({"start", "end", "show_as", "is_all_day", "is_cancelled", "subject", "recurrence"})
_OCCURRENCE_UPDATABLE = frozenset({"start", "end", "show_as", "is_cancelled", "subject"})
_OCCURRENCE_SEPARATOR = "~"  # never produced by token_urlsafe, so master ids cannot contain it


class CalendarError(GraphQueryError):
    """A calendar request the fake refuses, in Graph's words."""


@dataclass
class Recurrence:
    """A numbered daily or weekly series: `count` occurrences, `step` apart."""

    pattern: str
    count: int
    interval: int = 1

    @property
    def step(self) -> timedelta:
        return RECURRENCE_STEPS[self.pattern] * self.interval


@dataclass
class CalendarEvent:
    """One stored event: a single instance or a series master.

    All-day events keep dates (the calendar days they cover, end exclusive); timed events
    keep aware UTC datetimes. Changes to single occurrences of a series live on the master
    (`exceptions` by occurrence index, `deleted_occurrences`), as Exchange keeps them.
    """

    id: str
    user_id: str
    subject: str
    start: datetime | date
    end: datetime | date
    show_as: str
    is_all_day: bool
    is_cancelled: bool
    recurrence: Recurrence | None
    created: datetime
    last_modified: datetime
    change_serial: int = 1
    exceptions: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted_occurrences: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class EventInstance:
    """An event as calendarView sees it: a single instance, an occurrence or an exception."""

    id: str
    subject: str
    start: datetime  # aware UTC (midnight for all-day events)
    end: datetime
    show_as: str
    is_all_day: bool
    is_cancelled: bool
    type: str
    series_master_id: str | None
    source: CalendarEvent


class CalendarMixin:
    """The calendar half of GraphFake (state, helpers and routes)."""

    # Provided by GraphFake.
    _lock: threading.RLock
    clock: Callable[[], float]
    users: dict[str, dict[str, Any]]
    base_url: str
    add_route: Callable[..., None]
    _find_user: Callable[[str], dict[str, Any]]
    _notify_event_change: Callable[[str, str, str], None]

    def _init_calendars(self) -> None:
        self.calendars: dict[str, dict[str, CalendarEvent]] = {}  # user id -> event id -> event

    # =====================================================================================
    # helpers for tests, demo and benchmarks
    # =====================================================================================
    def add_event(
        self,
        user_id: str,
        *,
        start: datetime | date,
        end: datetime | date,
        show_as: str = "busy",
        is_all_day: bool = False,
        is_cancelled: bool = False,
        subject: str = "Meeting",
        recurrence: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> str:
        """Add an event to a user's calendar and return its id.

        Timed events take aware datetimes; all-day events take dates (or datetimes, whose
        UTC date is used), the end being the first day no longer covered. `recurrence`
        is `{"pattern": "daily"|"weekly", "count": N}` (optionally `"interval": K`).
        Subscribers to the user's events hear `created`.
        """
        with self._lock:
            if user_id not in self.users:
                raise KeyError(f"no user {user_id}")
            begin, finish = _event_span(start, end, is_all_day)
            now = self._calendar_now()
            event = CalendarEvent(
                id=event_id or _new_event_id(),
                user_id=user_id,
                subject=subject,
                start=begin,
                end=finish,
                show_as=_show_as(show_as),
                is_all_day=is_all_day,
                is_cancelled=is_cancelled,
                recurrence=_recurrence(recurrence),
                created=now,
                last_modified=now,
            )
            calendar = self.calendars.setdefault(user_id, {})
            if event.id in calendar:
                raise ValueError(f"event id {event.id} already exists")
            calendar[event.id] = event
        self._notify_event_change(user_id, event.id, "created")
        return event.id

    def update_event(self, user_id: str, event_id: str, **fields: Any) -> None:
        """Change an event (`start`, `end`, `show_as`, `is_all_day`, `is_cancelled`, `subject`,
        `recurrence`). Given an occurrence id, only that occurrence changes (it becomes an
        exception). Subscribers hear `updated`.
        """
        with self._lock:
            master, index = self._stored_event(user_id, event_id)
            if index is None:
                _update_stored(master, fields)
            else:
                _update_occurrence(master, index, fields)
            master.change_serial += 1
            master.last_modified = self._calendar_now()
        self._notify_event_change(user_id, event_id, "updated")

    def cancel_event(self, user_id: str, event_id: str) -> None:
        """Cancel an event as its organizer does: it stays, marked `isCancelled`."""
        self.update_event(user_id, event_id, is_cancelled=True)

    def delete_event(self, user_id: str, event_id: str) -> None:
        """Remove an event (a whole series, or one occurrence of it). Subscribers hear `deleted`."""
        with self._lock:
            master, index = self._stored_event(user_id, event_id)
            if index is None:
                del self.calendars[user_id][master.id]
            else:
                master.deleted_occurrences.add(index)
                master.exceptions.pop(index, None)
                master.change_serial += 1
                master.last_modified = self._calendar_now()
        self._notify_event_change(user_id, event_id, "deleted")

    def event_instances(self, user_id: str) -> list[EventInstance]:
        """Every instance in a user's calendar (series expanded), sorted by start."""
        with self._lock:
            return sorted(
                (instance for event in self.calendars.get(user_id, {}).values() for instance in _instances(event)),
                key=lambda instance: (instance.start, instance.id),
            )

    # =====================================================================================
    # routes
    # =====================================================================================
    def _register_calendar_routes(self) -> None:
        self.add_route("GET", r"/users/(?P<key>[^/]+)/calendarView", self._calendar_view)
        self.add_route("GET", r"/users/(?P<key>[^/]+)/calendar/calendarView", self._calendar_view)
        self.add_route("GET", r"/users/(?P<key>[^/]+)/events", self._list_events)
        self.add_route("GET", r"/users/(?P<key>[^/]+)/events/(?P<event>[^/]+)", self._get_event)

    def _calendar_view(self, request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        user_id = self._mailbox_owner(match["key"])
        query = {key.lower(): value for key, value in request.query.items()}
        window_start = _window_bound(query.get("startdatetime"), "StartDateTime")
        window_end = _window_bound(query.get("enddatetime"), "EndDateTime")
        if window_end < window_start:
            raise CalendarError(
                400, "ErrorInvalidParameter", "The parameter 'EndDateTime' must be later than 'StartDateTime'."
            )
        select = _parse_event_select(query.get("$select"))
        page_size = _parse_event_top(query.get("$top"))
        skip = _parse_skip(query.get("$skip"))
        instances = [
            instance
            for instance in self.event_instances(user_id)
            if instance.start < window_end and instance.end > window_start
        ]
        link_query = {
            "startDateTime": query["startdatetime"],
            "endDateTime": query["enddatetime"],
            **({"$select": query["$select"]} if "$select" in query else {}),
            "$top": str(page_size),
        }
        path = f"/users/{quote(match['key'], safe='@')}/calendarView"
        return self._event_page(request, instances, select, page_size, skip, path, link_query, user_id)

    def _list_events(self, request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        user_id = self._mailbox_owner(match["key"])
        query = {key.lower(): value for key, value in request.query.items()}
        select = _parse_event_select(query.get("$select"))
        page_size = _parse_event_top(query.get("$top"))
        skip = _parse_skip(query.get("$skip"))
        with self._lock:
            events = sorted(self.calendars.get(user_id, {}).values(), key=lambda event: (event.created, event.id))
            masters = [_master_instance(event) for event in events]
        link_query = {**({"$select": query["$select"]} if "$select" in query else {}), "$top": str(page_size)}
        path = f"/users/{quote(match['key'], safe='@')}/events"
        return self._event_page(request, masters, select, page_size, skip, path, link_query, user_id)

    def _get_event(self, request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        user_id = self._mailbox_owner(match["key"])
        select = _parse_event_select({key.lower(): v for key, v in request.query.items()}.get("$select"))
        try:
            master, index = self._stored_event(user_id, match["event"])
        except KeyError:
            raise _item_not_found() from None
        if index is None:
            instance = _master_instance(master)
        else:
            found = [item for item in _instances(master) if item.id == match["event"]]
            if not found:
                raise _item_not_found()
            instance = found[0]
        context = f"{self.base_url}/v1.0/$metadata#users('{user_id}')/events/$entity"
        timezone_applied = _utc_preference(request)
        headers = {"Preference-Applied": 'outlook.timezone="UTC"'} if timezone_applied else {}
        return FakeResponse(200, {"@odata.context": context, **_event_json(instance, select)}, headers)

    def _event_page(
        self,
        request: FakeRequest,
        instances: list[EventInstance],
        select: tuple[str, ...] | None,
        page_size: int,
        skip: int,
        path: str,
        link_query: dict[str, str],
        user_id: str,
    ) -> FakeResponse:
        page = instances[skip : skip + page_size]
        body: dict[str, Any] = {
            "@odata.context": f"{self.base_url}/v1.0/$metadata#users('{user_id}')/events",
            "value": [_event_json(instance, select) for instance in page],
        }
        if skip + page_size < len(instances):
            link = "&".join(f"{key}={quote(value, safe=',:')}" for key, value in link_query.items())
            body["@odata.nextLink"] = f"{self.base_url}/v1.0{path}?{link}&$skip={skip + page_size}"
        headers = {"Preference-Applied": 'outlook.timezone="UTC"'} if _utc_preference(request) else {}
        return FakeResponse(200, body, headers)

    # =====================================================================================
    # internals
    # =====================================================================================
    def _calendar_now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _mailbox_owner(self, key: str) -> str:
        """The id of the user a calendar path names; 404 as Graph answers without a mailbox."""
        record = self._find_user(key)
        has_mailbox = any(
            str(plan.get("service", "")).lower() == EXCHANGE_SERVICE
            and str(plan.get("capabilityStatus", "")).lower() in WORKING_CAPABILITIES
            for plan in record.get("assignedPlans") or []
        )
        if not has_mailbox:
            raise CalendarError(
                404,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )
        return str(record["id"])

    def _stored_event(self, user_id: str, event_id: str) -> tuple[CalendarEvent, int | None]:
        """The stored event behind an id, and the occurrence index when it names one."""
        calendar = self.calendars.get(user_id, {})
        if event_id in calendar:
            return calendar[event_id], None
        master_id, separator, index_text = event_id.rpartition(_OCCURRENCE_SEPARATOR)
        master = calendar.get(master_id) if separator else None
        if master is None or master.recurrence is None or not index_text.isdigit():
            raise KeyError(f"no event {event_id} in the calendar of {user_id}")
        index = int(index_text)
        if index >= master.recurrence.count or index in master.deleted_occurrences:
            raise KeyError(f"no event {event_id} in the calendar of {user_id}")
        return master, index


# =========================================================================================
# expansion and JSON
# =========================================================================================
def _instances(event: CalendarEvent) -> Iterator[EventInstance]:
    """What calendarView shows of a stored event: itself, or the occurrences of its series."""
    start, end = _utc_span(event)
    if event.recurrence is None:
        yield EventInstance(
            event.id,
            event.subject,
            start,
            end,
            event.show_as,
            event.is_all_day,
            event.is_cancelled,
            "singleInstance",
            None,
            event,
        )
        return
    step = event.recurrence.step
    for index in range(event.recurrence.count):
        if index in event.deleted_occurrences:
            continue
        override = event.exceptions.get(index, {})
        yield EventInstance(
            id=f"{event.id}{_OCCURRENCE_SEPARATOR}{index}",
            subject=override.get("subject", event.subject),
            start=override.get("start", start + step * index),
            end=override.get("end", end + step * index),
            show_as=override.get("show_as", event.show_as),
            is_all_day=event.is_all_day,
            is_cancelled=override.get("is_cancelled", event.is_cancelled),
            type="exception" if override else "occurrence",
            series_master_id=event.id,
            source=event,
        )


def _master_instance(event: CalendarEvent) -> EventInstance:
    start, end = _utc_span(event)
    return EventInstance(
        event.id,
        event.subject,
        start,
        end,
        event.show_as,
        event.is_all_day,
        event.is_cancelled,
        "singleInstance" if event.recurrence is None else "seriesMaster",
        None,
        event,
    )


def _event_json(instance: EventInstance, select: tuple[str, ...] | None) -> dict[str, Any]:
    source = instance.source
    etag_value = f"{source.id}.{source.change_serial}".encode().hex()[-24:]
    change_key = f"{etag_value}{source.change_serial:04d}"
    full: dict[str, Any] = {
        "id": instance.id,
        "createdDateTime": _timestamp(source.created),
        "lastModifiedDateTime": _timestamp(source.last_modified),
        "changeKey": change_key,
        "categories": [],
        "originalStartTimeZone": "UTC",
        "originalEndTimeZone": "UTC",
        "iCalUId": f"040000008200E00074C5B7101A82E008{source.id.encode().hex()[:32].upper()}",
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": True,
        "hasAttachments": False,
        "subject": instance.subject,
        "bodyPreview": "",
        "importance": "normal",
        "sensitivity": "normal",
        "isAllDay": instance.is_all_day,
        "isCancelled": instance.is_cancelled,
        "isOrganizer": True,
        "responseRequested": True,
        "seriesMasterId": instance.series_master_id,
        "showAs": instance.show_as,
        "type": instance.type,
        "start": _date_time_zone(instance.start),
        "end": _date_time_zone(instance.end),
        "recurrence": _recurrence_json(source) if instance.type == "seriesMaster" else None,
    }
    body = {"@odata.etag": f'W/"{change_key}"'}
    if select is None:
        body.update(full)
        return body
    body["id"] = instance.id
    for name in select:
        body[name] = full.get(name)
    return body


def _recurrence_json(event: CalendarEvent) -> dict[str, Any] | None:
    if event.recurrence is None:
        return None
    start, _ = _utc_span(event)
    pattern: dict[str, Any] = {
        "type": event.recurrence.pattern,
        "interval": event.recurrence.interval,
        "month": 0,
        "dayOfMonth": 0,
        "firstDayOfWeek": "sunday",
        "index": "first",
    }
    if event.recurrence.pattern == "weekly":
        pattern["daysOfWeek"] = [start.strftime("%A").lower()]
    return {
        "pattern": pattern,
        "range": {
            "type": "numbered",
            "startDate": start.date().isoformat(),
            "endDate": "0001-01-01",
            "recurrenceTimeZone": "UTC",
            "numberOfOccurrences": event.recurrence.count,
        },
    }


def _date_time_zone(moment: datetime) -> dict[str, str]:
    """Graph's dateTimeTimeZone: wall-clock time with seven fractional digits, zone apart."""
    utc = moment.astimezone(UTC)
    return {"dateTime": f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}0", "timeZone": "UTC"}


def _timestamp(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}0Z"


def _utc_span(event: CalendarEvent) -> tuple[datetime, datetime]:
    return _as_utc(event.start), _as_utc(event.end)


def _as_utc(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.combine(value, time(0), UTC)


# =========================================================================================
# validation of helper input and query options
# =========================================================================================
def _event_span(
    start: datetime | date, end: datetime | date, is_all_day: bool
) -> tuple[datetime | date, datetime | date]:
    if is_all_day:
        first, last = _calendar_day(start), _calendar_day(end)
        if last <= first:
            raise ValueError("an all-day event ends on a later day than it starts (the end day is exclusive)")
        return first, last
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        raise ValueError("a timed event needs datetimes for start and end")
    for moment in (start, end):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("event times must be aware datetimes")
    if end < start:
        raise ValueError("an event cannot end before it starts")
    return start.astimezone(UTC), end.astimezone(UTC)


def _calendar_day(value: datetime | date) -> date:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("event times must be aware datetimes")
        return value.astimezone(UTC).date()
    return value


def _show_as(value: str) -> str:
    if value not in SHOW_AS_VALUES:
        raise ValueError(f"showAs must be one of {', '.join(SHOW_AS_VALUES)}")
    return value


def _recurrence(value: dict[str, Any] | None) -> Recurrence | None:
    if value is None:
        return None
    pattern = value.get("pattern")
    count = value.get("count")
    interval = value.get("interval", 1)
    if pattern not in RECURRENCE_STEPS:
        raise ValueError("recurrence pattern must be 'daily' or 'weekly'")
    if not isinstance(count, int) or count < 1:
        raise ValueError("recurrence needs a positive integer count")
    if not isinstance(interval, int) or interval < 1:
        raise ValueError("recurrence interval must be a positive integer")
    return Recurrence(pattern, count, interval)


def _update_stored(event: CalendarEvent, fields: dict[str, Any]) -> None:
    unknown = set(fields) - _UPDATABLE
    if unknown:
        raise TypeError(f"update_event cannot change {', '.join(sorted(unknown))}")
    is_all_day = fields.get("is_all_day", event.is_all_day)
    start, end = _event_span(fields.get("start", event.start), fields.get("end", event.end), is_all_day)
    event.start, event.end, event.is_all_day = start, end, is_all_day
    if "show_as" in fields:
        event.show_as = _show_as(fields["show_as"])
    if "is_cancelled" in fields:
        event.is_cancelled = bool(fields["is_cancelled"])
    if "subject" in fields:
        event.subject = str(fields["subject"])
    if "recurrence" in fields:
        event.recurrence = _recurrence(fields["recurrence"])
        event.exceptions.clear()  # a new pattern replaces the series, as Outlook does
        event.deleted_occurrences.clear()


def _update_occurrence(master: CalendarEvent, index: int, fields: dict[str, Any]) -> None:
    unknown = set(fields) - _OCCURRENCE_UPDATABLE
    if unknown:
        raise TypeError(f"an occurrence cannot change {', '.join(sorted(unknown))}")
    override = dict(master.exceptions.get(index, {}))
    if "start" in fields or "end" in fields:
        current = next(item for item in _instances(master) if item.id.endswith(f"{_OCCURRENCE_SEPARATOR}{index}"))
        start, end = _event_span(fields.get("start", current.start), fields.get("end", current.end), False)
        override["start"], override["end"] = start, end
    if "show_as" in fields:
        override["show_as"] = _show_as(fields["show_as"])
    if "is_cancelled" in fields:
        override["is_cancelled"] = bool(fields["is_cancelled"])
    if "subject" in fields:
        override["subject"] = str(fields["subject"])
    master.exceptions[index] = override


def _window_bound(value: str | None, name: str) -> datetime:
    if not value:
        raise CalendarError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and "
            "EndDateTime.",
        )
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise CalendarError(400, "ErrorInvalidParameter", f"The value of the parameter '{name}' is invalid.") from None
    # A window bound without an offset is UTC; Prefer: outlook.timezone does not change it.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_event_select(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    names: list[str] = []
    for raw in value.split(","):
        name = _CANONICAL_EVENT_PROPERTY.get(raw.strip().lower())
        if name is None:
            raise CalendarError(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{raw.strip()}' on type 'Microsoft.OutlookServices.Event'.",
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def _parse_event_top(value: str | None) -> int:
    if value is None:
        return DEFAULT_EVENT_PAGE_SIZE
    try:
        top = int(value)
    except ValueError:
        top = 0
    if top < 1:
        raise CalendarError(400, "ErrorInvalidParameter", f"The value '{value}' of the parameter '$top' is invalid.")
    return min(top, MAX_EVENT_PAGE_SIZE)


def _parse_skip(value: str | None) -> int:
    if value is None:
        return 0
    if not value.isdigit():
        raise CalendarError(400, "ErrorInvalidParameter", f"The value '{value}' of the parameter '$skip' is invalid.")
    return int(value)


def _utc_preference(request: FakeRequest) -> bool:
    """Whether the request asked for UTC times (the one zone the fake answers in)."""
    prefer = request.headers.get("Prefer") or ""
    match = re.search(r'outlook\.timezone\s*=\s*"?([^",]+)"?', prefer, re.IGNORECASE)
    return match is not None and match.group(1).strip().lower() in ("utc", "etc/utc")


def _item_not_found() -> CalendarError:
    return CalendarError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def _new_event_id() -> str:
    return "AAMkAG" + secrets.token_urlsafe(33)

"""The work queue against real Queue Storage (Azurite): round trips, base64, delays, poison."""

from __future__ import annotations

import base64
import secrets
import time
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.queue import QueueClient

from shared.queues import MAX_MESSAGE_BYTES, WorkQueue
from shared.work_items import CalendarWork, parse_work

pytestmark = pytest.mark.azurite


@pytest.fixture
def queue_name() -> str:
    return "work-" + secrets.token_hex(6)


@pytest.fixture
def queue(storage_connection: str, queue_name: str) -> WorkQueue:
    work_queue = WorkQueue.from_connection_string(storage_connection, queue_name)
    work_queue.ensure()
    return work_queue


@pytest.fixture
def raw(storage_connection: str, queue_name: str) -> QueueClient:
    """The same queue without any encoding policy: the bytes exactly as Storage holds them."""
    return QueueClient.from_connection_string(storage_connection, queue_name)


# Users are named by object id (GUID), as Graph and the work items name them.
U1 = "00000000-0000-4000-8000-000000000001"
U2 = "00000000-0000-4000-8000-000000000002"
BAD = "00000000-0000-4000-8000-0000000000ba"
GOOD = "00000000-0000-4000-8000-000000000060"
FROM_HOST = "00000000-0000-4000-8000-0000000000f0"


def _item(user_id: str = U1) -> CalendarWork:
    return CalendarWork(
        user_id=user_id,
        subscription_id="sub-1",
        change_type="updated",
        received_at=datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
    )


def test_send_receive_delete(queue: WorkQueue) -> None:
    queue.send(_item(U1))
    queue.send(_item(U2))
    messages = queue.receive(max_messages=10)
    assert sorted(parse_work(m.text).user_id for m in messages) == [U1, U2]
    assert all(m.dequeue_count == 1 and m.pop_receipt for m in messages)
    assert queue.receive() == []  # both are hidden while being worked on
    for message in messages:
        queue.delete(message)
    assert queue.approximate_message_count() == 0
    queue.delete(messages[0])  # deleting twice (another worker finished it) is harmless


def test_a_message_sent_within_a_trace_carries_it_and_keeps_its_own(queue: WorkQueue) -> None:
    from opentelemetry import trace

    with trace.get_tracer("test").start_as_current_span("presence pass") as span:
        queue.send(_item(U1))
    queue.send(_item(U2))  # outside any trace
    carried = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    with trace.get_tracer("test").start_as_current_span("worker"):
        queue.send(_item(U1).traced(carried))  # put back: keeps the trace it came with
    carried_by = {(item.user_id, item.traceparent) for item in (parse_work(text) for text in queue.peek())}
    context = span.get_span_context()
    (from_span,) = [tp for user, tp in carried_by if tp and tp != carried]
    assert from_span.startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    assert carried_by == {(U1, from_span), (U2, None), (U1, carried)}


def test_the_poison_queue_is_counted_and_none_yet_is_none(queue: WorkQueue) -> None:
    assert queue.poison_message_count() == 0  # the poison queue does not exist yet
    queue.send(_item(U1))
    (message,) = queue.receive()
    queue.poison(message)
    assert queue.poison_message_count() == 1
    assert queue.poison_name == f"{queue.name}-poison"


def test_ensure_is_idempotent(queue: WorkQueue) -> None:
    queue.ensure()
    queue.send_text("still works")
    assert queue.peek() == ["still works"]


def test_messages_are_base64_on_the_wire_both_ways(queue: WorkQueue, raw: QueueClient) -> None:
    text = _item().to_message()[:-1] + ', "note": "Zoë ☎"}'  # non-ASCII survives
    queue.send_text(text)
    (stored,) = raw.peek_messages(max_messages=5)
    assert base64.b64decode(stored.content).decode("utf-8") == text

    # What the Functions output binding writes (base64 of the UTF-8 text) reads back as text.
    raw.receive_message()  # take ours out of the way
    host_written = _item(FROM_HOST).to_message()
    raw.send_message(base64.b64encode(host_written.encode("utf-8")).decode("ascii"))
    (message,) = [m for m in queue.receive() if FROM_HOST in m.text]
    assert parse_work(message.text) == _item(FROM_HOST)


def test_a_delayed_message_is_hidden_until_due(queue: WorkQueue) -> None:
    queue.send(_item(), visible_after=timedelta(seconds=1))
    assert queue.peek() == []
    assert queue.receive() == []
    assert queue.approximate_message_count() == 1  # it is there, only not visible yet
    deadline = time.monotonic() + 10
    messages = []
    while not messages and time.monotonic() < deadline:
        time.sleep(0.2)  # waiting for Storage's clock, not measuring ours
        messages = queue.receive()
    assert [parse_work(m.text) for m in messages] == [_item()]


def test_delays_beyond_seven_days_are_clamped_not_refused(queue: WorkQueue) -> None:
    queue.send(_item(), visible_after=timedelta(days=30))
    queue.send(_item(U2), visible_after=timedelta(seconds=-5))  # in the past: visible now
    assert [parse_work(text).user_id for text in queue.peek()] == [U2]
    assert queue.approximate_message_count() == 2


def test_poison_moves_the_message_where_the_host_puts_it(
    queue: WorkQueue, storage_connection: str, queue_name: str
) -> None:
    queue.send(_item(BAD))
    queue.send(_item(GOOD))
    messages = {parse_work(m.text).user_id: m for m in queue.receive()}
    queue.poison(messages[BAD])
    queue.delete(messages[GOOD])
    assert queue.approximate_message_count() == 0
    poison = WorkQueue.from_connection_string(storage_connection, f"{queue_name}-poison")
    assert [parse_work(text).user_id for text in poison.peek()] == [BAD]


def test_a_message_that_is_not_base64_goes_to_poison(
    queue: WorkQueue, raw: QueueClient, storage_connection: str, queue_name: str
) -> None:
    raw.send_message("{not base64}")
    queue.send(_item())
    assert [parse_work(m.text) for m in queue.receive()] == [_item()]
    poison = WorkQueue.from_connection_string(storage_connection, f"{queue_name}-poison")
    assert poison.peek() == ["{not base64}"]  # kept as it was, for whoever investigates


def test_oversized_messages_are_refused_before_sending(queue: WorkQueue) -> None:
    with pytest.raises(ValueError, match="exceeds"):
        queue.send_text("x" * MAX_MESSAGE_BYTES)
    assert queue.approximate_message_count() == 0

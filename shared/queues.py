"""The work queue in Azure Queue Storage, readable and writable by the Functions host.

The webhook and the scheduler put typed `Work` messages here; the queue-triggered worker takes them
off. Messages are base64-encoded on the wire because that is what the Functions queue
trigger and output binding use by default: a message written here is read by the host
and the reverse. A message the worker gave up on goes to `<name>-poison`, exactly where
the host puts messages that failed `maxDequeueCount` times, so operators look in one place.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from shared.telemetry import log_event
from shared.work_items import Work

# Azure Storage refuses a visibility delay beyond 7 days; later work is clamped to that,
# and whoever reads it early (a `boundary` item) re-checks the time and re-queues itself.
MAX_VISIBILITY_DELAY = timedelta(days=7)
# A delayed message still gets Storage's default week to be processed once it is visible
# (the visibility delay must end before the message expires).
TIME_TO_LIVE_AFTER_VISIBLE = timedelta(days=7)
MAX_MESSAGE_BYTES = 64 * 1024  # Storage's limit, counted after base64 encoding
MAX_RECEIVE_BATCH = 32  # Storage's limit of messages per receive
POISON_SUFFIX = "-poison"

_QUEUE_NAME = re.compile(r"^(?=.{3,56}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")


@dataclass
class QueuedMessage:
    """A received message: its text (already base64-decoded) and what is needed to delete it."""

    id: str
    pop_receipt: str
    text: str
    dequeue_count: int


def visibility_delay_seconds(visible_after: timedelta | None) -> int:
    """Whole seconds to keep a message hidden: rounded up, within Storage's 0 to 7 days."""
    if visible_after is None:
        return 0
    seconds = math.ceil(visible_after.total_seconds())
    return max(0, min(seconds, int(MAX_VISIBILITY_DELAY.total_seconds())))


class WorkQueue:
    """One storage queue of work messages, and its poison queue."""

    def __init__(self, client: QueueClient, poison_client: QueueClient) -> None:
        self._client = client
        self._poison_client = poison_client
        self._poison_ready = False
        self.name = client.queue_name

    @classmethod
    def from_connection_string(cls, connection_string: str, name: str) -> WorkQueue:
        """A queue named `name` (3 to 56 lower-case letters, digits, single hyphens: `-poison` must still fit)."""
        if not _QUEUE_NAME.match(name):
            raise ValueError(f"invalid queue name {name!r}: 3 to 56 lower-case letters, digits and single hyphens")

        def client(queue_name: str) -> QueueClient:
            # Encoding only: received messages are decoded here, one by one (see `receive`).
            return QueueClient.from_connection_string(
                connection_string, queue_name, message_encode_policy=TextBase64EncodePolicy()
            )

        return cls(client(name), client(name + POISON_SUFFIX))

    @classmethod
    def from_account(cls, account_url: str, name: str, credential: Any) -> WorkQueue:
        """The same queue reached by identity (Azure: no shared keys on the storage account)."""
        if not _QUEUE_NAME.match(name):
            raise ValueError(f"invalid queue name {name!r}: 3 to 56 lower-case letters, digits and single hyphens")

        def client(queue_name: str) -> QueueClient:
            return QueueClient(
                account_url, queue_name, credential=credential, message_encode_policy=TextBase64EncodePolicy()
            )

        return cls(client(name), client(name + POISON_SUFFIX))

    def ensure(self) -> None:
        """Create the queue if it does not exist yet (the Functions host does this for its own bindings)."""
        with suppress(ResourceExistsError):
            self._client.create_queue()

    def send(self, item: Work, *, visible_after: timedelta | None = None) -> None:
        """Queue one work item; with `visible_after`, it is delivered only after that delay (at most 7 days)."""
        self.send_text(item.to_message(), visible_after=visible_after)

    def send_text(self, text: str, *, visible_after: timedelta | None = None) -> None:
        """Queue raw text (base64 on the wire, as the Functions output binding writes it)."""
        encoded_size = 4 * math.ceil(len(text.encode("utf-8")) / 3)
        if encoded_size > MAX_MESSAGE_BYTES:
            raise ValueError(f"message of {encoded_size} encoded bytes exceeds Storage's {MAX_MESSAGE_BYTES}")
        delay = visibility_delay_seconds(visible_after)
        if delay:
            ttl = delay + int(TIME_TO_LIVE_AFTER_VISIBLE.total_seconds())
            self._client.send_message(text, visibility_timeout=delay, time_to_live=ttl)
        else:
            self._client.send_message(text)

    def receive(self, max_messages: int = 16, visibility_timeout: int = 60) -> list[QueuedMessage]:
        """Take up to `max_messages` (≤ 32) visible messages, hiding them for `visibility_timeout` seconds.

        A message that is not base64 text cannot be work (nothing of ours writes one); it
        goes straight to the poison queue instead of failing every receive after it.
        """
        count = max(1, min(max_messages, MAX_RECEIVE_BATCH))
        received: list[QueuedMessage] = []
        for message in self._client.receive_messages(
            messages_per_page=count, max_messages=count, visibility_timeout=visibility_timeout
        ):
            queued = QueuedMessage(
                id=message.id,
                pop_receipt=message.pop_receipt or "",
                text=str(message.content or ""),
                dequeue_count=int(message.dequeue_count or 0),
            )
            text = _decode(queued.text)
            if text is None:
                log_event("queue_message_undecodable", logging.WARNING, queue=self.name, message_id=message.id)
                self._move_to_poison(queued, queued.text)
                continue
            queued.text = text
            received.append(queued)
        return received

    def peek(self, max_messages: int = MAX_RECEIVE_BATCH) -> list[str]:
        """The texts of up to `max_messages` visible messages, without taking them."""
        count = max(1, min(max_messages, MAX_RECEIVE_BATCH))
        return [_decode(str(m.content or "")) or "" for m in self._client.peek_messages(max_messages=count)]

    def approximate_message_count(self) -> int:
        """Messages in the queue, hidden ones included (Storage's approximation)."""
        return int(self._client.get_queue_properties().approximate_message_count or 0)

    def poison_count(self) -> int:
        """Messages in `<name>-poison` (Storage's approximation); 0 while it does not exist."""
        try:
            return int(self._poison_client.get_queue_properties().approximate_message_count or 0)
        except ResourceNotFoundError:
            return 0

    def delete(self, message: QueuedMessage) -> None:
        """Remove a processed message. Already gone (another worker finished it) is fine."""
        with suppress(ResourceNotFoundError):
            self._client.delete_message(message.id, message.pop_receipt)

    def poison(self, message: QueuedMessage) -> None:
        """Move a message that cannot be processed to `<name>-poison`, as the Functions host does."""
        self._move_to_poison(message, message.text)
        log_event(
            "queue_message_poisoned",
            logging.WARNING,
            queue=self.name,
            message_id=message.id,
            dequeue_count=message.dequeue_count,
        )

    def _move_to_poison(self, message: QueuedMessage, text: str) -> None:
        # Copy first, delete second: a crash in between leaves a duplicate, never a loss.
        if not self._poison_ready:
            with suppress(ResourceExistsError):
                self._poison_client.create_queue()
            self._poison_ready = True
        self._poison_client.send_message(text)
        self.delete(message)


def _decode(content: str) -> str | None:
    """Base64 text as the Functions host writes it; None if it is not."""
    try:
        return base64.b64decode(content.encode("ascii"), validate=True).decode("utf-8")
    except (UnicodeError, binascii.Error, ValueError):
        return None

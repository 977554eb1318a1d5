"""The work queue's rules that need no storage: visibility delays and queue names (the rest: tests/integration/)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.queues import WorkQueue, visibility_delay_seconds


@pytest.mark.parametrize(
    ("delay", "seconds"),
    [
        (None, 0),
        (timedelta(seconds=-3), 0),
        (timedelta(seconds=1.2), 2),  # rounded up: never earlier than asked
        (timedelta(hours=1), 3600),
        (timedelta(days=7), 604800),
        (timedelta(days=30), 604800),
    ],
)
def test_visibility_delay_bounds(delay: timedelta | None, seconds: int) -> None:
    assert visibility_delay_seconds(delay) == seconds


@pytest.mark.parametrize("name", ["ab", "Work", "work--items", "-work", "w" * 57, "work_items"])
def test_queue_names_storage_would_refuse_are_refused_here(name: str) -> None:
    with pytest.raises(ValueError, match="invalid queue name"):
        WorkQueue.from_connection_string("UseDevelopmentStorage=true", name)

"""The subscription cache of the webhook routes over the real state store."""

from __future__ import annotations

import pytest

from shared.state import StateStore
from sync.notifications import (
    SubscriptionCache,
)
from tests.notifications_support import change_notification, notification_body, post_to_webhook, subscription_record

USER_S = "c1b2c3d4-0000-4000-8000-00000000000c"


@pytest.mark.azurite
def test_the_cache_over_the_real_state_store(state: StateStore) -> None:
    record = subscription_record("sub-stored", user_id=USER_S)
    state.save_subscription(record)
    cache = SubscriptionCache(state)
    assert cache.get("sub-stored") == record
    assert cache.get("sub-absent") is None
    assert cache.get("bad/key#?") is None  # not a valid table key: simply not ours
    answer = post_to_webhook(notification_body(change_notification(record)), lookup=cache.get)
    assert [w.user_id for w in answer.work] == [USER_S]

"""The product on one box, over real HTTPS: `serve`, Azurite's queue, and simulated Graph and 3CX.

Graph validates the webhook with the real handshake when subscriptions are created, then
posts real change notifications; the queue worker inside `serve` reconciles. Time is real
here, so the meeting is short and the test waits (bounded) for the status to flip and
flip back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from devhost.stack import local_stack
from sync.runtime import process_runtime
from sync.subscription_upkeep import reconcile_subscriptions
from sync.user_sync import run_user_sync


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)  # polling for an outcome, not timing anything
    return condition()


@pytest.fixture
def stack():
    with local_stack({"STATE_TABLE_PREFIX": "e2e", "WORK_QUEUE": "e2e-work"}) as running:
        yield running


def test_a_meeting_flips_the_user_to_dnd_and_back_through_serve(stack) -> None:
    user_id = stack.graph.add_user("dana@contoso.example", given_name="Dana", surname="Okafor")
    stack.start_connector()
    rt = process_runtime()
    run_user_sync(rt)
    result = reconcile_subscriptions(rt)
    assert result.created == 2 and result.failed == 0
    handshakes = [d for d in stack.graph.deliveries if d.kind == "handshake"]
    assert handshakes and all(d.status == 200 for d in handshakes)

    tcx_id = next(iter(stack.pbx.users))
    now = datetime.now(UTC)
    stack.graph.add_event(user_id, start=now - timedelta(minutes=1), end=now + timedelta(seconds=4))
    assert [d.status for d in stack.graph.deliveries if d.kind == "notification"] == [202]

    assert _wait_for(lambda: stack.pbx.users[tcx_id]["CurrentProfileName"] == "Out of office", 15)
    assert _wait_for(lambda: stack.pbx.users[tcx_id]["CurrentProfileName"] == "Available", 20)


def test_a_new_shared_mailbox_contact_reaches_the_company_phonebook_through_serve(stack, monkeypatch) -> None:
    monkeypatch.setenv("SHARED_MAILBOXES", "reception@contoso.example")
    mailbox = stack.graph.add_user("reception@contoso.example", account_enabled=False)
    stack.start_connector()
    rt = process_runtime()
    result = reconcile_subscriptions(rt)
    assert result.failed == 0
    assert any(s.resource.endswith("/contacts") for s in stack.graph.subscriptions.values())

    stack.graph.add_contact(
        mailbox,
        givenName="Alan",
        surname="Turing",
        emailAddresses=[{"address": "alan@bletchley.example"}],
        businessPhones=["+44 1908 640404"],
    )

    def entry_created() -> bool:
        return any(c.get("Email") == "alan@bletchley.example" for c in stack.pbx.company_contacts.values())

    assert _wait_for(entry_created, 20)

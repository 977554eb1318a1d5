"""`python -m sync demo`: the product end to end, no accounts needed.

Starts Azurite, a simulated Microsoft 365 tenant and a simulated 3CX PBX (both served over
HTTPS on loopback with a throw-away CA), then drives the real user sync through a small
company's life: first plan, first run, a rename, a new hire, a leaver, a user deleted by
hand in 3CX, meetings switching 3CX statuses through Graph webhooks, and a mass departure
stopped by the deletion guard. Run from a terminal, it then keeps the administrator's console
up on loopback (the held plan waits there for **Approve**) until Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from devhost.serve import local_principal, make_server
from devhost.stack import Stack, local_stack
from shared.settings import load_settings
from shared.state import LockHeld
from sync.contact_sync import ContactSyncResult, run_contact_sync
from sync.plan_output import render_plan
from sync.runtime import Runtime, process_runtime
from sync.subscription_upkeep import reconcile_subscriptions
from sync.user_sync import run_user_sync

STAFF = [
    ("amelia.hart", "Amelia", "Hart", "+44 20 7946 0101"),
    ("bruno.costa", "Bruno", "Costa", "+351 21 123 4567"),
    ("chen.wei", "Wei", "Chen", None),
    ("dana.okafor", "Dana", "Okafor", "+1 (555) 010-0199"),
    ("eva.lindqvist", "Eva", "Lindqvist", "+46 8 123 456 78"),
    ("farid.haddad", "Farid", "Haddad", None),
    ("greta.muller", "Greta", "Müller", "+49 (0)30 1234567"),
    ("hiro.tanaka", "Hiro", "Tanaka", None),
]


def _heading(text: str) -> None:
    print(f"\n{'=' * 78}\n{text}\n{'=' * 78}")


def _run(rt: Runtime, title: str, **kwargs: object) -> None:
    result = run_user_sync(rt, **kwargs)  # type: ignore[arg-type]
    print(render_plan(result.plan, title=title))
    if not result.dry_run:
        counts = result.counts
        print(
            f"Applied: {counts['created']} created, {counts['linked']} linked, {counts['updated']} updated,"
            f" {counts['deprovisioned']} deprovisioned, {counts['failed']} failed."
        )


def run_demo() -> int:
    logging.getLogger().setLevel(logging.WARNING)
    print("Starting Azurite and the simulated Microsoft 365 tenant and 3CX PBX (HTTPS on loopback)…")
    extra = {
        "EXTENSION_START": "101",
        "SYNC_PHOTO": "true",
        "SYNC_OFFICE_PHONE": "true",
        "DEPROVISION_MAX_COUNT": "3",
        "SHARED_MAILBOXES": "reception@contoso.example,sales@contoso.example",
    }
    with local_stack(extra) as stack:
        graph, pbx = stack.graph, stack.pbx
        ids = {
            login: graph.add_user(f"{login}@contoso.example", given_name=first, surname=last, mobile_phone=mobile)
            for login, first, last, mobile in STAFF
        }
        graph.add_user("guest_partner@contoso.example", user_type="Guest")
        # Shared mailboxes: disabled accounts with a mailbox, as Exchange makes them.
        for box in ("reception", "sales"):
            ids[box] = graph.add_user(f"{box}@contoso.example", account_enabled=False)
        graph.add_user("meeting-room-1@contoso.example", has_mailbox=False)
        graph.set_photo(ids["amelia.hart"], b"\xff\xd8\xff\xe0demo-photo-1")
        reception = pbx.add_user(
            Number="100", FirstName="Reception", LastName="Desk", EmailAddress="reception@contoso.example"
        )
        pbx.add_user(Number="105", FirstName="D.", LastName="Okafor", EmailAddress="Dana.Okafor@contoso.example")
        rt = Runtime(load_settings())
        print(f"  Microsoft 365: {len(graph.users)} accounts (1 guest, 1 room without mailbox, 2 shared mailboxes)")
        print(f"  3CX: {len(pbx.users)} users made by hand (reception 100, Dana Okafor 105)")

        _heading("1. First look: `python -m sync users --dry-run`")
        _run(rt, "User sync plan (dry run: nothing will change)", dry_run=True)

        _heading("2. First run: users become extensions; Dana's existing extension is linked")
        _run(rt, "User sync run")

        _heading("3. A day later: a rename, a new hire, a leaver, and a user deleted by hand in 3CX")
        graph.update_user(ids["chen.wei"], displayName="Wei Chen (Sales)", mobilePhone="+86 10 1234 5678")
        graph.add_user("ines.duarte@contoso.example", given_name="Inês", surname="Duarte")
        graph.update_user(ids["farid.haddad"], accountEnabled=False)
        victim = next(u for u in pbx.users.values() if u.get("EmailAddress") == "hiro.tanaka@contoso.example")
        pbx.delete_user(victim["Id"])
        print(f"  (3CX admin deleted extension {victim['Number']} of Hiro Tanaka by hand)")
        _run(rt, "User sync run")

        _heading("4. Nothing changed: the re-run makes no 3CX writes")
        pbx.reset_counts()
        tokens_before = pbx.tokens_issued
        _run(rt, "User sync run")
        counts = pbx.request_counts
        writes = counts["PATCH"] + counts["DELETE"] + counts["POST"] - (pbx.tokens_issued - tokens_before)
        print(f"3CX requests this run: {sum(counts.values())}, of which writes: {writes}")

        _heading("5. Calendar → status: Graph webhooks, a queue, and exact boundaries")
        _calendar_act(stack, ids)

        _heading("6. Contacts → the company phonebook: the shared mailboxes' contacts, merged")
        _contacts_act(stack, ids)

        _heading("7. Someone empties a licence group by mistake: the deletion guard holds")
        # The run below is this act; the /users notifications these edits would send are held back,
        # so that no one-user sync of the served connector takes the user-sync lock first.
        graph.hold_notifications = True
        for login in ("amelia.hart", "bruno.costa", "chen.wei", "dana.okafor", "eva.lindqvist"):
            graph.update_user(ids[login], accountEnabled=False)
        graph.pending_notifications.clear()
        graph.hold_notifications = False
        _run(Runtime(load_settings()), "User sync run")

        _heading("Run history (`python -m sync runs`)")
        for run in rt.state.recent_runs("users"):
            counts_text = " ".join(f"{k}={v}" for k, v in run.counts.items() if v)
            print(f"  {run.started_at:%H:%M:%S} {run.run_id} {run.status:<9} {counts_text}")
        untouched = pbx.users[reception["Id"]]
        print(
            f"\nReception (made by hand, never linked) is untouched: {untouched['FirstName']}"
            f" {untouched['LastName']}, extension {untouched['Number']}."
        )
        if sys.stdin.isatty() and sys.stdout.isatty():
            _keep_console_up()
        print("\nDemo finished.")
    return 0


def console_server(port: int = 0) -> Any:
    """The console (and the other routes) over plain HTTP on loopback, signed in as this machine's user."""
    from function_app import registered_functions
    from sync.console.security import LOCAL_ENV

    os.environ[LOCAL_ENV] = "1"
    return make_server(registered_functions(), "127.0.0.1", port, principal=local_principal())


def _keep_console_up() -> None:
    server = console_server()
    threading.Thread(target=server.serve_forever, name="demo-console", daemon=True).start()
    _heading("The administrator's console")
    print(f"Open http://127.0.0.1:{server.server_address[1]}/api/console — the guard's held plan is under")
    print("'Held back'. Ctrl-C ends the demo.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


def _calendar_act(stack: Stack, ids: dict[str, str]) -> None:
    """Serve the connector, subscribe, and watch two meetings drive 3CX statuses."""
    stack.start_connector()
    rt = process_runtime()
    result = reconcile_subscriptions(rt)
    handshakes = [d for d in stack.graph.deliveries if d.kind == "handshake" and d.status == 200]
    print(
        f"`python -m sync serve` is up; `python -m sync subscriptions`: {result.created} subscriptions created,"
        f" {len(handshakes)} webhook validation handshakes answered."
    )
    links = rt.state.links()
    watched = {"amelia.hart": "Amelia", "bruno.costa": "Bruno"}
    tcx_ids = {login: links[ids[login]].tcx_user_id for login in watched}
    pbx = stack.pbx
    pbx.set_status(tcx_ids["bruno.costa"], "Custom 1")  # Bruno is at lunch
    start = datetime.now(UTC) + timedelta(seconds=2)
    end = start + timedelta(seconds=4)
    stack.graph.add_event(ids["amelia.hart"], start=start, end=end, show_as="busy", subject="Budget review")
    stack.graph.add_event(ids["bruno.costa"], start=start, end=end, show_as="busy", subject="1:1")
    print(f"Two meetings from {start:%H:%M:%S} to {end:%H:%M:%S} UTC (Amelia is Available, Bruno at Lunch).")
    print("Bruno will switch to Business Trip by hand during his meeting: his choice must win.\n")
    seen = {login: pbx.users[tcx_id]["CurrentProfileName"] for login, tcx_id in tcx_ids.items()}
    bruno_changed = False
    deadline = end + timedelta(seconds=8)
    while datetime.now(UTC) < deadline:
        now = datetime.now(UTC)
        if not bruno_changed and now > start + timedelta(seconds=2):
            pbx.set_status(tcx_ids["bruno.costa"], "Custom 2")
            bruno_changed = True
            print(f"  {now:%H:%M:%S.%f}"[:-3] + "  Bruno sets Business Trip by hand")
            seen["bruno.costa"] = "Custom 2"
        for login, tcx_id in tcx_ids.items():
            status = pbx.users[tcx_id]["CurrentProfileName"]
            if status != seen[login]:
                reference, label = (start, "start") if now < end else (end, "end")
                lag = (now - reference).total_seconds()
                print(
                    f"  {now:%H:%M:%S.%f}"[:-3]
                    + f"  {watched[login]}: {LABELS.get(seen[login], seen[login])} → {LABELS.get(status, status)}"
                    f"  ({lag:+.1f}s from the meeting's {label})"
                )
                seen[login] = status
        time.sleep(0.05)  # watching the simulated PBX, not timing the product
    final = {watched[login]: LABELS.get(status, status) for login, status in seen.items()}
    print(f"\nAfter the meetings: {final}. Bruno's manual status was kept; Amelia's was restored.")


def _contacts_act(stack: Stack, ids: dict[str, str]) -> None:
    """Shared-mailbox contacts into the company phonebook, merged and tagged; a hand-made entry stays."""
    graph, pbx = stack.graph, stack.pbx
    reception, sales = ids["reception"], ids["sales"]

    def card(first: str, last: str, email: str, phone: str, **extra: object) -> dict[str, object]:
        return {
            "givenName": first,
            "surname": last,
            "emailAddresses": [{"address": email}],
            "businessPhones": [phone],
            **extra,
        }

    # The explicit run below does this act's work; the notifications these edits would send
    # are held back so its counts read the same every time.
    graph.hold_notifications = True
    graph.add_contact(reception, **card("Olga", "Plumber", "olga@pipes.example", "+44 20 7946 0500"))
    graph.add_contact(reception, **card("Sam", "Courier", "sam@parcels.example", "+44 20 7946 0600"))
    graph.add_contact(sales, **card("Olga", "Plumber", "OLGA@pipes.example", "+44 20 7946 0999", jobTitle="Owner"))
    graph.add_contact(sales, givenName="No", surname="Number", emailAddresses=[{"address": "nn@x.example"}])
    pbx.add_contact(FirstName="Pizza", LastName="Place", PhoneNumber="+44 20 7946 0123")
    rt = process_runtime()
    graph.pending_notifications.clear()
    graph.hold_notifications = False
    print("reception@ and sales@ share Olga Plumber (same e-mail); sales@ also has a contact with no number.")
    print("3CX already has 'Pizza Place', typed in by hand.\n")

    result = _contacts_now(rt)
    counts = result.counts()
    print(f"  company : {counts['created']} created, {counts['skipped']} skipped")
    for book in result.books:
        for skip in book.plan.skipped:
            print(f"  ! skipped {skip.source.split('/')[0]}: {skip.reason}")
    print("\nCompany phonebook in 3CX:")
    for entry in sorted(pbx.company_contacts.values(), key=lambda c: c.get("FirstName") or ""):
        tag = entry.get("Tag") or "(made in 3CX)"
        number = entry.get("Business") or entry.get("PhoneNumber")
        print(f"  {entry.get('FirstName', ''):<6} {entry.get('LastName', ''):<8} {number:<16} {tag}")
    again = _contacts_now(rt)
    print(f"Re-run with nothing changed: {again.counts()['unchanged']} unchanged, 0 written.")


def _contacts_now(rt: Runtime) -> ContactSyncResult:
    """Run a contacts reconcile, waiting while the notification worker holds the run lock."""
    for _attempt in range(300):
        try:
            return run_contact_sync(rt)
        except LockHeld:
            time.sleep(0.1)  # the connector is busy with the notifications these changes caused
    return run_contact_sync(rt)


LABELS = {"Out of office": "Do Not Disturb", "Custom 1": "Lunch", "Custom 2": "Business Trip"}

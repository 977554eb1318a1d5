"""`python -m sync demo`: the product end to end, no accounts needed.

Starts Azurite, a simulated Microsoft 365 tenant and a simulated 3CX PBX (both served over
HTTPS on loopback with a throw-away CA), then drives the real user sync through a small
company's life: first plan, first run, a rename, a new hire, a leaver, a user deleted by
hand in 3CX, and a mass departure stopped by the deletion guard.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from fakes.azurite import start_azurite
from fakes.graph import GraphFake
from fakes.threecx import ThreeCXFake
from fakes.transport import local_tls, serve
from shared.settings import load_settings
from shared.state import StateStore
from sync.plan_output import render_plan
from sync.runtime import Runtime
from sync.user_sync import run_user_sync

TENANT_ID = "0d3f6a1e-7c2b-4e59-a8d1-3b6c9f2e4a70"
CLIENT_ID = "5e8b2c4d-1a3f-4b6e-9d7c-2f1a0e3b5c8d"
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
    workdir = Path(tempfile.mkdtemp(prefix="tcx-demo-"))
    tls = local_tls(workdir)
    os.environ["REQUESTS_CA_BUNDLE"] = str(tls.ca_bundle)
    graph = GraphFake(tenant_id=TENANT_ID, client_id=CLIENT_ID, client_secret="demo-graph-secret")
    pbx = ThreeCXFake(client_id="m365connector", client_secret="demo-pbx-secret", journal=False)
    ids = {
        login: graph.add_user(f"{login}@contoso.example", given_name=first, surname=last, mobile_phone=mobile)
        for login, first, last, mobile in STAFF
    }
    graph.add_user("guest_partner@contoso.example", user_type="Guest")
    graph.add_user("meeting-room-1@contoso.example", has_mailbox=False)
    graph.set_photo(ids["amelia.hart"], b"\xff\xd8\xff\xe0demo-photo-1")
    reception = pbx.add_user(
        Number="100", FirstName="Reception", LastName="Desk", EmailAddress="reception@contoso.example"
    )
    pbx.add_user(Number="105", FirstName="D.", LastName="Okafor", EmailAddress="Dana.Okafor@contoso.example")

    print("Starting Azurite and the simulated Microsoft 365 tenant and 3CX PBX (HTTPS on loopback)…")
    with start_azurite(workdir / "azurite") as azurite:
        graph_server = serve(graph, tls=tls.server_context)
        pbx_server = serve(pbx, tls=tls.server_context)
        try:
            settings = load_settings(
                GRAPH_TENANT_ID=TENANT_ID,
                GRAPH_CLIENT_ID=CLIENT_ID,
                GRAPH_CLIENT_SECRET="demo-graph-secret",
                GRAPH_AUTHORITY_HOST=graph_server.url,
                GRAPH_BASE_URL=f"{graph_server.url}/v1.0",
                TCX_BASE_URL=pbx_server.url,
                TCX_CLIENT_ID="m365connector",
                TCX_CLIENT_SECRET="demo-pbx-secret",
                AzureWebJobsStorage=azurite.connection_string,
                EXTENSION_START="101",
                SYNC_PHOTO="true",
                SYNC_OFFICE_PHONE="true",
                DEPROVISION_MAX_COUNT="3",
            )
            state = StateStore.from_connection_string(azurite.connection_string)
            rt = Runtime(settings, _state=state)
            print(f"  Microsoft 365: {len(graph.users)} accounts (1 guest, 1 room without mailbox)")
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

            _heading("5. Someone empties a licence group by mistake: the deletion guard holds")
            for login in ("amelia.hart", "bruno.costa", "chen.wei", "dana.okafor", "eva.lindqvist"):
                graph.update_user(ids[login], accountEnabled=False)
            _run(rt, "User sync run")

            _heading("Run history (`python -m sync runs`)")
            for run in state.recent_runs("users"):
                counts = " ".join(f"{k}={v}" for k, v in run.counts.items() if v)
                print(f"  {run.started_at:%H:%M:%S} {run.run_id} {run.status:<9} {counts}")
            untouched = pbx.users[reception["Id"]]
            print(
                f"\nReception (made by hand, never linked) is untouched: {untouched['FirstName']}"
                f" {untouched['LastName']},"
                f" extension {untouched['Number']}."
            )
            print("\nDemo finished.")
        finally:
            graph_server.stop()
            pbx_server.stop()
    return 0

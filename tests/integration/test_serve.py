"""`python -m sync serve`: the same handlers over real HTTP."""

from __future__ import annotations

import json
import threading

import requests

from devhost.serve import make_server
from function_app import registered_functions
from tests.conftest import Tenant


def test_serve_answers_the_function_routes_over_http(tenant_env: Tenant) -> None:
    tenant_env.add_users(2)
    server = make_server(registered_functions(), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/api"
    try:
        plan = requests.get(f"{base}/admin/users/plan", timeout=30)
        assert plan.status_code == 200
        assert json.loads(plan.content)["created"] == 2

        put = requests.put(f"{base}/admin/options/user001@contoso.com", json={"sso": True}, timeout=30)
        assert put.status_code == 200
        assert put.json()["user"]["effective"]["sso"] is True

        run = requests.post(f"{base}/admin/users/run", timeout=30)
        assert run.status_code == 200
        assert run.json()["created"] == 2

        assert requests.get(f"{base}/nowhere", timeout=30).status_code == 404
        assert requests.delete(f"{base}/admin/users/plan", timeout=30).status_code == 405
    finally:
        server.shutdown()
        server.server_close()
    assert len(tenant_env.pbx.users) == 2


def test_serve_passes_on_the_headers_a_function_answers_with(tenant_env: Tenant) -> None:
    """Like the Functions host: the webhook handshake's nosniff reaches the caller."""
    server = make_server(registered_functions(), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/api"
    try:
        echo = requests.post(f"{base}/graph/notifications", params={"validationToken": "<b>hi</b>"}, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert (echo.status_code, echo.text) == (200, "<b>hi</b>")
    assert echo.headers["Content-Type"].startswith("text/plain")
    assert echo.headers["X-Content-Type-Options"] == "nosniff"


def test_serve_signs_the_console_in_as_the_local_user_and_drops_a_client_s_own_principal(
    tenant_env: Tenant, monkeypatch
) -> None:
    import re

    from devhost.serve import local_principal
    from sync.console.security import LOCAL_ENV, ROLE, encode_principal

    tenant_env.add_users(1)
    monkeypatch.setenv(LOCAL_ENV, "1")
    signed_in = make_server(registered_functions(), "127.0.0.1", 0, principal=local_principal())
    anonymous = make_server(registered_functions(), "127.0.0.1", 0)
    for server in (signed_in, anonymous):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    forged = {"X-MS-CLIENT-PRINCIPAL": encode_principal("x", "forged@contoso.com", (ROLE,))}
    try:
        base = f"http://127.0.0.1:{signed_in.server_address[1]}/api/console"
        page = requests.get(f"{base}/user", params={"upn": "user000@contoso.com"}, headers=forged, timeout=30)
        assert page.status_code == 200
        assert "@localhost" in page.text and "forged@contoso.com" not in page.text
        assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
        nonce = page.headers["Set-Cookie"].split(";", 1)[0]
        token = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)  # type: ignore[union-attr]
        saved = requests.post(
            f"{base}/user/options",
            data={"csrf": token, "upn": "user000@contoso.com", "sso": "on"},
            headers={"Cookie": nonce},
            timeout=30,
        )
        assert saved.status_code == 200 and "Options saved." in saved.text
        assert requests.get(f"{base}/static/console.css", timeout=30).headers["Content-Type"].startswith("text/css")

        other = f"http://127.0.0.1:{anonymous.server_address[1]}/api/console"
        assert requests.get(other, headers=forged, timeout=30).status_code == 401
    finally:
        for server in (signed_in, anonymous):
            server.shutdown()
            server.server_close()
    assert tenant_env.state.option_overrides()[next(iter(tenant_env.graph.users))].sso is True


def test_the_demo_s_console_serves_the_held_plan_on_loopback(tenant_env: Tenant, monkeypatch) -> None:
    from devhost.demo import console_server
    from sync.console.security import LOCAL_ENV
    from sync.user_sync import run_user_sync

    monkeypatch.setenv(LOCAL_ENV, "")  # set by console_server itself; restored after the test
    ids = tenant_env.add_users(4)
    run_user_sync(tenant_env.runtime())
    for user_id in ids[:3]:
        tenant_env.graph.soft_delete_user(user_id)
    monkeypatch.setenv("DEPROVISION_MAX_COUNT", "2")
    run_user_sync(tenant_env.runtime(DEPROVISION_MAX_COUNT="2"))
    server = console_server()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = requests.get(f"http://127.0.0.1:{server.server_address[1]}/api/console/held", timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert page.status_code == 200
    assert page.text.count("<td>disable</td>") == 3 and "Approve these actions" in page.text

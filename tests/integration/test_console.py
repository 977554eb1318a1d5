"""The administrator's console, called as the Functions host calls it (azure.functions requests)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote, urlencode

import azure.functions as func
import pytest

from sync.console.security import CSRF_COOKIE, ROLE, encode_principal
from sync.user_sync import UpdateUser, run_user_sync
from tests.conftest import Tenant
from tests.function_app_support import call

ADMIN = encode_principal("0b6f1d5e-admin", "admin@contoso.com", (ROLE,))
READER = encode_principal("7c2a9e4f-reader", "reader@contoso.com", ("Connector.Reader",))
OTHER_ADMIN = encode_principal("1d3e5f7a-other", "other@contoso.com", (ROLE,))
GUARDED = {"DEPROVISION": "delete", "DEPROVISION_MAX_COUNT": "2"}

PAGES = [
    ("console_overview", "console", {}),
    ("console_runs", "console/runs", {}),
    ("console_runs", "console/runs", {"kind": "users", "status": "partial"}),
    ("console_held", "console/held", {}),
    ("console_users", "console/users", {}),
    ("console_users", "console/users", {"q": "user001"}),
    ("console_user", "console/user", {"upn": "user000@contoso.com"}),
    ("console_charts", "console/charts", {}),
]


@dataclass
class Browser:
    """One administrator's browser: the principal App Service passes, and the CSRF cookie it keeps."""

    principal: str | None = ADMIN
    cookies: dict[str, str] = field(default_factory=dict)
    token: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"X-MS-CLIENT-PRINCIPAL": self.principal} if self.principal else {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers

    def get(self, name: str, route: str, params: dict[str, str] | None = None) -> func.HttpResponse:
        response = call(name, "GET", route, params=params or {}, headers=self.headers())
        cookie = response.headers.get("Set-Cookie")
        if cookie:
            pair = cookie.split(";", 1)[0]
            key, value = pair.split("=", 1)
            self.cookies[key] = value
        found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html(response))
        if found:
            self.token = found.group(1)
        return response

    def post(
        self, name: str, route: str, form: dict[str, str], route_params: dict[str, str] | None = None
    ) -> func.HttpResponse:
        body = urlencode({"csrf": self.token or "", **form}).encode()
        return call(name, "POST", route, body=body, route_params=route_params or {}, headers=self.headers())


def html(response: func.HttpResponse) -> str:
    return response.get_body().decode("utf-8")


@pytest.fixture
def console(tenant_env: Tenant, monkeypatch: pytest.MonkeyPatch) -> Tenant:
    """A console in App Service with authentication on, over a tenant with three synced users."""
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    tenant_env.add_users(3)
    run_user_sync(tenant_env.runtime())
    return tenant_env


def _hold(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> str:
    """Three of six synced users gone from Microsoft 365: the deletion guard holds their deletion."""
    tenant.add_users(3, prefix="more")
    run_user_sync(tenant.runtime())
    for key, value in GUARDED.items():
        monkeypatch.setenv(key, value)
    for user_id in list(tenant.graph.users)[:3]:
        tenant.graph.soft_delete_user(user_id)
    run_user_sync(tenant.runtime(**GUARDED))
    record = tenant.state.recent_runs("users")[0]
    assert len(record.held_actions) == 3
    return record.run_id


@pytest.mark.parametrize(("name", "route", "params"), PAGES)
def test_every_page_loads_with_the_security_headers(console: Tenant, name: str, route: str, params) -> None:
    response = Browser().get(name, route, params)
    assert response.status_code == 200, html(response)
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    body = html(response)
    assert "style=" not in body and "<style" not in body
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", body, re.S)
    assert all(content == "" for content in scripts)  # files of the console's own, nothing inline
    assert len(scripts) == body.count("<script") == body.count('<script src="/api/console/static/')
    assert "admin@contoso.com" in body
    for page in ("", "/runs", "/held", "/users", "/charts"):
        assert f'<a href="/api/console{page}"' in body


def test_the_overview_says_what_needs_attention(console: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    body = html(Browser().get("console_overview", "console"))
    assert "Running: not paused." in body
    assert "succeeded" in body and "created 3" in body
    monkeypatch.setenv("SYNC_PAUSED", "true")
    from sync.runtime import reset_process_runtime

    reset_process_runtime()
    assert "Paused: SYNC_PAUSED is true" in html(Browser().get("console_overview", "console"))


@pytest.mark.parametrize(
    ("name", "mimetype"),
    [("console.css", "text/css"), ("charts.js", "text/javascript"), ("chart.umd.min.js", "text/javascript")],
)
def test_the_static_files_are_served_with_their_types(console: Tenant, name: str, mimetype: str) -> None:
    response = call("console_static", "GET", f"console/static/{name}", route_params={"name": name})
    assert response.status_code == 200 and response.mimetype == mimetype
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("name", ["../views.py", "views.py", "chart.js-LICENSE.md", ""])
def test_nothing_else_is_served_as_a_static_file(console: Tenant, name: str) -> None:
    response = call("console_static", "GET", f"console/static/{name}", route_params={"name": name})
    assert response.status_code == 404


def test_the_csrf_cookie_is_secure_httponly_and_strict(console: Tenant) -> None:
    response = Browser().get("console_overview", "console")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=")
    attributes = {part.strip() for part in cookie.split(";")[1:]}
    assert {"Secure", "HttpOnly", "SameSite=Strict", "Path=/"} <= attributes


@pytest.mark.parametrize(("name", "route", "params"), PAGES)
def test_without_the_app_role_every_page_is_403(console: Tenant, name: str, route: str, params) -> None:
    response = Browser(READER).get(name, route, params)
    assert response.status_code == 403
    assert ROLE in html(response) and "user000" not in html(response)
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_not_signed_in_is_sent_to_the_sign_in(console: Tenant) -> None:
    response = Browser(None).get("console_overview", "console")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/.auth/login/aad?post_login_redirect_uri=/api/console")


def test_without_app_service_authentication_a_principal_header_is_not_believed(
    console: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED")
    response = Browser().get("console_overview", "console")
    assert response.status_code == 403
    assert "App Service authentication" in html(response)


def test_a_malformed_principal_is_refused(console: Tenant) -> None:
    assert Browser("not-base64-json!").get("console_overview", "console").status_code == 403


def test_a_display_name_cannot_become_markup(console: Tenant) -> None:
    console.graph.add_user("mallory@contoso.com", display_name='<script>alert("x")</script><img src=x onerror=1>')
    run_user_sync(console.runtime())
    browser = Browser()
    for response in (
        browser.get("console_users", "console/users", {"q": "mallory"}),
        browser.get("console_user", "console/user", {"upn": "mallory@contoso.com"}),
    ):
        body = html(response)
        assert "<script>" not in body and "<img src=x" not in body
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body


def test_a_search_string_is_escaped_too(console: Tenant) -> None:
    body = html(Browser().get("console_users", "console/users", {"q": '"><b>bold</b>'}))
    assert "<b>bold" not in body and "&lt;b&gt;bold" in body


def test_users_are_found_by_name_upn_or_extension(console: Tenant) -> None:
    extension = next(link.extension for link in console.state.links().values() if link.upn.startswith("user002"))
    browser = Browser()
    for query in ("User2", "user002@", extension):
        body = html(browser.get("console_users", "console/users", {"q": query}))
        assert "user002@contoso.com" in body and "user001@contoso.com" not in body, query


def test_approve_applies_the_held_actions_and_records_who(console: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = _hold(console, monkeypatch)
    browser = Browser()
    page = html(browser.get("console_held", "console/held"))
    assert run_id in page and page.count("<td>delete</td>") == 3
    assert f"python -m sync users --approve {run_id}" in page
    assert len(console.pbx.users) == 6

    response = browser.post(
        "console_decide",
        f"console/held/{run_id}/approve",
        {"digest": _digest(page)},
        {"run_id": run_id, "decision": "approve"},
    )

    assert response.status_code == 200, html(response)
    assert "Approved: run" in html(response)
    assert len(console.pbx.users) == 3
    decided = console.state.get_run(run_id, "users")
    assert decided is not None and decided.resolution is not None
    assert (decided.resolution.decision, decided.resolution.by) == ("approved", "admin@contoso.com")
    approval = console.state.get_run(decided.resolution.run_id or "", "users")
    assert approval is not None and approval.trigger == "console" and approval.approves == run_id
    runs = html(browser.get("console_runs", "console/runs"))
    assert "approved by admin@contoso.com" in runs
    assert "No plan is held back." in html(browser.get("console_held", "console/held"))


def test_dismiss_changes_nothing_and_a_stale_approval_is_refused(
    console: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _hold(console, monkeypatch)
    browser = Browser()
    digest = _digest(html(browser.get("console_held", "console/held")))
    stale = browser.post(
        "console_decide",
        f"console/held/{run_id}/approve",
        {"digest": "0" * 32},
        {"run_id": run_id, "decision": "approve"},
    )
    assert stale.status_code == 409 and len(console.pbx.users) == 6

    response = browser.post(
        "console_decide",
        f"console/held/{run_id}/dismiss",
        {"digest": digest},
        {"run_id": run_id, "decision": "dismiss"},
    )
    assert response.status_code == 200 and "Dismissed" in html(response)
    assert len(console.pbx.users) == 6
    again = browser.post(
        "console_decide",
        f"console/held/{run_id}/approve",
        {"digest": digest},
        {"run_id": run_id, "decision": "approve"},
    )
    assert again.status_code == 409 and len(console.pbx.users) == 6


def test_a_post_without_a_valid_csrf_token_is_refused(console: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = _hold(console, monkeypatch)
    route, params = f"console/held/{run_id}/approve", {"run_id": run_id, "decision": "approve"}
    browser = Browser()
    digest = _digest(html(browser.get("console_held", "console/held")))

    no_token = Browser(cookies=dict(browser.cookies))
    assert no_token.post("console_decide", route, {"digest": digest}, params).status_code == 403
    no_cookie = Browser(token=browser.token)
    assert no_cookie.post("console_decide", route, {"digest": digest}, params).status_code == 403
    other = Browser(OTHER_ADMIN, cookies=dict(browser.cookies), token=browser.token)  # another's token
    assert other.post("console_decide", route, {"digest": digest}, params).status_code == 403
    reader = Browser(READER, cookies=dict(browser.cookies), token=browser.token)
    assert reader.post("console_decide", route, {"digest": digest}, params).status_code == 403
    assert len(console.pbx.users) == 6
    assert console.state.get_run(run_id, "users").resolution is None  # type: ignore[union-attr]


def test_an_option_toggled_in_the_console_is_honoured_by_the_next_plan(console: Tenant) -> None:
    browser = Browser()
    page = html(browser.get("console_user", "console/user", {"upn": "user001@contoso.com"}))
    assert 'name="sso"' in page and "tenant default (off)" in page

    response = browser.post("console_user_options", "console/user/options", {"upn": "user001@contoso.com", "sso": "on"})
    assert response.status_code == 200 and "Options saved." in html(response)

    plan = run_user_sync(console.runtime(), dry_run=True).plan
    updates = [a for a in plan.actions if isinstance(a, UpdateUser)]
    assert [(a.upn, dict(a.changes)["MS365SignInEnabled"].new) for a in updates] == [("user001@contoso.com", True)]

    browser.post("console_user_options", "console/user/options", {"upn": "user001@contoso.com", "sso": "default"})
    assert not run_user_sync(console.runtime(), dry_run=True).plan.actions
    bad = browser.post("console_user_options", "console/user/options", {"upn": "user001@contoso.com", "sso": "maybe"})
    assert bad.status_code == 400


def _digest(page: str) -> str:
    found = re.search(r'name="digest" value="([0-9a-f]{32})"', page)
    assert found, page
    return found.group(1)


def test_a_user_that_is_no_upn_is_answered_400_and_nothing_is_asked(console: Tenant) -> None:
    browser = Browser()
    browser.get("console_user", "console/user", {"upn": "user000@contoso.com"})  # the form's token
    response = browser.get("console_user", "console/user", {"upn": "not a user'"})
    assert response.status_code == 400
    saved = browser.post("console_user_options", "console/user/options", {"upn": "", "sso": "on"})
    assert saved.status_code == 400
    assert console.state.option_overrides() == {}


def test_the_overview_counts_subscriptions_unreadable_calendars_and_poisoned_messages(
    console: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from shared.queues import WorkQueue
    from sync.records import PresenceState, SubscriptionRecord
    from sync.runtime import reset_process_runtime

    queue_name = "console-" + console.env["STATE_TABLE_PREFIX"]
    monkeypatch.setenv("WORK_QUEUE", queue_name)
    reset_process_runtime()
    poison = WorkQueue.from_connection_string(console.env["AzureWebJobsStorage"], queue_name + "-poison")
    poison.ensure()
    poison.send_text('{"kind": "broken"}')
    poison.send_text('{"kind": "broken"}')
    now = datetime.now(UTC)
    for name, expires in (
        ("healthy", timedelta(days=6)),
        ("expiring", timedelta(days=1)),
        ("gone", -timedelta(hours=1)),
    ):
        console.state.save_subscription(
            SubscriptionRecord(
                id=name,
                kind="calendar",
                resource=f"/users/{name}/events",
                client_state="s" * 32,
                expires_at=now + expires,
            )
        )
    link = next(link for link in console.state.links().values() if link.upn.startswith("user001"))
    console.state.save_presence(
        PresenceState(m365_id=link.m365_id, tcx_user_id=link.tcx_user_id, unreadable="403 ErrorAccessDenied")
    )

    body = html(Browser().get("console_overview", "console"))

    assert "<tr><td>1</td><td>1</td><td>1</td><td>0</td></tr>" in body  # healthy, expiring, expired, failing
    assert "<tr><td>user001@contoso.com</td><td>403 ErrorAccessDenied</td></tr>" in body
    assert "<tr><td>2</td><td>0</td></tr>" in body  # poisoned messages, plans held back


def test_runs_are_filtered_by_kind_and_status(console: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    _hold(console, monkeypatch)
    browser = Browser()
    partial = html(browser.get("console_runs", "console/runs", {"kind": "users", "status": "partial"}))
    assert partial.count('<span class="status status-partial">') == 1
    assert "status-succeeded" not in partial and "deletion guard: 3 of 6" in partial
    succeeded = html(browser.get("console_runs", "console/runs", {"status": "succeeded"}))
    assert succeeded.count('<span class="status status-succeeded">') == 2
    assert "status-partial" not in succeeded


def test_every_run_can_be_reached_fifty_at_a_time_newest_first(console: Tenant) -> None:
    from datetime import timedelta

    from sync.records import RunRecord

    start = datetime(2026, 11, 1, tzinfo=UTC)
    for minute in range(55):
        at = start + timedelta(minutes=minute)
        console.state.save_run(RunRecord(kind="presence", run_id=f"r{minute:03d}", started_at=at, status="succeeded"))
    browser = Browser()
    first = html(browser.get("console_runs", "console/runs", {"kind": "presence"}))
    assert first.count('<span class="status status-succeeded">') == 50
    assert "r054" in first and "r004" not in first
    older = re.search(r'<a href="/api/console/runs\?([^"]+)">Older runs</a>', first)
    assert older is not None
    query = dict(part.split("=", 1) for part in older.group(1).replace("&amp;", "&").split("&"))
    assert query["kind"] == "presence"
    second = html(browser.get("console_runs", "console/runs", {k: unquote(v) for k, v in query.items()}))
    assert second.count('<span class="status status-succeeded">') == 5
    assert "r004" in second and "r005" not in second and "Older runs" not in second


def test_charts_show_changes_per_hour_and_per_day_from_the_run_records(console: Tenant) -> None:
    from datetime import UTC, datetime, timedelta

    from sync.records import RunRecord

    now = datetime.now(UTC)
    for ago, changed in ((timedelta(minutes=1), 3), (timedelta(hours=3), 2), (timedelta(days=8), 50)):
        console.state.save_run(
            RunRecord(
                kind="presence",
                run_id=f"p{changed}",
                started_at=now - ago,
                status="succeeded",
                counts={"changed": changed, "unchanged": 9},
            )
        )
    console.state.save_run(
        RunRecord(
            kind="contacts",
            run_id="c1",
            started_at=now - timedelta(days=2),
            status="succeeded",
            counts={"created": 4, "deleted": 1},
        )
    )
    body = html(Browser().get("console_charts", "console/charts"))
    assert "3CX status changes per hour, last 7 days</h2><p>5 in all" in body
    assert "User changes per day, last 30 days</h2><p>3 in all" in body  # the fixture's first sync
    assert "Contact changes per day, last 30 days</h2><p>5 in all" in body
    assert body.count('<table data-chart="') == 3 and body.count("<tr data-label=") == 7 * 24 + 30 + 30
    assert '<meter min="0" max="3" value="3">3</meter>' in body


def test_an_approval_while_a_user_sync_runs_is_answered_409_and_stays_undecided(
    console: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from sync.user_sync import LOCK_NAME

    run_id = _hold(console, monkeypatch)
    browser = Browser()
    digest = _digest(html(browser.get("console_held", "console/held")))
    with console.state.lock(LOCK_NAME, ttl=timedelta(minutes=1)):
        response = browser.post(
            "console_decide",
            f"console/held/{run_id}/approve",
            {"digest": digest},
            {"run_id": run_id, "decision": "approve"},
        )
    assert response.status_code == 409 and "another user-sync run is in progress" in html(response)
    assert len(console.pbx.users) == 6
    assert console.state.get_run(run_id, "users").resolution is None  # type: ignore[union-attr]


def test_the_overview_shows_when_each_timer_fires_next(console: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    from sync.runtime import reset_process_runtime

    monkeypatch.setenv("USER_SYNC_SCHEDULE", "0 0 2 * * *")
    monkeypatch.setenv("CONTACT_SYNC_SCHEDULE", "0 0 2 * * monday")  # named weekdays are not read
    reset_process_runtime()
    body = html(Browser().get("console_overview", "console"))
    assert "<h2>Next timer firings (UTC)</h2>" in body
    for timer in (
        "user_sync_timer",
        "presence_timer",
        "subscription_timer",
        "contact_sync_timer",
        "poison_queue_check",
    ):
        assert f"<td>{timer}</td>" in body
    assert re.search(
        r"<td>user_sync_timer</td><td>0 0 2 \* \* \*</td><td><time datetime=\"[^\"]+\">\d{4}-\d\d-\d\d 02:00:00", body
    )
    assert "<td>contact_sync_timer</td><td>0 0 2 * * monday</td><td>unknown</td>" in body


def test_the_overview_says_the_3cx_api_answers_and_its_version(console: Tenant) -> None:
    body = html(Browser().get("console_overview", "console"))
    assert '<p class="notice notice-ok" role="status">3CX API: answered, version 20.0.10.1000.</p>' in body


def test_the_overview_says_in_one_line_why_3cx_did_not_answer(console: Tenant) -> None:
    from tests.conftest import PBX_SECRET

    console.pbx.inject(503, count=50, retry_after=0)
    response = Browser().get("console_overview", "console")
    assert response.status_code == 200  # the rest of the page still shows
    body = html(response)
    (line,) = re.findall(r'<p class="notice notice-error" role="status">3CX API: not reachable \(([^<]*)\)</p>', body)
    assert "503" in line and "\n" not in line
    assert PBX_SECRET not in body
    assert "<h2>Last runs</h2>" in body


def test_the_user_page_shows_the_current_3cx_status_and_what_the_connector_applied_and_restores(
    console: Tenant,
) -> None:
    from sync.presence_run import remember_change
    from sync.records import PresenceState

    link = next(link for link in console.state.links().values() if link.upn.startswith("user001"))
    browser = Browser()
    before = html(browser.get("console_user", "console/user", {"upn": link.upn}))
    assert "<h2>3CX status</h2>" in before
    assert "<tr><td>Available</td><td>–</td><td>–</td></tr>" in before  # nothing applied yet

    console.pbx.set_status(link.tcx_user_id, "Out of office")
    console.state.save_presence(
        PresenceState(
            m365_id=link.m365_id,
            tcx_user_id=link.tcx_user_id,
            applied_status="Out of office",
            previous_status="Available",
        )
    )
    body = html(browser.get("console_user", "console/user", {"upn": link.upn}))
    assert "<tr><td>Out of office</td><td>Out of office</td><td>Available</td></tr>" in body

    console.state.save_presence(
        remember_change(
            console.state.get_presence(link.m365_id) or PresenceState(m365_id=link.m365_id, tcx_user_id=7),
            datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
            "set",
            "Available",
            "Out of office",
        )
    )
    history = html(browser.get("console_user", "console/user", {"upn": link.upn}))
    assert "<h2>Recent status changes</h2>" in history
    assert "<tr><td>2026-11-30 09:00 UTC</td><td>set</td><td>Available</td><td>Out of office</td></tr>" in history

    console.pbx.inject(503, count=50, retry_after=0)
    failing = browser.get("console_user", "console/user", {"upn": link.upn})
    assert failing.status_code == 200  # the options still show
    assert re.search(r"<tr><td>not readable \([^<]*503[^<]*\)</td><td>Out of office</td>", html(failing))
    assert "<h2>Options</h2>" in html(failing)

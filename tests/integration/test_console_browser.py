"""The console in a real browser (headless Chromium through Selenium), served by `serve`'s HTTP server.

Each page loads without a Content-Security-Policy violation or a script error, passes axe-core's
accessibility rules, the charts are drawn, a form round-trips its CSRF cookie and token (an option
toggled shows in the next plan, an approved hold changes 3CX), and without the role every page is
refused. `make
test` installs Chromium and its driver when missing; without them these tests are skipped.
Screenshots go to CONSOLE_SCREENSHOTS (a folder; `make screenshots` writes docs/) or the test's
temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devhost.serve import local_principal, make_server
from function_app import registered_functions
from sync.console.security import LOCAL_ENV
from sync.records import RunRecord
from sync.user_sync import run_user_sync
from sync.users import FieldChange
from tests.conftest import Tenant

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
AXE = Path(__file__).resolve().parents[1] / "browser" / "vendor" / "axe.min.js"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="Chromium and chromedriver are not installed (make test installs them)"
)

PAGES = [
    ("overview", "/api/console", "Overview"),
    ("runs", "/api/console/runs", "Runs"),
    ("held", "/api/console/held", "Held back"),
    ("users", "/api/console/users", "Users"),
    ("user", "/api/console/user?upn=user001@contoso.com", "user001@contoso.com"),
    ("charts", "/api/console/charts", "Charts"),
]


@pytest.fixture
def site(tenant_env: Tenant, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Tenant]]:
    """The console on loopback, signed in as the local user, over a tenant with a held plan and some history."""
    monkeypatch.setenv(LOCAL_ENV, "1")
    for key, value in {"DEPROVISION": "delete", "DEPROVISION_MAX_COUNT": "2"}.items():
        monkeypatch.setenv(key, value)
    tenant_env.graph.add_user("mallory@contoso.com", display_name="<script>alert(1)</script>")
    ids = tenant_env.add_users(6)
    run_user_sync(tenant_env.runtime())
    for user_id in ids[3:]:
        tenant_env.graph.soft_delete_user(user_id)
    run_user_sync(tenant_env.runtime(DEPROVISION="delete", DEPROVISION_MAX_COUNT="2"))
    now = datetime.now(UTC)
    for hours in range(0, 72, 5):
        tenant_env.state.save_run(
            RunRecord(
                kind="presence",
                run_id=f"p{hours}",
                started_at=now - timedelta(hours=hours),
                status="succeeded",
                counts={"changed": hours % 7, "reverted": 1},
            )
        )
    server = make_server(registered_functions(), "127.0.0.1", 0, principal=local_principal())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tenant_env
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _problems(driver) -> list[str]:
    """What the browser's console said at warning level or above (CSP violations, script errors)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]


def _axe(driver) -> list[dict[str, object]]:
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact,"
        " nodes: v.nodes.map(n => n.target.join(' '))})))))"
        ".catch(e => done(JSON.stringify([{id: 'axe-error', impact: String(e)}])));"
    )
    return list(json.loads(result))


def test_every_page_loads_cleanly_and_passes_axe(site, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, _tenant = site
    folder = _screenshots(tmp_path)
    for name, path, heading in PAGES:
        browser.get(base + path)
        assert browser.find_element(By.TAG_NAME, "h1").text == heading
        if name == "charts":
            WebDriverWait(browser, 20).until(
                lambda d: len(d.find_elements(By.CSS_SELECTOR, "table[data-drawn='true']")) == 3
            )
            canvases = browser.find_elements(By.CSS_SELECTOR, "figure.chart canvas")
            assert len(canvases) == 3 and all(canvas.size["width"] > 100 for canvas in canvases)
        assert _problems(browser) == [], name
        assert _axe(browser) == [], name
        browser.save_screenshot(str(folder / f"console-{name}.png"))
    assert (folder / "console-charts.png").stat().st_size > 10_000


def test_a_display_name_shows_as_text_in_the_browser(site, browser) -> None:
    from selenium.webdriver.common.by import By

    base, _tenant = site
    browser.get(base + "/api/console/users?q=mallory")
    assert "<script>alert(1)</script>" in browser.find_element(By.TAG_NAME, "table").text
    assert _problems(browser) == []


def test_a_form_round_trips_its_cookie_and_token_in_a_real_browser(site, browser) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    def shows(text: str) -> None:
        """Wait for the page the form's POST answers with (the old page goes stale meanwhile)."""
        WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: text in d.find_element(By.TAG_NAME, "main").text
        )

    base, tenant = site
    browser.get(base + "/api/console/user?upn=user001@contoso.com")
    Select(browser.find_element(By.NAME, "sso")).select_by_value("on")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/user/options'] button").click()
    shows("Options saved.")
    overrides = tenant.state.option_overrides()
    assert [o.sso for o in overrides.values() if o.upn == "user001@contoso.com"] == [True]
    plan = run_user_sync(tenant.runtime(), dry_run=True).plan  # the next plan honours the toggle
    assert [(a.upn, dict(a.changes)) for a in plan.of_kind("update")] == [
        ("user001@contoso.com", {"MS365SignInEnabled": FieldChange(False, True)})
    ]

    browser.get(base + "/api/console/held")
    browser.find_element(By.CSS_SELECTOR, "form.approve button").click()
    shows("Approved: run")
    assert len(tenant.pbx.users) == 4  # mallory and user000..user002


def test_without_the_role_a_real_browser_gets_403_and_no_page(tenant_env: Tenant, monkeypatch, browser) -> None:
    from selenium.webdriver.common.by import By

    from sync.console.security import encode_principal

    monkeypatch.setenv(LOCAL_ENV, "1")
    stranger = encode_principal("local:guest", "guest@localhost", ())
    server = make_server(registered_functions(), "127.0.0.1", 0, principal=stranger)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for _name, path, _heading in PAGES:
            browser.get(f"http://127.0.0.1:{server.server_address[1]}{path}")
            text = browser.find_element(By.TAG_NAME, "body").text
            assert "does not have the app role Connector.Admin" in text, path
            assert not browser.find_elements(By.TAG_NAME, "form"), path
    finally:
        server.shutdown()
        server.server_close()

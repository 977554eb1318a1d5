"""The Function App's triggers, called as the Functions host calls them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import azure.functions as func
import pytest
import responses

from fakes.graph import GraphFake
from fakes.transport import install
from function_app import registered_functions
from tests.conftest import CLIENT_ID, GRAPH_SECRET, TENANT_ID
from tests.function_app_support import call, function


def test_registered_triggers_match_the_contract() -> None:
    triggers = {f.get_function_name(): f.get_trigger() for f in registered_functions()}
    assert triggers["user_sync_timer"].schedule == "%USER_SYNC_SCHEDULE%"
    routes = {t.route for t in triggers.values() if t.get_binding_name() == "httpTrigger"}
    assert routes == {
        "admin/users/plan",
        "admin/users/run",
        "admin/options",
        "admin/options/{upn}",
        "graph/notifications",
        "graph/lifecycle",
        "console",
        "console/runs",
        "console/held",
        "console/held/{run_id}/{decision}",
        "console/users",
        "console/charts",
        "console/user",
        "console/user/options",
        "console/static/{name}",
    }
    assert triggers["presence_timer"].schedule == "%PRESENCE_SCHEDULE%"
    assert triggers["subscription_timer"].schedule == "%SUBSCRIPTION_SCHEDULE%"
    assert triggers["work_queue_worker"].queue_name == "%WORK_QUEUE%"
    assert triggers["poison_queue_check"].schedule == "0 */15 * * * *"
    for trigger in triggers.values():
        if trigger.get_binding_name() == "httpTrigger":
            # The console is for browsers: App Service signs them in and the console checks the role itself.
            expected = "anonymous" if trigger.route.startswith("console") else "function"
            assert str(getattr(trigger.auth_level, "value", trigger.auth_level)).lower() == expected


def test_no_timer_runs_at_start_up() -> None:
    """Fault: subscription_timer ran on every start, so each scale-out and restart re-ran the upkeep."""
    timers = {}
    for registered in registered_functions():
        for binding in json.loads(registered.get_function_json())["bindings"]:
            if binding["type"] == "timerTrigger":
                timers[registered.get_function_name()] = binding
    assert {"user_sync_timer", "presence_timer", "subscription_timer", "contact_sync_timer"} <= set(timers)
    started = sorted(name for name, binding in timers.items() if binding.get("runOnStartup"))
    assert not started, f"these run at every start of an instance: {started}"


def test_a_bad_setting_answers_500_with_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNC_SSO", "sometimes")
    response = call("admin_user_plan", "GET", "admin/users/plan")
    assert response.status_code == 500
    assert json.loads(response.get_body())["error"].startswith("configuration error: SYNC_SSO")


class _Out(func.Out):
    def __init__(self) -> None:
        self.value = None

    def set(self, val) -> None:
        self.value = val

    def get(self):
        return self.value


@pytest.mark.parametrize("route", ["notifications", "lifecycle"])
def test_the_webhook_handshake_answer_tells_browsers_not_to_sniff_its_type(route: str) -> None:
    """Through the Function handler: the echo is plain text, and says so firmly (nosniff)."""
    token = "<html><script>alert(1)</script></html>"
    request = func.HttpRequest(
        method="POST", url=f"http://localhost/api/graph/{route}", params={"validationToken": token}, body=b""
    )
    out = _Out()
    response = function(f"graph_{route}").get_user_function()(request, work=out)
    assert (response.status_code, response.mimetype, response.get_body().decode()) == (200, "text/plain", token)
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert out.value is None


def test_a_bad_webhook_url_answers_500_without_its_function_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault: the 500 body and the `config_error` log line quoted WEBHOOK_URL's `?code=<function key>`."""
    monkeypatch.setenv("WEBHOOK_URL", "http://connector.example.com/api/graph/notifications?code=SECRETKEY")
    caplog.set_level(logging.INFO)
    response = call("admin_user_plan", "GET", "admin/users/plan")
    assert response.status_code == 500
    body = response.get_body().decode()
    assert json.loads(body)["error"] == (
        "configuration error: WEBHOOK_URL: must be an https:// URL,"
        " got 'http://connector.example.com/api/graph/notifications'"
    )
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("config_error")] == [
        'config_error error="configuration error: WEBHOOK_URL: must be an https:// URL,'
        " got 'http://connector.example.com/api/graph/notifications'\""
    ]
    assert "SECRETKEY" not in body + caplog.text


GRAPH_ROOT = "https://graph.fake.test"


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[responses.RequestsMock]:
    """Settings that reach a simulated Graph; every request anything sends is recorded."""
    for name, value in {
        "GRAPH_TENANT_ID": TENANT_ID,
        "GRAPH_CLIENT_ID": CLIENT_ID,
        "GRAPH_CLIENT_SECRET": GRAPH_SECRET,
        "GRAPH_AUTHORITY_HOST": GRAPH_ROOT,
        "GRAPH_BASE_URL": f"{GRAPH_ROOT}/v1.0",
        "TCX_BASE_URL": "https://pbx.fake.test:5001",
        "TCX_CLIENT_ID": "m365connector",
        "TCX_CLIENT_SECRET": "pbx-test-secret-value",
    }.items():
        monkeypatch.setenv(name, value)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, GRAPH_ROOT, GraphFake(tenant_id=TENANT_ID, client_id=CLIENT_ID, client_secret=GRAPH_SECRET))
        yield mock


@pytest.mark.parametrize("bad", ["..", "", "ada", "../groups@contoso.com"])
@pytest.mark.parametrize(
    ("name", "method", "route", "where"),
    [
        ("admin_user_plan", "GET", "admin/users/plan", "only"),
        ("admin_user_run", "POST", "admin/users/run", "only"),
        ("admin_options_user", "GET", "admin/options/{upn}", "upn"),
        ("admin_options_user", "PUT", "admin/options/{upn}", "upn"),
        ("admin_options_user", "DELETE", "admin/options/{upn}", "upn"),
    ],
)
def test_a_malformed_user_is_answered_400_and_nothing_is_asked(
    configured: responses.RequestsMock, name: str, method: str, route: str, where: str, bad: str
) -> None:
    """Fault: `?only=..` or `/options/..` reached Graph as GET /v1.0/ and ended in an unhandled 500."""
    if where == "only":
        response = call(name, method, route, params={"only": bad})
    else:
        response = call(name, method, route, route_params={"upn": bad}, body=b'{"photo": false}')
    assert response.status_code == 400
    [line] = json.loads(response.get_body())["error"].splitlines()
    assert line.startswith(f"{where}: {bad!r} is neither")
    assert list(configured.calls) == []

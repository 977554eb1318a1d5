"""The Function App's triggers, called as the Functions host calls them."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from function_app import registered_functions


def _function(name: str):
    for function in registered_functions():
        if function.get_function_name() == name:
            return function
    raise AssertionError(f"no function {name}")


def _call(
    name: str, method: str, route: str, *, params=None, route_params=None, body: bytes = b""
) -> func.HttpResponse:
    request = func.HttpRequest(
        method=method,
        url=f"http://localhost/api/{route}",
        params=params or {},
        route_params=route_params or {},
        body=body,
    )
    return _function(name).get_user_function()(request)


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
    }
    assert triggers["presence_timer"].schedule == "%PRESENCE_SCHEDULE%"
    assert triggers["subscription_timer"].schedule == "%SUBSCRIPTION_SCHEDULE%"
    assert triggers["work_queue_worker"].queue_name == "%WORK_QUEUE%"
    for trigger in triggers.values():
        if trigger.get_binding_name() == "httpTrigger":
            assert str(getattr(trigger.auth_level, "value", trigger.auth_level)).lower() == "function"


def test_a_bad_setting_answers_500_with_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNC_SSO", "sometimes")
    response = _call("admin_user_plan", "GET", "admin/users/plan")
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
    response = _function(f"graph_{route}").get_user_function()(request, work=out)
    assert (response.status_code, response.mimetype, response.get_body().decode()) == (200, "text/plain", token)
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert out.value is None

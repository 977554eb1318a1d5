"""Azure Functions entry point: triggers only.

Each trigger parses its input, calls one function in `sync/`, and maps the result to an
output. `python -m sync serve` serves these same handlers locally.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.settings import ConfigError
from shared.state import LockHeld
from shared.telemetry import log_event
from sync import admin_api
from sync.runtime import Runtime, process_runtime
from sync.user_sync import run_user_sync

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@functools.cache
def registered_functions() -> tuple[Any, ...]:
    """The app's functions, read once: `FunctionApp.get_functions()` refuses a second call."""
    return tuple(app.get_functions())


def _respond(result: admin_api.ApiResult) -> func.HttpResponse:
    return func.HttpResponse(result.text(), status_code=result.status, mimetype="application/json")


def _admin(call: Callable[[Runtime], admin_api.ApiResult]) -> func.HttpResponse:
    """Run an admin call; a bad setting answers 500 with its one line instead of a traceback."""
    try:
        rt = process_runtime()
    except ConfigError as error:
        log_event("config_error", logging.ERROR, error=str(error))
        return _respond(admin_api.ApiResult(500, {"error": str(error)}))
    return _respond(call(rt))


@app.function_name("user_sync_timer")
@app.timer_trigger(arg_name="timer", schedule="%USER_SYNC_SCHEDULE%", run_on_startup=False, use_monitor=True)
def user_sync_timer(timer: func.TimerRequest) -> None:
    """The nightly user sync. Skips (and says so) when paused or when a run is in progress."""
    rt = process_runtime()
    if rt.settings.sync_paused:
        log_event("run_skipped", kind="users", reason="SYNC_PAUSED is true")
        return
    try:
        run_user_sync(rt)
    except LockHeld as error:
        log_event("run_skipped", logging.WARNING, kind="users", reason=str(error))


@app.function_name("admin_user_plan")
@app.route(route="admin/users/plan", methods=["GET"])
def admin_user_plan(req: func.HttpRequest) -> func.HttpResponse:
    return _admin(lambda rt: admin_api.user_plan(rt, dict(req.params)))


@app.function_name("admin_user_run")
@app.route(route="admin/users/run", methods=["POST"])
def admin_user_run(req: func.HttpRequest) -> func.HttpResponse:
    return _admin(lambda rt: admin_api.user_run(rt, dict(req.params)))


@app.function_name("admin_options_list")
@app.route(route="admin/options", methods=["GET"])
def admin_options_list(req: func.HttpRequest) -> func.HttpResponse:
    return _admin(lambda rt: admin_api.options_get(rt, None))


@app.function_name("admin_options_user")
@app.route(route="admin/options/{upn}", methods=["GET", "PUT", "DELETE"])
def admin_options_user(req: func.HttpRequest) -> func.HttpResponse:
    upn = req.route_params["upn"]
    if req.method == "PUT":
        return _admin(lambda rt: admin_api.options_put(rt, upn, req.get_body()))
    if req.method == "DELETE":
        return _admin(lambda rt: admin_api.options_delete(rt, upn))
    return _admin(lambda rt: admin_api.options_get(rt, upn))

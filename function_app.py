"""Azure Functions entry point: triggers only.

Each trigger parses its input, calls one function in `sync/`, and maps the result to an
output. `python -m sync serve` serves these same handlers locally.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.state import LockHeld
from shared.telemetry import log_event
from sync import admin_api
from sync.runtime import process_runtime
from sync.user_sync import run_user_sync

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _respond(result: admin_api.ApiResult) -> func.HttpResponse:
    return func.HttpResponse(result.text(), status_code=result.status, mimetype="application/json")


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
    return _respond(admin_api.user_plan(process_runtime(), dict(req.params)))


@app.function_name("admin_user_run")
@app.route(route="admin/users/run", methods=["POST"])
def admin_user_run(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(admin_api.user_run(process_runtime(), dict(req.params)))


@app.function_name("admin_options_list")
@app.route(route="admin/options", methods=["GET"])
def admin_options_list(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(admin_api.options_get(process_runtime(), None))


@app.function_name("admin_options_user")
@app.route(route="admin/options/{upn}", methods=["GET", "PUT", "DELETE"])
def admin_options_user(req: func.HttpRequest) -> func.HttpResponse:
    rt = process_runtime()
    upn = req.route_params["upn"]
    if req.method == "PUT":
        return _respond(admin_api.options_put(rt, upn, req.get_body()))
    if req.method == "DELETE":
        return _respond(admin_api.options_delete(rt, upn))
    return _respond(admin_api.options_get(rt, upn))

"""Admin HTTP routes for scripts (function key): the user plan, a run now, per-user options.

The logic is `sync.admin_api`, independent of Azure Functions' request objects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.functions as func

from shared.errors import ConfigError, one_line
from shared.telemetry import invocation, log_event
from sync import admin_api
from sync.runtime import Runtime, process_runtime

bp = func.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)


def _respond(result: admin_api.ApiResult) -> func.HttpResponse:
    return func.HttpResponse(result.text(), status_code=result.status, mimetype="application/json")


def _admin(name: str, call: Callable[[Runtime], admin_api.ApiResult]) -> func.HttpResponse:
    """Run an admin call as invocation `name`; a bad setting answers 500 with its one line, not a traceback."""
    with invocation(name):
        try:
            rt = process_runtime()
        except ConfigError as error:
            log_event("config_error", logging.ERROR, error=one_line(error))
            return _respond(admin_api.ApiResult(500, {"error": one_line(error)}))
        return _respond(call(rt))


@bp.function_name("admin_user_plan")
@bp.route(route="admin/users/plan", methods=["GET"])
def admin_user_plan(req: func.HttpRequest) -> func.HttpResponse:
    return _admin("admin_user_plan", lambda rt: admin_api.user_plan(rt, dict(req.params)))


@bp.function_name("admin_user_run")
@bp.route(route="admin/users/run", methods=["POST"])
def admin_user_run(req: func.HttpRequest) -> func.HttpResponse:
    return _admin("admin_user_run", lambda rt: admin_api.user_run(rt, dict(req.params)))


@bp.function_name("admin_options_list")
@bp.route(route="admin/options", methods=["GET"])
def admin_options_list(req: func.HttpRequest) -> func.HttpResponse:
    return _admin("admin_options_list", lambda rt: admin_api.options_get(rt, None))


@bp.function_name("admin_options_user")
@bp.route(route="admin/options/{upn}", methods=["GET", "PUT", "DELETE"])
def admin_options_user(req: func.HttpRequest) -> func.HttpResponse:
    upn = req.route_params["upn"]
    if req.method == "PUT":
        return _admin("admin_options_user", lambda rt: admin_api.options_put(rt, upn, req.get_body()))
    if req.method == "DELETE":
        return _admin("admin_options_user", lambda rt: admin_api.options_delete(rt, upn))
    return _admin("admin_options_user", lambda rt: admin_api.options_get(rt, upn))

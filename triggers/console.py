"""The administrator's console (`/api/console/…`): HTML for a browser signed in with Entra ID.

Anonymous at the Functions level (a browser carries no function key): App Service
authentication signs the administrator in, and `sync.console` checks the principal and its
app role on every request itself. The logic is `sync.console.views`.
"""

from __future__ import annotations

import azure.functions as func

from sync.console.views import ConsoleRequest, ConsoleResponse, handle
from sync.runtime import process_runtime

ANONYMOUS = func.AuthLevel.ANONYMOUS  # the Function App defaults to FUNCTION
bp = func.Blueprint(http_auth_level=ANONYMOUS)


def _serve(req: func.HttpRequest, page: str) -> func.HttpResponse:
    request = ConsoleRequest(
        method=req.method.upper(),
        page=page,
        headers=dict(req.headers.items()),
        query=dict(req.params),
        body=req.get_body() or b"",
        route=dict(req.route_params),
    )
    response: ConsoleResponse = handle(request, process_runtime)
    return func.HttpResponse(
        response.body,
        status_code=response.status,
        headers=response.headers,
        mimetype=response.content_type,
        charset="utf-8",
    )


@bp.function_name("console_overview")
@bp.route(route="console", methods=["GET"], auth_level=ANONYMOUS)
def console_overview(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "overview")


@bp.function_name("console_runs")
@bp.route(route="console/runs", methods=["GET"], auth_level=ANONYMOUS)
def console_runs(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "runs")


@bp.function_name("console_held")
@bp.route(route="console/held", methods=["GET"], auth_level=ANONYMOUS)
def console_held(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "held")


@bp.function_name("console_decide")
@bp.route(route="console/held/{run_id}/{decision}", methods=["POST"], auth_level=ANONYMOUS)
def console_decide(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "decide")


@bp.function_name("console_charts")
@bp.route(route="console/charts", methods=["GET"], auth_level=ANONYMOUS)
def console_charts(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "charts")


@bp.function_name("console_users")
@bp.route(route="console/users", methods=["GET"], auth_level=ANONYMOUS)
def console_users(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "users")


@bp.function_name("console_user")
@bp.route(route="console/user", methods=["GET"], auth_level=ANONYMOUS)
def console_user(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "user")


@bp.function_name("console_user_options")
@bp.route(route="console/user/options", methods=["POST"], auth_level=ANONYMOUS)
def console_user_options(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "options")


@bp.function_name("console_static")
@bp.route(route="console/static/{name}", methods=["GET"], auth_level=ANONYMOUS)
def console_static(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "static")

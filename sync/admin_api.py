"""The admin HTTP routes' logic, independent of Azure Functions' request objects.

`function_app.py` turns a request into (route params, query, body), calls one function
here and turns the `ApiResult` back into a response; `serve` does the same through the
very same Function handlers. A user named in the request (`?only=`, `{upn}`) is checked
first (shared/identifiers.py): a malformed one is answered 400 before anything is asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.errors import UpstreamError, one_line
from shared.identifiers import MalformedId, user_reference
from shared.settings import ConfigError
from shared.state import LockHeld
from sync.option_admin import UnknownUser, options_report, set_user_options
from sync.options import OPTION_NAMES, parse_option_value
from sync.plan_output import plan_to_json
from sync.runtime import Runtime
from sync.user_sync import UserNotFound, run_user_sync


@dataclass
class ApiResult:
    status: int
    body: dict[str, Any]

    def text(self) -> str:
        return json.dumps(self.body, default=str)


def _error(status: int, message: str) -> ApiResult:
    return ApiResult(status, {"error": message})


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def _only(query: dict[str, str]) -> str | None:
    """`?only=`: one user by UPN or object id; present but malformed (empty too) is `MalformedId`."""
    only = query.get("only")
    return None if only is None else user_reference(only, "only")


def user_plan(rt: Runtime, query: dict[str, str]) -> ApiResult:
    """GET /api/admin/users/plan[?only=UPN]: the dry-run plan."""
    try:
        result = run_user_sync(rt, dry_run=True, only_upn=_only(query))
    except MalformedId as error:
        return _error(400, str(error))
    except ConfigError as error:
        return _error(500, one_line(error))
    except UserNotFound as error:
        return _error(404, str(error))
    except UpstreamError as error:
        return _error(502, one_line(error))
    return ApiResult(200, {**result.counts, "dry_run": True, **plan_to_json(result.plan)})


def user_run(rt: Runtime, query: dict[str, str]) -> ApiResult:
    """POST /api/admin/users/run[?only=UPN][&allow_deprovision=true][&allow_mass_create=true]: run now."""
    try:
        result = run_user_sync(
            rt,
            only_upn=_only(query),
            allow_deprovision=_truthy(query.get("allow_deprovision")),
            allow_mass_create=_truthy(query.get("allow_mass_create")),
            trigger="admin",
        )
    except MalformedId as error:
        return _error(400, str(error))
    except ConfigError as error:
        return _error(500, one_line(error))
    except UserNotFound as error:
        return _error(404, str(error))
    except LockHeld as error:
        return _error(409, str(error))
    except UpstreamError as error:
        return _error(502, one_line(error))
    stopped = result.aborted or result.refused
    body: dict[str, Any] = {**result.counts, "run_id": result.run_id, "status": result.status, "error": stopped}
    body["failures"] = [
        {"upn": o.action.upn, "action": o.action.kind, "error": o.error} for o in result.outcomes if not o.ok
    ]
    if result.plan.guard:
        body["guard"] = result.plan.guard.describe()
    if result.plan.creation_guard:
        body["creation_guard"] = result.plan.creation_guard.describe()
    return ApiResult(502 if result.aborted else 409 if result.refused else 200, body)


def options_get(rt: Runtime, upn: str | None) -> ApiResult:
    """GET /api/admin/options[/{upn}]."""
    try:
        return ApiResult(200, options_report(rt, None if upn is None else user_reference(upn, "upn")))
    except MalformedId as error:
        return _error(400, str(error))
    except UnknownUser as error:
        return _error(404, str(error))
    except UpstreamError as error:
        return _error(502, one_line(error))


def options_put(rt: Runtime, upn: str, body: bytes) -> ApiResult:
    """PUT /api/admin/options/{upn} with {"photo": false, "sso": null, ...}; null = tenant default."""
    try:
        user_reference(upn, "upn")
    except MalformedId as error:
        return _error(400, str(error))
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return _error(400, 'body must be a JSON object such as {"photo": false}')
    if not isinstance(payload, dict) or not payload:
        return _error(400, 'body must be a non-empty JSON object such as {"photo": false}')
    unknown = sorted(set(payload) - set(OPTION_NAMES))
    if unknown:
        return _error(400, f"unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTION_NAMES)}")
    try:
        assignments = {name: parse_option_value(name, value) for name, value in payload.items()}
        return ApiResult(200, set_user_options(rt, upn, assignments))
    except ValueError as error:
        return _error(400, str(error))
    except UnknownUser as error:
        return _error(404, str(error))
    except UpstreamError as error:
        return _error(502, one_line(error))


def options_delete(rt: Runtime, upn: str) -> ApiResult:
    """DELETE /api/admin/options/{upn}: back to the tenant defaults."""
    try:
        return ApiResult(200, set_user_options(rt, user_reference(upn, "upn"), dict.fromkeys(OPTION_NAMES)))
    except MalformedId as error:
        return _error(400, str(error))
    except UnknownUser as error:
        return _error(404, str(error))
    except UpstreamError as error:
        return _error(502, one_line(error))

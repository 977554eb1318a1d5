"""Calling the Function App's handlers as the Functions host calls them (shared by both tiers)."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from function_app import registered_functions


def function(name: str) -> Any:
    for function in registered_functions():
        if function.get_function_name() == name:
            return function
    raise AssertionError(f"no function {name}")


def call(
    name: str, method: str, route: str, *, params=None, route_params=None, body: bytes = b"", headers=None
) -> func.HttpResponse:
    request = func.HttpRequest(
        method=method,
        url=f"http://localhost/api/{route}",
        headers=headers or {},
        params=params or {},
        route_params=route_params or {},
        body=body,
    )
    return function(name).get_user_function()(request)

"""Azure Functions entry point: sets up telemetry and registers the trigger blueprints, nothing else.

Each trigger (in `triggers/`) parses its input, calls one function in `sync/`, and maps
the result to an output. `python -m sync serve` serves these same handlers locally.
Telemetry goes to Application Insights only in Azure (shared/azure_monitor.py); the Azure
SDK's loggers are kept at WARNING everywhere.
"""

from __future__ import annotations

import functools
from typing import Any

import azure.functions as func

from shared.azure_monitor import configure_telemetry
from triggers import admin, console, queue, timers, webhooks

configure_telemetry()
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (timers.bp, queue.bp, webhooks.bp, admin.bp, console.bp):
    app.register_functions(blueprint)


@functools.cache
def registered_functions() -> tuple[Any, ...]:
    """The app's functions, read once: `FunctionApp.get_functions()` refuses a second call."""
    return tuple(app.get_functions())

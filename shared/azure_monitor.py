"""Sending the connector's telemetry to Application Insights, in Azure only.

shared/telemetry.py writes spans, log records and metrics through the OpenTelemetry API;
here the Azure Monitor distro (`azure-monitor-opentelemetry`) is set up to export them,
once per worker process (function_app.py), and only where the Functions host is set up for
it: `APPLICATIONINSIGHTS_CONNECTION_STRING` present. Tests, `serve` and the command line
never get here, or find no connection string, and their telemetry goes nowhere.

The Functions side of it (infra/modules/functionapp.bicep, host.json): `"telemetryMode":
"OpenTelemetry"` makes the host export its own requests and logs through OpenTelemetry, and
`PYTHON_ENABLE_OPENTELEMETRY=true` makes the Python worker hand each invocation the host's
trace context and tell the host that this process exports its own logs (so the host does not
forward them a second time). The worker's other setting, `PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`,
would have the worker set the distro up itself, without the managed identity and with the
distro's default instrumentations; it stays unset.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace

from shared.errors import one_line
from shared.telemetry import LOGGER_NAME, log_event, quiet_sdk_loggers

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
AUTHENTICATION_STRING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"

# Instrumentations of the Azure Monitor distro left off: HTTP calls to Graph and 3CX are spanned
# by shared/telemetry.py (`http_call`), one span per call with the URL's query removed, and the
# Functions host records the requests it serves itself. The Azure SDK's (Table and Queue
# calls as dependencies) stays on.
_INSTRUMENTATIONS_OFF = ("requests", "urllib", "urllib3", "django", "flask", "fastapi", "psycopg2")


def telemetry_options(
    environ: Mapping[str, str], credential_factory: Callable[..., Any] | None = None
) -> dict[str, Any] | None:
    """The arguments for `configure_azure_monitor`, or None where telemetry is not to be sent.

    Only in Azure: where `APPLICATIONINSIGHTS_CONNECTION_STRING` is set. The component accepts
    Microsoft Entra ID only (local authentication is off), so the exporters authenticate as the
    managed identity named in `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`
    (`ClientId=<client id>;Authorization=AAD`, the form the Functions host reads too).
    """
    connection = environ.get(CONNECTION_STRING, "").strip()
    if not connection:
        return None
    options: dict[str, Any] = {
        "connection_string": connection,
        "logger_name": "",  # the root logger: other libraries' warnings and the worker's errors too
        "instrumentation_options": {name: {"enabled": False} for name in _INSTRUMENTATIONS_OFF},
    }
    auth = _authentication(environ.get(AUTHENTICATION_STRING, ""))
    if auth is not None:
        if credential_factory is None:
            from azure.identity import ManagedIdentityCredential

            credential_factory = ManagedIdentityCredential
        options["credential"] = credential_factory(client_id=auth) if auth else credential_factory()
    return options


def _authentication(text: str) -> str | None:
    """The client id from `ClientId=…;Authorization=AAD` ('' for the system identity); None without AAD."""
    pairs = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
    fields = {key.strip().lower(): value.strip() for key, value in pairs.items()}
    if fields.get("authorization", "").upper() != "AAD":
        return None
    return fields.get("clientid", "")


def configure_telemetry(environ: Mapping[str, str] | None = None) -> bool:
    """In Azure, send the connector's telemetry to Application Insights; True if it will be sent.

    Called once per worker process (function_app.py). The libraries' loggers are quietened in
    any case. Where an OpenTelemetry SDK is already installed (a Python worker that set up
    the Azure Monitor distro itself), that one is used as it is.
    """
    quiet_sdk_loggers()
    options = telemetry_options(os.environ if environ is None else environ)
    if options is None:
        return False
    from opentelemetry.sdk.trace import TracerProvider

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        try:
            from azure.monitor.opentelemetry import configure_azure_monitor

            configure_azure_monitor(**options)
        except Exception as error:  # the connector runs on without telemetry rather than not at all
            log_event("telemetry_unavailable", logging.ERROR, error=one_line(error))
            return False
    connector = logging.getLogger(LOGGER_NAME)
    connector.setLevel(logging.INFO)
    # Each line reaches Application Insights once, as the record `log_event` emits with its
    # attributes; the plain-text copy would come a second time through the root logger (or,
    # with no handler at all, through logging's last resort on stderr, which the host forwards).
    connector.propagate = False
    connector.addHandler(logging.NullHandler())
    if not options.get("credential"):
        log_event(
            "telemetry_without_entra",
            logging.WARNING,
            reason=f"{AUTHENTICATION_STRING} does not say Authorization=AAD; a component with local"
            " authentication off refuses the telemetry",
        )
    return True

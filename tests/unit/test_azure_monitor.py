"""Telemetry to Application Insights: set up in Azure only, as the managed identity, libraries quiet."""

from __future__ import annotations

import logging
import runpy
from pathlib import Path
from typing import Any

import pytest

from shared.azure_monitor import configure_telemetry, telemetry_options
from shared.telemetry import SDK_LOGGERS

ROOT = Path(__file__).resolve().parents[2]
IDENTITY = "1c0ffee0-0000-4000-8000-000000000001"
CONNECTION = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://example.invalid/"
HTTP_LOGGING_POLICY = "azure.core.pipeline.policies.http_logging_policy"


class Credential:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


def test_nothing_is_sent_without_a_connection_string() -> None:
    """Tests, `serve` and the command line: no Application Insights, nothing to configure."""
    assert telemetry_options({}) is None
    assert telemetry_options({"APPLICATIONINSIGHTS_CONNECTION_STRING": "  "}) is None
    assert configure_telemetry({}) is False


def test_in_azure_the_exporters_authenticate_as_the_managed_identity() -> None:
    options = telemetry_options(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"ClientId={IDENTITY};Authorization=AAD",
        },
        credential_factory=Credential,
    )
    assert options is not None
    assert options["connection_string"] == CONNECTION
    assert options["credential"].kwargs == {"client_id": IDENTITY}
    assert options["logger_name"] == ""
    disabled = {name for name, option in options["instrumentation_options"].items() if not option["enabled"]}
    assert {"requests", "urllib", "urllib3"} <= disabled, "HTTP calls are spanned by shared.telemetry.http_call"
    assert "azure_sdk" not in disabled


@pytest.mark.parametrize(
    ("authentication", "expected"),
    [
        ("Authorization=AAD", {}),  # the system-assigned identity
        ("authorization=aad; clientid=abc", {"client_id": "abc"}),
        ("", None),
        ("ClientId=abc", None),
        ("nonsense", None),
    ],
)
def test_the_authentication_string_is_read_as_the_functions_host_reads_it(
    authentication: str, expected: dict[str, str] | None
) -> None:
    environ = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": authentication,
    }
    options = telemetry_options(environ, credential_factory=Credential)
    assert options is not None
    credential = options.get("credential")
    assert (credential.kwargs if credential else None) == expected


@pytest.fixture
def loud_sdk_loggers() -> Any:
    """The Azure SDK's loggers as a fresh worker process finds them: at the root's level, INFO."""
    root = logging.getLogger()
    saved = root.level, {name: logging.getLogger(name).level for name in SDK_LOGGERS}
    root.setLevel(logging.INFO)
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield
    root.setLevel(saved[0])
    for name, level in saved[1].items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("loud_sdk_loggers")
def test_the_function_app_keeps_the_azure_sdks_http_logging_policy_below_info() -> None:
    """Fault: every Table and Queue call's headers were written at INFO into Application Insights."""
    assert logging.getLogger(HTTP_LOGGING_POLICY).isEnabledFor(logging.INFO)  # as a worker process starts
    runpy.run_path(str(ROOT / "function_app.py"))
    assert not logging.getLogger(HTTP_LOGGING_POLICY).isEnabledFor(logging.INFO)
    assert not logging.getLogger("azure.data.tables").isEnabledFor(logging.INFO)
    assert logging.getLogger(HTTP_LOGGING_POLICY).isEnabledFor(logging.WARNING)

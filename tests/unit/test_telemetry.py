"""Structured log lines: what an administrator and Application Insights may read."""

from __future__ import annotations

import logging

import pytest

from shared.telemetry import LOGGER_NAME, log_event


def test_a_logged_url_loses_its_query_and_credentials(caplog: pytest.LogCaptureFixture) -> None:
    """Fault: a field holding a URL was logged whole, token query and user:password@ included."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    log_event(
        "subscription_failed",
        logging.WARNING,
        url="https://connector.example.com/api/graph/notifications?code=SECRETKEY",
        error="POST https://ops:pa55@pbx.example.com:5001/connect/token?x=1 refused",
        count=3,
    )
    [record] = caplog.records
    assert record.getMessage() == (
        "subscription_failed url=https://connector.example.com/api/graph/notifications"
        ' error="POST https://pbx.example.com:5001/connect/token refused" count=3'
    )
    dimensions = record.custom_dimensions  # type: ignore[attr-defined]
    assert dimensions == {
        "event": "subscription_failed",
        "url": "https://connector.example.com/api/graph/notifications",
        "error": "POST https://pbx.example.com:5001/connect/token refused",
        "count": 3,
    }

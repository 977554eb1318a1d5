"""The secrets canary: nothing the connector said during the whole suite holds a secret.

Runs after every other test (tests/canary_plugin.py orders it last) and scans every log
record, everything printed, every HTTP answer, every OpenTelemetry span and log record (what
Application Insights would receive; tests/telemetry_plugin.py) and every run record in
storage for the planted secrets (tests/conftest.py) and every token the fakes issued.
"""

from __future__ import annotations

import json

import pytest
from azure.data.tables import TableServiceClient

from fakes.transport import ISSUED_CREDENTIALS
from tests.canary_plugin import JOURNAL, Journal, leaks
from tests.conftest import FUNCTION_KEY, GRAPH_SECRET, PBX_SECRET

PLANTED = {"the Graph client secret": GRAPH_SECRET, "the 3CX API key": PBX_SECRET, "the function key": FUNCTION_KEY}

pytestmark = pytest.mark.canary


def test_the_canary_would_notice_a_leak() -> None:
    journal = Journal()
    journal.add("log connector", f'config_error error="WEBHOOK_URL ...?code={FUNCTION_KEY}"')
    journal.add("print", 'Authorization: Bearer "fake-graph-AbCdEfGhIjKlMnOpQrStUv"')
    journal.add("http answer", "nothing to see here")
    found = leaks(journal, PLANTED, {"fake-graph-AbCdEfGhIjKlMnOpQrStUv"})
    assert [line.split(" in ")[0] for line in found] == ["the function key", "an issued token"]


def test_the_journal_saw_the_suite_speak() -> None:
    """Guards the canary itself: had nothing been captured, finding no secret would prove nothing."""
    kinds = {where.split()[0] for where, _ in JOURNAL}
    assert {"log", "print", "http", "otel"} <= kinds  # otel: the spans and log records Azure would get
    assert any(text.startswith("run_summary ") for _, text in JOURNAL)
    assert ISSUED_CREDENTIALS, "the fakes issued no token during the suite"


def test_no_secret_in_any_log_line_output_or_http_answer() -> None:
    assert leaks(JOURNAL, PLANTED, set(ISSUED_CREDENTIALS)) == []


def test_no_secret_in_any_run_record(storage_connection: str) -> None:
    service = TableServiceClient.from_connection_string(storage_connection)
    records = [
        (f"run record {table.name}", json.dumps(dict(entity), default=str))
        for table in service.list_tables()
        if table.name.endswith("runs")
        for entity in service.get_table_client(table.name).list_entities()
    ]
    assert records, "no run record in storage: the scan would prove nothing"
    assert leaks(iter(records), PLANTED, set(ISSUED_CREDENTIALS)) == []

"""`python -m sync`: output, exit codes and one-line errors, as an administrator sees them."""

from __future__ import annotations

import pytest

from sync.cli import main


def test_a_missing_setting_stops_with_exit_2_and_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["configuration error: GRAPH_TENANT_ID is missing (the Entra tenant id, a GUID)"]


def test_a_bad_webhook_url_stops_with_exit_2_without_its_function_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fault: stderr quoted the whole WEBHOOK_URL, `?code=<function key>` included."""
    monkeypatch.setenv("WEBHOOK_URL", "http://connector.example.com/api/graph/notifications?code=SECRETKEY")
    assert main(["subscriptions"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        "configuration error: WEBHOOK_URL: must be an https:// URL,"
        " got 'http://connector.example.com/api/graph/notifications'"
    ]
    assert "SECRETKEY" not in captured.out + captured.err

"""`python -m sync`: output, exit codes and one-line errors, as an administrator sees them."""

from __future__ import annotations

import pytest
import responses

from sync.cli import main
from tests.conftest import SERVICE_SETTINGS

CONFIGURED = SERVICE_SETTINGS  # every setting the commands need, reaching hosts that answer nothing


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


@pytest.mark.parametrize("bad", ["..", "", "ada", "../groups@contoso.com"])
@pytest.mark.parametrize(
    ("argv", "where"),
    [
        (["users", "--dry-run", "--only", "{}"], "--only"),
        (["users", "--only", "{}"], "--only"),
        (["options", "show", "{}"], "UPN"),
        (["options", "set", "{}", "photo=false"], "UPN"),
        (["options", "reset", "{}"], "UPN"),
    ],
)
def test_a_malformed_user_stops_with_exit_2_and_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], where: str, bad: str
) -> None:
    """Fault: `--only ..` or `options show ..` reached Graph as GET /v1.0/ (or failed somewhere deeper)."""
    for name, value in CONFIGURED.items():
        monkeypatch.setenv(name, value)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        code = main([bad if part == "{}" else part for part in argv])
        assert list(mock.calls) == []
    assert code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {where}: {bad!r} is neither")

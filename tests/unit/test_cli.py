"""`python -m sync`: output, exit codes and one-line errors, as an administrator sees them."""

from __future__ import annotations

import pytest

from sync.cli import main


def test_a_missing_setting_stops_with_exit_2_and_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["configuration error: GRAPH_TENANT_ID is missing (the Entra tenant id, a GUID)"]

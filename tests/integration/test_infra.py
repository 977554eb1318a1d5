"""The Azure deployment (infra/), scanned offline with checkov from its own virtualenv (a subprocess).

Nothing here talks to Azure; the Bicep read as data is checked in tests/unit/test_infra.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


# -- checkov ---------------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_checkov_finds_nothing_unexplained() -> None:
    if not CHECKOV.is_file():
        pytest.skip(f"{CHECKOV.relative_to(ROOT)} is absent: `make test` builds it from requirements-checkov.txt")
    env = {
        **os.environ,
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",  # no PyPI look-up
        "CKV_PARSE_ERROR_FAIL": "true",  # a file checkov cannot read must not pass silently
        "BC_SKIP_MAPPING": "true",
    }
    # JSON rather than --quiet/--compact text: the report then lists skipped checks with their reasons.
    command = [str(CHECKOV), "--framework", "bicep", "-d", "infra", "--skip-download", "-o", "json"]
    run = subprocess.run(  # noqa: S603 - fixed arguments, our own virtualenv
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=540, check=False
    )
    reports = json.loads(run.stdout)
    report = next(r for r in (reports if isinstance(reports, list) else [reports]) if r["check_type"] == "bicep")
    summary, results = report["summary"], report["results"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range'][0]}): {c['check_name']}"
        for c in results["failed_checks"]
    ]
    assert not failed, "checkov failed:\n" + "\n".join(failed)
    assert summary["parsing_errors"] == 0, f"checkov could not parse: {results.get('parsing_errors')}"
    assert summary["passed"] > 0
    unexplained = [
        f"{c['check_id']} {c['resource']}"
        for c in results["skipped_checks"]
        if _no_reason(c["check_result"].get("suppress_comment"))
    ]
    assert not unexplained, f"skipped without a reason: {unexplained}"
    assert run.returncode == 0, run.stderr[-2000:]


def _no_reason(comment: str | None) -> bool:
    """checkov says 'No comment provided' for a bare `checkov:skip=ID`."""
    text = (comment or "").strip(" :")
    return len(text) < 10 or text == "No comment provided"

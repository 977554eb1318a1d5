"""The chaos soak's short run: a busy day and a half of a small tenant while every kind of fault strikes.

`bench/soak.py --short` runs in a child process (it starts its own Azurite, fakes and local
host, and puts the product on its simulated clock, so it must not share this process).
Every check must pass, every kind of fault and of tenant event must really have happened,
and the only way a failed action may escape its run record is a known gap the report
names (bench/chaos/known_gaps.py).

Measured: about 20 s on an otherwise idle 2-core machine, 30–40 s on a busy one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.chaos.faults import KINDS
from bench.chaos.known_gaps import KNOWN_GAPS
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
SEED = 7
TENANT_EVENTS = (
    "hires",
    "leavers",
    "renames",
    "phone_changes",
    "photo_changes",
    "meetings",
    "meeting_changes",
    "contact_edits",
    "hand_statuses",
    "hand_deletions",
    "hand_made_users",
    "hand_made_contacts",
)

pytestmark = pytest.mark.azurite


def _clean_environment() -> dict[str, str]:
    """This process's environment without any connector setting (the soak sets its own)."""
    names = {field.alias.upper() for field in Settings.model_fields.values() if field.alias}
    return {name: value for name, value in os.environ.items() if name.upper() not in names}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    child = subprocess.run(  # noqa: S603 - the project's own bench script
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--short", "--seed", str(SEED)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_clean_environment(),
        timeout=110,
        check=False,
    )
    assert child.stdout, f"the soak printed nothing (exit {child.returncode}): {child.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(child.stdout)
    result["exit_code"] = child.returncode
    return result


def test_every_check_passes_after_one_quiet_reconcile(report: dict[str, Any]) -> None:
    failing = {name: check for name, check in report["checks"].items() if not check["pass"]}
    assert failing == {}
    assert report["passed"] is True and report["exit_code"] == 0
    assert report["converge"]["problems_after"] == 0


def test_3cx_equals_microsoft_365_with_nothing_doubled(report: dict[str, Any]) -> None:
    checks = report["checks"]
    assert checks["users_match"]["synced_users"] >= 20
    assert checks["statuses_match"]["in_a_meeting_now"] >= 1  # statuses during a meeting were judged too
    assert checks["phonebook_matches"]["entries_wanted"] >= 1
    # Duplicates only where a known gap (bench/chaos/checks.py) made them; none for this seed.
    assert checks["no_duplicates"]["duplicate_users"] == 0
    assert checks["no_duplicates"]["duplicate_contacts"] == 0
    assert checks["no_changes_lost"]["lost"] == 0


def test_every_kind_of_fault_struck(report: dict[str, Any]) -> None:
    assert set(report["faults"]) == set(KINDS)
    assert {kind for kind, tally in report["faults"].items() if tally["served"] < 1} == set()


def test_every_kind_of_tenant_event_happened(report: dict[str, Any]) -> None:
    assert {event for event in TENANT_EVENTS if report["tenant"].get(event, 0) < 1} == set()


def test_failed_actions_were_recorded_and_gaps_are_only_the_known_ones(report: dict[str, Any]) -> None:
    recorded = report["checks"]["failed_actions_recorded"]
    assert recorded["failed_actions"] >= 1 and recorded["failed_actions"] == recorded["failed_actions_recorded"]
    assert set(report["known_gaps"]) <= set(KNOWN_GAPS)


def test_no_secret_in_anything_the_connector_said(report: dict[str, Any]) -> None:
    scan = report["checks"]["no_secrets"]
    assert scan["pass"] and scan["tokens_issued"] >= 1 and scan["texts_scanned"] > 100

"""The conformance plugin in a real pytest session: an inner pytest run in a subprocess.

The conformance check itself is tests/unit/test_xapi_conformance.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.xapi_spec import (
    PROJECT_ROOT,
)


def test_plugin_runs_conformance_tests_last_in_a_real_session(tmp_path: Path) -> None:
    """An inner pytest run, outside tests/ so no conftest of the project is loaded."""
    test_file = tmp_path / "test_order.py"
    test_file.write_text(
        "import pytest\n"
        "@pytest.mark.conformance\n"
        "def test_check():\n    print('RAN check')\n"
        "def test_first():\n    print('RAN first')\n"
        "def test_second():\n    print('RAN second')\n",
        encoding="utf-8",
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter on our own file
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(PROJECT_ROOT / "pyproject.toml"),
            "--rootdir",
            str(PROJECT_ROOT),
            "-p",
            "tests.conformance_plugin",
            "-p",
            "no:cacheprovider",
            "-s",
            "-q",
            str(test_file),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ran = [line.split("RAN ", 1)[1].split()[0] for line in result.stdout.splitlines() if "RAN " in line]
    assert ran == ["first", "second", "check"]

"""Pytest plugin: run the `conformance` tests after everything else.

The conformance test checks the requests the whole suite sent to the 3CX fake, so it must
see them all: collected items marked `@pytest.mark.conformance` are moved to the end of the
session, keeping the relative order of both groups. Loaded from `tests/conftest.py` with
`pytest_plugins = ["tests.conformance_plugin"]`.

The journal lives in the process, so under pytest-xdist each worker would check only its
own share of the requests; the suite does not use xdist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

CONFORMANCE_MARK = "conformance"


def conformance_last(items: Sequence[Any]) -> list[Any]:
    """`items` with those marked `conformance` moved to the end, order otherwise kept."""
    others = [item for item in items if item.get_closest_marker(CONFORMANCE_MARK) is None]
    checks = [item for item in items if item.get_closest_marker(CONFORMANCE_MARK) is not None]
    return others + checks


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Reorder in place, after any other plugin has had its say on the order."""
    items[:] = conformance_last(items)

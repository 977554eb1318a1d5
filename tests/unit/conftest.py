"""The unit tier: tests that do no I/O (no storage, no servers or sockets, no subprocesses).

Graph and 3CX are reached only as in-process fakes through `responses`. Storage is the one
shared fixture a unit test could reach by accident (directly, or through `state`, `tenant`
or `tenant_env`), so it is overridden here to fail at once instead of starting Azurite.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def storage_connection() -> str:
    """Overrides tests/conftest.py: a unit test that reaches storage fails instead of starting Azurite."""
    pytest.fail("unit tests use no storage: move this test to tests/integration/", pytrace=False)

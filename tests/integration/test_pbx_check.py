"""`python -m sync check-pbx` against the PBX's own API description (the official documents, served by the fake)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sync.cli import main
from sync.pbx_check import OPERATIONS
from tests.conftest import Tenant
from tests.xapi_spec import locate_spec, missing_spec_reason

SPEC = locate_spec()
pytestmark = pytest.mark.skipif(SPEC is None, reason=missing_spec_reason())


def _load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


def test_the_current_document_offers_everything(tenant_env: Tenant, capsys: pytest.CaptureFixture[str]) -> None:
    assert SPEC is not None
    tenant_env.pbx.api_description_text = SPEC.read_text()
    assert main(["check-pbx", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["present"] == len(OPERATIONS)
    assert report["missing_properties"] == {"Pbx.User": [], "Pbx.Contact": []}


def test_a_missing_operation_or_property_fails_with_exit_1(tenant_env: Tenant, capsys) -> None:
    assert SPEC is not None
    document = _load(SPEC)
    del document["paths"]["/Users({Id})"]["patch"]
    del document["components"]["schemas"]["Pbx.Contact"]["properties"]["Tag"]
    tenant_env.pbx.api_description_text = yaml.safe_dump(document)
    assert main(["check-pbx"]) == 1
    out = capsys.readouterr().out
    assert "✗ PATCH  /Users({Id})" in out
    assert "Pbx.Contact lacks Tag" in out
    assert "NOT OK" in out

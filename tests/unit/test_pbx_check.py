"""`check-pbx`'s verdict on an older PBX's API description, read as data."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sync.pbx_check import check_description
from tests.xapi_spec import PROJECT_ROOT, locate_spec, missing_spec_reason

SPEC = locate_spec()
OLD_SPEC = PROJECT_ROOT.parent / "shared" / "reference" / "3cx-xapi-20.0.8.yaml"
pytestmark = pytest.mark.skipif(SPEC is None, reason=missing_spec_reason())


def _load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


@pytest.mark.skipif(not OLD_SPEC.exists(), reason=f"no 20.0.8 document at {OLD_SPEC}")
def test_a_20_0_8_pbx_lacks_only_the_renamed_bulk_delete() -> None:
    result = check_description(_load(OLD_SPEC))
    assert result.ok
    assert [f"{o.method} {o.path}" for o in result.missing_optional] == ["POST /Contacts/Pbx.DeleteContactsById"]

"""Every resource body in infra/ checked against Azure's own resource type definitions, offline.

What `bicep build` would refuse or warn about in a resource body, without a Bicep compiler:
unknown properties, writes to read-only ones, required ones left out, and literals outside a
closed list of values (tests/bicep_types.py). The definitions are the Bicep compiler's own
(`Azure/bicep-types-az`), found through $BICEP_TYPES_DIR or `../shared/reference/bicep-types`;
without them these tests skip and say where they looked. The fixtures in
tests/fixtures/bicep/ prove that each check fires, and only where a fixture says it should.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.bicep_support import INFRA, PROJECT_ROOT, bicep_files, declarations
from tests.bicep_types import (
    TYPES_ENV,
    TypeLibrary,
    check_file,
    default_types_path,
    locate_types,
    missing_types_reason,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bicep"
KINDS = {"unknown-property", "read-only", "missing-required", "not-allowed", "no-definition"}
_EXPECT = re.compile(r"//\s*expect:\s*(\S+)(?:\s+(\S+))?\s*$")

TYPES = locate_types()
needs_types = pytest.mark.skipif(TYPES is None, reason=missing_types_reason())


@pytest.fixture(scope="module")
def library() -> TypeLibrary:
    assert TYPES is not None
    return TypeLibrary(TYPES)


def _label(path: Path) -> str:
    return path.relative_to(PROJECT_ROOT).as_posix()


def _expected(path: Path) -> set[tuple[int, str, str]]:
    """The `// expect: kind path` comments of a fixture, by line."""
    found = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _EXPECT.search(line)
        if match:
            found.add((number, match.group(1), match.group(2) or ""))
    return found


def _fixtures() -> list[Path]:
    return sorted(FIXTURES.glob("*.bicep"))


@needs_types
@pytest.mark.parametrize("fixture", _fixtures(), ids=lambda p: p.name)
def test_each_check_fires_where_a_fixture_says_and_nowhere_else(fixture: Path, library: TypeLibrary) -> None:
    expected = _expected(fixture)
    assert expected, f"{fixture.name} expects nothing: a fixture is there to be wrong"
    problems = check_file(fixture, library, _label(fixture))
    reported = {(p.line, p.kind, p.path) for p in problems}
    missed = sorted(expected - reported)
    extra = sorted(str(p) for p in problems if (p.line, p.kind, p.path) not in expected)
    assert not missed, f"not reported: {missed}\nreported:\n" + "\n".join(str(p) for p in problems)
    assert not extra, "reported where no fixture line expects it:\n" + "\n".join(extra)


def test_the_fixtures_cover_every_check() -> None:
    kinds = {kind for fixture in _fixtures() for _, kind, _ in _expected(fixture)}
    assert kinds == KINDS
    nested = {path for fixture in _fixtures() for _, _, path in _expected(fixture) if path.count(".") >= 2}
    assert nested, "no fixture expects a problem nested deeper than one level"


@needs_types
def test_a_problem_names_its_file_line_and_property_path(library: TypeLibrary) -> None:
    fixture = FIXTURES / "unknown_property.bicep"
    (problem,) = [p for p in check_file(fixture, library, _label(fixture)) if p.path == "properties.networkAcls.bypas"]
    text = str(problem)
    assert text.startswith(f"tests/fixtures/bicep/unknown_property.bicep:{problem.line}: ")
    assert "account (Microsoft.Storage/storageAccounts@2023-05-01)" in text
    assert "properties.networkAcls.bypas" in text
    assert "'bypass'" in text, "a near miss names the property meant"


@needs_types
def test_every_resource_type_in_infra_has_a_definition_file(library: TypeLibrary) -> None:
    used = {
        declaration.type_string
        for path in bicep_files()
        for declaration in declarations(path)
        if declaration.kind == "resource"
    }
    assert used, "infra/ declares no resource"
    missing = sorted(f"{type_string}: {reason}" for type_string in used if (reason := library.missing(type_string)))
    assert not missing, f"no definition in {library.directory} for:\n" + "\n".join(missing)


@needs_types
@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_resource_body_in_infra_fits_its_type(path: Path, library: TypeLibrary) -> None:
    problems = check_file(path, library, _label(path))
    assert not problems, "\n".join(str(problem) for problem in problems)


def test_without_the_definitions_the_checks_skip_and_say_where_they_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TYPES_ENV, "nowhere/bicep-types")
    assert locate_types(tmp_path) is None
    reason = missing_types_reason(tmp_path)
    assert f"${TYPES_ENV}='nowhere/bicep-types'" in reason
    assert str(default_types_path(tmp_path)) in reason
    found = tmp_path / "types"
    found.mkdir()
    monkeypatch.setenv(TYPES_ENV, str(found))
    assert locate_types(tmp_path) == found

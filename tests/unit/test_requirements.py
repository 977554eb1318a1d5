"""The runtime requirements (requirements.txt) allow only versions that have what the code uses."""

from __future__ import annotations

import ast
import re

from tests.bicep_support import PROJECT_ROOT

PRODUCT = [
    PROJECT_ROOT / "function_app.py",
    *(p for d in ("shared", "sync", "triggers") for p in (PROJECT_ROOT / d).rglob("*.py")),
]

# The pydantic-settings release that first has each name the product imports from it.
# NoDecode came with 2.7.0 (its release notes: "Improve field value parsing by adding NoDecode
# and ForceDecode annotations"); BaseSettings and SettingsConfigDict are there since 2.0.
PYDANTIC_SETTINGS_SINCE = {"BaseSettings": (2, 0), "SettingsConfigDict": (2, 0), "NoDecode": (2, 7)}


def _imported_from(module: str) -> set[str]:
    names: set[str] = set()
    for path in PRODUCT:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == module:
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == module:
                names.add(node.attr)
    return names


def _floor(package: str) -> tuple[int, ...]:
    for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(rf"{re.escape(package)}\s*>=\s*([\d.]+)\s*(?:#.*)?", line.strip())
        if match:
            return tuple(int(part) for part in match.group(1).split("."))
    raise AssertionError(f"requirements.txt has no `{package}>=` line")


def test_the_pydantic_settings_floor_has_every_name_the_code_imports() -> None:
    """Fault: `pydantic-settings>=2.4` allowed versions without NoDecode (2.7)."""
    imported = _imported_from("pydantic_settings")
    assert "NoDecode" in imported
    unknown = sorted(imported - set(PYDANTIC_SETTINGS_SINCE))
    assert not unknown, f"say here since which pydantic-settings release these exist: {unknown}"
    needed = max(PYDANTIC_SETTINGS_SINCE[name] for name in imported)
    assert _floor("pydantic-settings") >= needed, f"requirements.txt allows pydantic-settings below {needed}"

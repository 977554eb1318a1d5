"""What `azd deploy` uploads: the app's files, and nothing from development.

Because the project has a `.funcignore`, azd applies only its patterns and none of its own
Python defaults (virtualenvs, `__pycache__`). The package is worked out here with azd's rules
(tests/deployment_package.py), over a checkout with everything development leaves behind, and
over this very checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.bicep_support import PROJECT_ROOT
from tests.deployment_package import IGNORE_FILE, TooManyFiles, ignored, package_files, parse_patterns

APP_FILES = {"function_app.py", "host.json", "requirements.txt"}
APP_PACKAGES = {"triggers", "sync", "shared"}

# What a working checkout holds besides the app: tracked development files, and what the
# tools make (virtualenvs, caches, the demo's and the benchmarks' state, azd's environment).
DEVELOPMENT_FILES = [
    "README.md",
    "Makefile",
    "pyproject.toml",
    "requirements-dev.txt",
    "requirements-checkov.txt",
    "package.json",
    "package-lock.json",
    "azure.yaml",
    ".gitignore",
    ".importlinter",
    ".git",  # a file in a git worktree
    "local.settings.json",
    "local.settings.json.example",
    ".mutmut.log",
    ".coverage",
    ".env",
    "plan.json",  # docs/admin-guide.md step 7 saves the plan here
    "connector.pem",  # the Graph certificate of docs/admin-guide.md step 2
    "connector.crt",
    "tests/unit/test_x.py",
    "tests/fixtures/bicep/x.bicep",
    "fakes/graph.py",
    "devhost/serve.py",
    "bench/users.py",
    "mutation/gate.py",
    "docs/admin-guide.md",
    "infra/main.bicep",
    "infra/modules/storage.bicep",
    ".ci/run",
    ".github/workflows/ci.yml",
    ".vscode/settings.json",
    ".venv-checkov/pyvenv.cfg",
    ".venv-checkov/lib/python3.11/site-packages/checkov/__init__.py",
    "node_modules/azurite/package.json",
    ".azurite/__azurite_db_table__.json",
    ".demo/azurite/__blobstorage__/x",
    ".bench/users.json",
    "__pycache__/function_app.cpython-311.pyc",
    "shared/__pycache__/settings.cpython-311.pyc",
    "sync/__pycache__/users.cpython-311.pyc",
    "sync/users.pyc",
    ".pytest_cache/v/cache/lastfailed",
    ".ruff_cache/0.6.0/x",
    ".mypy_cache/3.11/x.json",
    ".grimp_cache/x.json",
    ".hypothesis/examples/x",
    "mutants/sync/users.py",
    "tcx_m365_connector.egg-info/PKG-INFO",
    ".azure/prod/.env",
]
APP_TREE = [
    "function_app.py",
    "host.json",
    "requirements.txt",
    "triggers/__init__.py",
    "triggers/timers.py",
    "sync/__init__.py",
    "sync/users.py",
    "shared/__init__.py",
    "shared/settings.py",
]


def _plant(root: Path, paths: list[str]) -> None:
    for relative in paths:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A checkout with the app, development files, and virtualenvs linked from elsewhere (as worktrees have)."""
    root = tmp_path / "checkout"
    _plant(root, APP_TREE + DEVELOPMENT_FILES)
    shutil.copy(PROJECT_ROOT / IGNORE_FILE, root / IGNORE_FILE)
    venv = tmp_path / "elsewhere" / "venv"
    _plant(venv, ["pyvenv.cfg", "lib/python3.11/site-packages/pytest/__init__.py"])
    (root / ".venv").symlink_to(venv, target_is_directory=True)
    return root


def test_the_package_holds_the_app_and_nothing_from_development(checkout: Path) -> None:
    """Fault: .venv-checkov/, .azurite/, .demo/, .bench/ and __pycache__/ were zipped and uploaded."""
    assert package_files(checkout) == sorted(APP_TREE)


def test_without_the_ignore_file_azd_would_leave_out_only_its_python_defaults(checkout: Path) -> None:
    """The rules model azd's: its defaults apply only when there is no .funcignore."""
    (checkout / IGNORE_FILE).unlink()
    files = package_files(checkout)
    assert "tests/unit/test_x.py" in files and ".azurite/__azurite_db_table__.json" in files
    assert not any("__pycache__" in f or f.startswith((".venv/", ".venv-checkov/", ".azure/")) for f in files)
    assert "local.settings.json" not in files


def test_this_checkout_would_upload_only_the_app() -> None:
    """The same over this checkout as it is: whatever development left here, only the app goes."""
    try:
        files = package_files(PROJECT_ROOT)
    except TooManyFiles as error:
        pytest.fail(f"the package would take a whole tree: {error}")
    strays = [f for f in files if f not in APP_FILES and f.split("/", 1)[0] not in APP_PACKAGES]
    assert not strays, f"azd would upload these too: {strays}"
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    sources = {
        path.relative_to(PROJECT_ROOT).as_posix()
        for package in APP_PACKAGES
        for path in (PROJECT_ROOT / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert sources | APP_FILES <= set(files), f"left out: {sorted(sources | APP_FILES - set(files))}"


@pytest.mark.parametrize(
    ("patterns", "path", "is_dir", "left_out"),
    [
        ("tests/", "tests", True, True),
        ("tests/", "tests", False, False),  # a folder pattern skips a file of that name
        (".git/", ".git", False, False),  # so a worktree's .git file needs `.git`
        ("__pycache__/", "sync/__pycache__", True, True),  # no slash inside: any depth
        ("/.demo/", "sync/.demo", True, False),  # leading slash: the top only
        ("docs/x", "sub/docs/x", False, False),  # a slash inside: the whole path
        ("*.md", "infra/README.md", False, True),
        ("*.md\n!KEEP.md", "KEEP.md", False, False),  # the last match decides
        ("a/**", "a/b/c", False, True),
        ("**/b", "a/b", True, True),
        ("/*", "sync/users.py", False, True),  # `*` matches `/` in this library: no allow-list `.funcignore`
        ("# comment\n\n  \n\\#hash", "#hash", False, True),
    ],
)
def test_patterns_are_read_as_azds_gitignore_library_reads_them(
    patterns: str, path: str, is_dir: bool, left_out: bool
) -> None:
    assert ignored(parse_patterns(patterns), path, is_dir) is left_out

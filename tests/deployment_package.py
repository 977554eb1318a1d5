"""Which files `azd deploy` zips for the Function App, worked out offline.

The same rules azd applies (azure-dev, cli/azd/pkg/project/project_utils.go,
`createDeployableZip`, and pkg/rzip), for a Python service hosted as a function:

- the walk starts at the service folder and follows symbolic links (a linked folder's files
  are zipped under the link's name);
- a folder named `.azure`, the ignore file itself (`.funcignore`) and `local.settings.json` are
  never zipped, at any depth;
- with a `.funcignore`, its patterns decide, and azd's own Python defaults are **not** applied;
  without one, a folder holding `pyvenv.cfg` (a virtualenv) and `__pycache__` are left out;
- a folder left out is not entered: nothing under it is zipped.

The patterns are read as github.com/denormal/go-gitignore reads them (the library azd uses):
the last pattern that matches a path decides (`!` includes again); `dir/` matches folders
only; a pattern without `/` (other than a leading one) matches the last path component at any
depth, with `*` free to match anything; a leading `/` anchors it to the service folder; a
pattern with a `/` inside matches the whole relative path, component by component; `**`
stands for any number of components. A path is matched only when it lies under the service
folder as written (`strings.HasPrefix`): the files reached through a symbolic link to a
folder elsewhere are never matched, so such a link must be left out by its own name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

IGNORE_FILE = ".funcignore"


@dataclass(frozen=True)
class Pattern:
    text: str
    negated: bool
    anchored: bool
    directory: bool
    body: str

    def matches(self, relative: str, is_dir: bool) -> bool:
        if self.directory and not is_dir:
            return False
        if "**" in self.body:
            parts = [part for part in self.body.split("/") if part]
            return _match_any(relative.split("/"), parts)
        if "/" in self.body:
            wanted, given = self.body.split("/"), relative.split("/")
            return len(wanted) == len(given) and all(fnmatchcase(g, w) for g, w in zip(given, wanted, strict=True))
        if self.anchored:
            return fnmatchcase(relative, self.body)  # no FNM_PATHNAME: `*` matches `/` too
        return fnmatchcase(relative.rsplit("/", 1)[-1], self.body)


def _match_any(path: list[str], parts: list[str]) -> bool:
    if not parts:
        return not path
    head, rest = parts[0], parts[1:]
    if head == "**":
        return _match_any(path, rest) or (bool(path) and _match_any(path[1:], parts))
    return bool(path) and fnmatchcase(path[0], head) and _match_any(path[1:], rest)


def parse_patterns(text: str) -> list[Pattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:]
        elif line[:2] in ("\\!", "\\#"):
            line = line[1:]  # an escaped leading `!` or `#` is a literal character
        anchored = line.startswith("/")
        directory = line.endswith("/")
        body = line.strip("/")
        if body:
            patterns.append(Pattern(raw.rstrip(), negated, anchored, directory, body))
    return patterns


def ignored(patterns: list[Pattern], relative: str, is_dir: bool) -> bool:
    """Whether the last pattern matching `relative` (a `/`-separated path) leaves it out."""
    for pattern in reversed(patterns):
        if pattern.matches(relative, is_dir):
            return not pattern.negated
    return False


class TooManyFiles(Exception):
    """The walk went past its limit: something large (a virtualenv, node_modules) is being zipped."""


def package_files(root: Path, *, limit: int = 5000) -> list[str]:
    """The paths azd would put in the zip for a Python function app at `root`, sorted."""
    root = root.absolute()
    ignore_path = root / IGNORE_FILE
    patterns = parse_patterns(ignore_path.read_text(encoding="utf-8-sig")) if ignore_path.is_file() else None
    zipped: list[str] = []
    base = str(root)

    def include(source: str, name: str, is_dir: bool) -> bool:
        if (name == ".azure" and is_dir) or (name in (IGNORE_FILE, "local.settings.json") and not is_dir):
            return False
        if patterns is not None:
            if not source.startswith(base + os.sep):
                return True  # reached through a link to elsewhere: no pattern applies
            return not ignored(patterns, Path(os.path.relpath(source, base)).as_posix(), is_dir)
        if is_dir:
            return not (os.path.isfile(os.path.join(source, "pyvenv.cfg")) or name.lower() == "__pycache__")
        return True

    def walk(source: str, archive: str, depth: int) -> None:
        for name in sorted(os.listdir(source)):
            path = os.path.join(source, name)
            is_link = os.path.islink(path)
            is_dir = os.path.isdir(path)  # a link counts as what it points to
            if not include(path, name, is_dir):
                continue
            inside = f"{archive}{name}"
            if is_dir:
                if is_link and depth >= 40:
                    continue
                walk(os.path.realpath(path) if is_link else path, inside + "/", depth + (1 if is_link else 0))
            else:
                zipped.append(inside)
                if len(zipped) > limit:
                    raise TooManyFiles(f"more than {limit} files, the last {inside}")

    walk(base, "", 0)
    return sorted(zipped)

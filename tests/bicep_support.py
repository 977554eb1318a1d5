"""Bicep read as data, offline: the tree-sitter Bicep grammar, no compiler.

`declarations(path)` lists a file's top-level declarations (param, var, resource, module,
output) with their decorators; `value(node)` turns a literal into Python data and anything
else into an `Expr` (its source text and node). tests/unit/test_infra.py holds the deployment
to the code with these; tests/bicep_types.py checks resource bodies against Azure's resource
type definitions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

PROJECT_ROOT = Path(__file__).resolve().parents[1]
INFRA = PROJECT_ROOT / "infra"


# -- reading Bicep with tree-sitter --------------------------------------------------------------


@cache
def _parser() -> Parser:
    return Parser(Language(tree_sitter_bicep.language()))


def parse(source: str) -> Node:
    return _parser().parse(source.encode("utf-8")).root_node


def syntax_problems(root: Node, label: str) -> list[str]:
    """Every ERROR or MISSING node, as `file:line:column: what` (1-based lines)."""
    problems: list[str] = []

    def walk(node: Node) -> None:
        if node.is_error or node.is_missing:
            kind = "missing " + node.type if node.is_missing else "syntax error"
            near = (node.text or b"").decode("utf-8", "replace").splitlines()[:1]
            where = f"{label}:{node.start_point.row + 1}:{node.start_point.column + 1}"
            problems.append(f"{where}: {kind}" + (f" near {near[0][:60]!r}" if near else ""))
        for child in node.children:
            walk(child)

    walk(root)
    return problems


@dataclass(frozen=True)
class Expr:
    """A Bicep expression that is not a literal, kept as its source text."""

    text: str
    node: Node

    def identifiers(self) -> set[str]:
        return {n.text.decode() for n in _descendants(self.node) if n.type == "identifier" and n.text}


def _descendants(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from _descendants(child)


_ESCAPES = {"\\'": "'", "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}


def value(node: Node) -> Any:
    """A literal as Python data (objects → dict, arrays → list); anything else as an Expr."""
    match node.type:
        case "object":
            return {
                _key(prop.named_children[0]): value(prop.named_children[-1])
                for prop in node.named_children
                if prop.type == "object_property"
            }
        case "array":
            return [value(item) for item in node.named_children if item.type != "comment"]
        case "string" if not any(child.type == "interpolation" for child in node.named_children):
            return "".join(
                _ESCAPES.get(part.text.decode(), part.text.decode()) for part in node.named_children if part.text
            )
        case "boolean":
            return node.text == b"true"
        case "number":
            return int(node.text or b"0")
        case "null":
            return None
    return Expr((node.text or b"").decode(), node)


def _key(node: Node) -> str:
    return value(node) if node.type == "string" else (node.text or b"").decode()


@dataclass
class Declaration:
    """One top-level declaration of a Bicep file, with the decorators written above it."""

    kind: str  # param, var, resource, module, output
    name: str
    node: Node
    decorators: dict[str, list[Any]]
    decorator_nodes: dict[str, list[Node]] = field(default_factory=dict)  # the same arguments, as written

    @property
    def value_node(self) -> Node | None:
        """The declared value as written: a param's default (None without one), a var's value,
        a resource's or module's body including any `for` or `if` around it."""
        children = self.node.named_children
        if self.kind == "param" and len(children) < 3:
            return None  # name and type only: no default
        return children[-1]

    @property
    def loop(self) -> Node | None:
        """The `for` a resource or module is declared with, if any."""
        node = self.value_node
        return node if node is not None and node.type == "for_statement" else None

    @property
    def body_node(self) -> Node | None:
        """The declared value with any `for` and `if` around it taken off: a resource's object."""
        node = self.value_node
        while node is not None and node.type in ("if_statement", "for_statement"):
            node = node.named_children[-1]
        return node

    @property
    def body(self) -> Any:
        """The declared value: a param's default, a var's value, a resource's or module's object."""
        node = self.body_node
        return None if node is None else value(node)

    @property
    def existing(self) -> bool:
        """A resource declared `existing`: a reference to a resource deployed elsewhere."""
        return any(child.type == "existing" for child in self.node.children)

    @property
    def has_default(self) -> bool:
        return self.kind != "param" or self.body is not None

    @property
    def type_string(self) -> str:
        """The resource or module path string (`Microsoft.Web/sites@…`, `modules/x.bicep`)."""
        return value(self.node.named_children[1])

    @property
    def description(self) -> str:
        return (self.decorators.get("description") or [""])[0]

    @property
    def leading_comment(self) -> str:
        """The `//` comment lines written right above the declaration (and its decorators)."""
        lines: list[str] = []
        node = self.node.prev_named_sibling
        if node is not None and node.type == "decorators":
            node = node.prev_named_sibling
        while node is not None and node.type == "comment":
            lines.insert(0, (node.text or b"").decode().removeprefix("//").strip())
            node = node.prev_named_sibling
        return "\n".join(lines)


_KINDS = {
    "parameter_declaration": "param",
    "variable_declaration": "var",
    "resource_declaration": "resource",
    "module_declaration": "module",
    "output_declaration": "output",
}


@cache
def declarations(path: Path) -> tuple[Declaration, ...]:
    return declarations_in(parse(path.read_text()))


def declarations_in(root: Node) -> tuple[Declaration, ...]:
    found: list[Declaration] = []
    pending: dict[str, list[Any]] = {}
    pending_nodes: dict[str, list[Node]] = {}
    for node in root.named_children:
        if node.type == "decorators":
            for decorator in node.named_children:
                call = decorator.named_children[0]
                name = (call.named_children[0].text or b"").decode()
                args = call.named_children[1].named_children if len(call.named_children) > 1 else []
                pending[name] = [value(arg) for arg in args]
                pending_nodes[name] = list(args)
        elif node.type in _KINDS:
            name = (node.named_children[0].text or b"").decode()
            found.append(Declaration(_KINDS[node.type], name, node, pending, pending_nodes))
            pending, pending_nodes = {}, {}
    return tuple(found)


def declared(path: Path, kind: str) -> dict[str, Declaration]:
    return {d.name: d for d in declarations(path) if d.kind == kind}


def resources_of_type(path: Path, type_prefix: str) -> list[Declaration]:
    return [d for d in declared(path, "resource").values() if d.type_string.split("@")[0] == type_prefix]


def bicep_files(root: Path = INFRA) -> list[Path]:
    return sorted(root.rglob("*.bicep"))

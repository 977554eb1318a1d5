"""Check Bicep resource bodies against Azure's resource type definitions, offline.

The Bicep compiler checks every resource body against the type definitions published in
`Azure/bicep-types-az` (one `types.json` per provider namespace and API version). No compiler
runs here, so this module reads the same definitions (a copy named `<Namespace>@<version>.json`,
see the README beside them) and walks each resource body as tree-sitter parses it
(tests/bicep_support.py). It reports, each as `file:line` and a property path:

- `unknown-property`: a property the type does not declare (names compared without regard
  to case, as ARM compares them); `parent`, `scope` and `dependsOn` are Bicep's own;
- `read-only`: a value written to a property the resource provider sets itself;
- `missing-required`: a required property left out;
- `not-allowed`: a literal outside a closed list of values (a union of string literals; a
  union that also takes any string, an "extensible enum", takes anything);
- `no-definition`: a resource type and API version with no definition file.

Only literals are held to a list of values. Expressions are followed as far as they can be
resolved without deploying: variables holding literals, `@allowed` values of parameters, both
branches of a conditional, `for` bodies, the properties of a loop variable over a literal
array, and the parts of `concat` (arrays) and `union` (objects, whose required properties may
come from another part, so those are not asked for). Anything else (a parameter without
`@allowed`, a function's result) is not a literal and passes. A body whose type depends on a
property (a discriminated type, e.g. `Microsoft.Web/sites/config` by `name`) is checked
against the variant its literal names.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tree_sitter import Node

from tests.bicep_support import PROJECT_ROOT, Declaration, declarations, value

TYPES_ENV = "BICEP_TYPES_DIR"
DEFAULT_TYPES = Path("..") / "shared" / "reference" / "bicep-types"

# Property flags in the definitions (a bit mask).
REQUIRED = 1
READ_ONLY = 2
# What Bicep itself adds to every resource body.
BICEP_KEYWORDS = frozenset({"parent", "scope", "dependsOn"})


# -- locating the definitions ------------------------------------------------------------------


def default_types_path(project_root: Path = PROJECT_ROOT) -> Path:
    return (project_root / DEFAULT_TYPES).resolve()


def _env_types_path(project_root: Path) -> Path | None:
    configured = os.environ.get(TYPES_ENV, "").strip()
    if not configured:
        return None
    path = Path(configured).expanduser()
    return path if path.is_absolute() else (project_root / path).resolve()


def locate_types(project_root: Path = PROJECT_ROOT) -> Path | None:
    """The definitions' folder: $BICEP_TYPES_DIR (relative to the project root), else the reference copy."""
    for candidate in (_env_types_path(project_root), default_types_path(project_root)):
        if candidate is not None and candidate.is_dir():
            return candidate
    return None


def missing_types_reason(project_root: Path = PROJECT_ROOT) -> str:
    configured = os.environ.get(TYPES_ENV, "").strip()
    env_part = f"${TYPES_ENV}={configured!r} (not a folder)" if configured else f"${TYPES_ENV} (unset)"
    return (
        f"Azure resource type definitions not found: looked at {env_part} and {default_types_path(project_root)}; "
        f"set {TYPES_ENV} to a folder of bicep-types-az `<Namespace>@<api-version>.json` files to check resource bodies"
    )


# -- the definitions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeRef:
    """One type node of one definition file."""

    nodes: tuple[Mapping[str, Any], ...]
    index: int

    @property
    def node(self) -> Mapping[str, Any]:
        return self.nodes[self.index]

    @property
    def kind(self) -> str:
        return str(self.node["$type"])

    def ref(self, reference: Mapping[str, Any]) -> TypeRef:
        """Follow a `{"$ref": "#/N"}` within the same file (anything else reads as AnyType)."""
        target = str(reference.get("$ref", ""))
        if not target.startswith("#/"):
            return TypeRef(({"$type": "AnyType"},), 0)
        return TypeRef(self.nodes, int(target[2:]))


class TypeLibrary:
    """The definition files of one folder, read when first asked for."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files = {path.name.lower(): path for path in directory.glob("*.json")}

    @staticmethod
    def file_name(type_string: str) -> str:
        """`Microsoft.Web/sites@2024-04-01` → `Microsoft.Web@2024-04-01.json`."""
        resource_type, _, version = type_string.partition("@")
        return f"{resource_type.split('/')[0]}@{version}.json"

    def _nodes(self, type_string: str) -> tuple[Mapping[str, Any], ...] | None:
        path = self._files.get(self.file_name(type_string).lower())
        return None if path is None else _read(path)

    def resource(self, type_string: str) -> TypeRef | None:
        """The body type of a resource that may be deployed (not only read), or None."""
        nodes = self._nodes(type_string)
        if nodes is None:
            return None
        wanted = type_string.lower()
        for index, node in enumerate(nodes):
            if node["$type"] == "ResourceType" and str(node["name"]).lower() == wanted and _writable(node):
                return TypeRef(nodes, index).ref(node["body"])
        return None

    def missing(self, type_string: str) -> str | None:
        """Why a resource type has no definition here, or None when it has one."""
        if "@" not in type_string:
            return "no API version"
        if self._nodes(type_string) is None:
            return f"{self.file_name(type_string)} is not in {self.directory}"
        if self.resource(type_string) is None:
            return f"{self.file_name(type_string)} defines no deployable {type_string}"
        return None


@cache
def _read(path: Path) -> tuple[Mapping[str, Any], ...]:
    return tuple(json.loads(path.read_text()))


def _writable(node: Mapping[str, Any]) -> bool:
    if "writableScopes" in node:
        return bool(node["writableScopes"])
    return not int(node.get("flags", 0)) & 1  # older files: flag 1 = read-only resource


# -- problems ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing `bicep build` would hold against a resource body; `str()` is the report line."""

    label: str  # the file, as reported
    line: int  # 1-based
    resource: str  # the resource's symbolic name
    type_string: str
    path: str  # property path in the body, e.g. properties.siteConfig.appSettings[*].name
    kind: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.label}:{self.line}: {self.resource} ({self.type_string}): {where}{self.message}"


def _line(node: Node) -> int:
    return node.start_point.row + 1


def _text(node: Node) -> str:
    return (node.text or b"").decode()


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _literal_string(node: Node) -> str | None:
    if node.type != "string":
        return None
    literal = value(node)
    return literal if isinstance(literal, str) else None


# -- the checker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Object:
    """The properties an object may have: an ObjectType, or a discriminated one's chosen variant."""

    properties: Mapping[str, Mapping[str, Any]]  # name → {type, flags}
    additional: Mapping[str, Any] | None  # the additionalProperties reference, if any
    owner: TypeRef  # the file the references point into


class _FileChecker:
    def __init__(self, path: Path, library: TypeLibrary, label: str) -> None:
        self.library = library
        self.label = label
        found = declarations(path)
        self.variables = {d.name: d for d in found if d.kind == "var"}
        self.parameters = {d.name: d for d in found if d.kind == "param"}
        self.resources = [d for d in found if d.kind == "resource"]
        self.problems: list[Problem] = []
        self._resource: Declaration | None = None
        self._type_string = ""

    # -- entry ---------------------------------------------------------------------------------

    def run(self) -> list[Problem]:
        for resource in self.resources:
            self._check_resource(resource, resource.type_string)
        return self.problems

    def _check_resource(self, resource: Declaration, type_string: str) -> None:
        self._resource, self._type_string = resource, type_string
        if resource.node.has_error:
            return  # a syntax error: tests/unit/test_infra.py reports it, and the tree cannot be trusted
        reason = self.library.missing(type_string)
        if reason:
            self._report(resource.node, "", "no-definition", f"no resource type definition: {reason}")
            return
        body = resource.body_node
        if resource.existing or body is None:
            return  # a reference: its body only names what exists
        body_type = self.library.resource(type_string)
        assert body_type is not None
        env = self._bind(resource.loop, {})
        self._check(body, body_type, "", env, top=True)
        for nested in self._nested_resources(body):
            self._check_resource(nested, _nested_type(type_string, nested.type_string))

    @staticmethod
    def _nested_resources(body: Node) -> list[Declaration]:
        """Child resources declared inside a resource body (`resource child 'config' = {…}`)."""
        found = []
        if body.type == "object":
            for child in body.named_children:
                if child.type == "object_property" and child.named_children[0].type == "resource_declaration":
                    node = child.named_children[0]
                    found.append(Declaration("resource", _text(node.named_children[0]), node, {}, {}))
        return found

    def _report(self, node: Node, path: str, kind: str, message: str) -> None:
        assert self._resource is not None
        problem = Problem(self.label, _line(node), self._resource.name, self._resource.type_string, path, kind, message)
        if problem not in self.problems:
            self.problems.append(problem)

    # -- what an expression may be ------------------------------------------------------------

    def _bind(self, loop: Node | None, env: Mapping[str, list[Node]]) -> dict[str, list[Node]]:
        """The loop variable of a `for`, bound to the items of the literal array it runs over."""
        bound = dict(env)
        if loop is None:
            return bound
        head = loop.named_children[0]
        if head.type == "for_loop_parameters":
            names = [child for child in head.named_children if child.type == "loop_variable"]
            variable = _text(names[0]) if names else ""
            source = loop.named_children[1]
        else:
            variable, source = _text(head), loop.named_children[1]
        items: list[Node] = []
        for candidate in self._candidates(source, env):
            if candidate.type == "array":
                items.extend(item for item in candidate.named_children if item.type != "comment")
        bound[variable] = items
        return bound

    def _candidates(self, node: Node, env: Mapping[str, list[Node]], depth: int = 0) -> list[Node]:
        """The literal nodes an expression can stand for, as far as they can be known offline."""
        if depth > 20:
            return []
        match node.type:
            case "object" | "array" | "for_statement" | "number" | "boolean" | "null":
                return [node]
            case "string":
                return [node] if _literal_string(node) is not None else []
            case "parenthesized_expression":
                return self._candidates(node.named_children[0], env, depth + 1)
            case "ternary_expression":
                return [c for branch in node.named_children[1:] for c in self._candidates(branch, env, depth + 1)]
            case "identifier":
                name = _text(node)
                if name in env:
                    return [c for item in env[name] for c in self._candidates(item, {}, depth + 1)]
                if name in self.variables:
                    held = self.variables[name].value_node
                    return [] if held is None else self._candidates(held, {}, depth + 1)
                if name in self.parameters:
                    allowed = self.parameters[name].decorator_nodes.get("allowed", [])
                    return [item for arg in allowed if arg.type == "array" for item in arg.named_children]
                return []
            case "member_expression":
                found: list[Node] = []
                wanted = _text(node.named_children[-1]).lower()
                for owner in self._candidates(node.named_children[0], env, depth + 1):
                    if owner.type != "object":
                        continue
                    for prop in owner.named_children:
                        if prop.type == "object_property" and self._key(prop).lower() == wanted:
                            found.extend(self._candidates(prop.named_children[-1], {}, depth + 1))
                return found
        return []

    @staticmethod
    def _key(prop: Node) -> str:
        key = prop.named_children[0]
        if key.type == "string":
            literal = _literal_string(key)
            return literal if literal is not None else ""
        return _text(key)

    # -- checking a value against a type ------------------------------------------------------

    def _check(
        self,
        node: Node,
        type_ref: TypeRef,
        path: str,
        env: Mapping[str, list[Node]],
        *,
        top: bool = False,
        partial: bool = False,
        positional: bool = True,
    ) -> None:
        kind = type_ref.kind
        if kind == "AnyType":
            return
        if node.type in ("identifier", "member_expression", "parenthesized_expression", "ternary_expression"):
            for candidate in self._candidates(node, env):
                self._check(candidate, type_ref, path, {}, partial=partial, positional=False)
            return
        if node.type == "call_expression":
            self._check_call(node, type_ref, path, env)
            return
        if kind in ("ObjectType", "DiscriminatedObjectType"):
            if node.type == "object":
                self._check_object(node, type_ref, path, env, top=top, partial=partial)
        elif kind == "ArrayType":
            self._check_array(node, type_ref.ref(type_ref.node["itemType"]), path, env, positional=positional)
        elif kind in ("UnionType", "StringLiteralType"):
            self._check_union(node, type_ref, path, env)

    def _check_call(self, node: Node, type_ref: TypeRef, path: str, env: Mapping[str, list[Node]]) -> None:
        """`concat` of arrays and `union` of objects: each part has the whole's type."""
        function = _text(node.named_children[0])
        if len(node.named_children) < 2:
            return
        arguments = [arg for arg in node.named_children[1].named_children if arg.type != "comment"]
        if function == "concat" and type_ref.kind == "ArrayType":
            for argument in arguments:
                self._check(argument, type_ref, path, env, positional=False)
        elif function == "union" and type_ref.kind in ("ObjectType", "DiscriminatedObjectType"):
            for argument in arguments:
                self._check(argument, type_ref, path, env, partial=True)

    def _check_array(
        self, node: Node, item_type: TypeRef, path: str, env: Mapping[str, list[Node]], *, positional: bool
    ) -> None:
        if node.type == "array":
            items = [item for item in node.named_children if item.type != "comment"]
            for index, item in enumerate(items):
                self._check(item, item_type, f"{path}[{index if positional else '*'}]", env)
        elif node.type == "for_statement":
            inner = self._bind(node, env)
            body = node.named_children[-1]
            while body.type == "if_statement":
                body = body.named_children[-1]
            self._check(body, item_type, f"{path}[*]", inner)

    def _check_union(self, node: Node, type_ref: TypeRef, path: str, env: Mapping[str, list[Node]]) -> None:
        allowed = _closed_literals(type_ref)
        if allowed is None:
            objects = [m for m in _members(type_ref) if m.kind in ("ObjectType", "DiscriminatedObjectType")]
            if node.type == "object" and len(objects) == 1:
                self._check_object(node, objects[0], path, env)
            return
        literal = _literal_string(node)
        if literal is None or literal in allowed:
            return
        near = [value for value in allowed if value.lower() == literal.lower()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        listed = ", ".join(repr(value) for value in sorted(allowed))
        self._report(node, path, "not-allowed", f"{literal!r} is not one of {listed}{hint}")

    def _check_object(
        self,
        node: Node,
        type_ref: TypeRef,
        path: str,
        env: Mapping[str, list[Node]],
        *,
        top: bool = False,
        partial: bool = False,
    ) -> None:
        shape = self._shape(node, type_ref, path, env)
        if shape is None:
            return
        by_name = {name.lower(): name for name in shape.properties}
        present: set[str] = set()
        complete = not partial
        for child in node.named_children:
            if child.type == "comment":
                continue
            if child.type != "object_property":
                complete = False  # a spread or something this reader cannot follow
                continue
            if child.named_children[0].type == "resource_declaration":
                continue  # a child resource, checked as a resource of its own
            key = self._key(child)
            if not key:
                complete = False  # an interpolated name: any property it may be
                continue
            present.add(key.lower())
            value_node = child.named_children[-1]
            canonical = by_name.get(key.lower())
            if canonical is None:
                if shape.additional is not None:
                    self._check(value_node, shape.owner.ref(shape.additional), _join(path, key), env)
                elif not (top and key in BICEP_KEYWORDS):
                    self._report(child, _join(path, key), "unknown-property", self._unknown(key, shape))
                continue
            declared = shape.properties[canonical]
            flags = int(declared.get("flags", 0))
            if flags & READ_ONLY and not flags & REQUIRED:
                self._report(child, _join(path, canonical), "read-only", f"{canonical!r} is read-only: set by Azure")
                continue
            self._check(value_node, shape.owner.ref(declared["type"]), _join(path, canonical), env)
        if not complete:
            return
        for name, declared in shape.properties.items():
            flags = int(declared.get("flags", 0))
            if flags & REQUIRED and not flags & READ_ONLY and name.lower() not in present:
                self._report(node, _join(path, name), "missing-required", f"required property {name!r} is missing")

    def _shape(self, node: Node, type_ref: TypeRef, path: str, env: Mapping[str, list[Node]]) -> _Object | None:
        """The properties an object literal may have; for a discriminated type, the variant it names."""
        definition = type_ref.node
        if type_ref.kind == "ObjectType":
            return _Object(definition.get("properties", {}), definition.get("additionalProperties"), type_ref)
        discriminator = str(definition["discriminator"])
        base = dict(definition.get("baseProperties", {}))
        variants = {name: type_ref.ref(ref) for name, ref in definition["elements"].items()}
        chosen = None
        for child in node.named_children:
            if child.type == "object_property" and self._key(child).lower() == discriminator.lower():
                chosen = child.named_children[-1]
        literals = [] if chosen is None else [_literal_string(c) for c in self._candidates(chosen, env)]
        names = [literal for literal in literals if literal is not None]
        if len(names) != 1:
            # Unknown which variant: every property of any variant is known, none is required.
            merged = dict(base)
            for variant in variants.values():
                merged.update(variant.node.get("properties", {}))
            merged.pop(discriminator, None)
            return _Object(merged, None, type_ref) if chosen is not None else None
        (name,) = names
        variant = variants.get(name) or next(
            (ref for key, ref in variants.items() if key.lower() == name.lower()), None
        )
        if variant is None:
            assert chosen is not None
            listed = ", ".join(repr(key) for key in sorted(variants))
            self._report(chosen, _join(path, discriminator), "not-allowed", f"{name!r} is not one of {listed}")
            return None
        merged = {**base, **variant.node.get("properties", {})}
        return _Object(merged, variant.node.get("additionalProperties"), variant)

    @staticmethod
    def _unknown(key: str, shape: _Object) -> str:
        writable = [
            name for name, declared in shape.properties.items() if not int(declared.get("flags", 0)) & READ_ONLY
        ]
        near = difflib.get_close_matches(key, writable, n=1, cutoff=0.75)
        if not near:
            near = [name for name in writable if name.lower().startswith(key.lower()[:4])][:1]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return f"{key!r} is not a property of this type{hint}"


def _nested_type(parent: str, child: str) -> str:
    """A child resource's full type: `config` inside `Microsoft.Web/sites@v` is `Microsoft.Web/sites/config@v`."""
    if "/" in child.split("@")[0]:
        return child  # written in full
    parent_type, _, parent_version = parent.partition("@")
    child_type, _, child_version = child.partition("@")
    return f"{parent_type}/{child_type}@{child_version or parent_version}"


def _members(type_ref: TypeRef) -> Iterator[TypeRef]:
    """The members of a union, nested unions flattened."""
    if type_ref.kind == "UnionType":
        for element in type_ref.node["elements"]:
            yield from _members(type_ref.ref(element))
    else:
        yield type_ref


def _closed_literals(type_ref: TypeRef) -> set[str] | None:
    """The values of a union of string literals; None when it takes anything else too."""
    values: set[str] = set()
    for member in _members(type_ref):
        if member.kind != "StringLiteralType":
            return None
        values.add(str(member.node["value"]))
    return values


def check_file(path: Path, library: TypeLibrary, label: str | None = None) -> list[Problem]:
    """Every problem in the resource bodies of one Bicep file, in the order found."""
    shown = label if label is not None else path.as_posix()
    return _FileChecker(path, library, shown).run()

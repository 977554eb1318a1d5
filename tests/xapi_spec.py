"""Check 3CX XAPI requests against 3CX's official OpenAPI document.

The fake PBX can only enforce what its authors knew; the official document is the
authority on which operations exist and which properties a body may carry. This module
turns that document into something a test can ask: "does this request conform?"

What is checked, for one recorded request:
- the path lies under the server url (`/xapi/v1`) and, with the method, names exactly one
  operation. Paths are OData templates (`/Users({Id})`, `/Users(Number={Number})`), so key
  values are matched by type: integers bare, strings as OData literals (`'101'`, quotes
  doubled inside);
- every query option is a parameter the operation declares, with a value of the right
  kind (`$top=5`, `$count=true`);
- a body is sent only where the operation takes one, a required body is not missing, it
  is JSON, and it fits the requestBody schema. OData rejects properties an entity type
  does not declare, so object schemas are closed (after merging `allOf` inheritance, or a
  `Pbx.User` body could not carry the `Number` it inherits from `Pbx.DN`).

The OpenAPI 3.0 schemas become JSON Schema (Draft 2020-12) once per document: components
go into one shared `$defs` map, so cyclic references (`Pbx.OAuthClient` <-> `Pbx.RefreshToken`)
are resolved lazily by `jsonschema` instead of being expanded forever. Documents and
compiled validators are cached per process, so checking thousands of requests stays cheap.

Problem messages never quote the offending value for type errors: bodies carry PINs and
passwords, and a rejected value is no less secret than an accepted one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from fakes.transport import FakeRequest

SPEC_ENV = "TCX_OPENAPI_SPEC"
DEFAULT_SPEC = Path("..") / "shared" / "reference" / "3cx-xapi-20.0.10.yaml"
PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Tests that send a bad request on purpose (to prove the fake rejects it) mark it with
# this header so the conformance check leaves it out.
DELIBERATELY_INVALID_HEADER = "X-Test-Deliberately-Invalid"

_JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_COMPONENT_REF = "#/components/schemas/"
_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# OpenAPI keywords with no JSON Schema meaning; dropped during conversion.
_OPENAPI_ONLY = frozenset({"nullable", "discriminator", "xml", "externalDocs", "example", "deprecated"})
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_ODATA_STRING = r"'(?:[^']|'')*'"
_UNQUOTED = r"[^'(),/=]+"
_FLAG_MEMBERS = "x-flag-members"


# -- locating the document -----------------------------------------------------------------
def default_spec_path(project_root: Path = PROJECT_ROOT) -> Path:
    """Where the document lives when no environment variable says otherwise."""
    return (project_root / DEFAULT_SPEC).resolve()


def _env_spec_path(project_root: Path) -> Path | None:
    value = os.environ.get(SPEC_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else (project_root / path).resolve()


def locate_spec(project_root: Path = PROJECT_ROOT) -> Path | None:
    """The OpenAPI document to check against: $TCX_OPENAPI_SPEC, else the reference copy.

    A relative $TCX_OPENAPI_SPEC is taken relative to the project root, so the answer does
    not depend on the directory pytest was started from.
    """
    for candidate in (_env_spec_path(project_root), default_spec_path(project_root)):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def missing_spec_reason(project_root: Path = PROJECT_ROOT) -> str:
    """Why the conformance tests skip: names both places that were looked at."""
    env_value = os.environ.get(SPEC_ENV, "").strip()
    env_part = f"${SPEC_ENV}={env_value!r} (not a file)" if env_value else f"${SPEC_ENV} (unset)"
    return (
        f"3CX OpenAPI document not found: looked at {env_part} and {default_spec_path(project_root)}; "
        f"set {SPEC_ENV} to the XAPI swagger.yaml to run the conformance checks"
    )


# -- results -------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Operation:
    """One operation of the document: a method on a path template (compared by identity)."""

    method: str  # upper case
    template: str  # as written in the document, e.g. "/Users({Id})"
    operation_id: str
    path_parameters: Mapping[str, Mapping[str, Any]]  # name -> OpenAPI schema
    query_parameters: Mapping[str, Mapping[str, Any]]  # name -> OpenAPI schema
    required_query: frozenset[str]
    body_schema: Mapping[str, Any] | None  # OpenAPI schema of the application/json body
    body_media_types: tuple[str, ...]
    body_required: bool

    @property
    def label(self) -> str:
        return f"{self.method} {self.template} ({self.operation_id})"


@dataclass(frozen=True)
class Problem:
    """One way a request departs from the document; `str()` is the one-line report."""

    method: str
    path: str  # the request's path as sent, e.g. "/xapi/v1/Users(12)"
    message: str
    location: str = ""  # "body $.Enabled", "query $bogus", "path" ...
    operation: Operation | None = None

    def key(self) -> tuple[str, str, str]:
        """Identity for de-duplication: the same fault on the same operation counts once."""
        where = self.operation.label if self.operation else f"{self.method} {self.path}"
        return (where, self.location, self.message)

    def __str__(self) -> str:
        where = f": {self.location}" if self.location else ""
        return f"{self.method} {self.path}{where}: {self.message}"


# -- the document --------------------------------------------------------------------------
@dataclass
class _PathTemplate:
    template: str
    strict: re.Pattern[str]  # key values must have the declared type
    loose: re.Pattern[str]  # any key value: used to explain a near miss
    literal_length: int  # more literal text = more specific
    path_parameters: dict[str, Mapping[str, Any]]
    operations: dict[str, Operation] = field(default_factory=dict)


_SPEC_CACHE: dict[tuple[Path, int], XapiSpec] = {}


class XapiSpec:
    """The XAPI OpenAPI document, indexed for matching and validating requests."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        servers = document.get("servers") or [{"url": ""}]
        self.server_url: str = str(servers[0].get("url", "")).rstrip("/")
        self._components = document.get("components", {})
        self._converter = _SchemaConverter(self._components.get("schemas", {}))
        self._templates_by_root: dict[str, list[_PathTemplate]] = {}
        self._wildcard_templates: list[_PathTemplate] = []
        self._validators: dict[tuple[str, str], Draft202012Validator] = {}
        self._component_validators: dict[str, Draft202012Validator] = {}
        self._index_paths(document.get("paths", {}))

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path | str) -> XapiSpec:
        """Parse the document once per process (1.2 MB of YAML: the C loader when present)."""
        resolved = Path(path).resolve()
        key = (resolved, resolved.stat().st_mtime_ns)
        cached = _SPEC_CACHE.get(key)
        if cached is None:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            with resolved.open("rb") as stream:
                document = yaml.load(stream, Loader=loader)  # noqa: S506 - a safe loader
            cached = _SPEC_CACHE[key] = cls(document)
        return cached

    # -- index -----------------------------------------------------------------------------
    def _index_paths(self, paths: Mapping[str, Any]) -> None:
        for template, item in paths.items():
            shared_parameters = item.get("parameters", [])
            entry: _PathTemplate | None = None
            for method in _HTTP_METHODS:
                raw = item.get(method)
                if raw is None:
                    continue
                parameters = [self._resolve(p) for p in [*shared_parameters, *raw.get("parameters", [])]]
                if entry is None:
                    path_parameters = {p["name"]: p.get("schema", {}) for p in parameters if p.get("in") == "path"}
                    entry = _compile_template(template, path_parameters)
                entry.operations[method.upper()] = self._operation(
                    method.upper(), template, raw, parameters, entry.path_parameters
                )
            if entry is None:
                continue
            root = _root_segment(template)
            if "{" in root:
                self._wildcard_templates.append(entry)
            else:
                self._templates_by_root.setdefault(root, []).append(entry)

    def _operation(
        self,
        method: str,
        template: str,
        raw: Mapping[str, Any],
        parameters: list[Mapping[str, Any]],
        path_parameters: Mapping[str, Mapping[str, Any]],
    ) -> Operation:
        query = {p["name"]: p.get("schema", {}) for p in parameters if p.get("in") == "query"}
        required = frozenset(p["name"] for p in parameters if p.get("in") == "query" and p.get("required"))
        body_schema: Mapping[str, Any] | None = None
        media_types: tuple[str, ...] = ()
        body_required = False
        if "requestBody" in raw:
            request_body = self._resolve(raw["requestBody"])
            content = request_body.get("content", {})
            media_types = tuple(content)
            json_content = content.get("application/json") or next(iter(content.values()), {})
            body_schema = json_content.get("schema", {})
            body_required = bool(request_body.get("required", False))
        return Operation(
            method=method,
            template=template,
            operation_id=str(raw.get("operationId", "")),
            path_parameters=path_parameters,
            query_parameters=query,
            required_query=required,
            body_schema=body_schema,
            body_media_types=media_types,
            body_required=body_required,
        )

    def _resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        """Follow a `$ref` to components (parameters, requestBodies) until a real node."""
        seen: set[str] = set()
        while "$ref" in node:
            ref = node["$ref"]
            if ref in seen or not ref.startswith("#/"):
                raise ValueError(f"unresolvable reference {ref!r} in the OpenAPI document")
            seen.add(ref)
            target: Any = self.document
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def operations(self) -> Iterator[Operation]:
        """Every operation of the document."""
        for entries in [*self._templates_by_root.values(), self._wildcard_templates]:
            for entry in entries:
                yield from entry.operations.values()

    # -- matching --------------------------------------------------------------------------
    def match(self, method: str, path: str) -> Operation | Problem:
        """The operation `method path` invokes, or the Problem saying why there is none."""
        method = method.upper()
        prefix = self.server_url + "/"
        if not path.startswith(prefix):
            return Problem(method, path, f"not under the XAPI root {self.server_url}")
        relative = path[len(self.server_url) :]
        candidates = [*self._templates_by_root.get(_root_segment(relative), []), *self._wildcard_templates]
        matched = [entry for entry in candidates if entry.strict.fullmatch(relative)]
        with_method = [entry for entry in matched if method in entry.operations]
        if with_method:
            best = _most_specific(with_method)
            if len(best) > 1:
                names = ", ".join(entry.template for entry in best)
                return Problem(method, path, f"matches several operations of the spec: {names}")
            return best[0].operations[method]
        if matched:
            entry = _most_specific(matched)[0]
            allowed = ", ".join(sorted(entry.operations))
            return Problem(
                method, path, f"no operation {method} {relative} in the spec ({entry.template} allows {allowed})"
            )
        for entry in candidates:
            if method in entry.operations and entry.loose.fullmatch(relative):
                hint = _key_hint(entry, relative)
                if hint:
                    return Problem(method, path, f"no operation {method} {relative} in the spec: {hint}", "path")
        return Problem(method, path, f"no operation {method} {relative} in the spec")

    # -- checking --------------------------------------------------------------------------
    def check(self, request: FakeRequest) -> list[str]:
        """Problems with one request, one line each; empty when it conforms."""
        return [str(problem) for problem in self.check_request(request)]

    def check_request(self, request: FakeRequest) -> list[Problem]:
        """Like `check`, keeping the structure (operation, location) for grouping."""
        found = self.match(request.method, request.path)
        if isinstance(found, Problem):
            return [found]
        operation = found
        problems = list(self._query_problems(request, operation))
        problems.extend(self._body_problems(request, operation))
        return problems

    def _query_problems(self, request: FakeRequest, operation: Operation) -> Iterator[Problem]:
        declared = operation.query_parameters
        for name, value in request.query.items():
            schema = declared.get(name)
            if schema is None:
                allowed = ", ".join(sorted(declared)) or "none"
                message = f"query option {name} is not a parameter of {operation.label} (declared: {allowed})"
                yield Problem(request.method, request.path, message, f"query {name}", operation)
                continue
            wrong = _query_value_problem(value, schema)
            if wrong:
                yield Problem(request.method, request.path, wrong, f"query {name}", operation)
        for name in sorted(operation.required_query - set(request.query)):
            message = f"required query option {name} is missing"
            yield Problem(request.method, request.path, message, f"query {name}", operation)

    def _body_problems(self, request: FakeRequest, operation: Operation) -> Iterator[Problem]:
        has_body = bool(request.body.strip())

        def problem(message: str, location: str = "body") -> Problem:
            return Problem(request.method, request.path, message, location, operation)

        if operation.body_schema is None:
            if has_body:
                yield problem(f"sent, but {operation.label} takes no body")
            return
        if not has_body:
            if operation.body_required:
                yield problem(f"missing, but {operation.label} requires one")
            return
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type not in operation.body_media_types:
            accepted = ", ".join(operation.body_media_types)
            yield problem(f"sent as {media_type or 'no Content-Type'}, but the operation accepts {accepted}")
            return
        try:
            body = request.json()
        except ValueError as error:
            yield problem(f"not valid JSON ({type(error).__name__})")
            return
        validator = self._operation_validator(operation)
        for error in validator.iter_errors(body):
            for location, message in _describe(error):
                yield problem(message, f"body {location}")

    # -- validators ------------------------------------------------------------------------
    def _operation_validator(self, operation: Operation) -> Draft202012Validator:
        key = (operation.method, operation.template)
        validator = self._validators.get(key)
        if validator is None:
            assert operation.body_schema is not None
            validator = self._validators[key] = self._validator(self._converter.convert(operation.body_schema))
        return validator

    def cached_validators(self) -> dict[tuple[str, str], Draft202012Validator]:
        """The body validators compiled so far, by (method, template)."""
        return dict(self._validators)

    def check_component(self, name: str, value: Any) -> list[str]:
        """Problems with `value` as an instance of components/schemas/`name` (one line each)."""
        validator = self._component_validators.get(name)
        if validator is None:
            if name not in self._converter.components:
                raise KeyError(f"no schema {name!r} in the OpenAPI document")
            validator = self._component_validators[name] = self._validator({"$ref": f"#/$defs/{name}"})
        return [
            f"{location}: {message}" for error in validator.iter_errors(value) for location, message in _describe(error)
        ]

    def _validator(self, schema: Mapping[str, Any]) -> Draft202012Validator:
        root = {"$schema": _JSON_SCHEMA_DIALECT, **schema, "$defs": self.json_schema_defs}
        return Draft202012Validator(root)

    @cached_property
    def json_schema_defs(self) -> dict[str, Any]:
        """Every component schema as JSON Schema, keyed by component name."""
        return self._converter.all_definitions()


# -- path templates ------------------------------------------------------------------------
def _root_segment(path: str) -> str:
    """The entity set a path starts with: "Users" for "/Users(12)/ForwardingProfiles"."""
    return re.split(r"[/(]", path.lstrip("/"), maxsplit=1)[0]


def _key_pattern(schema: Mapping[str, Any]) -> str:
    """How OData writes a key or function argument of this type inside the URL."""
    kind = schema.get("type")
    if kind == "integer":
        return r"-?\d+"
    if kind == "number":
        return r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
    if kind == "boolean":
        return "true|false"
    if kind == "string":
        if schema.get("format") or schema.get("pattern"):
            # Dates, GUIDs: OData writes them bare; accept a quoted form too.
            literal = f"{_UNQUOTED}|{_ODATA_STRING}"
        else:
            literal = _ODATA_STRING
        return f"{literal}|null" if schema.get("nullable") else literal
    return f"{_UNQUOTED}|{_ODATA_STRING}"


def _compile_template(template: str, path_parameters: dict[str, Mapping[str, Any]]) -> _PathTemplate:
    strict: list[str] = []
    loose: list[str] = []
    literal_length = 0
    position = 0
    for placeholder in _PLACEHOLDER.finditer(template):
        literal = template[position : placeholder.start()]
        literal_length += len(literal)
        name = placeholder.group(1)
        strict.append(re.escape(literal) + f"(?P<{name}>{_key_pattern(path_parameters.get(name, {}))})")
        loose.append(re.escape(literal) + f"(?P<{name}>{_ODATA_STRING}|[^/(),]*)")
        position = placeholder.end()
    tail = re.escape(template[position:])
    literal_length += len(template) - position
    return _PathTemplate(
        template=template,
        strict=re.compile("".join(strict) + tail),
        loose=re.compile("".join(loose) + tail),
        literal_length=literal_length,
        path_parameters=path_parameters,
    )


def _most_specific(entries: list[_PathTemplate]) -> list[_PathTemplate]:
    longest = max(entry.literal_length for entry in entries)
    return [entry for entry in entries if entry.literal_length == longest]


def _key_hint(entry: _PathTemplate, relative: str) -> str:
    """Say which key value has the wrong OData form (e.g. an unquoted string key)."""
    match = entry.loose.fullmatch(relative)
    if match is None:
        return ""
    for name, value in match.groupdict().items():
        schema = entry.path_parameters.get(name, {})
        if re.fullmatch(_key_pattern(schema), value or ""):
            continue
        wanted = {"integer": "an integer", "boolean": "true or false"}.get(
            str(schema.get("type")), "an OData string literal in single quotes"
        )
        return f"{entry.template} needs {name} as {wanted}, got {value!r}"
    return ""


def _query_value_problem(value: str, schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if kind == "integer":
        if not re.fullmatch(r"-?\d+", value):
            return f"expected an integer, got {value!r}"
        minimum = schema.get("minimum")
        if minimum is not None and int(value) < minimum:
            return f"must be at least {minimum}, got {value}"
    elif kind == "boolean" and value not in ("true", "false"):
        return f"expected true or false, got {value!r}"
    elif kind == "array" and any(not item.strip() for item in value.split(",")):
        return "empty item in the comma-separated list"
    return ""


# -- OpenAPI 3.0 schema -> JSON Schema -------------------------------------------------------
class _SchemaConverter:
    """Rewrite OpenAPI 3.0 schemas as Draft 2020-12 JSON Schema, closing object schemas.

    - `$ref: #/components/schemas/X` -> `$ref: #/$defs/X` (siblings ignored, as OpenAPI 3.0 says);
    - `nullable: true` -> `null` added to `type`/`enum`, or `if null then accept else <schema>`
      around composed schemas (an `anyOf` with a null branch would hide the real error);
    - `allOf` of object schemas (inheritance: Pbx.User = Pbx.ClickToCall + own properties)
      -> one object schema with the merged properties, then closed;
    - `oneOf` -> `anyOf`: the generator emits `oneOf [number?, string?, ReferenceNumeric]`
      whose nullable branches all accept null, which `oneOf` would reject;
    - flag enums (`x-ms-enum-flags`) also accept OData's "A, B" combinations;
    - object schemas with `properties` and no `additionalProperties` get
      `additionalProperties: false`, since OData rejects undeclared properties.
    """

    def __init__(self, components: Mapping[str, Any]) -> None:
        self.components = components

    def all_definitions(self) -> dict[str, Any]:
        return {name: self.convert(schema) for name, schema in self.components.items()}

    def convert(self, node: Any) -> Any:
        if not isinstance(node, Mapping):
            return node
        if "$ref" in node:
            return {"$ref": self._ref(node["$ref"])}
        if "allOf" in node:
            result = self._all_of(node)
        elif "oneOf" in node or "anyOf" in node:
            branches = [*node.get("oneOf", []), *node.get("anyOf", [])]
            result = {"anyOf": [self.convert(branch) for branch in branches]}
        else:
            result = self._plain(node)
        return _nullable(result) if node.get("nullable") is True else result

    def _ref(self, ref: str) -> str:
        if not ref.startswith(_COMPONENT_REF):
            raise ValueError(f"schema reference outside components/schemas: {ref!r}")
        return "#/$defs/" + ref[len(_COMPONENT_REF) :]

    def _plain(self, node: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in node.items():
            if key in _OPENAPI_ONLY or key.startswith("x-") or key == "isFlags":
                continue
            if key == "properties":
                result[key] = {name: self.convert(schema) for name, schema in value.items()}
            elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, Mapping)):
                result[key] = self.convert(value)
            else:
                result[key] = value
        if "properties" in result and "additionalProperties" not in result:
            result["additionalProperties"] = False
        flags = node.get("x-ms-enum-flags")
        if isinstance(flags, Mapping) and flags.get("isFlags") and "enum" in result:
            names = [str(member) for member in result.pop("enum")]
            members = "|".join(re.escape(name) for name in names)
            result["pattern"] = rf"^(?:{members})(?:\s*,\s*(?:{members}))*$"
            result[_FLAG_MEMBERS] = names  # an annotation, for a readable error message
        return result

    def _all_of(self, node: Mapping[str, Any]) -> dict[str, Any]:
        parts = list(node["allOf"])
        own = {key: value for key, value in node.items() if key not in ("allOf", "nullable")}
        if len(parts) == 1 and "properties" not in own:
            # The generator's way to put `nullable` (or a description) on a reference.
            return self.convert(parts[0])
        if "properties" in own:
            parts.append(own)
        merged = self._merge_objects(parts, frozenset())
        if merged is None:
            return {"allOf": [self.convert(part) for part in parts]}
        properties, required, title = merged
        result: dict[str, Any] = {
            "type": "object",
            "properties": {name: self.convert(schema) for name, schema in properties.items()},
            "additionalProperties": False,
        }
        if title:
            result["title"] = title
        if required:
            result["required"] = sorted(required)
        return result

    def _merge_objects(self, parts: list[Any], seen: frozenset[str]) -> tuple[dict[str, Any], set[str], str] | None:
        """Properties, required names and title of an allOf of object schemas; None if not all objects."""
        properties: dict[str, Any] = {}
        required: set[str] = set()
        title = ""
        for part in parts:
            flattened = self._object_part(part, seen)
            if flattened is None:
                return None
            part_properties, part_required, part_title = flattened
            properties.update(part_properties)
            required |= part_required
            title = part_title or title
        return properties, required, title

    def _object_part(self, part: Any, seen: frozenset[str]) -> tuple[dict[str, Any], set[str], str] | None:
        if not isinstance(part, Mapping):
            return None
        if "$ref" in part:
            name = self._ref(part["$ref"]).rsplit("/", 1)[1]
            if name in seen or name not in self.components:
                return None  # inheritance never cycles; if it did, leave that part open
            return self._object_part(self.components[name], seen | {name})
        if "allOf" in part:
            own = {key: value for key, value in part.items() if key != "allOf"}
            return self._merge_objects([*part["allOf"], own] if "properties" in own else list(part["allOf"]), seen)
        if part.get("type") == "object" or "properties" in part:
            if isinstance(part.get("additionalProperties"), Mapping) or part.get("additionalProperties") is True:
                return None  # an open part keeps the whole composition open
            return dict(part.get("properties", {})), set(part.get("required", [])), str(part.get("title", ""))
        return None


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str) and not any(key in schema for key in ("$ref", "allOf", "anyOf", "oneOf")):
        result = {**schema, "type": [kind, "null"]}
        if "enum" in result and None not in result["enum"]:
            result["enum"] = [*result["enum"], None]
        return result
    return {"if": {"type": "null"}, "then": True, "else": schema}


# -- describing validation errors --------------------------------------------------------------
def _json_path(parts: Any) -> str:
    text = "$"
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)):
            text += f".{part}"
        else:
            text += f"[{json.dumps(str(part))}]"
    return text


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(error: ValidationError) -> list[tuple[str, str]]:
    """(JSON path, message) pairs for one jsonschema error, worded for a one-line report."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        return _describe(best_match(error.context))
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        declared = error.schema.get("properties", {})
        owner = error.schema.get("title", "the schema")
        extras = [name for name in error.instance if name not in declared]
        return [(_json_path([*path, name]), f"property {name!r} is not declared by {owner}") for name in extras]
    if error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return [(_json_path(path), f"expected {' or '.join(wanted)}, got {_json_type(error.instance)}")]
    if error.validator == "enum":
        options = ", ".join("null" if option is None else str(option) for option in error.validator_value)
        if len(options) > 200:
            options = options[:197] + "..."
        return [(_json_path(path), f"{_short(error.instance)} is not one of {options}")]
    if error.validator == "required":
        return [(_json_path(path), error.message)]
    if error.validator == "pattern" and _FLAG_MEMBERS in error.schema:
        members = ", ".join(error.schema[_FLAG_MEMBERS])
        return [(_json_path(path), f"{_short(error.instance)} is not a combination of {members}")]
    if error.validator in ("maxLength", "minLength", "maximum", "minimum", "pattern", "maxItems", "minItems"):
        return [(_json_path(path), f"violates {error.validator} {_short(error.validator_value)}")]
    return [(_json_path(path), error.message if len(error.message) <= 200 else error.message[:197] + "...")]

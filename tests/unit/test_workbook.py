"""The KQL the administrator reads: docs/queries.kql and the workbook deployed with the app.

Every query may name only events, metrics and custom dimensions the code emits
(tests/telemetry_schema.py); the workbook's panels are queries of docs/queries.kql word for
word; the workbook resource fits the `Microsoft.Insights/workbooks@2023-06-01` type
definition (the Bicep type file in ../shared/reference/bicep-types).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.telemetry_schema import emitted_dimensions, events_read, metrics_read, unknown_dimensions
from tests.unit.test_infra import MAIN, MODULES, Expr, declared, resources_of_type

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ROOT / "docs" / "queries.kql"
WORKBOOK = MODULES / "workbook.bicep"
TYPES = ROOT.parent / "shared" / "reference" / "bicep-types" / "Microsoft.Insights@2023-06-01.json"


def docs_queries() -> dict[str, str]:
    """docs/queries.kql as {the comment line above a query: the query}."""
    found: dict[str, str] = {}
    for block in re.split(r"\n\s*\n", QUERIES.read_text()):
        lines = block.strip("\n").splitlines()
        body = [line for line in lines if not line.startswith("//")]
        if body:
            comments = [line for line in lines if line.startswith("//")]
            assert comments, f"a query without a comment saying what it shows: {body[0]!r}"
            found[comments[-1].removeprefix("// ")] = "\n".join(body)
    return found


def _normal(query: str) -> str:
    return " ".join(query.split())


@cache
def workbook_content() -> dict[str, Any]:
    variables = {name: var.body for name, var in declared(WORKBOOK, "var").items()}
    content = variables["content"]

    def resolve(value: Any) -> Any:
        if isinstance(value, Expr) and value.text in variables:
            return resolve(variables[value.text])
        if isinstance(value, dict):
            return {key: resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [resolve(item) for item in value]
        return value

    return resolve(content)


def workbook_queries() -> dict[str, str]:
    return {
        item["content"]["title"]: item["content"]["query"] for item in workbook_content()["items"] if item["type"] == 3
    }


@pytest.mark.parametrize("title", list(docs_queries()))
def test_every_query_in_the_docs_reads_what_the_code_emits(title: str) -> None:
    query = docs_queries()[title]
    assert "parse-kv" not in query and "message startswith" not in query, "read the dimensions, not the text"
    assert unknown_dimensions(query, emitted_dimensions(), title) == []


def test_the_docs_queries_are_counted() -> None:
    assert len(docs_queries()) >= 25
    read = set().union(*(events_read(q) for q in docs_queries().values()))
    assert {"run_summary", "user_action", "status_change", "invocation_failed", "subscription_failed"} <= read
    metrics = set().union(*(metrics_read(q) for q in docs_queries().values()))
    assert metrics == set(emitted_dimensions().metrics), "every metric has a query"


@pytest.mark.parametrize("title", list(workbook_queries()))
def test_every_workbook_panel_is_a_docs_query_and_reads_what_the_code_emits(title: str) -> None:
    query = workbook_queries()[title]
    assert _normal(query) in {_normal(q) for q in docs_queries().values()}, f"{title}: not in docs/queries.kql"
    assert unknown_dimensions(query, emitted_dimensions(), title) == []


def test_the_workbook_shows_runs_changes_status_webhook_and_failures() -> None:
    queries = list(workbook_queries().values())
    assert any("run_summary" in events_read(q) and '"queue"' in q for q in queries), "last runs and their counts"
    assert any("connector.actions" in metrics_read(q) and "bin(timestamp, 1d)" in q for q in queries)
    assert any("status_change" in events_read(q) and "bin(timestamp, 1h)" in q and "lag" not in q for q in queries)
    lag = [q for q in queries if "status_change" in events_read(q) and "percentile(lag_ms, 95)" in q]
    assert lag and "percentile(lag_ms, 50)" in lag[0], "status change lag p50/p95"
    assert any("connector.webhook.duration" in metrics_read(q) for q in queries), "webhook latency"
    assert any("invocation_failed" in events_read(q) for q in queries), "failures"
    assert workbook_content()["version"] == "Notebook/1.0"


def test_the_workbook_shows_failure_reasons_expiring_subscriptions_and_guard_holds() -> None:
    """Issue #12: the panels the workbook lacked, each a query of docs/queries.kql."""
    queries = list(workbook_queries().values())
    reasons = [q for q in queries if {"user_action", "contact_action", "status_failed"} <= events_read(q)]
    assert reasons and any("by event, action" in q and "error" in q for q in reasons), "failures by reason"
    expiring = [q for q in queries if "subscription_summary" in events_read(q)]
    assert expiring and "soonest_expiry" in expiring[0] and "hours_to_soonest_expiry" in expiring[0], (
        "subscriptions expiring"
    )
    guard = [q for q in queries if {"ALERT deletion_guard", "ALERT creation_guard"} <= events_read(q)]
    assert guard, "guard holds"


def test_the_workbook_is_deployed_with_the_app_on_its_application_insights() -> None:
    module = next(m for m in declared(MAIN, "module").values() if m.type_string == "modules/workbook.bicep")
    assert module.body["params"]["appInsightsId"].text == "monitoring.outputs.appInsightsId"
    (workbook,) = resources_of_type(WORKBOOK, "Microsoft.Insights/workbooks")
    properties = workbook.body["properties"]
    assert properties["serializedData"].text == "string(content)"
    assert "appInsightsId" in properties["sourceId"].identifiers()
    assert workbook_content()["fallbackResourceIds"][0].text == "appInsightsId"


# -- the resource against its type definition ---------------------------------------------------------

REQUIRED, READ_ONLY = 1, 2


def _types() -> list[dict[str, Any]]:
    if not TYPES.is_file():
        pytest.skip(f"no Bicep type definitions at {TYPES}")
    return json.loads(TYPES.read_text())


def type_errors(value: Any, type_ref: str, types: list[dict[str, Any]], where: str) -> list[str]:
    """What in `value` (literal data; an expression counts as any value) does not fit the type."""
    if isinstance(value, Expr):
        return []
    spec = types[int(type_ref.removeprefix("#/"))]
    kind = spec["$type"]
    if kind == "AnyType":
        return []
    if kind == "StringType":
        return [] if isinstance(value, str) else [f"{where}: {value!r} is not a string"]
    if kind in ("IntegerType",):
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{where}: {value!r} is not an int"]
    if kind == "BooleanType":
        return [] if isinstance(value, bool) else [f"{where}: {value!r} is not a bool"]
    if kind == "StringLiteralType":
        return [] if value == spec["value"] else [f"{where}: {value!r} is not {spec['value']!r}"]
    if kind == "UnionType":
        options = [type_errors(value, ref["$ref"], types, where) for ref in spec["elements"]]
        return [] if any(not errors for errors in options) else [f"{where}: {value!r} fits none of its types"]
    if kind == "ArrayType":
        if not isinstance(value, list):
            return [f"{where}: not an array"]
        return [
            e
            for i, item in enumerate(value)
            for e in type_errors(item, spec["itemType"]["$ref"], types, f"{where}[{i}]")
        ]
    if kind == "ObjectType":
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        errors: list[str] = []
        properties = spec.get("properties", {})
        for name, prop in properties.items():
            if prop["flags"] & REQUIRED and name not in value:
                errors.append(f"{where}.{name}: required, missing")
        for name, item in value.items():
            if name in properties:
                if properties[name]["flags"] & READ_ONLY:
                    errors.append(f"{where}.{name}: read-only, set")
                errors += type_errors(item, properties[name]["type"]["$ref"], types, f"{where}.{name}")
            elif "additionalProperties" in spec:
                errors += type_errors(item, spec["additionalProperties"]["$ref"], types, f"{where}.{name}")
            else:
                errors.append(f"{where}.{name}: no such property")
        return errors
    return [f"{where}: cannot check a {kind}"]


def _resource_type(types: list[dict[str, Any]], name: str) -> str:
    return next(t["body"]["$ref"] for t in types if t.get("$type") == "ResourceType" and t["name"] == name)


def test_the_workbook_resource_fits_its_type_definition() -> None:
    types = _types()
    (workbook,) = resources_of_type(WORKBOOK, "Microsoft.Insights/workbooks")
    assert workbook.type_string == "Microsoft.Insights/workbooks@2023-06-01"
    body = _resource_type(types, workbook.type_string)
    assert type_errors(workbook.body, body, types, "workbook") == []


def test_the_type_check_notices_what_does_not_fit() -> None:
    types = _types()
    body = _resource_type(types, "Microsoft.Insights/workbooks@2023-06-01")
    good = {"name": "x", "location": "westeurope", "kind": "shared", "properties": {}}
    good["properties"] = {"displayName": "d", "serializedData": "{}", "category": "workbook"}
    assert type_errors(good, body, types, "w") == []
    assert type_errors({**good, "kind": 3}, body, types, "w")
    assert type_errors({**good, "location": None}, body, types, "w")
    assert type_errors({**good, "properties": {"displayName": "d", "category": "workbook"}}, body, types, "w")
    assert type_errors({**good, "properties": {**good["properties"], "revision": "r"}}, body, types, "w")
    assert type_errors({**good, "properties": {**good["properties"], "colour": "red"}}, body, types, "w")
    assert type_errors({**good, "tags": {"a": 1}}, body, types, "w")

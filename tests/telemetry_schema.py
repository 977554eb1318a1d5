"""What the connector's telemetry holds, read from its source: for the KQL that reads it.

The alerts (infra/modules/alerts.bicep), the workbook (infra/modules/workbook.bicep) and
docs/queries.kql read the connector's log lines by their custom dimensions
(`customDimensions.event == "run_summary"`, `customDimensions.status`) and its metrics by
name and dimension (`customMetrics | where name == "connector.runs"`). A query that names an
event the code never logs, or a dimension that event never carries, returns nothing and
alerts on nothing, silently. `unknown_dimensions` finds such names.

The source is read, not run: every `log_event("event", …, field=…)` call gives the event and
its fields; a call passing `**counts` (run summaries) may carry any count a run reports, the
string keys of the dicts that `counts`/`as_dict` build and that are assigned to `.counts`;
every instrument `shared/telemetry.py` creates gives a metric, with the attribute names of
the dicts recorded with it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("shared", "sync", "triggers")
# The modules whose runs report counts (into `run_summary` and `subscription_summary`).
RUN_MODULES = ("user_sync", "contact_sync", "presence_run", "subscription_upkeep", "worker")


@dataclass(frozen=True)
class Emitted:
    events: dict[str, frozenset[str]]  # event → its fields (with "event" itself)
    metrics: dict[str, frozenset[str]]  # metric name → its attribute names


def _sources() -> list[Path]:
    return [ROOT / "function_app.py", *(p for package in PRODUCT for p in sorted((ROOT / package).glob("*.py")))]


def _string_keys(node: ast.AST) -> set[str]:
    return {
        key.value
        for d in ast.walk(node)
        if isinstance(d, ast.Dict)
        for key in d.keys
        if isinstance(key, ast.Constant) and isinstance(key.value, str)
    }


def _count_names(trees: list[ast.Module]) -> set[str]:
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name in ("counts", "as_dict"):
                names |= _string_keys(node)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Attribute) and target.attr == "counts":
                        names |= _string_keys(node.value)
                    if (
                        isinstance(target, ast.Subscript)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "counts"
                        and isinstance(target.slice, ast.Constant)
                    ):
                        names.add(str(target.slice.value))
    # Queued work records its outcome as its count: `{outcome: 1}` (sync/worker.py).
    outcome = re.search(r"^Outcome = Literal\[(.*)\]", (ROOT / "sync" / "presence_run.py").read_text(), re.MULTILINE)
    if outcome:
        names |= set(re.findall(r'"(\w+)"', outcome.group(1)))
    return names


def _metrics(tree: ast.Module) -> dict[str, frozenset[str]]:
    instruments: dict[str, str] = {}  # variable → metric name
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr.startswith("create_")
            and isinstance(node.value.args[0], ast.Constant)
        ):
            (target,) = node.targets
            assert isinstance(target, ast.Name)
            instruments[target.id] = str(node.value.args[0].value)
    attributes: dict[str, set[str]] = {name: set() for name in instruments.values()}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in instruments}
            for variable in used:
                attributes[instruments[variable]] |= _string_keys(node)
    return {name: frozenset(keys) for name, keys in attributes.items()}


@cache
def emitted_dimensions() -> Emitted:
    trees = [ast.parse(path.read_text()) for path in _sources()]
    counts = _count_names([ast.parse((ROOT / "sync" / f"{name}.py").read_text()) for name in RUN_MODULES])
    events: dict[str, set[str]] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "log_event"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                fields = events.setdefault(str(node.args[0].value), {"event"})
                for keyword in node.keywords:
                    if keyword.arg is None:
                        fields |= counts
                    else:
                        fields.add(keyword.arg)
    metrics = _metrics(ast.parse((ROOT / "shared" / "telemetry.py").read_text()))
    return Emitted({event: frozenset(fields) for event, fields in events.items()}, metrics)


_DIMENSION = re.compile(r"customDimensions(?:\.(\w+)|\[\s*['\"](\w+)['\"]\s*\])")
_EVENT_IS = re.compile(r"customDimensions\.event\)?\s*==\s*\"([^\"]+)\"")
_EVENT_IN = re.compile(r"customDimensions\.event\)?\s+in\s+\(([^)]*)\)")
_METRIC_IS = re.compile(r"\bname\s*==\s*\"(connector\.[^\"]+)\"")
_METRIC_IN = re.compile(r"\bname\s+in\s+\(([^)]*connector\.[^)]*)\)")


def events_read(query: str) -> set[str]:
    """The events a query selects by `customDimensions.event == …` or `… in (…)`."""
    found = set(_EVENT_IS.findall(query))
    for listed in _EVENT_IN.findall(query):
        found |= set(re.findall(r'"([^"]+)"', listed))
    return found


def metrics_read(query: str) -> set[str]:
    found = set(_METRIC_IS.findall(query))
    for listed in _METRIC_IN.findall(query):
        found |= set(re.findall(r'"(connector\.[^"]+)"', listed))
    return found


def unknown_dimensions(query: str, emitted: Emitted, label: str = "query") -> list[str]:
    """Each event, metric or dimension the query names that the code does not emit, one line each."""
    problems: list[str] = []
    allowed: set[str] = {"event"}
    for event in sorted(events_read(query)):
        if event not in emitted.events:
            problems.append(f"{label} reads the event {event!r}, which the code never logs")
        else:
            allowed |= emitted.events[event]
    for metric in sorted(metrics_read(query)):
        if metric not in emitted.metrics:
            problems.append(f"{label} reads the metric {metric!r}, which the code never records")
        else:
            allowed |= emitted.metrics[metric]
    for dotted, bracketed in _DIMENSION.findall(query):
        name = dotted or bracketed
        if name not in allowed:
            problems.append(f"{label} reads customDimensions.{name}, which none of the events or metrics it reads has")
    return problems

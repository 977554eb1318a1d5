"""Every 3CX request the suite sent is checked against the official OpenAPI document.

The 3CX fake journals each request it receives under `/xapi/v1` (`fakes.threecx.XAPI_JOURNAL`).
The `conformance` test runs last (see `tests/conformance_plugin.py`) and checks the whole
journal with `tests/xapi_spec.py`: the operation exists, query options are declared, the
body fits the schema with no undeclared properties.

Requests sent wrong on purpose: a test that proves the fake rejects a bad request sets the
header `X-Test-Deliberately-Invalid: 1` on it, and this check leaves such requests out.
Everything else the suite sends must conform.

Run alone (`-k conformance`), the journal would be empty; the test then drives the real
`ThreeCXClient` against the fake once through each of its public methods, so the check
never passes on nothing. If the journal is still empty, it fails.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from fakes.transport import FakeRequest, build_request
from tests.conformance_plugin import conformance_last
from tests.xapi_spec import (
    DELIBERATELY_INVALID_HEADER,
    PROJECT_ROOT,
    Problem,
    XapiSpec,
    locate_spec,
    missing_spec_reason,
)

FAKE_MODULE = "fakes.threecx"
SCENARIO_BASE_URL = "https://pbx.conformance.invalid:5001"
SCENARIO_CLIENT_ID = "conformance"
SCENARIO_KEY = "conformance-secret"  # a fake's credential, not a real one
# Stands in for a photo: the avatar port sends the bytes as they are, it never decodes them.
AVATAR_BYTES = b"\x89PNG\r\n\x1a\nconformance-avatar"


def deliberately_invalid(request: object) -> bool:
    """True for a request a test marked as sent wrong on purpose."""
    headers = getattr(request, "headers", {})
    return str(headers.get(DELIBERATELY_INVALID_HEADER, "")).strip() == "1"


class _CallRecorder:
    """Wraps the client and notes which public methods the scenario used."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self.called: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if callable(attribute) and not name.startswith("_"):
            self.called.add(name)
        return attribute


def drive_client_once() -> set[str]:
    """Send requests through each public method of the real client, against the fake.

    Used only when the rest of the suite sent nothing (the conformance test run alone).
    Returns the public methods of `ThreeCXClient` the scenario did not call, so a method
    added to the client later cannot slip past the check unnoticed.
    """
    import responses

    from fakes.threecx import ThreeCXFake
    from fakes.transport import install
    from shared.threecx import ThreeCXClient

    fake = ThreeCXFake(client_id=SCENARIO_CLIENT_ID, client_secret=SCENARIO_KEY)
    fake.add_user(FirstName="Seán", LastName="O'Brien", EmailAddress="sean.o'brien@example.com")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install(mock, SCENARIO_BASE_URL, fake)
        real_client = ThreeCXClient(SCENARIO_BASE_URL, SCENARIO_CLIENT_ID, SCENARIO_KEY, sleep=lambda _seconds: None)
        client = _CallRecorder(real_client)
        client.version()
        created = client.create_user(
            {
                "Number": "105",
                "FirstName": "Ada",
                "LastName": "Lovelace",
                "EmailAddress": "ada.lovelace@example.com",
                "Mobile": "+44 20 7946 0000",
                "Enabled": True,
            }
        )
        user_id = int(created.model_dump(by_alias=True)["Id"])
        client.list_users()
        client.list_users(select=["EmailAddress", "DisplayName"])
        client.get_user(user_id)
        client.update_user(user_id, {"DisplayName": "Ada Lovelace", "OutboundCallerID": "+442079460000"})
        client.set_status(user_id, "Away")
        client.set_avatar(user_id, AVATAR_BYTES, "image/png")
        client.delete_user(user_id)
        client.get_user(user_id)  # now absent: the 404 path
        contact = client.create_contact({"FirstName": "Ada", "PhoneNumber": "+442079460000", "Tag": "m365:conformance"})
        client.list_contacts("startswith(Tag,'m365:')")
        client.update_contact(contact.id, {"Title": "Countess"})
        client.delete_contact(contact.id)
        client.delete_contacts([contact.id])
        client.count_users()
        client.count_contacts()
        client.microsoft365_integration()
        client.api_client_roles()
        fake.api_description_text = "openapi: 3.0.4\n"  # served as it is; the document itself is no operation
        client.api_description()
    public = {name for name, value in vars(ThreeCXClient).items() if callable(value) and not name.startswith("_")}
    return public - client.called


@dataclass
class JournalCheck:
    """The outcome of checking recorded requests: what was exercised, what went wrong."""

    checked: int
    left_out: int  # marked deliberately invalid
    exercised: Counter[str]  # operation label -> requests
    problems: list[tuple[Problem, int]]  # distinct problems, each with how often it occurred

    def exercised_report(self, spec_name: str) -> str:
        lines = [
            f"checked {self.checked} 3CX request(s) against {spec_name} "
            f"({self.left_out} deliberately invalid left out); operations exercised:"
        ]
        lines.extend(f"  {label}: {count}" for label, count in sorted(self.exercised.items()))
        return "\n".join(lines)

    def problem_report(self) -> str:
        lines = [f"{len(self.problems)} distinct conformance problem(s) in {self.checked} 3CX request(s):"]
        for problem, count in self.problems:
            where = problem.operation.label if problem.operation else f"{problem.method} {problem.path}"
            location = f" {problem.location}" if problem.location else ""
            lines.append(
                f"  - {where}{location}: {problem.message} ({count} request(s), e.g. {problem.method} {problem.path})"
            )
        lines.append(
            f"A request sent wrong on purpose must carry the header '{DELIBERATELY_INVALID_HEADER}: 1' "
            "to be left out of this check."
        )
        return "\n".join(lines)


def check_journal(spec: XapiSpec, recorded: Iterable[FakeRequest]) -> JournalCheck:
    """Check every request not marked deliberately invalid; group problems by operation and fault."""
    checked = left_out = 0
    exercised: Counter[str] = Counter()
    counts: Counter[tuple[str, str, str]] = Counter()
    first: dict[tuple[str, str, str], Problem] = {}
    for request in recorded:
        if deliberately_invalid(request):
            left_out += 1
            continue
        checked += 1
        found = spec.match(request.method, request.path)
        if not isinstance(found, Problem):
            exercised[found.label] += 1
        for problem in spec.check_request(request):
            counts[problem.key()] += 1
            first.setdefault(problem.key(), problem)
    problems = [(first[key], counts[key]) for key in sorted(first)]
    return JournalCheck(checked, left_out, exercised, problems)


@pytest.mark.conformance
def test_every_3cx_request_fits_the_official_openapi_document() -> None:
    spec_path = locate_spec(PROJECT_ROOT)
    if spec_path is None:
        pytest.skip(missing_spec_reason(PROJECT_ROOT))
    if importlib.util.find_spec(FAKE_MODULE) is None:
        pytest.skip(f"{FAKE_MODULE} does not exist yet: no 3CX journal to check")
    journal = importlib.import_module(FAKE_MODULE).XAPI_JOURNAL
    if not journal:
        not_driven = drive_client_once()
        assert not not_driven, f"drive_client_once does not call ThreeCXClient.{', '.join(sorted(not_driven))}; add it"
    recorded = list(journal)
    assert recorded, (
        "the suite sent no 3CX requests (fakes.threecx.XAPI_JOURNAL is empty), "
        "so there is nothing to check against the OpenAPI document"
    )

    outcome = check_journal(XapiSpec.load(spec_path), recorded)
    print("\n" + outcome.exercised_report(spec_path.name))  # shown with -rA
    assert outcome.checked, "every recorded 3CX request was marked deliberately invalid: nothing left to check"
    assert not outcome.problems, outcome.problem_report()


def test_journal_check_groups_problems_and_leaves_out_marked_requests() -> None:
    spec_path = locate_spec(PROJECT_ROOT)
    if spec_path is None:
        pytest.skip(missing_spec_reason(PROJECT_ROOT))
    pbx = "https://pbx.example.com"

    def patch(user_id: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> FakeRequest:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        return build_request("PATCH", f"{pbx}/xapi/v1/Users({user_id})", all_headers, json.dumps(body))

    recorded = [
        patch(1, {"FirstName": "Ada"}),
        patch(2, {"Enabled": "yes"}),
        patch(3, {"Enabled": "no"}),  # the same fault on the same operation: counted, not repeated
        patch(4, {"Shoe": 42}, {DELIBERATELY_INVALID_HEADER: "1"}),
        build_request("GET", f"{pbx}/xapi/v1/Users?$top=1", {}, None),
        build_request("GET", f"{pbx}/xapi/v1/Userz", {}, None),
    ]
    outcome = check_journal(XapiSpec.load(spec_path), recorded)

    assert (outcome.checked, outcome.left_out) == (5, 1)
    assert outcome.exercised == Counter({"PATCH /Users({Id}) (UpdateUser)": 3, "GET /Users (ListUser)": 1})
    assert [(problem.location, count) for problem, count in outcome.problems] == [("", 1), ("body $.Enabled", 2)]
    report = outcome.problem_report()
    assert "PATCH /Users({Id}) (UpdateUser) body $.Enabled: expected boolean or null, got string" in report
    assert "no operation GET /Userz in the spec" in report
    assert "Shoe" not in report
    assert f"{DELIBERATELY_INVALID_HEADER}: 1" in report


# -- the machinery around the check (no spec needed) ------------------------------------------
class _Item:
    def __init__(self, name: str, marked: bool) -> None:
        self.name = name
        self.marked = marked

    def get_closest_marker(self, name: str) -> object | None:
        return object() if self.marked and name == "conformance" else None


def test_conformance_items_move_to_the_end_in_their_order() -> None:
    items = [_Item("a", False), _Item("check1", True), _Item("b", False), _Item("check2", True), _Item("c", False)]
    assert [item.name for item in conformance_last(items)] == ["a", "b", "c", "check1", "check2"]


def test_deliberately_invalid_requests_are_recognised_by_their_header() -> None:
    marked = build_request("PATCH", "https://pbx/xapi/v1/Users(1)", {"x-test-deliberately-invalid": "1"}, b"{}")
    plain = build_request("PATCH", "https://pbx/xapi/v1/Users(1)", {}, b"{}")
    assert deliberately_invalid(marked)
    assert not deliberately_invalid(plain)

"""The OpenAPI checker itself, against 3CX's real XAPI document.

Tests that need the document skip (with the reason naming where it was looked for) when it
is absent; the tests of `locate_spec` need no document and always run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from fakes.transport import FakeRequest, build_request
from tests.xapi_spec import (
    PROJECT_ROOT,
    SPEC_ENV,
    Operation,
    Problem,
    XapiSpec,
    default_spec_path,
    locate_spec,
    missing_spec_reason,
)

PBX = "https://pbx.example.com:5001"


def xapi(method: str, path_and_query: str, body: Any = None, content_type: str = "application/json") -> FakeRequest:
    """A request as the 3CX fake would record it (path relative to the PBX root)."""
    headers: dict[str, str] = {}
    raw: bytes | None = None
    if body is not None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        headers["Content-Type"] = content_type
    return build_request(method, f"{PBX}/xapi/v1{path_and_query}", headers, raw)


@pytest.fixture(scope="module")
def spec() -> XapiSpec:
    path = locate_spec(PROJECT_ROOT)
    if path is None:
        pytest.skip(missing_spec_reason(PROJECT_ROOT))
    return XapiSpec.load(path)


# -- locating the document ------------------------------------------------------------------
def test_locate_spec_honours_the_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = tmp_path / "swagger.yaml"
    chosen.write_text("openapi: 3.0.4\npaths: {}\n", encoding="utf-8")
    monkeypatch.setenv(SPEC_ENV, str(chosen))
    assert locate_spec(tmp_path / "project") == chosen


def test_relative_environment_path_is_taken_from_the_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "specs").mkdir(parents=True)
    (project / "specs" / "xapi.yaml").write_text("openapi: 3.0.4\n", encoding="utf-8")
    monkeypatch.setenv(SPEC_ENV, "specs/xapi.yaml")
    assert locate_spec(project) == project / "specs" / "xapi.yaml"


def test_default_place_is_beside_the_project_and_used_when_the_variable_misses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "main"
    project.mkdir()
    reference = tmp_path / "shared" / "reference" / "3cx-xapi-20.0.10.yaml"
    reference.parent.mkdir(parents=True)
    reference.write_text("openapi: 3.0.4\n", encoding="utf-8")
    monkeypatch.setenv(SPEC_ENV, str(tmp_path / "nowhere.yaml"))
    assert default_spec_path(project) == reference
    assert locate_spec(project) == reference


def test_no_document_gives_none_and_a_reason_naming_both_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "main"
    project.mkdir()
    monkeypatch.setenv(SPEC_ENV, str(tmp_path / "nowhere.yaml"))
    assert locate_spec(project) is None
    reason = missing_spec_reason(project)
    assert SPEC_ENV in reason
    assert str(tmp_path / "nowhere.yaml") in reason
    assert str(tmp_path / "shared" / "reference" / "3cx-xapi-20.0.10.yaml") in reason


def test_reason_says_when_the_variable_is_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SPEC_ENV, raising=False)
    assert f"${SPEC_ENV} (unset)" in missing_spec_reason(tmp_path)


# -- operations and paths -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path_and_query", "operation_id"),
    [
        ("GET", "/Users?$top=5&$skip=0", "ListUser"),
        (
            "GET",
            "/Users?$count=true&$orderby=Id&$select=Id,Number&$filter=tolower(EmailAddress) eq 'a@b.c'",
            "ListUser",
        ),
        ("GET", "/Users(12)", "GetUser"),
        ("GET", "/Users(Number='101')", "GetUserByNumber"),
        ("GET", "/Users(Number='O''Brien')", "GetUserByNumber"),
        ("GET", "/Users/Pbx.GetFirstAvailableExtensionNumber()", "GetFirstAvailableExtensionNumber"),
        ("GET", "/Users(12)/ForwardingProfiles", "ListForwardingProfiles"),
        ("DELETE", "/Users(12)", "DeleteUser"),
        ("GET", "/SystemStatus", None),
        ("GET", "/Defs?$select=Id", None),
    ],
)
def test_requests_without_a_body_that_conform(
    spec: XapiSpec, method: str, path_and_query: str, operation_id: str | None
) -> None:
    request = xapi(method, path_and_query)
    assert spec.check(request) == []
    found = spec.match(request.method, request.path)
    assert isinstance(found, Operation)
    if operation_id:
        assert found.operation_id == operation_id


def test_patch_by_number_is_not_an_operation(spec: XapiSpec) -> None:
    # The document offers only GET on the alternate key; updates go through the Id.
    problems = spec.check(xapi("PATCH", "/Users(Number='1')", {"FirstName": "A"}))
    assert len(problems) == 1
    assert "no operation PATCH /Users(Number='1') in the spec" in problems[0]
    assert "allows GET" in problems[0]


def test_unknown_path_is_not_an_operation(spec: XapiSpec) -> None:
    assert spec.check(xapi("GET", "/Userz(1)")) == ["GET /xapi/v1/Userz(1): no operation GET /Userz(1) in the spec"]


def test_string_key_must_be_an_odata_literal(spec: XapiSpec) -> None:
    (problem,) = spec.check(xapi("GET", "/Users(Number=101)"))
    assert "no operation GET /Users(Number=101)" in problem
    assert "string literal in single quotes" in problem


def test_integer_key_must_be_an_integer(spec: XapiSpec) -> None:
    (problem,) = spec.check(xapi("GET", "/Users('12')"))
    assert "needs Id as an integer" in problem


def test_paths_outside_the_xapi_root_are_reported(spec: XapiSpec) -> None:
    request = build_request("POST", f"{PBX}/connect/token", {}, b"")
    assert spec.check(request) == ["POST /connect/token: not under the XAPI root /xapi/v1"]


def test_every_operation_of_the_document_is_matched_by_its_own_paths(spec: XapiSpec) -> None:
    """Fill each template with a value of the declared type: it must name that operation only."""
    samples = {"integer": "7", "boolean": "true"}
    formats = {"date-time": "2024-05-01T08:00:00Z", "uuid": "0f8fad5b-d9cb-469f-a165-70867728950e"}
    operations = list(spec.operations())
    assert len(operations) > 500
    for operation in operations:
        parameters = dict(operation.path_parameters)

        def value(match: re.Match[str], parameters: dict[str, Any] = parameters) -> str:
            schema = parameters.get(match.group(1), {})
            return formats.get(schema.get("format"), samples.get(schema.get("type"), "'x'"))

        concrete = re.sub(r"\{(\w+)\}", value, operation.template)
        assert spec.match(operation.method, "/xapi/v1" + concrete) is operation, concrete


# -- query options -----------------------------------------------------------------------------
def test_undeclared_query_option_fails(spec: XapiSpec) -> None:
    (problem,) = spec.check(xapi("GET", "/Users?$bogus=1"))
    assert problem.startswith("GET /xapi/v1/Users: query $bogus: ")
    assert "$top" in problem  # the message lists what is declared


def test_query_option_of_the_wrong_kind_fails(spec: XapiSpec) -> None:
    problems = spec.check(xapi("GET", "/Users?$top=ten&$count=yes&$skip=-1"))
    assert len(problems) == 3
    assert any("query $top: expected an integer" in p for p in problems)
    assert any("query $count: expected true or false" in p for p in problems)
    assert any("query $skip: must be at least 0" in p for p in problems)


def test_query_options_are_per_operation(spec: XapiSpec) -> None:
    # A single-entity GET takes $select/$expand but not collection options such as $top.
    assert spec.check(xapi("GET", "/Users(12)?$select=Id,Number")) == []
    (problem,) = spec.check(xapi("GET", "/Users(12)?$top=1"))
    assert "query $top" in problem


# -- bodies ---------------------------------------------------------------------------------------
def test_valid_patch_of_a_user_passes(spec: XapiSpec) -> None:
    assert spec.check(xapi("PATCH", "/Users(5)", {"FirstName": "A"})) == []


def test_unknown_property_fails_naming_it(spec: XapiSpec) -> None:
    problems = spec.check(xapi("PATCH", "/Users(5)", {"FirstName": "A", "GivenName": "A"}))
    assert problems == ["PATCH /xapi/v1/Users(5): body $.GivenName: property 'GivenName' is not declared by User"]


def test_wrong_type_fails_naming_the_field(spec: XapiSpec) -> None:
    problems = spec.check(xapi("PATCH", "/Users(5)", {"Enabled": "yes"}))
    assert problems == ["PATCH /xapi/v1/Users(5): body $.Enabled: expected boolean or null, got string"]


def test_properties_inherited_through_all_of_are_declared(spec: XapiSpec) -> None:
    # Number comes from Pbx.DN, CallUsEnableChat from Pbx.ClickToCall, FirstName from Pbx.User.
    body = {"Number": "101", "CallUsEnableChat": True, "FirstName": "Ada", "EmailAddress": None}
    assert spec.check(xapi("POST", "/Users", body)) == []


def test_nested_objects_are_validated_and_closed(spec: XapiSpec) -> None:
    problems = spec.check(xapi("PATCH", "/Users(5)", {"BreakTime": {"Type": "Sometimes", "Colour": "red"}}))
    assert len(problems) == 2
    assert any(
        p.startswith('PATCH /xapi/v1/Users(5): body $.BreakTime.Type: "Sometimes" is not one of') for p in problems
    )
    assert any("body $.BreakTime.Colour: property 'Colour' is not declared" in p for p in problems)


def test_nullable_reference_accepts_null_and_still_checks_objects(spec: XapiSpec) -> None:
    assert spec.check(xapi("PATCH", "/Users(5)", {"BreakTime": None})) == []
    (problem,) = spec.check(xapi("PATCH", "/Users(5)", {"BreakTime": 3}))
    assert "body $.BreakTime: expected object, got integer" in problem


def test_flag_enums_accept_odata_combinations(spec: XapiSpec) -> None:
    assert spec.check(xapi("PATCH", "/Users(5)", {"TranscriptionMode": "Voicemail, Recordings"})) == []
    (problem,) = spec.check(xapi("PATCH", "/Users(5)", {"TranscriptionMode": "Voicemail, Fax"}))
    assert 'body $.TranscriptionMode: "Voicemail, Fax" is not a combination of' in problem


def test_array_items_are_located_by_index(spec: XapiSpec) -> None:
    assert spec.check(xapi("POST", "/Users/Pbx.BatchDelete", {"ids": [1]})) == []
    (problem,) = spec.check(xapi("POST", "/Users/Pbx.BatchDelete", {"ids": [1, "2"]}))
    assert problem == "POST /xapi/v1/Users/Pbx.BatchDelete: body $.ids[1]: expected integer, got string"


def test_a_body_where_none_is_taken_fails(spec: XapiSpec) -> None:
    (problem,) = spec.check(xapi("GET", "/Users", {"FirstName": "A"}))
    assert "body: sent, but GET /Users (ListUser) takes no body" in problem


def test_a_missing_required_body_fails(spec: XapiSpec) -> None:
    (problem,) = spec.check(xapi("PATCH", "/Users(5)"))
    assert "body: missing, but PATCH /Users({Id}) (UpdateUser) requires one" in problem


def test_body_must_be_json_with_a_json_content_type(spec: XapiSpec) -> None:
    (as_text,) = spec.check(xapi("PATCH", "/Users(5)", b'{"FirstName": "A"}', content_type="text/plain"))
    assert "sent as text/plain" in as_text
    (broken,) = spec.check(xapi("PATCH", "/Users(5)", b'{"FirstName": '))
    assert "not valid JSON" in broken


def test_values_of_mistyped_fields_stay_out_of_messages(spec: XapiSpec) -> None:
    (problem,) = spec.check(xapi("PATCH", "/Users(5)", {"VMPIN": 4711, "FirstName": "A"}))
    assert "$.VMPIN" in problem
    assert "4711" not in problem


def test_recursive_schemas_validate_without_endless_expansion(spec: XapiSpec) -> None:
    # Pbx.OAuthClient.RefreshTokens[] -> Pbx.RefreshToken.Client -> Pbx.OAuthClient -> ...
    if "Pbx.OAuthClient" not in spec.json_schema_defs:
        pytest.skip("this version of the document has no Pbx.OAuthClient (added in 20.0.10)")
    nested = {"RefreshTokens": [{"Client": {"RefreshTokens": [{"Client": None, "Bogus": 1}]}}]}
    assert spec.check_component("Pbx.OAuthClient", nested) == [
        "$.RefreshTokens[0].Client.RefreshTokens[0].Bogus: property 'Bogus' is not declared by RefreshToken"
    ]


def test_converted_schemas_are_valid_json_schema(spec: XapiSpec) -> None:
    Draft202012Validator.check_schema({"$defs": spec.json_schema_defs})


# -- problems and speed --------------------------------------------------------------------------
def test_problems_keep_their_operation_for_grouping(spec: XapiSpec) -> None:
    first = spec.check_request(xapi("PATCH", "/Users(5)", {"Enabled": "yes"}))
    second = spec.check_request(xapi("PATCH", "/Users(6)", {"Enabled": "no"}))
    assert all(isinstance(problem, Problem) for problem in [*first, *second])
    assert first[0].key() == second[0].key()
    assert first[0].operation is not None
    assert first[0].operation.operation_id == "UpdateUser"


def test_load_and_validators_are_cached(spec: XapiSpec) -> None:
    path = locate_spec(PROJECT_ROOT)
    assert path is not None
    assert XapiSpec.load(path) is spec
    spec.check(xapi("PATCH", "/Users(1)", {"FirstName": "A"}))
    validators = dict(spec.cached_validators())
    spec.check(xapi("PATCH", "/Users(2)", {"LastName": "B"}))
    assert spec.cached_validators() == validators


def test_two_thousand_requests_are_checked(spec: XapiSpec) -> None:
    # Mirrors a paging-heavy suite; caching keeps this well under a second (benchmarks time it).
    requests = [
        xapi("PATCH", f"/Users({n})", {"FirstName": f"User {n}", "Enabled": n % 2 == 0, "Mobile": None})
        if n % 2
        else xapi("GET", f"/Users?$top=100&$skip={n}&$orderby=Id")
        for n in range(2000)
    ]
    assert [problem for request in requests for problem in spec.check(request)] == []

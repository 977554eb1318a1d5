"""The mutation gate's bookkeeping: how equivalents are matched and how modules are scored."""

from __future__ import annotations

from pathlib import Path

import pytest

from mutation.gate import (
    Equivalent,
    Mutant,
    function_name,
    load_equivalents,
    normalise_change,
    print_report,
    score,
)

CHANGE = "-    if a > b:\n+    if a >= b:"


def mutant(name: str, status: str, change: str = CHANGE, path: str = "sync/users.py") -> Mutant:
    return Mutant(name, path, status, function_name(name), change)


@pytest.mark.parametrize(
    ("name", "function"),
    [
        ("sync.users.x_plan_users__mutmut_12", "plan_users"),
        ("sync.users.xǁDeprovisionGuardǁexceeded__mutmut_3", "DeprovisionGuard.exceeded"),
        ("shared.http.x__short__mutmut_4", "_short"),
        ("shared.http.xǁRetriesExhaustedǁ__init____mutmut_2", "RetriesExhausted.__init__"),
    ],
)
def test_mutants_are_named_by_function_as_the_report_prints_them(name: str, function: str) -> None:
    assert function_name(name) == function


def test_a_change_is_compared_by_its_changed_lines_only() -> None:
    diff = "--- sync/users.py\n+++ sync/users.py\n@@ -1,3 +1,3 @@\n def f():\n-    if a > b:   \n+    if a >= b:\n"
    assert normalise_change(diff) == CHANGE


def test_equivalents_leave_the_score_and_unlisted_survivors_count_against_it() -> None:
    mutants = [mutant(f"sync.users.x_f__mutmut_{i}", "killed", "") for i in range(18)]
    mutants.append(mutant("sync.users.x_f__mutmut_18", "survived"))
    mutants.append(mutant("sync.users.x_f__mutmut_19", "survived", "-    return x\n+    return None"))
    listed = Equivalent("sync.users", "f", CHANGE, "a and b are never equal")
    (module,), unexplained, stale = score(mutants, [listed])
    assert (module.generated, module.killed, module.survived, module.equivalent) == (20, 18, 1, 1)
    assert module.score == pytest.approx(100 * 18 / 19)
    assert [m.name for m in unexplained] == ["sync.users.x_f__mutmut_19"]
    assert stale == []


def test_no_tests_and_suspicious_mutants_are_not_killed() -> None:
    mutants = [mutant("sync.users.x_f__mutmut_1", "no tests"), mutant("sync.users.x_f__mutmut_2", "timeout", "")]
    (module,), unexplained, _ = score(mutants, [])
    assert (module.killed, module.survived) == (1, 1)
    assert [m.status for m in unexplained] == ["no tests"]


def test_an_entry_matches_only_its_own_module_and_function() -> None:
    elsewhere = [
        Equivalent("sync.presence", "f", CHANGE, "other module"),
        Equivalent("sync.users", "g", CHANGE, "other function"),
    ]
    (module,), unexplained, stale = score([mutant("sync.users.x_f__mutmut_1", "survived")], elsewhere)
    assert module.equivalent == 0
    assert len(unexplained) == 1
    assert stale == elsewhere


def test_an_entry_no_longer_surviving_fails_the_gate(capsys: pytest.CaptureFixture[str]) -> None:
    listed = Equivalent("sync.users", "f", CHANGE, "was equivalent once")
    modules, unexplained, stale = score([mutant("sync.users.x_f__mutmut_1", "killed", "")], [listed])
    assert modules[0].score == 100.0
    assert stale == [listed]
    assert print_report(modules, unexplained, stale, 95.0) is False
    assert "no longer surviving" in capsys.readouterr().out


def test_a_module_below_the_minimum_fails_and_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    mutants = [mutant("sync.users.x_f__mutmut_1", "killed", ""), mutant("sync.users.x_f__mutmut_2", "survived")]
    modules, unexplained, stale = score(mutants, [])
    assert print_report(modules, unexplained, stale, 95.0) is False
    out = capsys.readouterr().out
    assert "sync/users.py" in out and "below 95%" in out
    assert "if a >= b:" in out  # the survivor's change is shown, so one can write the test that kills it
    assert print_report(modules, unexplained, stale, 50.0) is True


def test_the_list_is_read_with_reasons_and_an_entry_without_one_is_refused(tmp_path: Path) -> None:
    listing = tmp_path / "equivalent.toml"
    listing.write_text(
        "[[equivalent]]\nmodule = 'sync.users'\nfunction = 'f'\n"
        "change = '''\n-    if a > b:\n+    if a >= b:\n'''\nreason = 'a and b are never equal'\n",
        encoding="utf-8",
    )
    (entry,) = load_equivalents(listing)
    assert (entry.module, entry.function, entry.change) == ("sync.users", "f", CHANGE)
    listing.write_text(listing.read_text(encoding="utf-8").replace("a and b are never equal", " "), encoding="utf-8")
    with pytest.raises(SystemExit, match="gives no reason"):
        load_equivalents(listing)


def test_the_projects_list_is_well_formed() -> None:
    for entry in load_equivalents():
        assert entry.module.startswith(("sync.", "shared.")), entry
        assert entry.change.count("\n") >= 1, f"{entry.function}: a change has a '-' and a '+' line"

"""Mutation gate: do the fast tests notice when a business rule breaks?

Runs mutmut over the rule modules named in `[tool.mutmut] only_mutate` (pyproject.toml)
against the fast, no-I/O tests named there, then prints per module how many mutants were
generated, killed, survived and judged equivalent, and the score:

    score = killed / (generated - equivalent)

A mutant is *equivalent* when no input can tell it from the original (a case-insensitive
header lookup written in another case, say). Each one is listed, with the reason, in
`mutation/equivalent.toml`, which this script reads, so the list is reviewed like code
rather than hidden behind a lower threshold. An entry that no longer matches a surviving
mutant (the mutant is killed now, or the code moved) fails the gate too: remove it.

Exit status: 0 when every module scores at least `--min-score` (95 by default) and the
equivalents list is current; 1 otherwise; 2 when mutmut itself could not run.

    python mutation/gate.py            # full run (under a minute on two cores)
    python mutation/gate.py --report   # score the results of the last run again
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = Path(__file__).resolve().parent / "equivalent.toml"
MUTANTS_DIR = ROOT / "mutants"
RUN_LOG = ROOT / ".mutmut.log"

# mutmut's verdicts that mean "a test failed because of the mutant".
KILLED = {"killed", "timeout", "caught by type check", "segfault"}


@dataclass(frozen=True)
class Mutant:
    """One generated mutant: where it is and what it changed."""

    name: str  # mutmut's key, e.g. sync.users.x_plan_users__mutmut_12
    path: str  # source file, e.g. sync/users.py
    status: str  # mutmut's verdict
    function: str  # plan_users, or DeprovisionGuard.exceeded for a method
    change: str  # the '-'/'+' lines of the diff, right-stripped

    @property
    def module(self) -> str:
        return self.path.removesuffix(".py").replace("/", ".")


@dataclass(frozen=True)
class Equivalent:
    module: str
    function: str
    change: str
    reason: str


@dataclass
class ModuleScore:
    path: str
    generated: int = 0
    killed: int = 0
    survived: int = 0
    equivalent: int = 0

    @property
    def score(self) -> float:
        counted = self.generated - self.equivalent
        return 100.0 if counted == 0 else 100.0 * self.killed / counted


def normalise_change(text: str) -> str:
    """The diff lines that carry the mutation, comparable across runs and files."""
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    return "\n".join(line for line in lines if line.startswith(("-", "+")) and not line.startswith(("---", "+++")))


def load_equivalents(path: Path = EQUIVALENTS) -> list[Equivalent]:
    if not path.exists():
        return []
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    entries = []
    for number, raw in enumerate(data.get("equivalent", []), start=1):
        missing = {"module", "function", "change", "reason"} - raw.keys()
        if missing:
            raise SystemExit(f"{path.name}: entry {number} lacks {', '.join(sorted(missing))}")
        if not raw["reason"].strip():
            raise SystemExit(f"{path.name}: entry {number} ({raw['function']}) gives no reason")
        entries.append(Equivalent(raw["module"], raw["function"], normalise_change(raw["change"]), raw["reason"]))
    return entries


def function_name(mutant_name: str) -> str:
    """`sync.users.xǁGuardHoldǁdescribe__mutmut_1` → `GuardHold.describe`; `x_plan_users…` → `plan_users`."""
    mangled = mutant_name.partition("__mutmut_")[0].rpartition(".")[2]
    if "ǁ" in mangled:
        _, cls, method = mangled.split("ǁ", 2)
        return f"{cls}.{method}"
    return mangled.removeprefix("x_")


def collect_mutants() -> list[Mutant]:
    """Every mutant of the last run with its verdict and diff (read through mutmut's own API)."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.file_utils import walk_mutatable_files

    mutants = []
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        for name, exit_code in data.exit_code_by_key.items():
            status = status_by_exit_code[exit_code]
            change = "" if status in KILLED else normalise_change(get_diff_for_mutant(name, path=path))
            mutants.append(Mutant(name, str(path), status, function_name(name), change))
    return mutants


def score(
    mutants: list[Mutant], equivalents: list[Equivalent]
) -> tuple[list[ModuleScore], list[Mutant], list[Equivalent]]:
    """Scores per module, the survivors nobody has judged equivalent, and stale list entries."""
    by_path: dict[str, ModuleScore] = {}
    used: Counter[Equivalent] = Counter()
    unexplained = []
    for mutant in mutants:
        module = by_path.setdefault(mutant.path, ModuleScore(mutant.path))
        module.generated += 1
        if mutant.status in KILLED:
            module.killed += 1
            continue
        match = next(
            (
                entry
                for entry in equivalents
                if (entry.module, entry.function, entry.change) == (mutant.module, mutant.function, mutant.change)
            ),
            None,
        )
        if match is not None:
            used[match] += 1
            module.equivalent += 1
        else:
            module.survived += 1
            unexplained.append(mutant)
    stale = [entry for entry in equivalents if not used[entry]]
    return sorted(by_path.values(), key=lambda m: m.path), unexplained, stale


def print_report(
    modules: list[ModuleScore], unexplained: list[Mutant], stale: list[Equivalent], min_score: float
) -> bool:
    """Print the table and what needs attention; True when the gate passes."""
    passed = True
    if unexplained:
        print("Surviving mutants (a test should fail for each, or list it in mutation/equivalent.toml):")
        for mutant in unexplained:
            print(f"\n  {mutant.name}  [{mutant.status}]  {mutant.function}")
            for line in mutant.change.splitlines():
                print(f"    {line}")
        print()
    if stale:
        passed = False
        print("Listed as equivalent but no longer surviving (remove from mutation/equivalent.toml):")
        for entry in stale:
            print(f"  {entry.module}.{entry.function}: {entry.change.splitlines()[0].strip()}")
        print()
    header = f"{'module':<24}{'generated':>10}{'killed':>8}{'survived':>10}{'equivalent':>12}{'score':>9}"
    print(header)
    print("-" * len(header))
    for module in modules:
        flag = "" if module.score >= min_score else f"   below {min_score:g}%"
        passed = passed and module.score >= min_score
        print(
            f"{module.path:<24}{module.generated:>10}{module.killed:>8}{module.survived:>10}"
            f"{module.equivalent:>12}{module.score:>8.1f}%{flag}"
        )
    return passed


def run_mutmut(max_children: int) -> int:
    """A fresh mutmut run; its chatty progress goes to .mutmut.log, shown only when it fails."""
    shutil.rmtree(MUTANTS_DIR, ignore_errors=True)
    workers = f"{max_children} worker{'s' if max_children > 1 else ''}"
    print(f"mutation testing the rule modules with mutmut ({workers}); progress in {RUN_LOG.name}", file=sys.stderr)
    started = time.monotonic()
    with RUN_LOG.open("w", encoding="utf-8") as log:
        result = subprocess.run(  # noqa: S603 - our own interpreter running mutmut
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    print(f"mutmut finished in {time.monotonic() - started:.0f} s", file=sys.stderr)
    if result.returncode != 0:
        tail = RUN_LOG.read_text(encoding="utf-8", errors="replace").replace("\r", "\n").splitlines()[-30:]
        print("\n".join(tail), file=sys.stderr)
    return result.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="Reads mutation/equivalent.toml.")
    parser.add_argument("--report", action="store_true", help="score the last run again instead of running mutmut")
    parser.add_argument("--min-score", type=float, default=95.0, help="lowest score a module may have (default 95)")
    parser.add_argument(
        "--max-children", type=int, default=os.cpu_count() or 1, help="parallel mutant runs (default: one per core)"
    )
    args = parser.parse_args(argv)

    if not args.report and run_mutmut(args.max_children) != 0:
        print("mutmut could not run; see above", file=sys.stderr)
        return 2
    if not MUTANTS_DIR.exists():
        print("no mutmut results yet: run without --report first", file=sys.stderr)
        return 2
    os.chdir(ROOT)  # mutmut's API reads pyproject.toml and mutants/ relative to the working directory
    modules, unexplained, stale = score(collect_mutants(), load_equivalents())
    return 0 if print_report(modules, unexplained, stale, args.min_score) else 1


if __name__ == "__main__":
    sys.exit(main())

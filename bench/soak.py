"""Chaos soak: a simulated tenant lives through a compressed week while everything around it fails; prints JSON.

A company of a few hundred people (hires, leavers, renames, photo changes, meetings,
shared-mailbox contact edits, and hand-made changes in the 3CX console) on a simulated
clock, while the fakes and the soak inject faults at random: 5xx from Graph and 3CX,
connections dropped before or after a write took effect, 429 storms with Retry-After,
dropped, duplicated and reordered change notifications, lost queue messages, an Azurite
restart, a revoked 3CX token, expired delta links and a removed subscription. Then every
fault is lifted, one quiet reconcile runs, and the soak checks that 3CX equals what
Microsoft 365 says (users, numbers, statuses, the company phonebook), that nothing is
duplicated, no change was lost, every failed action is in a run record, and no secret
appears in any log line, HTTP answer, CLI output or run record.

The JSON has the faults injected and struck by kind, the tenant's events, the traffic,
`converge` (the problems found when the faults were lifted, whether the connector converged
on its own in the quiet while, the time from the faults lifted to the verdict, simulated and
wall, and the quiet reconcile's own time), each check with its counts and first problems, and
`known_gaps` (faults in code changed elsewhere, reported apart: bench/chaos/known_gaps.py).
Exit code 0 when every check passes, 1 otherwise. The same seed gives the same week.

Usage: `python bench/soak.py [--seed N] [--users N] [--days D] [--steps-per-day N]
[--fault-intensity X] [--life-intensity X] [--short] [--progress] [--log FILE]`; `--short`
is the quick run `make test` includes (tests/integration/test_soak.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chaos.runner import SoakConfig, run_soak  # noqa: E402

SHORT = {"users": 25, "days": 1.5, "steps_per_day": 8, "fault_intensity": 2.0, "life_intensity": 3.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="the random seed: the same seed gives the same week")
    parser.add_argument(
        "--users", type=int, default=SoakConfig.users, help=f"staff at the start (default {SoakConfig.users})"
    )
    parser.add_argument(
        "--days", type=float, default=SoakConfig.days, help=f"simulated days (default {SoakConfig.days:g})"
    )
    parser.add_argument(
        "--steps-per-day",
        type=int,
        default=SoakConfig.steps_per_day,
        help=f"steps a simulated day is cut into; timers fire at most once a step (default {SoakConfig.steps_per_day})",
    )
    parser.add_argument(
        "--fault-intensity",
        type=float,
        default=SoakConfig.fault_intensity,
        help="multiplies every fault rate (default 1; every kind is injected at least once anyway)",
    )
    parser.add_argument(
        "--calendar-refresh-minutes",
        type=int,
        default=SoakConfig.calendar_refresh_minutes,
        help="CALENDAR_REFRESH_MINUTES for the connector (default %(default)s: a compressed week re-reads less often)",
    )
    parser.add_argument(
        "--life-intensity",
        type=float,
        default=SoakConfig.life_intensity,
        help="multiplies the company's event rates (hires, meetings, contact edits, ...; default 1)",
    )
    parser.add_argument("--short", action="store_true", help="the quick run of `make test`: " + json.dumps(SHORT))
    parser.add_argument("--progress", action="store_true", help="a line on stderr per simulated day")
    parser.add_argument("--log", type=Path, help="write every log line the connector wrote to this file")
    args = parser.parse_args(argv)
    values = {
        "seed": args.seed,
        "users": args.users,
        "days": args.days,
        "steps_per_day": args.steps_per_day,
        "fault_intensity": args.fault_intensity,
        "calendar_refresh_minutes": args.calendar_refresh_minutes,
        "life_intensity": args.life_intensity,
        "progress": args.progress,
        "log_path": args.log,
    }
    if args.short:
        values.update(SHORT)
    report = run_soak(SoakConfig(**values))
    print(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

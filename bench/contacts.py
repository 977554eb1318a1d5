"""Benchmark of the contacts sync (the company phonebook); prints one JSON object.

Shared mailboxes with 25,000 contacts in all (the fakes served over HTTPS, real Azurite).
`python -m sync contacts --json` runs twice in a child process: the initial sync and a
no-change re-sync. Reported: wall time, the child's peak RSS, Graph requests by route, 3CX
requests by kind (XAPI writes counted apart from token requests). Targets for the re-sync:
zero 3CX writes, Graph requests only delta pages, under 10 s.
Usage: `python bench/contacts.py [--mailboxes 5] [--per-mailbox 5000]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devhost.stack import local_stack  # noqa: E402

_CHILD = (
    "import resource, sys\n"
    "from sync.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stderr.write('PEAK_RSS_KB=%d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def _tcx_counts(pbx, tokens_before: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """3CX requests by kind: token POSTs are not phonebook writes."""
    methods = pbx.request_counts
    tokens = pbx.tokens_issued - tokens_before
    return {
        "token": tokens,
        "xapi_read": methods["GET"],
        "xapi_write": methods["POST"] + methods["PATCH"] + methods["DELETE"] - tokens,
    }


def _run(env: dict[str, str], stack) -> dict[str, object]:  # type: ignore[no-untyped-def]
    stack.graph.reset_counts()
    stack.pbx.reset_counts()
    before = stack.pbx.tokens_issued
    started = time.perf_counter()
    child = subprocess.run(  # noqa: S603
        [sys.executable, "-c", _CHILD, "contacts", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if child.returncode not in (0, 1):
        raise SystemExit(f"contacts sync failed ({child.returncode}): {child.stderr[-2000:]}")
    peak_kb = int(next(line for line in child.stderr.splitlines() if line.startswith("PEAK_RSS_KB=")).split("=")[1])
    result = json.loads(child.stdout)
    routes = {route: n for route, n in stack.graph.route_counts.items() if n}
    return {
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "result": {k: result[k] for k in ("created", "updated", "deleted", "unchanged", "failed", "skipped")},
        "phonebooks": result["phonebooks"],
        "graph_requests_by_route": routes,
        "graph_requests_total": sum(routes.values()),
        "graph_only_delta_pages": all(route.endswith("/delta") for route in routes),
        "tcx_requests": _tcx_counts(stack.pbx, before),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=5, help="shared mailboxes (default 5)")
    parser.add_argument("--per-mailbox", type=int, default=5000, help="contacts in each (default 5000)")
    args = parser.parse_args()

    mailboxes = [f"directory{number}@bench.example" for number in range(args.mailboxes)]
    extra = {"STATE_TABLE_PREFIX": "bench", "SHARED_MAILBOXES": ",".join(mailboxes)}
    with local_stack(extra) as stack:
        for number, address in enumerate(mailboxes):
            mailbox = stack.graph.add_user(address, account_enabled=False)
            for index in range(args.per_mailbox):
                stack.graph.add_contact(
                    mailbox,
                    givenName=f"Given{index}",
                    surname=f"Surname{number}x{index}",
                    companyName=f"Supplier {number} Ltd",
                    emailAddresses=[{"address": f"contact{index}@supplier{number}.example"}],
                    businessPhones=[f"+44 20 79{number:02d} {index % 10000:04d}"],
                )
        env = {**os.environ}
        initial = _run(env, stack)
        resync = _run(env, stack)

    targets = {
        "resync_zero_tcx_writes": resync["tcx_requests"].get("xapi_write", 0) == 0,  # type: ignore[union-attr]
        "resync_graph_only_delta_pages": resync["graph_only_delta_pages"],
        "resync_under_10s": resync["wall_seconds"] < 10,  # type: ignore[operator]
    }
    report = {
        "benchmark": "contacts",
        "shared_mailboxes": args.mailboxes,
        "contacts_per_mailbox": args.per_mailbox,
        "initial_sync": initial,
        "no_change_resync": resync,
        "targets_met": targets,
    }
    print(json.dumps(report, indent=2))
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

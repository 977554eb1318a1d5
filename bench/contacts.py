"""Benchmark of the contacts sync; prints one JSON object.

A shared mailbox with 5,000 contacts and 200 users with 100 personal contacts each (the
fakes served over HTTPS, real Azurite). `python -m sync contacts --json` runs twice in a
child process: the initial sync and a no-change re-sync. Reported: wall time, the child's
peak RSS, Graph requests by route, 3CX requests by kind (XAPI writes counted apart from
token and personal-phonebook session requests). Targets for the re-sync: zero 3CX writes,
Graph requests only delta pages, under 10 s.
Usage: `python bench/contacts.py [--shared 5000] [--users 200] [--per-user 100]`.
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
from sync.records import Link  # noqa: E402
from sync.runtime import process_runtime  # noqa: E402

_CHILD = (
    "import resource, sys\n"
    "from sync.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stderr.write('PEAK_RSS_KB=%d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    "sys.exit(code)\n"
)
SHARED = "directory@bench.example"


def _tcx_counts(pbx, before: tuple[int, int]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """3CX requests by kind: token and MyPhone-session POSTs are not phonebook writes."""
    methods = pbx.request_counts
    tokens = pbx.tokens_issued - before[0]
    sessions = pbx.sessions_opened - before[1]
    return {
        "token": tokens,
        "session": sessions,
        "xapi_read": methods["GET"],
        "xapi_write": methods["POST"] + methods["PATCH"] + methods["DELETE"] - tokens - sessions,
    }


def _run(env: dict[str, str], stack) -> dict[str, object]:  # type: ignore[no-untyped-def]
    stack.graph.reset_counts()
    stack.pbx.reset_counts()
    before = (stack.pbx.tokens_issued, stack.pbx.sessions_opened)
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
    parser.add_argument("--shared", type=int, default=5000, help="contacts in the shared mailbox (default 5000)")
    parser.add_argument("--users", type=int, default=200, help="users with personal contacts (default 200)")
    parser.add_argument("--per-user", type=int, default=100, help="personal contacts per user (default 100)")
    args = parser.parse_args()

    extra = {
        "STATE_TABLE_PREFIX": "bench",
        "SHARED_MAILBOXES": SHARED,
        "SYNC_PERSONAL_CONTACTS": "true",
    }
    with local_stack(extra) as stack:
        mailbox = stack.graph.add_user(SHARED, account_enabled=False)
        for index in range(args.shared):
            stack.graph.add_contact(
                mailbox,
                givenName=f"Given{index}",
                surname=f"Surname{index}",
                companyName="Supplier Ltd",
                emailAddresses=[{"address": f"contact{index}@supplier.example"}],
                businessPhones=[f"+44 20 7946 {index % 10000:04d}"],
            )
        links = []
        for user in range(args.users):
            user_id = stack.graph.add_user(f"u{user:03d}@bench.example", given_name=f"U{user}", surname="Bench")
            tcx = stack.pbx.add_user(Number=str(30000 + user), EmailAddress=f"u{user:03d}@bench.example")
            links.append(
                Link(
                    m365_id=user_id,
                    upn=f"u{user:03d}@bench.example",
                    tcx_user_id=tcx["Id"],
                    extension=tcx["Number"],
                    origin="created",
                )
            )
            for index in range(args.per_user):
                stack.graph.add_contact(
                    user_id,
                    givenName=f"Friend{index}",
                    surname=f"Of{user}",
                    mobilePhone=f"+44 7700 9{user:02d}{index:03d}"[:17],
                )
        process_runtime().state.import_links(links)
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
        "shared_mailbox_contacts": args.shared,
        "users": args.users,
        "personal_contacts_per_user": args.per_user,
        "initial_sync": initial,
        "no_change_resync": resync,
        "targets_met": targets,
    }
    print(json.dumps(report, indent=2))
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

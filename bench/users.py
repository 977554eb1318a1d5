"""Benchmark of the user sync on a simulated 10,000-user tenant; prints one JSON object.

The fakes run as HTTPS servers in this process; Azurite is real; the sync itself runs as
an administrator would run it, `python -m sync users --json`, in a child process whose
own peak RSS it reports. Two runs: the initial sync (everything created) and a no-change
re-sync. Usage: `python bench/users.py [--users N] [--photo-share 0.1]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fakes.azurite import start_azurite  # noqa: E402
from fakes.graph import GraphFake  # noqa: E402
from fakes.threecx import ThreeCXFake  # noqa: E402
from fakes.transport import local_tls, serve  # noqa: E402

TENANT_ID = "4b1c2d3e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
CLIENT_ID = "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d"

_CHILD = (
    "import resource, sys\n"
    "from sync.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stderr.write('PEAK_RSS_KB=%d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def _run_sync(env: dict[str, str], graph: GraphFake, pbx: ThreeCXFake) -> dict[str, object]:
    graph.reset_counts()
    pbx.reset_counts()
    graph.batch_item_counts.clear()
    tokens_before = pbx.tokens_issued
    started = time.perf_counter()
    child = subprocess.run(  # noqa: S603
        [sys.executable, "-c", _CHILD, "users", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"sync failed ({child.returncode}): {child.stderr[-2000:]}")
    peak_kb = int(next(line for line in child.stderr.splitlines() if line.startswith("PEAK_RSS_KB=")).split("=")[1])
    result = json.loads(child.stdout)
    pbx_counts = dict(pbx.request_counts)
    token_posts = pbx.tokens_issued - tokens_before
    writes = pbx_counts.get("POST", 0) - token_posts + pbx_counts.get("PATCH", 0) + pbx_counts.get("DELETE", 0)
    return {
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "result": {
            key: result[key]
            for key in ("created", "updated", "linked", "deprovisioned", "unchanged", "failed", "avatars")
        },
        "graph_requests": dict(graph.request_counts),
        "graph_requests_total": sum(graph.request_counts.values()),
        "graph_batch_items": sum(graph.batch_item_counts.values()),
        "tcx_requests": pbx_counts,
        "tcx_requests_total": sum(pbx_counts.values()),
        "tcx_token_requests": token_posts,
        "tcx_writes": writes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000, help="simulated tenant size (default 10000)")
    parser.add_argument("--photo-share", type=float, default=0.1, help="share of users with a photo (default 0.1)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="tcx-bench-"))
    tls = local_tls(workdir)
    graph = GraphFake(tenant_id=TENANT_ID, client_id=CLIENT_ID, client_secret="bench-graph-secret")
    pbx = ThreeCXFake(client_id="bench", client_secret="bench-pbx-secret", journal=False)
    photo_every = max(1, round(1 / args.photo_share)) if args.photo_share > 0 else 0
    for index in range(args.users):
        user_id = graph.add_user(
            f"user{index:05d}@bench.example",
            given_name=f"Given{index}",
            surname=f"Surname{index}",
            mobile_phone=f"+44 7700 {index:06d}",
            business_phones=[f"+44 20 7946 {index % 10000:04d}"],
        )
        if photo_every and index % photo_every == 0:
            graph.set_photo(user_id, b"\xff\xd8\xff\xe0" + index.to_bytes(4, "big") * 256)

    with start_azurite(workdir / "azurite") as azurite:
        graph_server = serve(graph, tls=tls.server_context)
        pbx_server = serve(pbx, tls=tls.server_context)
        try:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("GRAPH_", "TCX_", "SYNC_", "USER_SYNC"))},
                "REQUESTS_CA_BUNDLE": str(tls.ca_bundle),
                "GRAPH_TENANT_ID": TENANT_ID,
                "GRAPH_CLIENT_ID": CLIENT_ID,
                "GRAPH_CLIENT_SECRET": "bench-graph-secret",
                "GRAPH_AUTHORITY_HOST": graph_server.url,
                "GRAPH_BASE_URL": f"{graph_server.url}/v1.0",
                "TCX_BASE_URL": pbx_server.url,
                "TCX_CLIENT_ID": "bench",
                "TCX_CLIENT_SECRET": "bench-pbx-secret",
                "AzureWebJobsStorage": azurite.connection_string,
                "EXTENSION_START": "10000",
                "SYNC_PHOTO": "true",
                "SYNC_OFFICE_PHONE": "true",
            }
            initial = _run_sync(env, graph, pbx)
            resync = _run_sync(env, graph, pbx)
        finally:
            graph_server.stop()
            pbx_server.stop()

    targets = {
        "resync_zero_tcx_writes": resync["tcx_writes"] == 0,
        "resync_tcx_requests_le_20": resync["tcx_requests_total"] <= 20,
        "resync_graph_requests_le_600": resync["graph_requests_total"] <= 600,
        "resync_under_30s": resync["wall_seconds"] < 30,
        "initial_under_120s": initial["wall_seconds"] < 120,
        "initial_peak_rss_under_300mb": initial["peak_rss_mb"] < 300,
    }
    report = {
        "benchmark": "user sync",
        "users": args.users,
        "users_with_photo": sum(1 for _ in range(0, args.users, photo_every)) if photo_every else 0,
        "options": {"SYNC_PHOTO": True, "SYNC_OFFICE_PHONE": True},
        "initial_sync": initial,
        "no_change_resync": resync,
        "targets_met": targets,
    }
    print(json.dumps(report, indent=2))
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

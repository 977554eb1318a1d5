"""Benchmark of the Graph webhook: latency of answering notifications; prints one JSON object.

Graph marks an endpoint slow (then drops its notifications) when answers take seconds, so
the webhook must only authenticate and queue. This serves the Function App's real routes
(`function_app.py` through `devhost.serve.make_server`, queue output to real Azurite through
`WorkQueue`), stores a few hundred subscriptions in real Table Storage, and POSTs
notifications as Graph does, one per request, first from one sender, then from eight
concurrent ones (threads on loopback, one `requests.Session` each). It reports latency
percentiles, throughput and how many work messages reached the queue. Target: p99 under
100 ms. Usage: `python bench/webhook.py [--notifications 5000] [--subscriptions 300]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fakes.azurite import start_azurite  # noqa: E402
from shared.queues import WorkQueue  # noqa: E402
from shared.state import StateStore  # noqa: E402
from shared.work_items import parse_work  # noqa: E402
from sync.records import SubscriptionRecord  # noqa: E402

TENANT_ID = "4b1c2d3e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
TARGET_P99_MS = 100.0
REQUEST_TIMEOUT_SECONDS = 10.0


def _subscriptions(count: int) -> list[SubscriptionRecord]:
    expires = datetime.now(UTC) + timedelta(days=3)
    records = []
    for index in range(count):
        user_id = f"00000000-0000-4000-8000-{index:012d}"
        records.append(
            SubscriptionRecord(
                id=f"5ub5c41e-0000-4000-9000-{index:012d}",
                kind="calendar",
                resource=f"users/{user_id}/events",
                user_id=user_id,
                client_state=secrets.token_urlsafe(32),
                expires_at=expires,
            )
        )
    return records


def _notification_body(record: SubscriptionRecord, sequence: int) -> bytes:
    """One change notification shaped as Graph posts it for a calendar subscription."""
    event_id = f"AAMkAGI2TG93AAA{sequence:08d}="
    resource = f"Users/{record.user_id}/Events/{event_id}"
    notification = {
        "id": f"lsgTZMr9KwAAA{sequence}",
        "subscriptionId": record.id,
        "subscriptionExpirationDateTime": record.expires_at.isoformat(),
        "clientState": record.client_state,
        "changeType": ("created", "updated", "deleted")[sequence % 3],
        "resource": resource,
        "tenantId": TENANT_ID,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": resource,
            "@odata.etag": f'W/"DwAAABYAAAA{sequence}"',
            "id": event_id,
        },
    }
    return json.dumps({"value": [notification]}).encode()


def _percentile(sorted_values: list[float], share: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(share * len(sorted_values)) - 1))
    return sorted_values[index]


def _phase(url: str, records: list[SubscriptionRecord], total: int, senders: int, queue: WorkQueue) -> dict:
    """POST `total` notifications from `senders` threads; latency is measured per request."""
    bodies = [_notification_body(records[i % len(records)], i) for i in range(total)]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    queued_before = queue.approximate_message_count()
    cpu_before = time.process_time()

    def sender(share: list[bytes]) -> None:
        own_latencies: list[float] = []
        own_statuses: Counter[int] = Counter()
        with requests.Session() as session:
            for body in share:
                started = time.perf_counter()
                try:
                    response = session.post(
                        url, data=body, headers={"Content-Type": "application/json"}, timeout=REQUEST_TIMEOUT_SECONDS
                    )
                except requests.RequestException as error:
                    with lock:
                        errors.append(type(error).__name__)
                    continue
                own_latencies.append((time.perf_counter() - started) * 1000)
                own_statuses[response.status_code] += 1
        with lock:
            latencies.extend(own_latencies)
            statuses.update(own_statuses)

    threads = [threading.Thread(target=sender, args=(bodies[n::senders],)) for n in range(senders)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    latencies.sort()
    return {
        "senders": senders,
        "notifications": total,
        "wall_seconds": round(wall, 2),
        "throughput_per_second": round(len(latencies) / wall, 1) if wall else None,
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50), 2),
            "p90": round(_percentile(latencies, 0.90), 2),
            "p99": round(_percentile(latencies, 0.99), 2),
            "max": round(latencies[-1], 2),
            "mean": round(statistics.fmean(latencies), 2),
        }
        if latencies
        else None,
        # Server, senders and the queue client share this process: its CPU per request shows saturation.
        "process_cpu_ms_per_request": round(cpu * 1000 / max(1, len(latencies)), 2),
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        "transport_errors": len(errors),
        "queued": queue.approximate_message_count() - queued_before,
    }


def _route_logic_ms(records: list[SubscriptionRecord], total: int) -> float:
    """The webhook's own work per POST (parse, authenticate, build work items), without HTTP or storage."""
    from sync.notifications import receive_notifications

    lookup = {record.id: record for record in records}.get
    bodies = [_notification_body(records[i % len(records)], i) for i in range(total)]
    started = time.perf_counter()
    for body in bodies:
        answer = receive_notifications({}, body, tenant_id=TENANT_ID, lookup=lookup, now=lambda: datetime.now(UTC))
        [item.to_message() for item in answer.work]
    return round((time.perf_counter() - started) * 1000 / total, 4)


def _sample_is_work(queue: WorkQueue) -> bool:
    texts = queue.peek(32)
    return bool(texts) and all(parse_work(text).kind == "calendar" for text in texts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=5_000, help="notifications per phase (default 5000)")
    parser.add_argument("--subscriptions", type=int, default=300, help="stored subscriptions (default 300)")
    parser.add_argument("--senders", default="1,8", help="concurrent senders per phase, comma-separated (default 1,8)")
    args = parser.parse_args()
    sender_counts = [max(1, min(int(n), 32)) for n in args.senders.split(",")]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    workdir = Path(tempfile.mkdtemp(prefix="tcx-bench-webhook-"))
    with start_azurite(workdir / "azurite") as azurite:
        queue_name = "bench-work-" + secrets.token_hex(4)
        os.environ.update(
            {
                "AzureWebJobsStorage": azurite.connection_string,
                "STATE_TABLE_PREFIX": "bench" + secrets.token_hex(4),
                "GRAPH_TENANT_ID": TENANT_ID,
                "WORK_QUEUE": queue_name,
            }
        )
        from devhost.serve import QueueSender, make_server
        from function_app import registered_functions

        state = StateStore.from_connection_string(azurite.connection_string, os.environ["STATE_TABLE_PREFIX"])
        records = _subscriptions(args.subscriptions)
        for record in records:
            state.save_subscription(record)
        queue = WorkQueue.from_connection_string(azurite.connection_string, queue_name)
        queue.ensure()

        server = make_server(registered_functions(), "127.0.0.1", 0, sender=QueueSender(azurite.connection_string))
        thread = threading.Thread(target=server.serve_forever, name="bench-webhook", daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}/api/graph/notifications"
        try:
            # Warm-up outside the measurement: the handshake builds the process runtime.
            handshake = requests.post(f"{url}?validationToken=bench%20warm-up", timeout=REQUEST_TIMEOUT_SECONDS)
            if handshake.status_code != 200 or handshake.text != "bench warm-up":
                raise SystemExit(f"handshake failed: {handshake.status_code} {handshake.text[:200]}")
            phases = [_phase(url, records, args.notifications, count, queue) for count in sender_counts]
            queued_are_work_items = _sample_is_work(queue)
        finally:
            server.shutdown()
            server.server_close()

    worst_p99 = max((p["latency_ms"] or {}).get("p99", float("inf")) for p in phases)
    report = {
        "benchmark": "graph webhook",
        "served_by": "function_app.py routes via devhost.serve.make_server, queue output to Azurite",
        "cpu_count": os.cpu_count(),
        "subscriptions": args.subscriptions,
        "route_logic_ms_per_post": _route_logic_ms(records, args.notifications),
        "notifications_per_phase": args.notifications,
        "phases": phases,
        "target_p99_ms": TARGET_P99_MS,
        "targets": {
            "p99_under_100ms": worst_p99 < TARGET_P99_MS,
            "all_accepted": all(p["statuses"] == {"202": args.notifications} for p in phases),
            "all_queued": all(p["queued"] == args.notifications for p in phases),
            "queued_messages_are_work_items": queued_are_work_items,
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The chaos soak's parts (run by `bench/soak.py`): a simulated week of a tenant's life with faults.

- `clock`: one simulated clock for the fakes and the connector, and a work queue whose
  visibility delays follow it;
- `host`: the Functions host under that clock (timers, the queue worker with its retries,
  poison queue and lost messages);
- `network`: Graph's deliveries to the webhook, dropped, duplicated and reordered;
- `faults`: what is injected, and the tally by kind;
- `tenant`: the company's week (hires, leavers, renames, photos, meetings, contacts,
  hand-made 3CX changes) and what the soak remembers to judge the end by;
- `checks`: 3CX against Microsoft 365 after one quiet reconcile, failed actions against
  run records, and the secrets scan;
- `runner`: the whole soak, start to report.
"""

"""Held-back plans, decided: approve exactly what a guard held in one run, or dismiss it.

A user-sync run whose guard held actions back records them machine-readably with a digest
(`RunRecord.held_actions`, `held_digest`). Approving names the run and the digest it was
shown, so what is applied is exactly what the administrator saw: a fresh plan is made with
the guards released and only the held actions it still contains are applied; the others are
listed as no longer valid. Who decided is logged and kept on both runs.
"""

from __future__ import annotations

import logging

from shared.state import utcnow
from shared.telemetry import log_event
from sync.records import Resolution, RunRecord
from sync.runtime import Runtime
from sync.user_sync import Approval, UserSyncResult, run_user_sync


class HoldNotFound(Exception):
    """No user-sync run with that id holds actions back."""


class HoldChanged(Exception):
    """The hold was decided already, or its content is not what the approval named."""


def pending_holds(rt: Runtime, limit: int = 50) -> list[RunRecord]:
    """User-sync runs with held actions nobody decided yet, newest first."""
    return [run for run in rt.state.recent_runs("users", limit) if run.held_actions and run.resolution is None]


def held_run(rt: Runtime, run_id: str, digest: str | None = None) -> RunRecord:
    """The undecided hold of run `run_id`; with `digest`, only if its content still hashes to it."""
    run = rt.state.get_run(run_id, "users")
    if run is None or not run.held_actions:
        raise HoldNotFound(f"run {run_id} holds no actions back that can be approved")
    if run.resolution is not None:
        raise HoldChanged(f"run {run_id}'s held actions were {run.resolution.decision} by {run.resolution.by}")
    if digest is not None and digest != run.held_digest:
        raise HoldChanged(f"run {run_id}'s held actions are not the ones approved; look at them again")
    return run


def approve_hold(rt: Runtime, run_id: str, by: str, digest: str | None = None, *, trigger: str) -> UserSyncResult:
    """Apply exactly the actions run `run_id` held back (still valid ones), as a new recorded run."""
    run = held_run(rt, run_id, digest)
    approval = Approval(run_id, tuple(run.held_actions), by)
    result = run_user_sync(rt, approval=approval, trigger=trigger)  # LockHeld: nothing applied, still undecided
    log_event(
        "hold_approved", logging.WARNING, run=run_id, by=by, actions=len(run.held_actions), applied_by=result.run_id
    )
    run.resolution = Resolution(decision="approved", by=by, at=utcnow(), run_id=result.run_id)
    rt.state.save_run(run)
    return result


def dismiss_hold(rt: Runtime, run_id: str, by: str, digest: str | None = None) -> RunRecord:
    """Mark run `run_id`'s held actions dismissed; nothing is applied (the next run decides anew)."""
    run = held_run(rt, run_id, digest)
    log_event("hold_dismissed", logging.WARNING, run=run_id, by=by, actions=len(run.held_actions))
    run.resolution = Resolution(decision="dismissed", by=by, at=utcnow())
    rt.state.save_run(run)
    return run

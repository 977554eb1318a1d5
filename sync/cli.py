"""`python -m sync COMMAND`: what the timers and routes run, by hand.

Exit codes follow the contract: 0 done, 1 failed, 2 bad configuration or a malformed
argument (a user that is neither a UPN nor an object id). Plans and `--json` go to
stdout, logs and progress to stderr. A failure prints one line unless --verbose.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from shared.errors import one_line
from shared.identifiers import MalformedId, user_reference
from shared.settings import ConfigError, load_settings
from shared.state import LockHeld
from shared.telemetry import configure_logging
from sync.envelope import RUN_KINDS

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sync",
        description="Keep a 3CX V20 phone system in step with Microsoft 365. Settings come from the environment"
        " (see README).",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging and full tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    users = commands.add_parser(
        "users",
        help="one user sync, exactly what the nightly timer runs",
        description="Sync Microsoft 365 users into 3CX extensions: plan, then apply.",
    )
    users.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    users.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    users.add_argument("--only", metavar="UPN", help="sync just this user now (provision on demand)")
    users.add_argument(
        "--allow-deprovision",
        action="store_true",
        help="apply disables/deletes even beyond the deletion guard (after checking the plan)",
    )
    users.add_argument(
        "--allow-mass-create",
        action="store_true",
        help="apply creations even beyond the same guard's limits (after checking the plan)",
    )
    users.add_argument(
        "--approve",
        metavar="RUN_ID",
        help="apply exactly the actions a guard held back in that run (those still valid), nothing else",
    )
    users.add_argument(
        "--full", action="store_true", help="re-read every Graph user instead of the changes since last run"
    )
    users.add_argument("--verbose", "-v", action="store_true", help=argparse.SUPPRESS)

    options = commands.add_parser(
        "options",
        help="show or set per-user options (sso, office_phone, photo, personal_contacts, calendar)",
        description="Per-user options override the tenant defaults (SYNC_* settings).",
    )
    options_commands = options.add_subparsers(dest="options_command", required=True, metavar="ACTION")
    listing = options_commands.add_parser("list", help="defaults and every user with overrides")
    show = options_commands.add_parser("show", help="one user's effective options")
    show.add_argument("upn")
    setter = options_commands.add_parser(
        "set", help="set overrides, e.g. `set alice@contoso.com photo=false sso=default`"
    )
    setter.add_argument("upn")
    setter.add_argument("assignments", nargs="+", metavar="NAME=true|false|default")
    reset = options_commands.add_parser("reset", help="remove all of a user's overrides")
    reset.add_argument("upn")
    for sub in (listing, show, setter, reset):
        sub.add_argument("--json", action="store_true", help="print JSON")

    presence = commands.add_parser(
        "presence",
        help="one presence pass: refresh due calendars, apply the status each user should have now",
        description="Calendar-driven 3CX status: re-read calendars not read for CALENDAR_REFRESH_MINUTES and set"
        " or restore each user's status as their calendar says now.",
    )
    presence.add_argument("--json", action="store_true", help="print one JSON object")
    presence.add_argument("--refresh-all", action="store_true", help="re-read every calendar, not only due ones")

    subscriptions = commands.add_parser(
        "subscriptions",
        help="create missing, renew expiring, delete orphaned Graph subscriptions",
        description="Graph change-notification subscriptions for calendars and users (needs WEBHOOK_URL).",
    )
    subscriptions.add_argument("--json", action="store_true", help="print one JSON object")

    contacts = commands.add_parser(
        "contacts",
        help="one reconcile of the shared mailboxes' contacts into the 3CX company phonebook",
        description="Outlook contacts → 3CX: the contacts of SHARED_MAILBOXES to the company phonebook. Personal"
        " phonebooks are 3CX's own Microsoft 365 sync (option personal_contacts; see check-pbx).",
    )
    contacts.add_argument("--json", action="store_true", help="print one JSON object")
    contacts.add_argument("--full", action="store_true", help="re-list folders and re-read every contact")

    check = commands.add_parser(
        "check-pbx",
        help="is this PBX ready: its API offers what the connector uses, the API client may, 3CX's own sync is"
        " out of the way",
        description="Reads TCX_BASE_URL/xapi/v1/swagger.yaml (the PBX's own OpenAPI document) and checks it offers"
        " what the connector calls; then the 3CX version, whether the API client can read users and contacts and"
        " (by its role) write them, and 3CX's own Microsoft 365 integration: its user sync must be off, and it"
        " must sync personal contacts if the personal_contacts option is on for anyone. Reads only; exit 1 names"
        " what to fix. Run it before going live and after a 3CX update.",
    )
    check.add_argument("--json", action="store_true", help="print one JSON object")

    runs = commands.add_parser("runs", help="the most recent runs of every kind, newest first, with their counts")
    runs.add_argument("--kind", choices=RUN_KINDS, help="only runs of this kind")
    runs.add_argument("--limit", type=int, default=10, help="how many runs (default 10)")
    runs.add_argument("--json", action="store_true", help="print JSON")

    serve = commands.add_parser(
        "serve",
        help="run locally what Azure runs: the HTTP routes under /api/..., the timers",
        description="Serve the Function App's HTTP routes and fire its timers, without Azure.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=7071, help="port (default 7071, as the Functions host)")
    serve.add_argument("--no-timers", action="store_true", help="serve the routes only")

    commands.add_parser(
        "demo",
        help="the whole product against a simulated tenant and PBX, no account needed",
        description="Start Azurite and simulated Microsoft 365 and 3CX servers, then run the user sync through"
        " a few changes, printing each plan.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.verbose)
    handler: Callable[[argparse.Namespace], int] = {
        "users": _users,
        "options": _options,
        "runs": _runs,
        "presence": _presence,
        "contacts": _contacts,
        "check-pbx": _check_pbx,
        "subscriptions": _subscriptions,
        "serve": _serve,
        "demo": _demo,
    }[args.command]
    try:
        return handler(args)
    except ConfigError as error:
        print(one_line(error), file=sys.stderr)
        return EXIT_CONFIG
    except MalformedId as error:  # a user argument that names no user: like a bad setting, fix and rerun
        print(f"error: {one_line(error)}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_FAILED
    except Exception as error:
        if args.verbose:
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        return EXIT_FAILED


def _runtime() -> Any:
    from sync.runtime import Runtime

    return Runtime(load_settings())


def _progress() -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        if done == total or done % 25 == 0:
            sys.stderr.write(f"\rapplying changes: {done}/{total}")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return show


def _users(args: argparse.Namespace) -> int:
    from sync.plan_output import plan_to_json, render_plan
    from sync.user_sync import run_user_sync

    only = None if args.only is None else user_reference(args.only, "--only")
    rt = _runtime()
    rt.settings.require_user_sync()
    if args.approve is not None and (args.dry_run or only):
        print("error: --approve applies a held plan as a whole; without --dry-run or --only", file=sys.stderr)
        return EXIT_CONFIG
    try:
        if args.approve is not None:
            from sync.held import HoldChanged, HoldNotFound, approve_hold

            try:
                result = approve_hold(rt, args.approve, _cli_user(), trigger="cli")
            except (HoldNotFound, HoldChanged) as error:
                print(f"error: {error}", file=sys.stderr)
                return EXIT_FAILED
        else:
            result = run_user_sync(
                rt,
                dry_run=args.dry_run,
                only_upn=only,
                allow_deprovision=args.allow_deprovision,
                allow_mass_create=args.allow_mass_create,
                full=args.full,
                progress=None if args.json else _progress(),
            )
    except LockHeld as error:
        print(f"error: {error}; try again when it ends", file=sys.stderr)
        return EXIT_FAILED
    failures = [{"upn": o.action.upn, "action": o.action.kind, "error": o.error} for o in result.outcomes if not o.ok]
    if args.json:
        payload = {
            **result.counts,
            "run_id": result.run_id,
            "dry_run": result.dry_run,
            "status": "planned" if result.dry_run else result.status,
            "error": result.aborted or result.refused,
            "failures": failures,
            **plan_to_json(result.plan),
        }
        print(json.dumps(payload, indent=2, default=str))
    else:
        title = "User sync plan (dry run: nothing will change)" if result.dry_run else f"User sync run {result.run_id}"
        print(render_plan(result.plan, title=title))
        if not result.dry_run:
            counts = result.counts
            print(
                f"Applied: {counts['created']} created, {counts['linked']} linked, {counts['updated']} updated,"
                f" {counts['deprovisioned']} deprovisioned, {counts['failed']} failed."
            )
            for failure in failures:
                print(f"  ✗ {failure['action']} {failure['upn']}: {failure['error']}")
    if result.aborted or result.refused:
        print(f"error: {result.aborted or result.refused}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if not failures else EXIT_FAILED


def _options(args: argparse.Namespace) -> int:
    from sync.option_admin import options_report, set_user_options
    from sync.options import parse_option_assignments

    upn = None if args.options_command == "list" else user_reference(args.upn, "UPN")
    rt = _runtime()
    if upn is None:
        report = options_report(rt)
    elif args.options_command == "show":
        report = options_report(rt, upn)
    elif args.options_command == "set":
        try:
            assignments = parse_option_assignments(args.assignments)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_CONFIG
        report = set_user_options(rt, upn, assignments)
    else:
        report = set_user_options(
            rt, upn, dict.fromkeys(("sso", "office_phone", "photo", "personal_contacts", "calendar"))
        )
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    defaults = report["defaults"]
    print("Tenant defaults: " + ", ".join(f"{k}={'on' if v else 'off'}" for k, v in defaults.items()))
    entries = report.get("users") or ([report["user"]] if "user" in report else [])
    if "users" in report and not entries:
        print("No per-user overrides.")
    for entry in entries:
        overrides = ", ".join(f"{k}={'on' if v else 'off'}" for k, v in entry["overrides"].items()) or "none"
        effective = ", ".join(f"{k}={'on' if v else 'off'}" for k, v in entry["effective"].items())
        print(f"{entry['upn']}: overrides {overrides}; effective {effective}")
    return EXIT_OK


def _presence(args: argparse.Namespace) -> int:
    from sync.presence_run import run_presence_pass

    rt = _runtime()
    rt.settings.require_graph()
    rt.settings.require_tcx()
    counts = run_presence_pass(rt, refresh_all=args.refresh_all)
    if args.json:
        print(json.dumps({**counts.as_dict(), "errors": counts.errors}))
    else:
        print(
            f"Presence: {counts.changed} changed, {counts.reverted} reverted, {counts.unchanged} unchanged,"
            f" {counts.failed} failed; {counts.refreshed} calendars read."
        )
        for error in counts.errors:
            print(f"  ✗ {error}")
    return EXIT_OK if not counts.failed else EXIT_FAILED


def _subscriptions(args: argparse.Namespace) -> int:
    from sync.subscription_upkeep import reconcile_subscriptions

    rt = _runtime()
    result = reconcile_subscriptions(rt)
    if args.json:
        print(json.dumps({**result.as_dict(), "errors": result.errors}))
    else:
        for action in result.plan.actions:
            symbol = {"create": "+", "renew": "~", "delete": "-"}[action.kind]
            print(f"  {symbol} {action.kind} {action.resource}")
        counts = result.as_dict()
        print(
            f"Subscriptions: {counts['created']} created, {counts['renewed']} renewed, {counts['deleted']} deleted,"
            f" {counts['unchanged']} unchanged, {counts['failed']} failed."
        )
        for error in result.errors:
            print(f"  ✗ {error}")
    return EXIT_OK if not result.failed else EXIT_FAILED


def _contacts(args: argparse.Namespace) -> int:
    from sync.contact_sync import run_contact_sync

    rt = _runtime()
    result = run_contact_sync(rt, full=args.full)
    if args.json:
        payload = {
            **result.counts(),
            "run_ids": result.run_ids,
            "busy": result.busy,
            "status": result.status,
            "error": result.aborted,
            "phonebooks": {book.plan.book: book.counts() for book in result.books},
            "failures": [failure for book in result.books for failure in book.failures],
            "skipped_contacts": [
                {"source": skip.source, "reason": skip.reason} for book in result.books for skip in book.plan.skipped
            ],
        }
        print(json.dumps(payload, indent=2))
    else:
        for book in result.books:
            counts = book.counts()
            print(
                f"{book.plan.book.capitalize()} phonebook: {counts['created']} created, {counts['updated']} updated,"
                f" {counts['deleted']} deleted, {counts['unchanged']} unchanged, {counts['skipped']} skipped,"
                f" {counts['failed']} failed."
            )
        for book in result.books:
            for skip in book.plan.skipped[:20]:
                print(f"  ! skipped {skip.source}: {skip.reason}")
            for failure in book.failures:
                print(f"  ✗ {book.plan.book} {failure}")
        for busy in result.busy:
            print(f"  ~ {busy}: another run is syncing this phonebook now; left to it")
        if not result.books and not result.busy and not result.aborted:
            print("No phonebook to sync: SHARED_MAILBOXES is empty.")
    if result.aborted:
        print(f"error: {result.aborted}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if result.status == "succeeded" else EXIT_FAILED


def _check_pbx(args: argparse.Namespace) -> int:
    from sync.pbx_check import assess, render_report
    from sync.pbx_readiness import read_pbx_facts

    report = assess(read_pbx_facts(_runtime()))
    print(json.dumps(report.as_dict(), indent=2) if args.json else render_report(report))
    return EXIT_OK if report.ok else EXIT_FAILED


def _cli_user() -> str:
    """Who approves from the command line: the operating-system account, as the log shows it."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _runs(args: argparse.Namespace) -> int:
    rt = _runtime()
    kinds = [args.kind] if args.kind else list(RUN_KINDS)
    newest = [run for kind in kinds for run in rt.state.recent_runs(kind, args.limit)]
    runs = sorted(newest, key=lambda run: run.started_at, reverse=True)[: args.limit]
    if args.json:
        print(json.dumps([run.model_dump(mode="json") for run in runs], indent=2))
        return EXIT_OK
    if not runs:
        print("No runs recorded yet.")
    for run in runs:
        counts = " ".join(f"{k}={v}" for k, v in run.counts.items() if v)
        about = f" {run.subject}" if run.subject else ""
        print(f"{run.started_at:%Y-%m-%d %H:%M:%S} {run.kind:<13} {run.trigger:<6} {run.status:<9}{about} {counts}")
        if run.guard:
            print(f"    ! {run.guard}")
        if run.resolution is not None:
            made = f" (run {run.resolution.run_id})" if run.resolution.run_id else ""
            print(f"    ✓ held actions {run.resolution.decision} by {run.resolution.by}{made}")
        elif run.held_actions:
            print(f"    ? held actions undecided: python -m sync users --approve {run.run_id}")
        if run.approves:
            print(f"    ✓ applies the held actions of run {run.approves}")
        for line in run.skipped[:5]:
            print(f"    ~ {line}")
        for error in run.errors[:5]:
            print(f"    ✗ {error}")
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from devhost.serve import serve_forever

    load_settings()  # fail fast with the one-line message on a bad setting
    return serve_forever(args.host, args.port, timers=not args.no_timers)


def _demo(args: argparse.Namespace) -> int:
    from devhost.demo import run_demo

    return run_demo()

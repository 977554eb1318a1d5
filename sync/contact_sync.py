"""One contacts run: read the shared mailboxes' changes, plan the company phonebook, apply, record.

The rules live in `sync.contacts`. This module keeps a mirror of each shared mailbox's
contacts current with delta queries (one per folder, delta links in state; a rejected
link re-reads that folder in full), lists the company phonebook's entries, plans, and
writes them through the published XAPI.

Child folders are listed at most once a day (or with `--full`), so a run with nothing
changed reads only delta pages from Graph.

Personal phonebooks are not written here: 3CX's own Microsoft 365 integration copies a
user's Outlook contacts when the user's `MS365ContactsEnabled` is on (the user sync sets it
from the `personal_contacts` option). The published XAPI has no operation that writes one
user's personal phonebook.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.errors import UpstreamUnavailable, one_line
from shared.graph import GraphApiError
from shared.graph_models import GraphContact
from shared.state import LockHeld, utcnow
from shared.telemetry import count_action, log_event
from shared.threecx import TcxApiError, TcxError, TcxUnavailable
from sync.contacts import (
    BookPlan,
    ContactAction,
    CreateContact,
    DeleteContact,
    SourceContact,
    UpdateContact,
    plan_book,
    wanted_company,
)
from sync.envelope import RunReport, run_envelope
from sync.runtime import Runtime

COMPANY_BOOK = "company"
FOLDER_LIST_MAX_AGE = timedelta(hours=24)
DELTA_PREFIX = "contacts-"  # the names of the contact folders' delta links
PERSONAL_STATE_FORGOTTEN = "personal-contacts-state-forgotten"  # the marker of the one-off clean-up
_FOLDER_KEY = "_connectorFolder"  # where the mirror remembers which folder a contact is in


class ContactRunAborted(UpstreamUnavailable):
    """3CX became unreachable; the message is one line for the administrator."""


@dataclass
class BookResult:
    """One phonebook's run: its plan, what was done, what failed."""

    plan: BookPlan
    done: dict[str, int] = field(default_factory=lambda: {"create": 0, "update": 0, "delete": 0})
    failures: list[str] = field(default_factory=list)
    run_id: str | None = None

    def counts(self) -> dict[str, int]:
        return {
            "created": self.done["create"],
            "updated": self.done["update"],
            "deleted": self.done["delete"],
            "unchanged": self.plan.unchanged,
            "failed": len(self.failures),
            "skipped": len(self.plan.skipped),
        }


@dataclass
class ContactSyncResult:
    """A sweep over phonebooks (today the company one alone): each book is its own recorded run."""

    books: list[BookResult] = field(default_factory=list)
    aborted: str | None = None  # an outage stopped the sweep
    busy: list[str] = field(default_factory=list)  # books another run was reconciling

    @property
    def run_ids(self) -> list[str]:
        return [book.run_id for book in self.books if book.run_id]

    def counts(self) -> dict[str, int]:
        books = [b.counts() for b in self.books]
        names = ("created", "updated", "deleted", "unchanged", "failed", "skipped")
        return {name: sum(book[name] for book in books) for name in names}

    @property
    def status(self) -> str:
        if self.aborted:
            return "failed"
        return "partial" if any(b.failures for b in self.books) or self.busy else "succeeded"


def book_lock(book: str) -> str:
    """Each phonebook has its own lock: runs for different books never wait for each other."""
    return f"contacts:{book}"


def run_contact_sync(
    rt: Runtime,
    *,
    mailbox: str | None = None,
    full: bool = False,
    trigger: str = "cli",
) -> ContactSyncResult:
    """Reconcile the company phonebook from SHARED_MAILBOXES (with `mailbox`: only if it is one of them).

    A book another run holds is left to it and listed in `busy`. An outage (3CX or Graph
    unreachable) fails the book it hit and is in `aborted`.
    """
    rt.settings.require_graph()
    rt.settings.require_tcx()
    forget_personal_contacts(rt)
    sweep = _Sweep(rt, ContactSyncResult(), trigger)
    shared = [address.lower() for address in rt.settings.shared_mailboxes]
    wanted_mailbox = mailbox.lower() if mailbox else None
    if shared and (wanted_mailbox is None or wanted_mailbox in shared):
        sweep.add(sweep.book(COMPANY_BOOK, lambda: _sync_company(rt, shared, full)))
    return sweep.result


def forget_personal_contacts(rt: Runtime) -> None:
    """Delete what earlier versions stored for personal phonebooks, once (a marker remembers it is done).

    They mirrored each user's own contacts (per folder, with a delta link each) and recorded
    which personal phonebooks they wrote. Today only the mailboxes in SHARED_MAILBOXES are
    mirrored, so every other mirror, folder list and contacts delta link goes, and the
    phonebook records with them; the shared mailboxes' state is kept. A failure is logged
    and tried again at the next run: it never stops the company phonebook.
    """
    if rt.state.marker_set(PERSONAL_STATE_FORGOTTEN):
        return
    shared = [address.lower() for address in rt.settings.shared_mailboxes]
    try:
        kept_links = set()
        for mailbox in shared:
            listed = rt.state.contact_folders(mailbox)
            for folder_id in [None, *(listed[0] if listed else [])]:
                kept_links.add(_delta_name(mailbox, folder_id))
        contacts, folder_lists = rt.state.forget_contact_mailboxes(keep=shared)
        links = [name for name in rt.state.delta_link_names(DELTA_PREFIX) if name not in kept_links]
        rt.state.delete_delta_links(links)
        books = rt.state.forget_personal_books()
        rt.state.set_marker(PERSONAL_STATE_FORGOTTEN)
    except Exception as error:  # storage failing: the company phonebook goes on, the next run tries again
        log_event("personal_contacts_cleanup_failed", logging.WARNING, kind="contacts", error=one_line(error)[:300])
        return
    log_event(
        "personal_contacts_state_forgotten",
        kind="contacts",
        contacts=contacts,
        folder_lists=folder_lists,
        delta_links=len(links),
        phonebooks=books,
    )


class _Sweep:
    """Runs each phonebook in its own envelope; an outage stops the books not yet started."""

    def __init__(self, rt: Runtime, result: ContactSyncResult, trigger: str) -> None:
        self.rt = rt
        self.result = result
        self.trigger = trigger

    def add(self, outcome: BookResult | None) -> None:
        if outcome is not None:
            self.result.books.append(outcome)

    def book(self, book: str, sync: Callable[[], BookResult]) -> BookResult | None:
        """Reconcile one book as its own run; None when it was busy, or an outage stopped it."""
        if self.result.aborted:
            return None
        try:
            with run_envelope(
                self.rt.state, "contacts", trigger=self.trigger, lock=book_lock(book), subject=book
            ) as run:
                outcome = _guarded(book, sync)
                outcome.run_id = run.run_id
                run.report = RunReport(
                    counts=outcome.counts(),
                    failures=list(outcome.failures),
                    skipped=[f"{skip.source}: {skip.reason}" for skip in outcome.plan.skipped],
                )
        except LockHeld:
            self.result.busy.append(book)
            log_event("run_skipped", logging.WARNING, kind="contacts", subject=book, reason="another run holds it")
            return None
        except UpstreamUnavailable as error:  # recorded as failed by the envelope; the sweep stops
            self.result.aborted = self.result.aborted or one_line(error)
            return None
        return outcome


def _sync_company(rt: Runtime, shared: list[str], full: bool) -> BookResult:
    sources: list[SourceContact] = []
    refused: list[str] = []
    for mailbox in shared:
        try:
            contacts = refresh_mailbox(rt, mailbox, full=full)
        except GraphApiError as error:
            # This mailbox only (a permission, an RBAC scope): its last known contacts stand, so
            # its entries are neither deleted nor changed, and the other mailboxes go on.
            refused.append(f"mailbox {mailbox}: {one_line(error)}; its last known contacts are kept")
            contacts = stored_contacts(rt, mailbox)
        sources.extend(SourceContact(mailbox, contact) for contact in contacts)
    wanted, rejected = wanted_company(COMPANY_BOOK, shared, sources)
    target = _read(lambda: rt.tcx.list_contacts("startswith(Tag,'m365:')"))
    plan = plan_book(COMPANY_BOOK, wanted, [c.model_dump(by_alias=True) for c in target], rejected)
    book = BookResult(plan)
    for failure in refused:
        book.failures.append(failure)
        log_event("contact_source_failed", logging.WARNING, kind="contacts", book=COMPANY_BOOK, error=failure)
    _apply(
        book,
        create=lambda fields: rt.tcx.create_contact(fields),
        update=lambda contact_id, changes: rt.tcx.update_contact(contact_id, changes),
        delete_many=lambda ids: rt.tcx.delete_contacts(ids),
    )
    return book


def _guarded(book: str, sync: Callable[[], BookResult]) -> BookResult:
    """A refusal (3CX's or Graph's) fails this phonebook's run, recorded, not the process.

    Only an unreachable 3CX stops the run (ContactRunAborted passes through).
    """
    try:
        return sync()
    except (TcxError, GraphApiError) as error:
        if isinstance(error, TcxUnavailable):
            raise ContactRunAborted(one_line(error)) from error
        result = BookResult(BookPlan(book))
        _failed(result, ContactAction(book), error)
        return result


def _read(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except TcxUnavailable as error:
        raise ContactRunAborted(one_line(error)) from error


def _apply(
    book: BookResult,
    *,
    create: Callable[[dict[str, str]], Any],
    update: Callable[[int, dict[str, str]], Any],
    delete_many: Callable[[list[int]], Any],
) -> None:
    deletes: list[ContactAction] = []
    for action in book.plan.actions:
        if isinstance(action, DeleteContact):
            deletes.append(action)
            continue
        try:
            if isinstance(action, CreateContact):
                create({name: value for name, value in action.fields.items() if value})
            elif isinstance(action, UpdateContact):
                update(action.contact_id, dict(action.changes))
        except TcxApiError as error:
            _failed(book, action, error)
            continue
        except TcxUnavailable as error:
            raise ContactRunAborted(one_line(error)) from error
        book.done[action.kind] += 1
        _log(book, action, "ok")
    if deletes:
        try:
            delete_many([action.contact_id for action in deletes if isinstance(action, DeleteContact)])
        except TcxApiError as error:
            for action in deletes:
                _failed(book, action, error)
            return
        except TcxUnavailable as error:
            raise ContactRunAborted(one_line(error)) from error
        book.done["delete"] += len(deletes)
        for action in deletes:
            _log(book, action, "ok")


def _failed(book: BookResult, action: ContactAction, error: Exception) -> None:
    message = one_line(error)
    book.failures.append(f"{action.kind} {action.key}: {message}")
    _log(book, action, "failed", message)


def _log(book: BookResult, action: ContactAction, outcome: str, error: str | None = None) -> None:
    # Ids and keys only: contact details are personal data and stay out of the log.
    count_action("contacts", action.kind, outcome)
    log_event(
        "contact_action",
        logging.INFO if outcome == "ok" else logging.WARNING,
        kind="contacts",
        book=book.plan.book,
        action=action.kind,
        key=action.key,
        outcome=outcome,
        error=error,
    )


# -- the source mirror ------------------------------------------------------------------------------


def _delta_name(mailbox: str, folder_id: str | None) -> str:
    digest = hashlib.sha256(f"{mailbox.lower()}\n{folder_id or ''}".encode()).hexdigest()[:40]
    return f"{DELTA_PREFIX}{digest}"


def refresh_mailbox(rt: Runtime, mailbox: str, *, full: bool = False) -> list[GraphContact]:
    """Bring the mailbox's contact mirror up to date (one delta round per folder) and return it."""
    listed = rt.state.contact_folders(mailbox)
    if full or listed is None or utcnow() - listed[1] > FOLDER_LIST_MAX_AGE:
        folder_ids = [folder.id for folder in rt.graph.contact_folders(mailbox)]
        rt.state.save_contact_folders(mailbox, folder_ids)
    else:
        folder_ids = listed[0]
    stored = rt.state.contact_mirror(mailbox)
    mirror = dict(stored)
    upserts: dict[str, dict[str, Any]] = {}
    new_links: dict[str, str] = {}
    vanished: list[str] = []
    for folder_id in [None, *folder_ids]:
        folder_tag = folder_id or ""
        name = _delta_name(mailbox, folder_id)
        try:
            delta = rt.graph.contacts_delta(mailbox, folder_id, None if full else rt.state.delta_link(name))
        except GraphApiError as error:
            if folder_id is None or error.status != 404:
                raise
            vanished.append(folder_id)  # deleted since the folders were listed: its contacts went with it
            continue
        if delta.full:  # everything this folder holds came in this round
            for contact_id in [cid for cid, raw in mirror.items() if raw.get(_FOLDER_KEY) == folder_tag]:
                del mirror[contact_id]
                upserts.pop(contact_id, None)
        for contact in delta.contacts:
            if contact.is_removed:
                # A move shows as a removal here and an addition in the other folder: only
                # drop the contact if the mirror still places it in this folder.
                if mirror.get(contact.id, {}).get(_FOLDER_KEY) == folder_tag:
                    del mirror[contact.id]
                    upserts.pop(contact.id, None)
                continue
            raw = contact.model_dump(by_alias=True, exclude_none=True)
            raw[_FOLDER_KEY] = folder_tag
            mirror[contact.id] = raw
            upserts[contact.id] = raw
        new_links[name] = delta.delta_link
    if vanished:
        # The cached folder list is out of date: list again (new folders are read next run).
        folder_ids = [folder.id for folder in rt.graph.contact_folders(mailbox)]
        rt.state.save_contact_folders(mailbox, folder_ids)
        log_event("contact_folders_relisted", kind="contacts", mailbox=mailbox, vanished=len(vanished))
    live_folders = {"", *folder_ids} - set(vanished)
    for contact_id in [cid for cid, raw in mirror.items() if raw.get(_FOLDER_KEY) not in live_folders]:
        del mirror[contact_id]  # its folder is gone
    deletes = [contact_id for contact_id in stored if contact_id not in mirror]
    rt.state.update_contact_mirror(mailbox, upserts.values(), deletes)
    # Delta links only move on once the changes they stand for are stored.
    for name, link in new_links.items():
        rt.state.save_delta_link(name, link)
    return [GraphContact.model_validate(raw) for raw in mirror.values()]


def stored_contacts(rt: Runtime, mailbox: str) -> list[GraphContact]:
    """The mailbox's contacts as of its last good refresh (the mirror), without asking Graph."""
    return [GraphContact.model_validate(raw) for raw in rt.state.contact_mirror(mailbox).values()]

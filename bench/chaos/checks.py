"""The verdict: after one quiet reconcile, is 3CX what Microsoft 365 says, and was everything told honestly?

Each check compares what the fakes hold (the truth on both sides) with what it should be,
by rules written here from the README, not by calling the connector's own planners: a
rule the connector gets wrong must not be checked against itself. Phone numbers go
through the connector's `normalize_phone` (its own unit tests pin that rule).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.chaos.host import HostFailure
from bench.chaos.journal import Journal, LogLine
from bench.chaos.known_gaps import (
    KNOWN_GAPS,
)
from bench.chaos.tenant import HandStatus, Memory, takes_part
from fakes.graph import GraphFake
from fakes.threecx import ThreeCXFake
from sync.phone_numbers import normalize_phone
from sync.records import Link, RunRecord

EXAMPLES = 8  # problems listed per check; the counts say how many there were
SHOW_AS_RANK = {"oof": 4, "busy": 3, "workingElsewhere": 2}
FAILED_ACTION_EVENTS = frozenset(
    {
        "status_failed",
        "calendar_read_failed",
        "calendar_unreadable",
        "subscription_failed",
        "contact_source_failed",
        "ALERT deletion_guard",
    }
)


_LOCAL_ORIGIN = re.compile(r"https://127\.0\.0\.1:\d+")


def shown(text: str) -> str:
    """A problem as the report shows it: without the local ports, which differ from run to run."""
    return _LOCAL_ORIGIN.sub("https://127.0.0.1", text)


@dataclass
class Check:
    name: str
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    mismatched: set[str] = field(default_factory=set)  # ids or addresses found wrong (for "changes lost")
    known: dict[str, list[str]] = field(default_factory=dict)  # known gap -> what matched it

    @property
    def passed(self) -> bool:
        return not self.problems

    def fail(self, problem: str, key: str | None = None) -> None:
        self.problems.append(problem)
        if key is not None:
            self.mismatched.add(key)

    def known_gap(self, key: str, what: str) -> None:
        assert key in KNOWN_GAPS, key
        self.known.setdefault(key, []).append(shown(what))

    def as_dict(self) -> dict[str, Any]:
        return {
            "pass": self.passed,
            **self.counts,
            "problems": len(self.problems),
            **({"known_gaps": {key: len(found) for key, found in self.known.items()}} if self.known else {}),
            "examples": [shown(problem) for problem in self.problems[:EXAMPLES]],
        }


def _address(user: Mapping[str, Any]) -> str:
    return str(user.get("mail") or user["userPrincipalName"]).casefold()


def _by_address(pbx_users: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for user in pbx_users:
        if user.get("EmailAddress"):
            found[str(user["EmailAddress"]).casefold()].append(user)
    return found


# =========================================================================================
# users, numbers, hand-made entries, duplicates
# =========================================================================================
def users_match(graph: GraphFake, pbx: ThreeCXFake, memory: Memory, *, photo: bool, office_phone: bool) -> Check:
    """Every member with a mailbox has exactly one enabled 3CX user with their fields; leavers are disabled."""
    check = Check("users_match")
    tcx = _by_address(pbx.users.values())
    synced = leavers = 0
    for user_id, user in sorted(graph.users.items()):
        address = _address(user)
        if not takes_part(user):
            leavers += _leaver_disabled(check, user_id, address, tcx)
            continue
        synced += 1
        found = tcx.get(address, [])
        if len(found) != 1:
            check.fail(f"{address}: {len(found)} 3CX users carry this address, not 1", user_id)
            continue
        wanted = _wanted_fields(user, memory.photos.get(user_id), photo, office_phone)
        wrong = _field_differences(wanted, found[0])
        if wrong:
            check.fail(f"{address} (ext {found[0]['Number']}): {wrong}", user_id)
    for user_id, address in sorted(memory.left.items()):
        if user_id not in graph.users and user_id not in graph.deleted_users:  # deleted for good
            leavers += _leaver_disabled(check, user_id, address.casefold(), tcx)
    check.counts = {"synced_users": synced, "leavers_in_3cx": leavers}
    return check


def _leaver_disabled(check: Check, user_id: str, address: str, tcx: Mapping[str, list[dict[str, Any]]]) -> int:
    for found in tcx.get(address, []):
        if found.get("Enabled") is not False:
            check.fail(f"{address} (ext {found['Number']}) left Microsoft 365 but is enabled in 3CX", user_id)
    return len(tcx.get(address, []))


def _wanted_fields(
    user: Mapping[str, Any], photo_bytes: bytes | None, photo: bool, office_phone: bool
) -> dict[str, Any]:
    wanted: dict[str, Any] = {
        "FirstName": user.get("givenName") or "",
        "LastName": user.get("surname") or "",
        "DisplayName": user.get("displayName") or "",
        "Mobile": normalize_phone(user.get("mobilePhone")),
        "Enabled": True,
    }
    if office_phone:
        phones = [phone for phone in user.get("businessPhones") or [] if phone]
        wanted["OutboundCallerID"] = normalize_phone(phones[0]) if phones else ""
    if photo:
        encoded = base64.b64encode(photo_bytes).decode("ascii") if photo_bytes else None
        wanted["ContactImage"] = f"data:image/jpeg;base64,{encoded}" if encoded else ""
    return wanted


def _field_differences(wanted: Mapping[str, Any], have: Mapping[str, Any]) -> str:
    """The fields that differ, in words ('' when none); an avatar is named, never printed."""
    wrong = []
    for name, value in wanted.items():
        actual = have.get(name)
        differs = (actual or "") != value if isinstance(value, str) else actual != value
        if not differs:
            continue
        if name == "ContactImage":
            wrong.append(f"avatar {'is an older photo' if actual and value else 'missing' if value else 'not cleared'}")
        else:
            wrong.append(f"{name} is {actual!r}, not {value!r}")
    return "; ".join(wrong)


def numbers_stable(graph: GraphFake, pbx: ThreeCXFake, memory: Memory, links: Mapping[str, Link]) -> Check:
    """A user's extension never changes: since the first sync, and as the connector remembers it."""
    check = Check("numbers_stable")
    tcx = _by_address(pbx.users.values())
    kept = 0
    for user_id, number in sorted(memory.initial_numbers.items()):
        user = graph.users.get(user_id)
        if user is None or not takes_part(user):
            continue
        found = tcx.get(_address(user), [])
        numbers = {str(u["Number"]) for u in found}
        link = links.get(user_id)
        if link is not None:
            numbers.add(link.extension)
        if numbers == {number}:
            kept += 1
        elif numbers:
            check.fail(f"{_address(user)}: extension {', '.join(sorted(numbers))}, was {number}", user_id)
    by_id = pbx.users
    for user_id, link in sorted(links.items()):
        current = by_id.get(link.tcx_user_id)
        if current is not None and str(current["Number"]) != link.extension:
            check.fail(f"{link.upn}: linked as {link.extension}, 3CX says {current['Number']}", user_id)
    check.counts = {"users_since_first_sync": kept, "links": len(links)}
    return check


def hand_made_untouched(pbx: ThreeCXFake, memory: Memory) -> Check:
    """Users and contacts made by hand in 3CX are never changed or deleted by the connector."""
    check = Check("hand_made_untouched")
    users, contacts = pbx.users, pbx.company_contacts
    for tcx_id, made in sorted(memory.hand_users.items()):
        now = users.get(tcx_id)
        if now is None:
            check.fail(f"hand-made user {made['Number']} was deleted")
        elif wrong := _field_differences({k: made.get(k) for k in ("Number", "FirstName", "LastName", "Enabled")}, now):
            check.fail(f"hand-made user {made['Number']}: {wrong}")
    for contact_id, made in sorted(memory.hand_contacts.items()):
        now = contacts.get(contact_id)
        if now is None:
            check.fail(f"hand-made contact {contact_id} was deleted")
        elif wrong := _field_differences({k: made.get(k) for k in ("FirstName", "LastName", "PhoneNumber")}, now):
            check.fail(f"hand-made contact {contact_id}: {wrong}")
    check.counts = {"hand_made_users": len(memory.hand_users), "hand_made_contacts": len(memory.hand_contacts)}
    return check


def no_duplicates(graph: GraphFake, pbx: ThreeCXFake, memory: Memory) -> Check:
    """No two 3CX users share an address; no person or source entry is in the company phonebook twice."""
    check = Check("no_duplicates")
    tcx = _by_address(pbx.users.values())
    users = Counter({address: len(found) for address, found in tcx.items()})
    ours = [c for c in pbx.company_contacts.values() if str(c.get("Tag") or "").startswith("m365:")]
    emails = Counter(str(c["Email"]).casefold() for c in ours if c.get("Email"))
    tags = Counter(str(c["Tag"]) for c in ours)
    for what, counter in (("user address", users), ("contact address", emails), ("contact tag", tags)):
        for value, count in sorted(counter.items()):
            if count < 2:
                continue
            check.fail(f"{count} entries share the {what} {value}", value)
    check.counts = {
        "duplicate_users": sum(n - 1 for n in users.values() if n > 1),
        "duplicate_contacts": sum(n - 1 for n in emails.values() if n > 1) + sum(n - 1 for n in tags.values() if n > 1),
    }
    return check


# =========================================================================================
# statuses
# =========================================================================================
def statuses_match(
    graph: GraphFake, pbx: ThreeCXFake, memory: Memory, now: datetime, status_map: Mapping[str, str]
) -> Check:
    """Each member's 3CX status is what their calendar says now, or what they chose by hand.

    During a mapped event (busiest wins: out of office, then busy, then working elsewhere):
    its status. A status the user set by hand during that stretch may stand instead — whether
    it does depends on whether the connector saw the meeting before the user's change, and
    both are right. Outside a stretch: the status the user last set by hand (or 3CX's
    default for a fresh user), whatever meetings came and went.
    """
    check = Check("statuses_match")
    tcx = _by_address(pbx.users.values())
    in_meeting = checked = 0
    for user_id, user in sorted(graph.users.items()):
        found = tcx.get(_address(user), [])
        if not takes_part(user) or len(found) != 1:
            continue
        checked += 1
        hand = memory.hand_status.get(user_id, HandStatus("Available", datetime.min.replace(tzinfo=now.tzinfo), False))
        accepted, running = _accepted_statuses(graph, user_id, now, status_map, hand)
        in_meeting += running
        status = found[0]["CurrentProfileName"]
        if status not in accepted:
            why = "during a meeting" if running else "outside meetings"
            check.fail(f"{_address(user)}: status {status!r} {why}, expected {' or '.join(sorted(accepted))}", user_id)
    check.counts = {"users": checked, "in_a_meeting_now": in_meeting}
    return check


def _accepted_statuses(
    graph: GraphFake, user_id: str, now: datetime, status_map: Mapping[str, str], hand: HandStatus
) -> tuple[set[str], bool]:
    mapped = sorted(
        (instance.start, instance.end, instance.show_as)
        for instance in graph.event_instances(user_id)
        if not instance.is_cancelled and instance.show_as in status_map and instance.end > instance.start
    )
    running = [item for item in mapped if item[0] <= now < item[1]]
    if not running:
        return {hand.status}, False
    busiest = max(running, key=lambda item: (SHOW_AS_RANK.get(item[2], 0), -item[0].timestamp()))
    accepted = {status_map[busiest[2]]}
    if hand.by_hand and hand.at >= _stretch_start(mapped, now):
        accepted.add(hand.status)
    return accepted, True


def _stretch_start(mapped: list[tuple[datetime, datetime, str]], now: datetime) -> datetime:
    """Where the unbroken run of mapped events around `now` began (touching events join)."""
    start, end = mapped[0][0], mapped[0][1]
    for item_start, item_end, _ in mapped[1:]:
        if item_start > now:
            break
        if item_start <= end:
            end = max(end, item_end)
        else:
            start, end = item_start, item_end
    return start


# =========================================================================================
# the company phonebook
# =========================================================================================
def phonebook_matches(graph: GraphFake, pbx: ThreeCXFake, mailboxes: Mapping[str, str]) -> Check:
    """The connector's company phonebook entries are the shared mailboxes' contacts, one per person.

    `mailboxes` maps each address in SHARED_MAILBOXES (in order) to its user id. The same
    e-mail in several mailboxes is one entry, the first mailbox's; a contact without any
    number is left out (3CX would refuse it).
    """
    check = Check("phonebook_matches")
    wanted = _wanted_entries(graph, mailboxes)
    ours: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for contact in pbx.company_contacts.values():
        if str(contact.get("Tag") or "").startswith("m365:"):
            ours[str(contact.get("Email") or "").casefold()].append(contact)
    for email, fields in sorted(wanted.items()):
        found = ours.get(email, [])
        if len(found) != 1:
            check.fail(f"{email}: {len(found)} phonebook entries, not 1", email)
        elif wrong := _field_differences(fields, found[0]):
            check.fail(f"{email}: {wrong}", email)
    for email in sorted(set(ours) - set(wanted)):
        check.fail(f"{email or '(no e-mail)'}: in the phonebook, but in no shared mailbox", email)
    check.counts = {"entries_wanted": len(wanted), "entries_of_the_connector": sum(len(v) for v in ours.values())}
    return check


def _wanted_entries(graph: GraphFake, mailboxes: Mapping[str, str]) -> dict[str, dict[str, str]]:
    wanted: dict[str, dict[str, str]] = {}
    for mailbox_id in mailboxes.values():
        book = graph.contact_mailboxes.get(mailbox_id)
        for _, contact in sorted(book.contacts.items()) if book else []:
            fields = contact.fields
            email = next((str(e["address"]) for e in fields.get("emailAddresses") or [] if e.get("address")), "")
            business = [normalize_phone(p) for p in fields.get("businessPhones") or [] if p]
            mobile = normalize_phone(fields.get("mobilePhone"))
            if not (business or mobile) or email.casefold() in wanted:
                continue
            wanted[email.casefold()] = {
                "FirstName": fields.get("givenName") or "",
                "LastName": fields.get("surname") or "",
                "CompanyName": fields.get("companyName") or "",
                "Title": fields.get("jobTitle") or "",
                "Email": email,
                "PhoneNumber": mobile,
                "Business": business[0] if business else "",
            }
    return wanted


# =========================================================================================
# changes, failed actions, secrets
# =========================================================================================
def no_changes_lost(memory: Memory, by_name: Mapping[str, Check]) -> Check:
    """Every user, calendar and contact changed in Microsoft 365 during the week is right in 3CX.

    A changed user must not be wrong in `users_match` or `numbers_stable`, a changed
    calendar not in `statuses_match`, a changed contact not in `phonebook_matches`.
    """
    check = Check("no_changes_lost")
    judged_by = (
        (memory.changed_users, ("users_match", "numbers_stable")),
        (memory.changed_calendars, ("statuses_match",)),
        (memory.changed_contacts, ("phonebook_matches",)),
    )
    for changed, names in judged_by:
        wrong = set().union(*(by_name[name].mismatched for name in names))
        for key in sorted(changed):
            if key in wrong:
                kinds = ", ".join(f"{kind} x{count}" for kind, count in sorted(changed[key].items()))
                check.fail(f"{key}: changed ({kinds}) but not right in 3CX ({' / '.join(names)})", key)
    check.counts = {
        "users_changed": len(memory.changed_users),
        "calendars_changed": len(memory.changed_calendars),
        "contacts_changed": len(memory.changed_contacts),
        "lost": len(check.problems),
    }
    return check


def failed_actions_recorded(
    journal: Journal, runs: Mapping[str, RunRecord], host_failures: list[HostFailure], main_thread: str
) -> Check:
    """Every failed action and every failed or partial run is in a run record that says so.

    Read from the soak's own thread (timers and queue work), one function invocation at a
    time (the host marks each): a failed action must be followed by its run's summary
    saying `partial` or `failed`, with a stored record of the same status holding errors;
    an exception that escaped a function must have been recorded as a `failed` run first,
    unless storage itself was down (then nothing could be recorded; the host logged it).
    """
    check = Check("failed_actions_recorded")
    tally = Counter[str]()
    for invocation in _invocations(journal.lines, main_thread):
        _judge_invocation(check, invocation, runs, tally)
    tally["storage_down_failures"] = sum(1 for failure in host_failures if failure.storage_down)
    check.counts = dict(tally)
    return check


def _invocations(lines: Iterable[LogLine], thread: str) -> list[list[LogLine]]:
    groups: list[list[LogLine]] = [[]]
    for line in lines:
        if line.thread != thread:
            continue
        if line.logger == "soak.host" and line.message.startswith("invoke "):
            groups.append([line])
        else:
            groups[-1].append(line)
    return [group for group in groups if group]


def _is_failed_action(line: LogLine) -> bool:
    if line.event in FAILED_ACTION_EVENTS:
        return True
    return line.event in ("user_action", "contact_action") and line.dimensions.get("outcome") == "failed"


def _judge_invocation(check: Check, lines: list[LogLine], runs: Mapping[str, RunRecord], tally: Counter[str]) -> None:
    pending: list[LogLine] = []
    last_status: str | None = None
    for line in lines:
        if _is_failed_action(line):
            pending.append(line)
            tally["failed_actions"] += 1
        elif line.event == "run_summary":
            run_id, status = str(line.dimensions.get("run")), str(line.dimensions.get("status"))
            last_status = status
            if status in ("partial", "failed"):
                tally[f"runs_{status}"] += 1
                _judge_run(check, run_id, status, runs)
            for failed in pending:
                if status not in ("partial", "failed"):
                    check.fail(f"{failed.message[:160]} — but its run {run_id} says {status}")
                else:
                    tally["failed_actions_recorded"] += 1
            pending = []
        elif line.logger == "soak.host" and line.level >= logging.ERROR:
            tally["escaped_exceptions"] += 1
            if "(storage down)" in line.message or last_status == "failed":
                continue
            check.fail(f"an exception escaped without a failed run record: {line.message.splitlines()[0][:160]}")
    for failed in pending:
        check.fail(f"{failed.message[:160]} — and no run summary followed")


def _judge_run(check: Check, run_id: str, status: str, runs: Mapping[str, RunRecord]) -> None:
    record = runs.get(run_id)
    if record is None:
        check.fail(f"run {run_id} said {status} but has no run record")
    elif record.status != status:
        check.fail(f"run {run_id} said {status}; its record says {record.status}")
    elif not (record.errors or record.skipped or record.held or record.guard):
        check.fail(f"run {run_id} is {status} but its record names no error")


def no_secrets(
    journal: Journal, extra: Iterable[tuple[str, str]], planted: Mapping[str, str], issued: set[str]
) -> Check:
    """No planted secret and no token the fakes issued in any log line, HTTP answer, CLI output or run record."""
    from tests.canary_plugin import leaks  # the suite's canary scan, reused as it is

    check = Check("no_secrets")
    texts = [*journal.texts, *extra]
    for leak in leaks(iter(texts), dict(planted), issued):
        check.fail(leak)
    check.counts = {"texts_scanned": len(texts), "secrets_planted": len(planted), "tokens_issued": len(issued)}
    return check


def run_record_texts(entities: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    return [("run record", json.dumps(dict(entity), default=str)) for entity in entities]

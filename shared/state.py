"""The connector's memory in Azure Table Storage.

What must survive between runs and across Function instances lives here: which M365 user
is which 3CX user (links), Graph delta links, the mirror of the Graph users the last delta
round left us with, per-user option overrides, run records and the run lock. The records
themselves are the domain's (`sync.records`); the table layout is private to this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from sync.records import (
    HeldAction,
    KeptValue,
    Link,
    OptionOverrides,
    PresenceState,
    Resolution,
    RunRecord,
    SubscriptionRecord,
)

_BATCH = 100  # Table Storage's limit of operations in one transaction
_MAX_ERRORS_KEPT = 50
_PROPERTY_CHARS = 30000  # a Table Storage string property holds 64 KiB (UTF-16)
_HELD_CHUNKS = 25  # held actions kept across this many properties (the entity holds 1 MiB)


def utcnow() -> datetime:
    return datetime.now(UTC)


class ConcurrentUpdate(Exception):
    """Someone else updated the entity since it was read; re-read and decide again."""


class LockHeld(Exception):
    """Another run holds the lock."""

    def __init__(self, name: str, holder: str, expires_at: datetime) -> None:
        super().__init__(f"another {name} run is in progress (holder {holder}, lock expires {expires_at:%H:%M:%S} UTC)")
        self.holder = holder
        self.expires_at = expires_at


class StateStore:
    """Typed access to the state tables. One instance per process is enough."""

    def __init__(self, service: TableServiceClient, prefix: str = "tcx") -> None:
        self._service = service
        self._prefix = prefix
        self._tables: dict[str, TableClient] = {}

    @classmethod
    def from_connection_string(cls, connection_string: str, prefix: str = "tcx") -> StateStore:
        return cls(TableServiceClient.from_connection_string(connection_string), prefix)

    def _table(self, name: str) -> TableClient:
        client = self._tables.get(name)
        if client is None:
            client = self._service.get_table_client(f"{self._prefix}{name}")
            with suppress(ResourceExistsError):
                client.create_table()
            self._tables[name] = client
        return client

    # -- links -------------------------------------------------------------------------
    def links(self) -> dict[str, Link]:
        return {
            entity["RowKey"]: _link_from_entity(entity)
            for entity in self._table("links").query_entities("PartitionKey eq 'user'")
        }

    def get_link(self, m365_id: str) -> Link | None:
        try:
            return _link_from_entity(self._table("links").get_entity("user", m365_id))
        except ResourceNotFoundError:
            return None

    def save_link(self, link: Link) -> None:
        self._table("links").upsert_entity(_link_entity(link), mode=UpdateMode.REPLACE)

    def import_links(self, links: Iterable[Link]) -> None:
        """Write many links in transactions of 100 (seeding and restores; runs save one by one)."""
        _submit_in_batches(self._table("links"), [("upsert", _link_entity(link)) for link in links])

    def delete_link(self, m365_id: str) -> None:
        self._table("links").delete_entity("user", m365_id)

    # -- the Graph user mirror ------------------------------------------------------------
    def mirror(self) -> dict[str, dict[str, Any]]:
        """The Graph users as of the last delta round, keyed by id (raw Graph JSON)."""
        return {
            entity["RowKey"]: json.loads(entity["data"])
            for entity in self._table("graphusers").query_entities("PartitionKey eq 'user'")
        }

    def update_mirror(self, upserts: Iterable[dict[str, Any]], deletes: Iterable[str]) -> None:
        """Write changed users and drop removed ones, in transactions of up to 100."""
        table = self._table("graphusers")
        operations: list[tuple[str, dict[str, Any]]] = [
            ("upsert", {"PartitionKey": "user", "RowKey": user["id"], "data": json.dumps(user)}) for user in upserts
        ]
        operations += [("delete", {"PartitionKey": "user", "RowKey": user_id}) for user_id in deletes]
        _submit_in_batches(table, operations)

    # -- delta links ----------------------------------------------------------------------
    def delta_link(self, name: str) -> str | None:
        try:
            return str(self._table("deltalinks").get_entity("delta", name)["link"]) or None
        except ResourceNotFoundError:
            return None

    def save_delta_link(self, name: str, link: str | None) -> None:
        entity = {"PartitionKey": "delta", "RowKey": name, "link": link or "", "saved_at": utcnow()}
        self._table("deltalinks").upsert_entity(entity, mode=UpdateMode.REPLACE)

    # -- per-user options -------------------------------------------------------------------
    def option_overrides(self) -> dict[str, OptionOverrides]:
        result: dict[str, OptionOverrides] = {}
        for entity in self._table("options").query_entities("PartitionKey eq 'user'"):
            values: dict[str, Any] = {
                key: entity.get(key) for key in OptionOverrides.model_fields if key not in ("m365_id",)
            }
            result[entity["RowKey"]] = OptionOverrides(m365_id=entity["RowKey"], **values)
        return result

    def save_option_overrides(self, overrides: OptionOverrides) -> None:
        entity: dict[str, Any] = {"PartitionKey": "user", "RowKey": overrides.m365_id, "upn": overrides.upn}
        entity.update({k: v for k, v in overrides.model_dump(exclude={"m365_id", "upn"}).items() if v is not None})
        self._table("options").upsert_entity(entity, mode=UpdateMode.REPLACE)

    def delete_option_overrides(self, m365_id: str) -> None:
        self._table("options").delete_entity("user", m365_id)

    # -- Graph subscriptions ------------------------------------------------------------------
    def subscriptions(self) -> dict[str, SubscriptionRecord]:
        return {
            entity["RowKey"]: _subscription_from_entity(entity)
            for entity in self._table("subscriptions").query_entities("PartitionKey eq 'sub'")
        }

    def get_subscription(self, subscription_id: str) -> SubscriptionRecord | None:
        """Our record of that subscription, or None when it is not one of ours.

        Only "no such row" means not ours (an id Table Storage cannot use as a key included:
        refused before asking, or answered 400). Any other failure propagates: a webhook that
        took "storage is failing" for "not ours" would drop a genuine notification for good.
        """
        if not _usable_key(subscription_id):
            return None
        try:
            return _subscription_from_entity(self._table("subscriptions").get_entity("sub", subscription_id))
        except (ResourceNotFoundError, ValueError):
            return None
        except HttpResponseError as error:
            if error.status_code == 400:
                return None
            raise

    def save_subscription(self, record: SubscriptionRecord) -> None:
        entity = {"PartitionKey": "sub", "RowKey": record.id, **record.model_dump(exclude={"id"})}
        entity["user_id"] = record.user_id or ""
        self._table("subscriptions").upsert_entity(entity, mode=UpdateMode.REPLACE)

    def delete_subscription(self, subscription_id: str) -> None:
        self._table("subscriptions").delete_entity("sub", subscription_id)

    # -- calendar-driven presence ----------------------------------------------------------------
    def presence_states(self) -> dict[str, PresenceState]:
        return {
            entity["RowKey"]: _presence_from_entity(entity)
            for entity in self._table("presence").query_entities("PartitionKey eq 'user'")
        }

    def get_presence(self, m365_id: str) -> PresenceState | None:
        try:
            return _presence_from_entity(self._table("presence").get_entity("user", m365_id))
        except ResourceNotFoundError:
            return None

    def save_presence(self, state: PresenceState) -> PresenceState:
        """Write `state` if nobody changed it since it was read (its etag); raise ConcurrentUpdate otherwise.

        A state without an etag is new: creating it fails if another worker created it first.
        """
        entity: dict[str, Any] = {
            "PartitionKey": "user",
            "RowKey": state.m365_id,
            "data": state.model_dump_json(exclude={"etag"}),
        }
        table = self._table("presence")
        try:
            if state.etag is None:
                metadata = table.create_entity(entity)
            else:
                metadata = table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=state.etag, match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError) as error:
            raise ConcurrentUpdate(state.m365_id) from error
        except HttpResponseError as error:
            if error.status_code in (409, 412):
                raise ConcurrentUpdate(state.m365_id) from error
            raise
        return state.model_copy(update={"etag": metadata.get("etag")})

    def import_presence(self, states: Iterable[PresenceState]) -> None:
        """Write many presence states unconditionally, in transactions of 100 (seeding only)."""
        operations = [
            ("upsert", {"PartitionKey": "user", "RowKey": st.m365_id, "data": st.model_dump_json(exclude={"etag"})})
            for st in states
        ]
        _submit_in_batches(self._table("presence"), operations)

    def delete_presence(self, m365_id: str) -> None:
        self._table("presence").delete_entity("user", m365_id)

    # -- tenant-wide markers -------------------------------------------------------------------------
    def graph_brake_until(self) -> datetime | None:
        """Until when calendar reads are held back because Graph was unavailable (None: not braked)."""
        try:
            entity = self._table("markers").get_entity("marker", "graph-brake")
        except ResourceNotFoundError:
            return None
        until: datetime = entity["until"]
        return until

    def brake_graph(self, until: datetime) -> None:
        entity = {"PartitionKey": "marker", "RowKey": "graph-brake", "until": until}
        self._table("markers").upsert_entity(entity, mode=UpdateMode.REPLACE)

    # -- contacts: the mirror of Outlook contacts per shared mailbox, and its folders ---------
    def contact_mirror(self, mailbox: str) -> dict[str, dict[str, Any]]:
        """The mailbox's contacts as of the last delta rounds, keyed by contact id (raw Graph JSON)."""
        query = f"PartitionKey eq '{_key(mailbox.lower())}'"
        return {e["contact_id"]: json.loads(e["data"]) for e in self._table("contacts").query_entities(query)}

    def update_contact_mirror(self, mailbox: str, upserts: Iterable[dict[str, Any]], deletes: Iterable[str]) -> None:
        partition = _key(mailbox.lower())
        operations: list[tuple[str, dict[str, Any]]] = [
            (
                "upsert",
                {"PartitionKey": partition, "RowKey": _key(c["id"]), "contact_id": c["id"], "data": json.dumps(c)},
            )
            for c in upserts
        ]
        operations += [("delete", {"PartitionKey": partition, "RowKey": _key(cid)}) for cid in deletes]
        _submit_in_batches(self._table("contacts"), operations)

    def contact_folders(self, mailbox: str) -> tuple[list[str], datetime] | None:
        """The mailbox's child contact folder ids and when they were listed."""
        try:
            entity = self._table("contactfolders").get_entity("folders", _key(mailbox.lower()))
        except ResourceNotFoundError:
            return None
        return json.loads(entity["folders"]), entity["listed_at"]

    def save_contact_folders(self, mailbox: str, folder_ids: list[str]) -> None:
        entity = {
            "PartitionKey": "folders",
            "RowKey": _key(mailbox.lower()),
            "folders": json.dumps(folder_ids),
            "listed_at": utcnow(),
        }
        self._table("contactfolders").upsert_entity(entity, mode=UpdateMode.REPLACE)

    def forget_contact_mailboxes(self, keep: Iterable[str]) -> tuple[int, int]:
        """Delete the contact mirror and folder list of every mailbox not in `keep`.

        Returns (contacts deleted, folder lists deleted). Earlier versions mirrored each
        user's own mailbox for personal phonebooks; today only the shared mailboxes' mirrors
        are read, so anything else is left over.
        """
        kept = {_key(mailbox.lower()) for mailbox in keep}
        stale: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for entity in self._table("contacts").list_entities(select=["PartitionKey", "RowKey"]):
            if entity["PartitionKey"] not in kept:
                row = {"PartitionKey": entity["PartitionKey"], "RowKey": entity["RowKey"]}
                stale.setdefault(entity["PartitionKey"], []).append(("delete", row))
        for operations in stale.values():  # a transaction stays within one partition
            _submit_in_batches(self._table("contacts"), operations)
        folders = [
            ("delete", {"PartitionKey": "folders", "RowKey": entity["RowKey"]})
            for entity in self._table("contactfolders").query_entities("PartitionKey eq 'folders'", select=["RowKey"])
            if entity["RowKey"] not in kept
        ]
        _submit_in_batches(self._table("contactfolders"), folders)
        return sum(len(operations) for operations in stale.values()), len(folders)

    def delta_link_names(self, prefix: str) -> list[str]:
        """The names of the stored delta links that start with `prefix` (not empty)."""
        query = "PartitionKey eq 'delta' and RowKey ge @low and RowKey lt @high"
        bounds = {"low": prefix, "high": prefix[:-1] + chr(ord(prefix[-1]) + 1)}  # every name with the prefix
        entities = self._table("deltalinks").query_entities(query, parameters=bounds, select=["RowKey"])
        return [str(entity["RowKey"]) for entity in entities]

    def delete_delta_links(self, names: Iterable[str]) -> None:
        _submit_in_batches(
            self._table("deltalinks"), [("delete", {"PartitionKey": "delta", "RowKey": name}) for name in names]
        )

    def forget_personal_books(self) -> int:
        """Delete the record of personal phonebooks earlier versions wrote to; returns how many there were."""
        table = self._table("contactbooks")
        books = [
            ("delete", {"PartitionKey": "book", "RowKey": entity["RowKey"]})
            for entity in table.query_entities("PartitionKey eq 'book'", select=["RowKey"])
        ]
        _submit_in_batches(table, books)
        return len(books)

    def signing_key(self, name: str) -> bytes:
        """A random 32-byte key kept in state, made on first use (the same one for every instance)."""
        table = self._table("keys")
        with suppress(ResourceExistsError):
            table.create_entity({"PartitionKey": "key", "RowKey": name, "value": secrets.token_hex(32)})
        return bytes.fromhex(table.get_entity("key", name)["value"])

    def marker_set(self, name: str) -> bool:
        """Whether the one-off step `name` was done (see `set_marker`)."""
        try:
            self._table("markers").get_entity("marker", name)
        except ResourceNotFoundError:
            return False
        return True

    def set_marker(self, name: str) -> None:
        """Remember that the one-off step `name` is done, so it is not done again."""
        self._table("markers").upsert_entity({"PartitionKey": "marker", "RowKey": name, "at": utcnow()})

    # -- deprovisioning log (the deletion guard's memory) ------------------------------------
    def record_deprovision(self, m365_id: str, action: str, at: datetime | None = None) -> None:
        at = at or utcnow()
        inverted = 10**13 - int(at.timestamp() * 1000)
        entity = {"PartitionKey": "d", "RowKey": f"{inverted:013d}-{m365_id}", "action": action, "at": at}
        self._table("deprovisions").upsert_entity(entity)

    def deprovisions_since(self, since: datetime) -> int:
        """How many users were disabled or deleted since `since` (newest rows sort first)."""
        bound = f"{10**13 - int(since.timestamp() * 1000):013d}"
        query = f"PartitionKey eq 'd' and RowKey lt '{bound}'"
        return sum(1 for _ in self._table("deprovisions").query_entities(query, select=["RowKey"]))

    # -- run records ------------------------------------------------------------------------
    def save_run(self, run: RunRecord) -> None:
        """Upsert a run; newest sorts first (inverted timestamp in the row key)."""
        inverted = 10**13 - int(run.started_at.timestamp() * 1000)
        errors = run.errors[:_MAX_ERRORS_KEPT]
        entity = {
            "PartitionKey": run.kind,
            "RowKey": f"{inverted:013d}-{run.run_id}",
            "run_id": run.run_id,
            "started_at": run.started_at,
            "status": run.status,
            "dry_run": run.dry_run,
            "counts": json.dumps(run.counts),
            "errors": json.dumps(errors)[:30000],
            "error_count": len(run.errors),
            "skipped": json.dumps(run.skipped[:_MAX_ERRORS_KEPT])[:30000],
            "skipped_count": len(run.skipped),
            "guard": run.guard or "",
            "trigger": run.trigger,
            "subject": run.subject or "",
            "held": json.dumps(run.held[:_MAX_ERRORS_KEPT])[:30000],
            "held_count": len(run.held),
        }
        if run.ended_at:
            entity["ended_at"] = run.ended_at
        if run.held_actions:
            held = json.dumps([action.model_dump(mode="json") for action in run.held_actions])
            chunks = [held[i : i + _PROPERTY_CHARS] for i in range(0, len(held), _PROPERTY_CHARS)]
            if len(chunks) <= _HELD_CHUNKS:  # more: the summary lines stay, approval is by the CLI flags
                entity.update({f"held_actions_{i}": chunk for i, chunk in enumerate(chunks)})
                entity["held_digest"] = run.held_digest or ""
        if run.resolution is not None:
            entity["resolution"] = run.resolution.model_dump_json()
        if run.approves:
            entity["approves"] = run.approves
        self._table("runs").upsert_entity(entity, mode=UpdateMode.REPLACE)

    def get_run(self, run_id: str, kind: str | None = None) -> RunRecord | None:
        """One run by its id (of `kind`, if given)."""
        query = f"run_id eq '{_odata(run_id)}'"
        if kind is not None:
            query = f"PartitionKey eq '{_odata(kind)}' and {query}"
        for entity in self._table("runs").query_entities(query):
            return _run_from_entity(entity)
        return None

    def recent_runs(self, kind: str, limit: int = 10, before: datetime | None = None) -> list[RunRecord]:
        """The newest runs of one kind (started before `before`, if given), newest first."""
        runs: list[RunRecord] = []
        query = f"PartitionKey eq '{_odata(kind)}'"
        if before is not None:
            # Row keys start with the inverted start time: older runs sort after this bound.
            query += f" and RowKey gt '{10**13 - int(before.timestamp() * 1000):013d}-~'"
        for entity in self._table("runs").query_entities(query, results_per_page=limit):
            runs.append(_run_from_entity(entity))
            if len(runs) >= limit:
                break
        return runs

    def runs_since(self, kind: str, since: datetime, limit: int = 50_000) -> list[RunRecord]:
        """The runs of one kind started since `since`, newest first (their counts and status only)."""
        bound = f"{10**13 - int(since.timestamp() * 1000):013d}"
        query = f"PartitionKey eq '{_odata(kind)}' and RowKey lt '{bound}'"
        fields = ["PartitionKey", "run_id", "started_at", "status", "counts", "dry_run", "trigger"]
        runs: list[RunRecord] = []
        for entity in self._table("runs").query_entities(query, select=fields):
            runs.append(_run_from_entity(entity))
            if len(runs) >= limit:
                break
        return runs

    # -- leases ---------------------------------------------------------------------------------
    def lease(self, name: str, ttl: timedelta) -> Lease:
        """A lease on the named lock, not yet acquired (the run envelope acquires and renews it)."""
        return Lease(self._table("locks"), name, ttl)

    # -- the run lock -----------------------------------------------------------------------
    @contextmanager
    def lock(self, name: str, ttl: timedelta = timedelta(minutes=30)) -> Iterator[Lease]:
        """Hold a named lock across processes; raises LockHeld if another holder's lease is live.

        Optimistic concurrency on the entity's ETag makes acquisition atomic: of two callers
        racing for an expired lease, exactly one update succeeds.
        """
        lease = Lease(self._table("locks"), name, ttl)
        lease.acquire()
        try:
            yield lease
        finally:
            lease.release()


class SharedTcxToken:
    """The 3CX API token shared by every process on this state (see shared.threecx.SharedToken).

    3CX keeps one valid token per API client: a second process fetching its own would
    revoke the first one's. The token lives a short while in the state table, which only
    the connector's identity can read, like MSAL's own token cache in memory.
    """

    _WAIT_STEP = 0.1

    def __init__(self, store: StateStore, wait_seconds: float = 30.0, sleep: Any = time.sleep) -> None:
        self._store = store
        self._wait_seconds = wait_seconds
        self._sleep = sleep

    def load(self) -> tuple[str, float] | None:
        try:
            entity = self._store._table("tokens").get_entity("token", "tcx")
        except ResourceNotFoundError:
            return None
        return str(entity["token"]), float(entity["renew_at"])

    def store(self, token: str, renew_at: float) -> None:
        entity = {"PartitionKey": "token", "RowKey": "tcx", "token": token, "renew_at": renew_at}
        self._store._table("tokens").upsert_entity(entity, mode=UpdateMode.REPLACE)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Wait (bounded) until this process may fetch; another's fetch usually lands meanwhile."""
        lease = Lease(self._store._table("locks"), "tcx-token", timedelta(seconds=30))
        waited = 0.0
        while True:
            try:
                lease.acquire()
                break
            except LockHeld:
                if waited >= self._wait_seconds:
                    raise
                self._sleep(self._WAIT_STEP)
                waited += self._WAIT_STEP
        try:
            yield
        finally:
            lease.release()


class Lease:
    """A time-limited lock entity; `renew` pushes the expiry out during long runs."""

    def __init__(self, table: TableClient, name: str, ttl: timedelta) -> None:
        self._table = table
        self.name = name
        self.ttl = ttl
        self.holder = f"{secrets.token_hex(4)}@{int(time.time())}"
        self._etag: str | None = None

    def acquire(self) -> None:
        entity = {"PartitionKey": "lock", "RowKey": self.name, "holder": self.holder, "expires_at": utcnow() + self.ttl}
        try:
            metadata = self._table.create_entity(entity)
            self._etag = metadata.get("etag")
            return
        except ResourceExistsError:
            pass
        current = self._table.get_entity("lock", self.name)
        expires_at = current["expires_at"]
        if expires_at > utcnow():
            raise LockHeld(self.name, current["holder"], expires_at)
        try:
            metadata = self._table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except HttpResponseError:
            latest = self._table.get_entity("lock", self.name)
            raise LockHeld(self.name, latest["holder"], latest["expires_at"]) from None
        self._etag = metadata.get("etag")

    def renew(self) -> None:
        entity = {"PartitionKey": "lock", "RowKey": self.name, "holder": self.holder, "expires_at": utcnow() + self.ttl}
        metadata = self._table.update_entity(
            entity, mode=UpdateMode.REPLACE, etag=self._etag, match_condition=MatchConditions.IfNotModified
        )
        self._etag = metadata.get("etag")

    def release(self) -> None:
        # Expired and taken over, or already gone: nothing of ours to release.
        with contextlib.suppress(ResourceNotFoundError, HttpResponseError):
            self._table.delete_entity("lock", self.name, etag=self._etag, match_condition=MatchConditions.IfNotModified)


def _run_from_entity(entity: dict[str, Any]) -> RunRecord:
    return RunRecord(
        kind=entity["PartitionKey"],
        run_id=entity["run_id"],
        started_at=entity["started_at"],
        trigger=entity.get("trigger") or "",
        subject=entity.get("subject") or None,
        ended_at=entity.get("ended_at"),
        status=entity["status"],
        dry_run=entity.get("dry_run", False),
        counts=json.loads(entity.get("counts") or "{}"),
        errors=json.loads(entity.get("errors") or "[]"),
        skipped=json.loads(entity.get("skipped") or "[]"),
        held=json.loads(entity.get("held") or "[]"),
        guard=entity.get("guard") or None,
        held_actions=_held_from_entity(entity),
        held_digest=entity.get("held_digest") or None,
        resolution=Resolution.model_validate_json(entity["resolution"]) if entity.get("resolution") else None,
        approves=entity.get("approves") or None,
    )


def _held_from_entity(entity: dict[str, Any]) -> list[HeldAction]:
    text = "".join(entity.get(f"held_actions_{i}") or "" for i in range(_HELD_CHUNKS))
    return [HeldAction.model_validate(item) for item in json.loads(text)] if text else []


def _odata(text: str) -> str:
    """A string literal's content for an OData filter (quotes doubled)."""
    return text.replace("'", "''")


def _link_entity(link: Link) -> dict[str, Any]:
    entity = {"PartitionKey": "user", "RowKey": link.m365_id, **link.model_dump(exclude={"m365_id"})}
    entity["deprovisioned"] = link.deprovisioned or ""
    entity["photo_etag"] = link.photo_etag or ""
    entity["kept"] = json.dumps({name: value.model_dump() for name, value in link.kept.items()}) if link.kept else ""
    return entity


def _link_from_entity(entity: dict[str, Any]) -> Link:
    return Link(
        m365_id=entity["RowKey"],
        upn=entity["upn"],
        tcx_user_id=int(entity["tcx_user_id"]),
        extension=str(entity["extension"]),
        origin=entity["origin"],
        photo_etag=entity.get("photo_etag") or None,
        deprovisioned=entity.get("deprovisioned") or None,
        kept={name: KeptValue.model_validate(value) for name, value in json.loads(entity.get("kept") or "{}").items()},
    )


def _key(text: str) -> str:
    """A Table Storage key for any text (mail addresses and Graph ids may hold / # ?)."""
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _presence_from_entity(entity: Any) -> PresenceState:
    state = PresenceState.model_validate_json(entity["data"])
    return state.model_copy(update={"etag": entity.metadata.get("etag")})


# Characters Table Storage does not allow in PartitionKey or RowKey, and its 1 KiB limit.
_FORBIDDEN_IN_KEY = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
_MAX_KEY_BYTES = 1024


def _usable_key(key: str) -> bool:
    """Could Table Storage use `key` as a RowKey at all?"""
    return (
        bool(key) and len(key.encode("utf-8", "surrogatepass")) <= _MAX_KEY_BYTES and not _FORBIDDEN_IN_KEY.search(key)
    )


def _subscription_from_entity(entity: dict[str, Any]) -> SubscriptionRecord:
    return SubscriptionRecord(
        id=entity["RowKey"],
        kind=entity["kind"],
        resource=entity["resource"],
        user_id=entity.get("user_id") or None,
        client_state=entity["client_state"],
        expires_at=entity["expires_at"],
    )


def _submit_in_batches(table: TableClient, operations: list[tuple[str, dict[str, Any]]]) -> None:
    # A transaction may not touch one row twice; later operations on a row win.
    latest: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for operation in operations:
        latest[(operation[1]["PartitionKey"], operation[1]["RowKey"])] = operation
    pending = list(latest.values())
    for start in range(0, len(pending), _BATCH):
        chunk = pending[start : start + _BATCH]
        try:
            table.submit_transaction(chunk)
        except HttpResponseError:
            # A delete of a row that is already gone fails the whole transaction; fall back to one by one.
            for kind, entity in chunk:
                if kind == "delete":
                    table.delete_entity(entity["PartitionKey"], entity["RowKey"])
                else:
                    table.upsert_entity(entity)

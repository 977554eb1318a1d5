"""Outlook contacts for the Graph fake: folders, contacts, listing and delta per folder.

Mixed into `GraphFake`. Every mailbox (a user or a shared mailbox, anything with Exchange)
has a default Contacts folder with an id of its own, reached through `/contacts` and never
listed by `/contactFolders`, and any tree of child folders under it. Tests change contacts
through plain methods (`add_contact_folder`, `add_contact`, `update_contact`,
`delete_contact`, `move_contact`); every change is logged per folder, which is what delta
answers from, and tells subscribers (`users/{id}/contacts` and the folder's own resource).

What the fake enforces, as Graph does (facts: shared/reference/graph.md §2.1, §2.4, §2.7,
§4.4): delta is per folder; its tokens carry the round's `$select`; page size comes from
`Prefer: odata.maxpagesize` on each request; a contact moved between folders is removed
from the old folder's delta and added to the new one's; expired tokens answer 410 with a
restart Location or 400 `syncStateNotFound`. Unknown `$select` names are refused; a user
without Exchange answers 404 `MailboxNotEnabledForRESTAPI`.

Ids: every contact has an immutable id (what the helpers return) and a REST id that
Outlook replaces whenever the contact changes folder. A request with
`Prefer: IdType="ImmutableId"` sees immutable ids, any other sees REST ids, so a client
that forgets the header loses track of moved contacts, as it would against Outlook. Both
forms are accepted where a path names a contact. Notifications always carry immutable ids
(the subscription side does not record the preference it was created with).
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fakes.graph_errors import GraphQueryError
from fakes.transport import FakeRequest, FakeResponse

DEFAULT_CONTACT_DELTA_PAGE_SIZE = 100
DEFAULT_CONTACT_LIST_PAGE_SIZE = 10  # Outlook collections answer ten a page unless asked
MAX_CONTACT_PAGE_SIZE = 1000  # larger requests are served this many a page
DEFAULT_FOLDER_NAME = "Contacts"

# Contact properties (v1.0 resource). `$select` accepts exactly these; helpers may set the
# writable ones.
KNOWN_CONTACT_PROPERTIES: tuple[str, ...] = (
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "parentFolderId",
    "birthday",
    "fileAs",
    "displayName",
    "givenName",
    "initials",
    "middleName",
    "nickName",
    "surname",
    "title",
    "yomiGivenName",
    "yomiSurname",
    "yomiCompanyName",
    "generation",
    "imAddresses",
    "jobTitle",
    "companyName",
    "department",
    "officeLocation",
    "profession",
    "businessHomePage",
    "assistantName",
    "manager",
    "homePhones",
    "mobilePhone",
    "businessPhones",
    "spouseName",
    "personalNotes",
    "children",
    "emailAddresses",
    "homeAddress",
    "businessAddress",
    "otherAddress",
)
_CANONICAL_CONTACT_PROPERTY = {name.lower(): name for name in KNOWN_CONTACT_PROPERTIES}
_READ_ONLY = frozenset({"id", "createdDateTime", "lastModifiedDateTime", "changeKey", "parentFolderId"})
_LIST_PROPERTIES = frozenset(
    {"categories", "imAddresses", "homePhones", "businessPhones", "children", "emailAddresses"}
)
_STRING_LIST_PROPERTIES = frozenset({"categories", "imAddresses", "homePhones", "businessPhones", "children"})
KNOWN_FOLDER_PROPERTIES: tuple[str, ...] = ("id", "displayName", "parentFolderId")
_CANONICAL_FOLDER_PROPERTY = {name.lower(): name for name in KNOWN_FOLDER_PROPERTIES}
_IMMUTABLE_PREFERENCE = re.compile(r'idtype\s*=\s*"?immutableid"?', re.IGNORECASE)
_PAGE_SIZE_PREFERENCE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.IGNORECASE)


class ContactError(GraphQueryError):
    """A contacts request the fake refuses, in Graph's words."""


@dataclass
class StoredContact:
    """One contact as the mailbox keeps it; `fields` holds the writable Graph properties."""

    id: str  # immutable id
    rest_id: str  # replaced on every move between folders
    folder_id: str
    fields: dict[str, Any]
    created: datetime
    last_modified: datetime
    change_serial: int = 1


@dataclass
class StoredContactFolder:
    id: str
    display_name: str
    parent_id: str  # the default folder's parent is the mailbox root


@dataclass
class _FolderChange:
    """The last thing that happened to a contact as one folder's delta sees it."""

    version: int
    departed_rest_id: str | None = None  # set when the contact left the folder (moved or deleted)


@dataclass
class ContactMailbox:
    """A mailbox's contacts: the default folder, its subtree, and a change log per folder."""

    user_id: str
    root_id: str
    default_folder_id: str
    folders: dict[str, StoredContactFolder] = field(default_factory=dict)  # the default folder included
    contacts: dict[str, StoredContact] = field(default_factory=dict)  # by immutable id
    changes: dict[str, dict[str, _FolderChange]] = field(default_factory=dict)  # folder -> contact -> change

    def log(self, folder_id: str, contact_id: str, change: _FolderChange) -> None:
        # Re-inserted so each folder's log stays in order of the last change.
        folder_log = self.changes.setdefault(folder_id, {})
        folder_log.pop(contact_id, None)
        folder_log[contact_id] = change


@dataclass
class _ContactCursor:
    """Server-side state behind a contacts delta `$skiptoken` (a round in progress)."""

    user_id: str
    folder_id: str
    path: str  # the delta path as the client addressed it, for links
    ids: list[str]
    offset: int
    select: tuple[str, ...] | None
    round_version: int
    seen_version: int


@dataclass(frozen=True)
class _ContactDeltaState:
    """Server-side state behind a contacts delta `$deltatoken`."""

    user_id: str
    folder_id: str
    path: str
    version: int
    select: tuple[str, ...] | None


class ContactsMixin:
    """The contacts half of GraphFake (state, helpers and routes)."""

    # Provided by GraphFake.
    _lock: threading.RLock
    clock: Callable[[], float]
    users: dict[str, dict[str, Any]]
    _upn_index: dict[str, str]
    base_url: str
    add_route: Callable[..., None]
    _mailbox_owner: Callable[[str], str]
    _notify: Callable[..., None]

    def _init_contacts(self) -> None:
        self.contact_mailboxes: dict[str, ContactMailbox] = {}  # user id -> mailbox
        self.contact_delta_page_size = DEFAULT_CONTACT_DELTA_PAGE_SIZE
        self._contact_version = 0
        self._contact_cursors: dict[str, _ContactCursor] = {}
        self._contact_delta_tokens: dict[str, _ContactDeltaState] = {}
        # token -> (status to answer, the delta path and $select for the restart Location)
        self._expired_contact_tokens: dict[str, tuple[int, str, tuple[str, ...] | None]] = {}

    # =====================================================================================
    # helpers for tests, demo and benchmarks
    # =====================================================================================
    def default_contact_folder_id(self, user_id: str) -> str:
        """The id of a mailbox's default Contacts folder (the parentFolderId of its contacts)."""
        with self._lock:
            return self._contact_mailbox(user_id).default_folder_id

    def outlook_contacts(self, upn: str) -> list[dict[str, Any]]:
        """Every contact in the mailbox of the user with this UPN or mail (Graph fields); [] without one.

        What another reader of the mailbox sees: 3CX's own Microsoft 365 sync, for instance.
        """
        with self._lock:
            user_id = self._upn_index.get(upn.lower())
            mailbox = self.contact_mailboxes.get(user_id) if user_id else None
            return [dict(contact.fields) for contact in mailbox.contacts.values()] if mailbox else []

    def add_contact_folder(self, user_id: str, display_name: str, parent_folder_id: str | None = None) -> str:
        """Create a contact folder under `parent_folder_id` (None: the default folder); returns its id."""
        with self._lock:
            mailbox = self._contact_mailbox(user_id)
            parent = parent_folder_id or mailbox.default_folder_id
            if parent not in mailbox.folders:
                raise KeyError(f"no contact folder {parent} in the mailbox of {user_id}")
            name = display_name.strip()
            if not name:
                raise ValueError("a contact folder needs a display name")
            if any(f.parent_id == parent and f.display_name.lower() == name.lower() for f in mailbox.folders.values()):
                raise ValueError(f"a folder named {name!r} already exists there")  # Outlook: ErrorFolderExists
            folder = StoredContactFolder(_new_folder_id(), name, parent)
            mailbox.folders[folder.id] = folder
            return folder.id

    def add_contact(self, user_id: str, folder_id: str | None = None, **graph_fields: Any) -> str:
        """Add a contact (Graph property names, e.g. `givenName="Ada"`) to a folder (None:
        the default folder); returns its immutable id. Subscribers hear `created`.
        """
        with self._lock:
            mailbox = self._contact_mailbox(user_id)
            folder = folder_id or mailbox.default_folder_id
            if folder not in mailbox.folders:
                raise KeyError(f"no contact folder {folder} in the mailbox of {user_id}")
            fields = {name: ([] if name in _LIST_PROPERTIES else None) for name in KNOWN_CONTACT_PROPERTIES}
            for name in _READ_ONLY:
                fields.pop(name)
            fields.update(_writable(graph_fields))
            if not fields.get("displayName"):
                fields["displayName"] = _composed_name(fields)
            now = self._contacts_now()
            contact = StoredContact(_new_immutable_id(), _new_rest_id(), folder, fields, now, now)
            mailbox.contacts[contact.id] = contact
            mailbox.log(folder, contact.id, _FolderChange(self._bump_contacts()))
        self._notify_contact_change(user_id, contact.id, "created", {folder: "created"})
        return contact.id

    def update_contact(self, user_id: str, contact_id: str, **graph_fields: Any) -> None:
        """Change a contact's properties (Graph names). Nothing changes, nothing is reported,
        when every value is already what it is; otherwise subscribers hear `updated`.
        """
        with self._lock:
            mailbox = self._contact_mailbox(user_id)
            contact = _stored_contact(mailbox, contact_id)
            changed = {name: value for name, value in _writable(graph_fields).items() if contact.fields[name] != value}
            if not changed:
                return
            contact.fields.update(changed)
            contact.change_serial += 1
            contact.last_modified = self._contacts_now()
            mailbox.log(contact.folder_id, contact.id, _FolderChange(self._bump_contacts()))
            folder = contact.folder_id
        self._notify_contact_change(user_id, contact.id, "updated", {folder: "updated"})

    def delete_contact(self, user_id: str, contact_id: str) -> None:
        """Delete a contact for good (delta reason "deleted"). Subscribers hear `deleted`."""
        with self._lock:
            mailbox = self._contact_mailbox(user_id)
            contact = _stored_contact(mailbox, contact_id)
            del mailbox.contacts[contact.id]
            mailbox.log(contact.folder_id, contact.id, _FolderChange(self._bump_contacts(), contact.rest_id))
        self._notify_contact_change(user_id, contact.id, "deleted", {contact.folder_id: "deleted"})

    def move_contact(self, user_id: str, contact_id: str, folder_id: str) -> None:
        """Move a contact to another folder of the same mailbox.

        Its immutable id stays; its REST id is replaced, as Outlook does. The old folder's
        delta reports it removed, the new folder's reports it added. Mailbox subscribers
        hear `updated`; subscribers of the old folder hear `deleted`, of the new `created`.
        """
        with self._lock:
            mailbox = self._contact_mailbox(user_id)
            contact = _stored_contact(mailbox, contact_id)
            if folder_id not in mailbox.folders:
                raise KeyError(f"no contact folder {folder_id} in the mailbox of {user_id}")
            source = contact.folder_id
            if source == folder_id:
                return
            version = self._bump_contacts()
            mailbox.log(source, contact.id, _FolderChange(version, contact.rest_id))
            contact.folder_id = folder_id
            contact.rest_id = _new_rest_id()
            contact.change_serial += 1
            contact.last_modified = self._contacts_now()
            mailbox.log(folder_id, contact.id, _FolderChange(version))
        self._notify_contact_change(user_id, contact.id, "updated", {source: "deleted", folder_id: "created"})

    def delete_contact_folder(self, user_id: str, folder_id: str) -> None:
        """Delete a contact folder for good, with its child folders and their contacts.

        Afterwards every request that addresses it — its contacts, its delta, a delta or
        page token of its rounds — answers 404 `ErrorItemNotFound`, as Outlook does for a
        folder that was purged. (Deleting in Outlook first moves it to Deleted Items, out of
        the Contacts tree; this is the end of that road.)
        """
        with self._lock:
            mailbox = self._contact_mailbox(user_id)
            if folder_id == mailbox.default_folder_id or folder_id not in mailbox.folders:
                raise KeyError(f"no deletable contact folder {folder_id} in the mailbox of {user_id}")
            doomed = {folder_id}
            while True:
                children = {f.id for f in mailbox.folders.values() if f.parent_id in doomed} - doomed
                if not children:
                    break
                doomed |= children
            for gone in doomed:
                del mailbox.folders[gone]
                mailbox.changes.pop(gone, None)
            for contact_id in [c.id for c in mailbox.contacts.values() if c.folder_id in doomed]:
                del mailbox.contacts[contact_id]

    def rest_contact_id(self, user_id: str, contact_id: str) -> str:
        """The contact's current REST id (what a request without the ImmutableId preference sees)."""
        with self._lock:
            return _stored_contact(self._contact_mailbox(user_id), contact_id).rest_id

    def expire_contact_delta_tokens(self, *, status: int = 410) -> None:
        """Make every outstanding contacts delta and delta-page token fail.

        `status` 410 answers Gone with a Location to restart from; 400 answers the
        `syncStateNotFound` error Graph gives when Outlook's token cache dropped the state.
        """
        if status not in (400, 410):
            raise ValueError("status must be 410 (Gone) or 400 (syncStateNotFound)")
        with self._lock:
            for token, state in self._contact_delta_tokens.items():
                self._expired_contact_tokens[token] = (status, state.path, state.select)
            self._contact_delta_tokens.clear()
            for token, cursor in self._contact_cursors.items():
                self._expired_contact_tokens[token] = (status, cursor.path, cursor.select)
            self._contact_cursors.clear()

    # =====================================================================================
    # routes
    # =====================================================================================
    def _register_contact_routes(self) -> None:
        user = r"/users/(?P<key>[^/]+)"
        folder = r"/contactFolders/(?P<folder>[^/]+)"
        delta = r"/contacts/delta(?:\(\))?"
        # Graph documents delta per folder; the default folder's own form (/contacts/delta)
        # is modelled too because the default folder has no well-known name to put in a
        # /contactFolders path, and clients reach it that way.
        self.add_route("GET", user + delta, self._contacts_delta, label="/users/{key}/contacts/delta")
        folder_delta_label = "/users/{key}/contactFolders/{folder}/contacts/delta"
        self.add_route("GET", user + folder + delta, self._contacts_delta, label=folder_delta_label)
        self.add_route("GET", user + r"/contacts", self._list_contacts)
        self.add_route("GET", user + r"/contacts/(?P<contact>[^/]+)", self._get_contact)
        self.add_route("GET", user + folder + r"/contacts", self._list_contacts)
        self.add_route("GET", user + r"/contactFolders", self._list_contact_folders)
        self.add_route("GET", user + folder, self._get_contact_folder)
        self.add_route("GET", user + folder + r"/childFolders", self._list_contact_folders)

    def _list_contacts(self, request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        mailbox = self._addressed_mailbox(match["key"])
        folder_id = self._addressed_folder(mailbox, match.groupdict().get("folder"))
        query = _lower_keys(request.query)
        select = _parse_contact_select(query.get("$select"))
        contacts = [c for c in mailbox.contacts.values() if c.folder_id == folder_id]
        immutable = _wants_immutable_ids(request)
        items = [_contact_json(mailbox, contact, select, immutable) for contact in contacts]
        return self._list_page(request, items, query, mailbox.user_id, "contacts")

    def _get_contact(self, request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        mailbox = self._addressed_mailbox(match["key"])
        select = _parse_contact_select(_lower_keys(request.query).get("$select"))
        try:
            contact = _stored_contact(mailbox, match["contact"])
        except KeyError:
            raise _item_not_found() from None
        context = f"{self.base_url}/v1.0/$metadata#users('{mailbox.user_id}')/contacts/$entity"
        body = {"@odata.context": context, **_contact_json(mailbox, contact, select, _wants_immutable_ids(request))}
        return FakeResponse(200, body)

    def _list_contact_folders(self, request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        mailbox = self._addressed_mailbox(match["key"])
        parent = self._addressed_folder(mailbox, match.groupdict().get("folder"))
        query = _lower_keys(request.query)
        select = _parse_folder_select(query.get("$select"))
        items = [_folder_json(folder, select) for folder in mailbox.folders.values() if folder.parent_id == parent]
        return self._list_page(request, items, query, mailbox.user_id, "contactFolders")

    def _get_contact_folder(self, request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        mailbox = self._addressed_mailbox(match["key"])
        folder_id = self._addressed_folder(mailbox, match["folder"])
        select = _parse_folder_select(_lower_keys(request.query).get("$select"))
        context = f"{self.base_url}/v1.0/$metadata#users('{mailbox.user_id}')/contactFolders/$entity"
        return FakeResponse(200, {"@odata.context": context, **_folder_json(mailbox.folders[folder_id], select)})

    def _list_page(
        self, request: FakeRequest, items: list[dict[str, Any]], query: dict[str, str], user_id: str, entity: str
    ) -> FakeResponse:
        """One `$skip`-paged page of a listing, as Outlook pages its collections."""
        page_size = _list_page_size(request, query.get("$top"))
        skip = _parse_skip(query.get("$skip"))
        body: dict[str, Any] = {
            "@odata.context": f"{self.base_url}/v1.0/$metadata#users('{user_id}')/{entity}",
            "value": items[skip : skip + page_size],
        }
        if skip + page_size < len(items):
            kept = "".join(
                f"{name}={quote(value, safe=',')}&" for name, value in request.query.items() if name.lower() != "$skip"
            )
            path = quote(request.path, safe="/@")
            body["@odata.nextLink"] = f"{self.base_url}/v1.0{path}?{kept}$skip={skip + page_size}"
        return FakeResponse(200, body)

    # -- delta -----------------------------------------------------------------------------
    def _contacts_delta(self, request: FakeRequest, match: re.Match[str]) -> FakeResponse:
        query = _lower_keys(request.query)
        if "$skiptoken" in query:
            token = query["$skiptoken"]
            self._raise_if_contact_token_expired(token)
            cursor = self._contact_cursors.get(token)
            if cursor is None:
                raise _sync_state_not_found()
        elif query.get("$deltatoken"):
            token = query["$deltatoken"]
            self._raise_if_contact_token_expired(token)
            state = self._contact_delta_tokens.get(token)
            if state is None:
                raise _sync_state_not_found()
            self._addressed_mailbox(match["key"])  # the mailbox may have gone since: 404 then
            mailbox = self.contact_mailboxes[state.user_id]
            if state.folder_id not in mailbox.folders:
                raise _item_not_found()  # the folder was deleted since
            changed = [
                contact_id
                for contact_id, change in mailbox.changes.get(state.folder_id, {}).items()
                if change.version > state.version
            ]
            cursor = _ContactCursor(
                state.user_id,
                state.folder_id,
                state.path,
                changed,
                0,
                state.select,
                self._contact_version,
                self._contact_version,
            )
        else:
            mailbox = self._addressed_mailbox(match["key"])
            folder_id = self._addressed_folder(mailbox, match.groupdict().get("folder"))
            select = _parse_contact_select(query.get("$select"))
            members = [c.id for c in mailbox.contacts.values() if c.folder_id == folder_id]
            path = quote(request.path, safe="/@()")
            cursor = _ContactCursor(
                mailbox.user_id, folder_id, path, members, 0, select, self._contact_version, self._contact_version
            )
        return self._contact_delta_page(request, cursor)

    def _contact_delta_page(self, request: FakeRequest, cursor: _ContactCursor) -> FakeResponse:
        mailbox = self.contact_mailboxes[cursor.user_id]
        # Changes made while a round is in progress are appended, so a contact can appear
        # twice in one round (Graph does this too; clients merge, the last one wins).
        if self._contact_version > cursor.seen_version:
            still_to_come = set(cursor.ids[cursor.offset :])
            late = [
                contact_id
                for contact_id, change in mailbox.changes.get(cursor.folder_id, {}).items()
                if change.version > cursor.seen_version and contact_id not in still_to_come
            ]
            cursor = replace(cursor, ids=cursor.ids + late, seen_version=self._contact_version)
        page_size = _page_size_preference(request) or self.contact_delta_page_size
        end = cursor.offset + page_size
        immutable = _wants_immutable_ids(request)
        entries = [
            self._contact_delta_entry(mailbox, cursor.folder_id, contact_id, cursor.select, immutable)
            for contact_id in cursor.ids[cursor.offset : end]
        ]
        body: dict[str, Any] = {
            "@odata.context": f"{self.base_url}/v1.0/$metadata#Collection(contact)",
            "value": entries,
        }
        link = f"{self.base_url}/v1.0{cursor.path}"
        if end < len(cursor.ids):
            token = secrets.token_urlsafe(18)
            self._contact_cursors[token] = replace(cursor, offset=end)
            body["@odata.nextLink"] = f"{link}?$skiptoken={token}"
        else:
            token = secrets.token_urlsafe(18)
            self._contact_delta_tokens[token] = _ContactDeltaState(
                cursor.user_id, cursor.folder_id, cursor.path, cursor.round_version, cursor.select
            )
            body["@odata.deltaLink"] = f"{link}?$deltatoken={token}"
        return FakeResponse(200, body)

    def _contact_delta_entry(
        self,
        mailbox: ContactMailbox,
        folder_id: str,
        contact_id: str,
        select: tuple[str, ...] | None,
        immutable: bool,
    ) -> dict[str, Any]:
        contact = mailbox.contacts.get(contact_id)
        if contact is not None and contact.folder_id == folder_id:
            return _contact_json(mailbox, contact, select, immutable)
        change = mailbox.changes.get(folder_id, {}).get(contact_id)
        shown = contact_id if immutable or change is None else change.departed_rest_id or contact_id
        return {"id": shown, "@removed": {"reason": "deleted"}}

    def _raise_if_contact_token_expired(self, token: str) -> None:
        expired = self._expired_contact_tokens.get(token)
        if expired is None:
            return
        status, path, select = expired
        if status == 410:
            select_query = f"$select={','.join(select)}&" if select else ""
            raise ContactError(
                410,
                "resyncRequired",
                "Resync required. Replace any local items with the server's version (including deletes) and "
                "start a new synchronization round.",
                {"Location": f"{self.base_url}/v1.0{path}?{select_query}$deltatoken="},
            )
        raise _sync_state_not_found()

    # =====================================================================================
    # internals
    # =====================================================================================
    def _contacts_now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _bump_contacts(self) -> int:
        self._contact_version += 1
        return self._contact_version

    def _contact_mailbox(self, user_id: str) -> ContactMailbox:
        """A user's contacts store, created with its default folder on first use (helpers)."""
        if user_id not in self.users:
            raise KeyError(f"no user {user_id}")
        try:
            self._mailbox_owner(user_id)
        except GraphQueryError:
            raise ValueError(f"user {user_id} has no Exchange mailbox, so no contacts") from None
        return self._ensure_contact_mailbox(user_id)

    def _ensure_contact_mailbox(self, user_id: str) -> ContactMailbox:
        mailbox = self.contact_mailboxes.get(user_id)
        if mailbox is None:
            root_id, default_id = _new_folder_id(), _new_folder_id()
            mailbox = ContactMailbox(user_id, root_id, default_id)
            mailbox.folders[default_id] = StoredContactFolder(default_id, DEFAULT_FOLDER_NAME, root_id)
            self.contact_mailboxes[user_id] = mailbox
        return mailbox

    def _addressed_mailbox(self, key: str) -> ContactMailbox:
        """The mailbox a path names by user id, UPN or primary SMTP address (shared mailboxes
        are usually configured by address); 404 as Graph answers for strangers and users
        without Exchange.
        """
        user_id = key if key in self.users else self._upn_index.get(key.lower())
        if user_id is None or user_id not in self.users:
            lowered = key.lower()
            user_id = next(
                (uid for uid, record in self.users.items() if str(record.get("mail") or "").lower() == lowered), None
            )
        if user_id is None:
            raise ContactError(404, "ResourceNotFound", "Resource could not be discovered.")
        return self._ensure_contact_mailbox(self._mailbox_owner(user_id))

    def _addressed_folder(self, mailbox: ContactMailbox, folder_id: str | None) -> str:
        if folder_id is None:
            return mailbox.default_folder_id
        if folder_id not in mailbox.folders:
            raise _item_not_found()
        return folder_id

    def _notify_contact_change(
        self, user_id: str, contact_id: str, mailbox_change: str, folder_changes: dict[str, str]
    ) -> None:
        """Tell subscribers: the mailbox's (`users/{id}/contacts`) hear `mailbox_change`, a
        folder's (`.../contactFolders/{id}/contacts`) hear what happened in that folder.

        A move is one `updated` to the whole mailbox, but leaves one folder (`deleted`) and
        enters another (`created`).
        """
        resource = f"Users/{user_id}/Contacts/{contact_id}"
        resource_data = {
            "@odata.type": "#Microsoft.Graph.Contact",
            "@odata.id": resource,
            "@odata.etag": f'W/"{secrets.token_hex(12)}"',
            "id": contact_id,
        }
        self._notify(
            lambda sub: sub.kind == "contacts" and sub.user_id == user_id, mailbox_change, resource, resource_data
        )
        for folder_id, change_type in folder_changes.items():
            self._notify(
                lambda sub, folder_id=folder_id: (
                    sub.kind == "folderContacts" and sub.user_id == user_id and sub.folder_id == folder_id
                ),
                change_type,
                resource,
                resource_data,
            )


# =========================================================================================
# JSON
# =========================================================================================
def _contact_json(
    mailbox: ContactMailbox, contact: StoredContact, select: tuple[str, ...] | None, immutable: bool
) -> dict[str, Any]:
    change_key = f"EQAAABYAAAB{contact.id[-12:]}{contact.change_serial:06d}"
    full: dict[str, Any] = {
        "id": contact.id if immutable else contact.rest_id,
        "createdDateTime": _timestamp(contact.created),
        "lastModifiedDateTime": _timestamp(contact.last_modified),
        "changeKey": change_key,
        "parentFolderId": contact.folder_id,
        **{name: _copy(value) for name, value in contact.fields.items()},
    }
    if not full.get("fileAs"):
        full["fileAs"] = full.get("displayName") or ""
    body: dict[str, Any] = {"@odata.etag": f'W/"{change_key}"'}
    if select is None:
        body.update(full)
        return body
    body["id"] = full["id"]  # id always comes back (graph.md §2.4)
    for name in select:
        body[name] = full[name]
    return body


def _folder_json(folder: StoredContactFolder, select: tuple[str, ...] | None) -> dict[str, Any]:
    full = {"id": folder.id, "displayName": folder.display_name, "parentFolderId": folder.parent_id}
    if select is None:
        return full
    return {"id": folder.id, **{name: full[name] for name in select}}


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [dict(item) if isinstance(item, dict) else item for item in value]
    return dict(value) if isinstance(value, dict) else value


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# =========================================================================================
# validation of helper input and query options
# =========================================================================================
def _writable(graph_fields: dict[str, Any]) -> dict[str, Any]:
    """Helper input checked against the contact resource: known, writable, well-shaped."""
    checked: dict[str, Any] = {}
    for name, value in graph_fields.items():
        if name not in _CANONICAL_CONTACT_PROPERTY.values():
            raise TypeError(f"contacts have no property {name!r} (use Graph's names, e.g. givenName)")
        if name in _READ_ONLY:
            raise TypeError(f"{name} is read-only (move_contact changes the folder)")
        if name in _LIST_PROPERTIES:
            if value is None:
                value = []
            if not isinstance(value, (list, tuple)):
                raise TypeError(f"{name} is a list")
            if name == "emailAddresses":
                if any(not isinstance(item, dict) or not item.get("address") for item in value):
                    raise ValueError("emailAddresses entries are {'name': ..., 'address': ...} with an address")
                value = [{"name": item.get("name"), "address": item["address"]} for item in value]
            elif name in _STRING_LIST_PROPERTIES and any(not isinstance(item, str) for item in value):
                raise TypeError(f"{name} holds strings")
            value = list(value)
        checked[name] = value
    return checked


def _composed_name(fields: dict[str, Any]) -> str:
    """What Outlook shows when a contact is saved without a display name."""
    names = " ".join(str(fields[name]) for name in ("givenName", "middleName", "surname") if fields.get(name))
    if names:
        return names
    if fields.get("companyName"):
        return str(fields["companyName"])
    addresses = fields.get("emailAddresses") or []
    return str(addresses[0]["address"]) if addresses else ""


def _stored_contact(mailbox: ContactMailbox, contact_id: str) -> StoredContact:
    """A contact by immutable id or by its current REST id (Graph takes both in paths)."""
    contact = mailbox.contacts.get(contact_id)
    if contact is None:
        contact = next((c for c in mailbox.contacts.values() if c.rest_id == contact_id), None)
    if contact is None:
        raise KeyError(f"no contact {contact_id} in the mailbox of {mailbox.user_id}")
    return contact


def _parse_contact_select(value: str | None) -> tuple[str, ...] | None:
    return _parse_names(value, _CANONICAL_CONTACT_PROPERTY, "Microsoft.OutlookServices.Contact")


def _parse_folder_select(value: str | None) -> tuple[str, ...] | None:
    return _parse_names(value, _CANONICAL_FOLDER_PROPERTY, "Microsoft.OutlookServices.ContactFolder")


def _parse_names(value: str | None, canonical: dict[str, str], type_name: str) -> tuple[str, ...] | None:
    if not value:
        return None
    names: list[str] = []
    for raw in value.split(","):
        name = canonical.get(raw.strip().lower())
        if name is None:
            raise ContactError(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{raw.strip()}' on type '{type_name}'.",
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def _wants_immutable_ids(request: FakeRequest) -> bool:
    return any(_IMMUTABLE_PREFERENCE.search(value) for value in _preferences(request))


def _page_size_preference(request: FakeRequest) -> int | None:
    for value in _preferences(request):
        match = _PAGE_SIZE_PREFERENCE.search(value)
        if match:
            return min(max(1, int(match.group(1))), MAX_CONTACT_PAGE_SIZE)
    return None


def _preferences(request: FakeRequest) -> list[str]:
    """The `Prefer` header's preferences (comma-separated, RFC 7240)."""
    return [part.strip() for part in (request.headers.get("Prefer") or "").split(",") if part.strip()]


def _list_page_size(request: FakeRequest, top: str | None) -> int:
    if top is None:
        return _page_size_preference(request) or DEFAULT_CONTACT_LIST_PAGE_SIZE
    if not top.isdigit() or int(top) < 1:
        raise ContactError(400, "ErrorInvalidParameter", f"The value '{top}' of the parameter '$top' is invalid.")
    return min(int(top), MAX_CONTACT_PAGE_SIZE)


def _parse_skip(value: str | None) -> int:
    if value is None:
        return 0
    if not value.isdigit():
        raise ContactError(400, "ErrorInvalidParameter", f"The value '{value}' of the parameter '$skip' is invalid.")
    return int(value)


def _lower_keys(query: dict[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in query.items()}


def _item_not_found() -> ContactError:
    return ContactError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def _sync_state_not_found() -> ContactError:
    return ContactError(
        400,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired or invalid; start a new round.",
    )


def _new_immutable_id() -> str:
    return "AAkALg" + secrets.token_urlsafe(39) + "AAA="


def _new_rest_id() -> str:
    return "AAMkAG" + secrets.token_urlsafe(39) + "AAA="


def _new_folder_id() -> str:
    return "AAMkAG" + secrets.token_urlsafe(27) + "AAEOAAA="

"""Microsoft Graph client: the reads the connector needs, with paging, delta and `$batch`,
plus calendar views, Outlook contacts and change-notification subscriptions.

The client knows Graph's protocol (nextLink paging, delta rounds and their resets,
advanced-query headers, batch items throttled one by one) and nothing about the sync's
rules. It takes the token as a callable so the credential stays with its owner (MSAL's
cache in shared.entra) and tests can hand in any token source. Every request goes
through shared.http.send, which retries 429/503/504 honouring Retry-After, and only to
GRAPH_BASE_URL's scheme, host and port: a nextLink or delta link (from an answer or from
state) naming any other is refused unsent (`GraphRequestRefused`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
from pydantic import BaseModel, ValidationError

from shared.errors import UpstreamRefused, UpstreamUnavailable
from shared.graph_models import (
    CONTACT_FOLDER_SELECT,
    CONTACT_SELECT,
    EVENT_SELECT,
    USER_SELECT,
    ContactDeltaResult,
    ContactFolder,
    DeltaResult,
    GraphContact,
    GraphEvent,
    GraphUser,
    PhotoImage,
    PhotoInfo,
    PhotoUnreadable,
    Subscription,
    format_graph_datetime,
)
from shared.http import RetriesExhausted, RetryPolicy, send
from shared.identifiers import MalformedId, object_id, user_reference
from shared.urls import redact_url, same_origin

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 999
MAX_BATCH_REQUESTS = 20
# The size an avatar is fetched at: one of Graph's photo sizes, ample for a phone's contact picture.
AVATAR_SIZE = "96x96"
# calendarView answers 10 events a page by default; 500 makes a normal status window one request.
CALENDAR_PAGE_SIZE = 500
UTC_PREFERENCE = 'outlook.timezone="UTC"'
CONTACT_PAGE_SIZE = 500
# Sent on every contacts request: immutable ids keep a contact's id when it moves between
# folders (graph.md §2.7), so a move is not a delete plus a stranger; and a big page keeps
# a folder's round to few requests.
CONTACT_PREFERENCES = f'IdType="ImmutableId", odata.maxpagesize={CONTACT_PAGE_SIZE}'
_RESET_CODES = frozenset({"syncstatenotfound", "resyncrequired"})
_THROTTLED_STATUSES = frozenset({429, 503, 504})
DEFAULT_POLICY = RetryPolicy()


class GraphApiError(UpstreamRefused):
    """Graph answered with an error that retrying will not fix (4xx), or with an unusable answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"Graph error {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class GraphRequestRefused(GraphApiError):
    """The client refused to send a request: Graph never saw it, and repeating it cannot help.

    `code` says why: `foreignLink` (a nextLink or delta link naming another scheme, host or
    port than GRAPH_BASE_URL: the bearer token goes to Graph's host only) or `malformedId`
    (an id that is not the shape Graph gives it, see shared/identifiers.py: it would make
    another URL than the one meant, e.g. `/users/..` → `/v1.0/`).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(0, code, message)

    def __str__(self) -> str:
        return f"not sent to Microsoft Graph ({self.code}): {self.message}"


class GraphUnavailable(UpstreamUnavailable):
    """Graph could not be reached, or kept failing or throttling past the retry policy."""


class GraphClient:
    """Reads users, delta changes, group membership and photos from Microsoft Graph."""

    def __init__(
        self,
        base_url: str,
        token_provider: Callable[[], str],
        *,
        session: requests.Session | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = _service_root(base_url)
        self._token_provider = token_provider
        self._session = session or requests.Session()
        self._policy = policy
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"GraphClient({self.base_url!r})"

    # -- paging ------------------------------------------------------------------------
    def iter_pages(
        self,
        url_or_path: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield each page of a collection, following `@odata.nextLink` verbatim.

        `headers` go on every page: Graph does not carry ConsistencyLevel over to nextLink.
        A link to any other origin than GRAPH_BASE_URL's is refused (`GraphRequestRefused`).
        """
        url: str | None = self._url(url_or_path)
        page_params = params
        while url is not None:
            page = self._json(self._get(url, params=page_params, headers=headers))
            yield page
            url = page.get("@odata.nextLink")
            page_params = None  # the nextLink already holds every query option

    # -- users -------------------------------------------------------------------------
    def list_users(self, select: Iterable[str] = USER_SELECT) -> list[GraphUser]:
        """Every user in the tenant, 999 a page."""
        params = {"$select": ",".join(select), "$top": str(MAX_PAGE_SIZE)}
        return [GraphUser.model_validate(item) for page in self.iter_pages("/users", params) for item in page["value"]]

    def get_user(self, id_or_upn: str, select: Iterable[str] = USER_SELECT) -> GraphUser | None:
        """One user by object id or UPN; None when Graph does not know it."""
        try:
            url = self._url(_user_path(id_or_upn))
            response = self._get(url, params={"$select": ",".join(select)})
        except GraphApiError as error:
            if error.status == 404:
                return None
            raise
        return GraphUser.model_validate(self._json(response))

    def users_delta(self, delta_link: str | None, select: Iterable[str] = USER_SELECT) -> DeltaResult:
        """Run one delta round: from the start without a link, else the changes since it.

        When Graph has dropped the sync state (410 Gone, `syncStateNotFound`,
        `resyncRequired`) the round restarts from scratch and says so with `full=True`.
        """
        users, link, full = self._delta(
            ("/users/delta", {"$select": ",".join(select)}), delta_link, GraphUser.model_validate, what="users"
        )
        return DeltaResult(users=users, delta_link=link, full=full)

    def _delta(
        self,
        initial: tuple[str, dict[str, str]],
        delta_link: str | None,
        parse: Callable[[dict[str, Any]], _Item],
        *,
        what: str,
        headers: dict[str, str] | None = None,
    ) -> tuple[list[_Item], str, bool]:
        """One delta round of any resource: (items, the new delta link, whether it was a full round).

        From `delta_link` when there is one; from the start (`initial`) without one, or when
        Graph has dropped the sync state (410 Gone, `syncStateNotFound`, `resyncRequired`).
        """
        if delta_link is not None:
            try:
                items, link = self._delta_pages(delta_link, None, parse, what, headers)
                return items, link, False
            except GraphApiError as error:
                if not _is_delta_reset(error):
                    raise
                log.info(
                    "Graph dropped the %s delta state (%s %s); starting a full round", what, error.status, error.code
                )
        items, link = self._delta_pages(*initial, parse, what, headers)
        return items, link, True

    def _delta_pages(
        self,
        url_or_path: str,
        params: dict[str, str] | None,
        parse: Callable[[dict[str, Any]], _Item],
        what: str,
        headers: dict[str, str] | None,
    ) -> tuple[list[_Item], str]:
        items: dict[str, _Item] = {}
        delta_link: str | None = None
        for page in self.iter_pages(url_or_path, params, headers=headers):
            for raw in page.get("value", []):
                item = parse(raw)
                items.pop(item.id, None)  # the same item may come again in one round: the last one wins
                items[item.id] = item
            delta_link = page.get("@odata.deltaLink")
        if not delta_link:
            raise GraphApiError(200, "missingDeltaLink", f"the {what} delta round ended without an @odata.deltaLink")
        # Checked on arrival too, so a foreign link is never handed back to be stored.
        return list(items.values()), self._on_graph(delta_link)

    # -- groups ------------------------------------------------------------------------
    def group_member_user_ids(self, group_id: str) -> set[str]:
        """Ids of the users in a group, directly or through nested groups."""
        path = f"{_object_path('groups', group_id)}/transitiveMembers/microsoft.graph.user"
        params = {"$count": "true", "$select": "id", "$top": str(MAX_PAGE_SIZE)}
        try:
            return {
                item["id"]
                for page in self.iter_pages(path, params, headers={"ConsistencyLevel": "eventual"})
                for item in page["value"]
            }
        except GraphApiError as error:
            if error.status == 404:
                raise GraphApiError(404, error.code, f"group {group_id} does not exist") from None
            raise

    # -- photos ------------------------------------------------------------------------
    def photo_infos(self, user_ids: Iterable[str]) -> dict[str, PhotoInfo | PhotoUnreadable]:
        """Photo etags of many users through `$batch`, 20 per request.

        The batch answers 200 while each item carries its own status (graph.md §5.4), and
        an item's failure is that user's alone: any status other than 200, 404 (no photo)
        or a throttle comes back as `PhotoUnreadable` with Graph's answer, and the others
        are read as usual. Graph throttles batch items one by one, so a throttled item goes
        back in the queue for a later batch after waiting as long as its Retry-After asks;
        an item throttled more often than the policy allows fails the call, as does the
        `$batch` request itself failing (an outage, not one user's photo).
        """
        pending: deque[str] = deque(dict.fromkeys(user_ids))
        for user_id in pending:
            _user_path(user_id)  # every id checked before the first batch goes out
        attempts: dict[str, int] = {}
        infos: dict[str, PhotoInfo | PhotoUnreadable] = {}
        while pending:
            chunk = [pending.popleft() for _ in range(min(MAX_BATCH_REQUESTS, len(pending)))]
            retry: list[str] = []
            waits: list[float] = []
            for user_id, item in zip(chunk, self._photo_batch(chunk), strict=True):
                status = int(item.get("status", 0))
                if status == 200:
                    body = item.get("body") or {}
                    infos[user_id] = PhotoInfo(
                        user_id=user_id,
                        etag=body.get("@odata.mediaEtag"),
                        content_type=body.get("@odata.mediaContentType"),
                    )
                elif status == 404:
                    infos[user_id] = PhotoInfo(user_id=user_id)
                elif status in _THROTTLED_STATUSES:
                    attempts[user_id] = attempts.get(user_id, 1) + 1
                    if attempts[user_id] > self._policy.max_attempts:
                        raise GraphUnavailable(
                            f"Graph kept answering {status} for the photo of user {user_id} "
                            f"after {self._policy.max_attempts} attempts"
                        )
                    retry.append(user_id)
                    waits.append(_item_retry_after(item, self._policy, attempts[user_id] - 1))
                else:
                    code, message = _error_of(item.get("body"), status)
                    infos[user_id] = PhotoUnreadable(
                        user_id=user_id, reason=f"Graph answered {status} {code}: {message}"
                    )
            if retry:
                delay = max(waits)
                if delay > self._policy.max_delay:
                    raise GraphUnavailable(
                        f"Graph asked to wait {delay:.0f}s for photo metadata, more than the "
                        f"{self._policy.max_delay:.0f}s allowed"
                    )
                log.debug("%d photo requests throttled in a batch; retrying in %.1fs", len(retry), delay)
                self._sleep(delay)
                pending.extendleft(reversed(retry))
        return infos

    def _photo_batch(self, user_ids: list[str]) -> list[dict[str, Any]]:
        """Send one `$batch` of photo-metadata GETs; answers come back in request order."""
        requests_ = [
            {"id": str(index), "method": "GET", "url": f"{_user_path(user_id)}/photo"}
            for index, user_id in enumerate(user_ids)
        ]
        response = self._request("POST", self._url("/$batch"), json={"requests": requests_}, idempotent=True)
        by_id = {str(item.get("id")): item for item in self._json(response).get("responses", [])}
        missing = [entry["id"] for entry in requests_ if entry["id"] not in by_id]
        if missing:
            raise GraphApiError(200, "incompleteBatch", f"the batch answer lacks items {', '.join(missing)}")
        return [by_id[entry["id"]] for entry in requests_]

    def photo(self, user_id: str) -> PhotoImage | None:
        """A user's photo at the avatar size (AVATAR_SIZE), with its content type; None without one.

        Photos stored in Entra can be any size (a 5 MB original is not rare); Graph scales
        them to fixed sizes. A photo smaller than the avatar size has no such version (404),
        so the original is taken then.
        """
        for path in (f"photos/{AVATAR_SIZE}/$value", "photo/$value"):
            try:
                response = self._get(self._url(f"{_user_path(user_id)}/{path}"))
            except GraphApiError as error:
                if error.status == 404:
                    continue
                raise
            content_type = response.headers.get("Content-Type", "image/jpeg").split(";", 1)[0].strip()
            return PhotoImage(content=response.content, content_type=content_type)
        return None

    # -- calendars ---------------------------------------------------------------------
    def calendar_view(self, user_id: str, start: datetime, end: datetime) -> list[GraphEvent]:
        """The events overlapping [start, end) in a user's calendar, series expanded, in UTC.

        Only the properties that decide a phone status are read (no subject or body:
        privacy, and Calendars.ReadBasic is enough). Cancelled events are included; the
        caller decides what they mean.
        """
        params = {
            "startDateTime": format_graph_datetime(start),
            "endDateTime": format_graph_datetime(end),
            "$select": ",".join(EVENT_SELECT),
            "$top": str(CALENDAR_PAGE_SIZE),
        }
        path = f"{_user_path(user_id)}/calendarView"
        events: list[GraphEvent] = []
        for page in self.iter_pages(path, params, headers={"Prefer": UTC_PREFERENCE}):
            for item in page.get("value", []):
                try:
                    events.append(GraphEvent.model_validate(item))
                except ValidationError as error:
                    event_id = item.get("id") if isinstance(item, dict) else None
                    raise GraphApiError(
                        200, "invalidResponse", f"event {event_id} of user {user_id} is unreadable: {_first(error)}"
                    ) from None
        return events

    # -- contacts ----------------------------------------------------------------------
    def contact_folders(self, mailbox: str) -> list[ContactFolder]:
        """Every contact folder below a mailbox's default Contacts folder, at any depth
        (parents before their children); the default folder itself is not included.

        `mailbox` is a user id or an address. Graph lists one level per request, so this
        costs one request per folder plus one (more for folders with many children).
        """
        base = _user_path(mailbox)
        params = {"$select": ",".join(CONTACT_FOLDER_SELECT)}
        headers = {"Prefer": CONTACT_PREFERENCES}
        folders: list[ContactFolder] = []
        seen: set[str] = set()
        pending: deque[str] = deque([f"{base}/contactFolders"])
        while pending:
            for page in self.iter_pages(pending.popleft(), params, headers=headers):
                for item in page.get("value", []):
                    folder = _validated(ContactFolder, item, f"contact folder of {mailbox}")
                    if folder.id in seen:
                        continue
                    seen.add(folder.id)
                    folders.append(folder)
                    pending.append(f"{base}/contactFolders/{_segment(folder.id)}/childFolders")
        return folders

    def contacts_delta(self, mailbox: str, folder_id: str | None, delta_link: str | None) -> ContactDeltaResult:
        """Run one delta round over one contact folder (None: the default Contacts folder).

        Without a link the round lists every contact in the folder; with one, the changes
        since it, where a contact deleted or moved out of the folder comes back as a
        tombstone. When Graph has dropped the sync state (410 Gone, `syncStateNotFound`,
        `resyncRequired`) the round restarts from scratch and says so with `full=True`.
        A mailbox without Exchange or a folder that is gone raises GraphApiError 404.
        """
        base = _user_path(mailbox)
        if folder_id is None:
            path = f"{base}/contacts/delta"
        else:
            path = f"{base}/contactFolders/{_segment(folder_id)}/contacts/delta"
        folder = folder_id or "(default)"
        contacts, link, full = self._delta(
            (path, {"$select": ",".join(CONTACT_SELECT)}),
            delta_link,
            lambda raw: _validated(GraphContact, raw, f"contact of {mailbox}"),
            what=f"contacts of {mailbox} folder {folder}",
            headers={"Prefer": CONTACT_PREFERENCES},
        )
        return ContactDeltaResult(contacts=contacts, delta_link=link, full=full)

    # -- change-notification subscriptions --------------------------------------------
    def create_subscription(
        self,
        *,
        resource: str,
        change_type: str | Iterable[str],
        notification_url: str,
        lifecycle_url: str | None = None,
        expiration: datetime,
        client_state: str,
    ) -> Subscription:
        """Create a subscription; Graph proves both webhook URLs before it answers.

        Not retried on 5xx or a dropped connection: the subscription may exist already,
        and a repeat would answer 409. A 429 is retried (it was not processed).
        """
        body: dict[str, Any] = {
            "changeType": change_type if isinstance(change_type, str) else ",".join(change_type),
            "notificationUrl": notification_url,
            "resource": resource,
            "expirationDateTime": format_graph_datetime(expiration),
            "clientState": client_state,
        }
        if lifecycle_url is not None:
            body["lifecycleNotificationUrl"] = lifecycle_url
        response = self._request("POST", self._url("/subscriptions"), json=body, idempotent=False)
        return self._subscription(response)

    def renew_subscription(self, subscription_id: str, expiration: datetime) -> Subscription:
        """Move a subscription's expiration (which also reauthorizes it)."""
        response = self._request(
            "PATCH",
            self._subscription_url(subscription_id),
            json={"expirationDateTime": format_graph_datetime(expiration)},
            idempotent=True,  # setting the same expiration twice has the same effect
        )
        return self._subscription(response)

    def delete_subscription(self, subscription_id: str) -> bool:
        """Delete a subscription; False when Graph no longer knew it (already gone is fine)."""
        try:
            self._request("DELETE", self._subscription_url(subscription_id))
        except GraphApiError as error:
            if error.status == 404:
                return False
            raise
        return True

    def list_subscriptions(self) -> list[Subscription]:
        """Every live subscription this application holds in the tenant."""
        return [
            Subscription.model_validate(item) for page in self.iter_pages("/subscriptions") for item in page["value"]
        ]

    def _subscription_url(self, subscription_id: str) -> str:
        return self._url(_object_path("subscriptions", subscription_id))

    def _subscription(self, response: requests.Response) -> Subscription:
        try:
            return Subscription.model_validate(self._json(response))
        except ValidationError as error:
            raise GraphApiError(
                response.status_code, "invalidResponse", f"unreadable subscription: {_first(error)}"
            ) from None

    # -- HTTP --------------------------------------------------------------------------
    def _url(self, url_or_path: str) -> str:
        if url_or_path.startswith(("https://", "http://")):
            return url_or_path
        return f"{self.base_url}/{url_or_path.lstrip('/')}"

    def _on_graph(self, url: str) -> str:
        """`url` if it is on GRAPH_BASE_URL's scheme, host and port; otherwise refused.

        Links come from answers (nextLink, deltaLink) and from state (stored delta links):
        the bearer token must reach Graph's own host only, whatever they name.
        """
        if not same_origin(url, self.base_url):
            graph = urlsplit(self.base_url)
            raise GraphRequestRefused(
                "foreignLink",
                f"a link to {redact_url(url)} is not on {graph.scheme}://{graph.netloc} (GRAPH_BASE_URL),"
                " the only host the token is sent to",
            )
        return url

    def _get(
        self, url: str, *, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        return self._request("GET", url, params=params, headers=headers)

    def _request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        url = self._on_graph(url)
        all_headers = {"Authorization": f"Bearer {self._token_provider()}", **(headers or {})}
        try:
            response = send(
                self._session,
                method,
                url,
                policy=self._policy,
                idempotent=idempotent,
                sleep=self._sleep,
                headers=all_headers,
                **kwargs,
            )
        except RetriesExhausted as error:
            raise GraphUnavailable(f"Microsoft Graph unavailable: {error}") from None
        except requests.RequestException as error:
            raise GraphUnavailable(
                f"Microsoft Graph unreachable: {method} {redact_url(url)} failed with {type(error).__name__}"
            ) from None
        if response.status_code >= 500:
            code, message = _error_of(_body_of(response), response.status_code)
            raise GraphUnavailable(
                f"Microsoft Graph unavailable: {method} {redact_url(url)} answered {response.status_code}"
                f" {code}: {message}"
            )
        if response.status_code >= 400:
            code, message = _error_of(_body_of(response), response.status_code)
            raise GraphApiError(response.status_code, code, message)
        return response

    @staticmethod
    def _json(response: requests.Response) -> dict[str, Any]:
        body = _body_of(response)
        if not isinstance(body, dict):
            raise GraphApiError(response.status_code, "invalidResponse", "Graph answered with something not JSON")
        return body


def _user_path(user: str) -> str:
    """`/users/{id or address}`: Graph resolves a user or mailbox by object id, UPN or SMTP address.

    Anything else is refused unsent (shared/identifiers.py says what is accepted).
    """
    try:
        user_reference(user, "user")
    except MalformedId as error:
        raise GraphRequestRefused("malformedId", str(error)) from None
    return f"/users/{quote(user, safe='@')}"


def _object_path(collection: str, item_id: str) -> str:
    """`/{collection}/{id}` for objects Graph names by GUID only (groups, subscriptions)."""
    try:
        return f"/{collection}/{object_id(item_id, collection.removesuffix('s'))}"
    except MalformedId as error:
        raise GraphRequestRefused("malformedId", str(error)) from None


def _segment(item_id: str) -> str:
    """One path segment from an id Graph gave us (a folder's): never empty, `.` or `..`."""
    if item_id.strip(".") == "":
        raise GraphRequestRefused("malformedId", f"{item_id!r} cannot name an item in a URL path")
    return quote(item_id, safe="")


_Model = TypeVar("_Model", bound=BaseModel)
_Item = TypeVar("_Item", GraphUser, GraphContact)


def _validated(model: type[_Model], item: Any, what: str) -> _Model:
    """A Graph item as `model`; an unreadable one fails the call in Graph-error terms."""
    try:
        return model.model_validate(item)
    except ValidationError as error:
        item_id = item.get("id") if isinstance(item, dict) else None
        raise GraphApiError(200, "invalidResponse", f"{what} {item_id} is unreadable: {_first(error)}") from None


def _service_root(base_url: str) -> str:
    """The Graph root with its version segment; a bare host gets /v1.0."""
    root = base_url.rstrip("/")
    last_segment = urlsplit(root).path.rsplit("/", 1)[-1]
    return root if last_segment in ("v1.0", "beta") else f"{root}/v1.0"


def _is_delta_reset(error: GraphApiError) -> bool:
    return error.status == 410 or error.code.lower() in _RESET_CODES


def _body_of(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_of(body: Any, status: int) -> tuple[str, str]:
    """Code and message from Graph's error shape, with fallbacks for bodies that lack it."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or status), " ".join(str(error.get("message") or "").split())
    return str(status), "no error details"


def _item_retry_after(item: dict[str, Any], policy: RetryPolicy, attempt: int) -> float:
    headers = {str(key).lower(): value for key, value in (item.get("headers") or {}).items()}
    try:
        return max(0.0, float(headers["retry-after"]))
    except (KeyError, TypeError, ValueError):
        return min(policy.max_delay, policy.base_delay * 2.0 ** (attempt - 1))


def _first(error: ValidationError) -> str:
    """The first problem of a validation error, without the input (it may hold secrets)."""
    problem = error.errors(include_input=False)[0]
    where = ".".join(str(part) for part in problem.get("loc", ()))
    return f"{where}: {problem.get('msg', 'invalid')}"

"""Personal 3CX phonebooks: the port the contact sync writes through, and its one adapter.

The published XAPI (20.0.10) has no operation that lists, creates or changes one user's
personal contacts; `/Contacts` is the company phonebook. So personal phonebooks sit behind
the small `PersonalPhonebook` port, and `ImpersonatedPhonebook` reaches them the only way
in sight. What it relies on, plainly:

1. **Known:** a service-principal token can open a MyPhone session that impersonates a
   user: `POST /webclient/api/MyPhone/session` with the API client's bearer token and
   `{"name", "version", "isHuman": false, "impersonate": "<extension>"}`. This is the call
   the official 3CX tutorial makes (`src/impersonate.spec.ts`); it is not documented.
2. **Assumed:** the answer is JSON `{"access_token": "...", "expires_in": <seconds>}`. The
   tutorial never reads it. It is parsed defensively (the same two keys under `"Token"`,
   as 3CX's web-client login answers, are accepted too; `expires_in` as a number or a
   numeric string); any other shape fails with `MyPhoneSessionError` naming the call.
3. **Assumed, the unverified part:** the published `/xapi/v1/Contacts` operations, sent
   with that session token, act on the impersonated user's personal phonebook, with the
   same `Pbx.Contact` rules as the company book.
4. **Assumed:** a session stays usable until `expires_in` runs out. Each extension's
   session is cached until shortly before then (the margin the API client's own token
   uses), and a 401 opens a new session once; a second 401 is an error.
5. **Assumed:** opening a session does not revoke the API client's token (3CX keeps one
   token per API client; a session is not one) and may be repeated harmlessly, so a
   throttled or 503'd session request is retried.

If a real PBX proves any of 2-5 wrong, only this module changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from shared.errors import UpstreamRefused
from shared.threecx import (
    RENEW_MARGIN_FRACTION,
    RENEW_MARGIN_SECONDS,
    PhonebookCalls,
    TcxApiError,
    TcxAuthError,
    TcxError,
    TcxTokenRejected,
    ThreeCXClient,
)
from shared.threecx_models import TcxContact

log = logging.getLogger(__name__)

SESSION_PATH = "/webclient/api/MyPhone/session"
SESSION_CALL = f"POST {SESSION_PATH}"
APP_NAME = "M365 connector"
APP_VERSION = "1.0"

_T = TypeVar("_T")

_STATUS_HINTS = {
    400: "the PBX refused the session request",
    403: "the API client may not use MyPhone (check its access under Integrations → API)",
    404: "no user has this extension",
}


class PersonalPhonebook(Protocol):
    """One user's personal 3CX phonebook, addressed by their extension number."""

    def list(self, extension: str) -> list[TcxContact]:
        """Every entry of the extension's personal phonebook."""

    def create(self, extension: str, fields: Mapping[str, Any]) -> TcxContact:
        """Add an entry (XAPI-named fields) and return it as stored."""

    def update(self, extension: str, contact_id: int, fields: Mapping[str, Any]) -> None:
        """Change the given fields of an entry."""

    def delete(self, extension: str, contact_id: int) -> None:
        """Remove an entry; one already gone counts as removed."""


class MyPhoneSessionError(TcxError, UpstreamRefused):
    """No usable MyPhone session for an extension: refused, or answered in an unknown shape."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class MyPhoneSessionAnswer(BaseModel):
    """The assumed answer of `POST /webclient/api/MyPhone/session` (see assumption 2)."""

    model_config = ConfigDict(extra="ignore")

    access_token: SecretStr
    expires_in: float = Field(gt=0)

    @field_validator("access_token")
    @classmethod
    def _not_empty(cls, token: SecretStr) -> SecretStr:
        if not token.get_secret_value().strip():
            raise ValueError("empty access_token")
        return token

    @field_validator("expires_in", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        if isinstance(value, bool):  # JSON true is no lifetime
            raise ValueError("expires_in is not a number")
        return value


def parse_session_answer(payload: Any) -> MyPhoneSessionAnswer:
    """Read the session answer, flat or under `"Token"`; ValueError saying what was there instead.

    The error names keys only, never values: the payload may hold a token.
    """
    candidates = [payload]
    if isinstance(payload, dict) and isinstance(payload.get("Token"), dict):
        candidates.append(payload["Token"])
    for candidate in candidates:
        if isinstance(candidate, dict):
            try:
                return MyPhoneSessionAnswer.model_validate(candidate)
            except ValidationError:
                continue
    if isinstance(payload, dict):
        found = ", ".join(sorted(str(key) for key in payload)) or "no keys"
        raise ValueError(f"expected access_token and a positive expires_in, got an object with {found}")
    raise ValueError(f"expected a JSON object with access_token and expires_in, got {type(payload).__name__}")


@dataclass(frozen=True)
class _Session:
    """One open MyPhone session: its token and when to open the next one."""

    token: str = field(repr=False)
    renew_at: float


class ImpersonatedPhonebook:
    """`PersonalPhonebook` through MyPhone sessions that impersonate each user (see the module notes)."""

    def __init__(
        self,
        client: ThreeCXClient,
        *,
        clock: Callable[[], float] = time.time,
        app_name: str = APP_NAME,
        app_version: str = APP_VERSION,
    ) -> None:
        self._client = client
        self._clock = clock
        self._app_name = app_name
        self._app_version = app_version
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()  # guards the two dicts
        self._opening: dict[str, threading.Lock] = {}  # one per extension: one session opened at a time

    def __repr__(self) -> str:
        return f"ImpersonatedPhonebook(base_url={self._client.base_url!r}, sessions={len(self._sessions)})"

    # -- the port --------------------------------------------------------------------------------
    def list(self, extension: str) -> list[TcxContact]:
        return self._as_user(extension, lambda book: book.list())

    def create(self, extension: str, fields: Mapping[str, Any]) -> TcxContact:
        return self._as_user(extension, lambda book: book.create(fields))

    def update(self, extension: str, contact_id: int, fields: Mapping[str, Any]) -> None:
        self._as_user(extension, lambda book: book.update(contact_id, fields))

    def delete(self, extension: str, contact_id: int) -> None:
        self._as_user(extension, lambda book: book.delete(contact_id))

    # -- sessions --------------------------------------------------------------------------------
    def _as_user(self, extension: str, operation: Callable[[PhonebookCalls], _T]) -> _T:
        """Run `operation` on the extension's book; a refused session is replaced once.

        A 401 means the request was not carried out, so repeating a create is safe.
        """
        if not isinstance(extension, str) or not extension.strip():
            raise ValueError("an extension number is needed to reach a personal phonebook")
        session = self._session(extension, stale=None)
        try:
            return operation(self._client._contacts_with(session.token))
        except TcxTokenRejected:
            log.info("MyPhone session for extension %s was refused; opening a new one", extension)
        session = self._session(extension, stale=session)
        try:
            return operation(self._client._contacts_with(session.token))
        except TcxTokenRejected:
            self._drop(extension, session)
            raise TcxAuthError(
                f"3CX refused a newly opened MyPhone session for extension {extension} (401): "
                "the PBX may not let impersonated sessions use /xapi/v1/Contacts"
            ) from None

    def _session(self, extension: str, stale: _Session | None) -> _Session:
        """The extension's cached session unless it is due or is `stale`; else a new one."""
        with self._lock:
            opening = self._opening.setdefault(extension, threading.Lock())
        with opening:
            with self._lock:
                cached = self._sessions.get(extension)
            if cached is not None and cached is not stale and self._clock() < cached.renew_at:
                return cached  # fresh, or renewed by another caller while we waited
            session = self._open(extension)
            with self._lock:
                self._sessions[extension] = session
            return session

    def _drop(self, extension: str, session: _Session) -> None:
        with self._lock:
            if self._sessions.get(extension) is session:
                del self._sessions[extension]

    def _open(self, extension: str) -> _Session:
        """`POST /webclient/api/MyPhone/session` with the API client's token (assumptions 1, 2, 5)."""
        body = {"name": self._app_name, "version": self._app_version, "isHuman": False, "impersonate": extension}
        opened_at = self._clock()
        try:
            response = self._client._call(
                "POST", SESSION_PATH, json_body=body, idempotent=True, root=self._client.base_url
            )
        except TcxApiError as error:
            hint = _STATUS_HINTS.get(error.status, "unexpected answer")
            raise MyPhoneSessionError(
                f"{SESSION_CALL} for extension {extension}: 3CX answered {error.status} ({hint})", error.status
            ) from None
        try:
            answer = parse_session_answer(response.json())
        except ValueError as error:  # not JSON, or JSON of another shape; never echo it: it may hold a token
            raise MyPhoneSessionError(
                f"{SESSION_CALL} for extension {extension}: unknown answer shape ({error})", response.status_code
            ) from None
        lifetime = answer.expires_in
        margin = min(RENEW_MARGIN_FRACTION * lifetime, RENEW_MARGIN_SECONDS)
        log.info("MyPhone session opened for extension %s; valid %.0fs", extension, lifetime)
        return _Session(answer.access_token.get_secret_value(), opened_at + lifetime - margin)

"""The one exception the Graph fake's parts raise to refuse a request in Graph's words."""

from __future__ import annotations


class GraphQueryError(Exception):
    """A request the fake refuses; carries the Graph error it answers with."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

"""The refusal every part of the 3CX fake raises; `fakes.threecx` words it as an OData error answer."""

from __future__ import annotations


class XapiRejection(Exception):
    """A request the PBX refuses: the status, the message, and the property and WARNINGS key it names."""

    def __init__(self, status: int, message: str, *, target: str | None = None, warning: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.target = target
        self.warning = warning

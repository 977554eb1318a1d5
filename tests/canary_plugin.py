"""Pytest plugin: a secrets canary over the whole suite.

The suite plants recognisable fake secrets (tests/conftest.py: the Graph client secret,
the 3CX key, the function key in WEBHOOK_URL) and the fakes journal every token they issue
(`fakes.transport.ISSUED_CREDENTIALS`). While the suite runs, this plugin keeps a copy of
everything the connector says to the outside world:

- every log record any logger lets through (at INFO and above, as in production),
- everything printed (the CLI's plans, JSON and one-line errors),
- every HTTP answer the Function handlers build (`azure.functions.HttpResponse`),
- every OpenTelemetry span and log record, attributes included (added by
  tests/telemetry_plugin.py): what Application Insights would receive,

and the tests marked `canary` (run after everything else, like the conformance check)
scan that journal and the run records left in storage for any of the secrets.

The journal lives in the process; the suite does not use xdist.
"""

from __future__ import annotations

import builtins
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

CANARY_MARK = "canary"


@dataclass
class Journal:
    """What the connector said during the suite, by where it said it."""

    texts: list[tuple[str, str]] = field(default_factory=list)  # (where, text)

    def add(self, where: str, text: str) -> None:
        if text:
            self.texts.append((where, text))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.texts)


JOURNAL = Journal()
_ORIGINALS: dict[str, Any] = {}


def _journal_log_record(record: logging.LogRecord) -> None:
    try:
        text = record.getMessage()
    except Exception:  # a broken format string is the logging call's problem, not ours
        text = str(record.msg)
    if record.exc_info and record.exc_info[1] is not None:
        text += f"\n{record.exc_info[1]!r}"
    JOURNAL.add(f"log {record.name}", text)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{CANARY_MARK}: scans what the suite's connector said for planted secrets")
    # Production logs at INFO: let INFO records through so the canary sees what Azure would.
    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)

    original_call_handlers = logging.Logger.callHandlers

    def call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
        if record.levelno >= logging.INFO:
            _journal_log_record(record)
        original_call_handlers(self, record)

    original_print = builtins.print

    def journal_print(*values: Any, **kwargs: Any) -> None:
        buffer = io.StringIO()
        original_print(*values, **{**kwargs, "file": buffer})
        JOURNAL.add("print", buffer.getvalue())
        original_print(*values, **kwargs)

    _ORIGINALS.update(call_handlers=original_call_handlers, print=original_print)
    logging.Logger.callHandlers = call_handlers  # type: ignore[method-assign]
    builtins.print = journal_print

    import azure.functions as func

    original_init = func.HttpResponse.__init__

    def http_response_init(self: Any, body: Any = None, *args: Any, **kwargs: Any) -> None:
        original_init(self, body, *args, **kwargs)
        headers = " ".join(f"{k}: {v}" for k, v in dict(kwargs.get("headers") or {}).items())
        JOURNAL.add("http answer", f"{headers}\n{self.get_body().decode('utf-8', 'replace')}")

    _ORIGINALS["http_response_init"] = original_init
    func.HttpResponse.__init__ = http_response_init  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    if "call_handlers" in _ORIGINALS:
        logging.Logger.callHandlers = _ORIGINALS["call_handlers"]  # type: ignore[method-assign]
        builtins.print = _ORIGINALS["print"]
        import azure.functions as func

        func.HttpResponse.__init__ = _ORIGINALS["http_response_init"]  # type: ignore[method-assign]


def canary_last(items: Sequence[Any]) -> list[Any]:
    """`items` with those marked `canary` moved to the very end, order otherwise kept."""
    others = [item for item in items if item.get_closest_marker(CANARY_MARK) is None]
    scans = [item for item in items if item.get_closest_marker(CANARY_MARK) is not None]
    return others + scans


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    items[:] = canary_last(items)


def leaks(journal: Iterator[tuple[str, str]] | Journal, planted: dict[str, str], issued: set[str]) -> list[str]:
    """Where a planted secret or an issued credential shows up, one line each (empty: none)."""
    import re

    chunk = re.compile(r"[A-Za-z0-9._~-]{16,}")  # tokens are URL-safe base64 or JWTs
    found: list[str] = []
    for where, text in journal:
        for name, secret in planted.items():
            if secret in text:
                found.append(f"{name} in {where}: {text[:200]!r}")
        for piece in chunk.findall(text):
            if piece in issued:
                found.append(f"an issued token in {where}: {text[:200]!r}")
    return found

"""Everything the connector said during the soak: log records (with their thread), HTTP answers, CLI output.

The checks read it twice: for failed actions (each must end up in a run record) and for
secrets (none may appear anywhere). Log records are kept from INFO up, as production
logs them; an exception's text is kept with its record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

NOISY_LOGGERS = ("azure", "urllib3", "msal")


@dataclass(frozen=True)
class LogLine:
    at: float  # when, by the journal's clock (the simulated one in the soak)
    thread: str
    logger: str
    level: int
    message: str
    dimensions: dict[str, Any]

    @property
    def event(self) -> str | None:
        value = self.dimensions.get("event")
        return str(value) if value is not None else None


@dataclass
class Journal:
    clock: Callable[[], float] = time.time
    lines: list[LogLine] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (where, text) for the secrets scan
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_text(self, where: str, text: str) -> None:
        if text:
            with self._lock:
                self.texts.append((where, text))

    def add_record(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logging call's problem, not ours
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            message += f"\n{record.exc_info[1]!r}"
        line = LogLine(
            self.clock(),
            record.threadName or "",
            record.name,
            record.levelno,
            message,
            dict(getattr(record, "event_fields", {}) or {}),
        )
        with self._lock:
            self.lines.append(line)
            self.texts.append((f"log {record.name}", message))


class _Handler(logging.Handler):
    def __init__(self, journal: Journal) -> None:
        super().__init__(logging.INFO)
        self.journal = journal

    def emit(self, record: logging.LogRecord) -> None:
        self.journal.add_record(record)


@contextmanager
def journaled(journal: Journal) -> Iterator[Journal]:
    """Capture log records (INFO and up) and every HTTP answer a Function builds, while inside."""
    root = logging.getLogger()
    handler = _Handler(journal)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # As production configures them (shared.telemetry): the SDKs' own request logs stay out.
    noisy = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    original_init = func.HttpResponse.__init__

    def http_response_init(self: Any, body: Any = None, *args: Any, **kwargs: Any) -> None:
        original_init(self, body, *args, **kwargs)
        headers = " ".join(f"{k}: {v}" for k, v in dict(kwargs.get("headers") or {}).items())
        journal.add_text("http answer", f"{headers}\n{self.get_body().decode('utf-8', 'replace')}")

    func.HttpResponse.__init__ = http_response_init  # type: ignore[method-assign]
    try:
        yield journal
    finally:
        func.HttpResponse.__init__ = original_init  # type: ignore[method-assign]
        root.removeHandler(handler)
        root.setLevel(level)
        for name, noisy_level in noisy.items():
            logging.getLogger(name).setLevel(noisy_level)

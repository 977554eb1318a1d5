"""Logging the administrator and Application Insights can read.

One structured line per applied action and one summary line per run. Each line is plain
`key=value` text (readable in a terminal and in the Functions log stream) and carries the
same values as `custom_dimensions` for Application Insights. Only ids, UPNs and numbers
appear at INFO; never tokens, secrets or contact details. Every URL in a field value loses
its query string and `user:password@` (shared/urls.py) in both the line and the dimensions.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from shared.urls import redact_urls

LOGGER_NAME = "connector"


def configure_logging(verbose: bool = False) -> None:
    """Log to stderr (stdout is reserved for plans and --json output)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("azure", "urllib3", "msal"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def _rendered(value: Any) -> Any:
    """A field value as it may be logged: text with its URLs redacted; numbers and flags as they are."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_urls(str(value))


def _format(event: str, fields: dict[str, Any]) -> str:
    parts = [event]
    for key, value in fields.items():
        if value is None or value == "":
            continue
        text = str(value)
        if any(ch.isspace() for ch in text) or '"' in text:
            text = '"' + text.replace('"', "'") + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Emit one structured line; `fields` become App Insights custom dimensions too."""
    fields = {key: _rendered(value) for key, value in fields.items()}
    logging.getLogger(LOGGER_NAME).log(
        level, _format(event, fields), extra={"custom_dimensions": {"event": event, **fields}}
    )

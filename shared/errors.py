"""The one error family of the connector, shared by both API clients and the settings.

Every failure a run, a trigger or the CLI has to judge falls into one of three kinds, and
the kind decides what happens next:

- `UpstreamUnavailable` — Graph, Entra or 3CX could not be reached, timed out, answered
  5xx, or kept throttling past the retry policy. Retrying later can fix it: queued work is
  handed back to the Functions host (its backoff, then the poison queue), a run stops and
  is recorded as failed.
- `UpstreamRefused` — the service answered with a 4xx that retrying cannot fix (a refused
  credential, a write 3CX rejects). A run records the item as failed and goes on.
- `ConfigError` — a setting is missing or malformed. Nothing can run until an
  administrator changes it.

`one_line` renders any of them (or anything else) as the one line that reaches logs, the
CLI and HTTP answers; the messages are written to name what failed and never carry a
secret, and every URL in the line loses its query string and `user:password@`
(shared/urls.py), whatever raised it.
"""

from __future__ import annotations

from shared.urls import redact_urls


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose; its message is one line."""


class ConfigError(ConnectorError):
    """A setting is missing or malformed; the message is one line naming it."""


class UpstreamError(ConnectorError):
    """Microsoft Graph, Entra or 3CX did not do what was asked."""


class UpstreamUnavailable(UpstreamError):  # noqa: N818 - the condition callers act on
    """The service could not be reached or kept failing (network, timeout, 5xx, throttled); retry later."""


class UpstreamRefused(UpstreamError):  # noqa: N818 - the condition callers act on
    """The service refused the request (4xx); retrying the same request cannot help."""


def one_line(error: BaseException) -> str:
    """The error as the one line an administrator reads: whitespace folded, URLs redacted, never empty."""
    return redact_urls(" ".join(str(error).split())) or type(error).__name__

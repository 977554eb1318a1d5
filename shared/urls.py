"""What may be shown of a URL, and whose URL it is: the one place both are decided.

Query strings carry secrets (the function key in `WEBHOOK_URL`'s `?code=`, OData filters
with names, Graph's `$skiptoken`), and so does `user:password@` before a host. Every
URL that reaches an error message, a log line or an HTTP answer is shown through
`redact_url` / `redact_urls`: scheme, host, port and path, nothing else. `one_line`
(shared/errors.py) and `log_event` (shared/telemetry.py) apply `redact_urls` to all they
render, so a message that quotes a URL is safe wherever it ends up.

`same_origin` decides whether a URL may receive a client's bearer token: only one on the
exact scheme, host and port the client was configured with (GRAPH_BASE_URL, TCX_BASE_URL).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# An http(s) URL inside free text runs to the next whitespace.
_URL_IN_TEXT = re.compile(r"https?://\S+", re.IGNORECASE)
# Characters that close a quoted or bracketed URL (or end a sentence) rather than belong to it.
_CLOSING = "'\")]}>,.;"
# A host[:port] as clients send it: a DNS name or an IPv4 address, or an IPv6 address in brackets.
_AUTHORITY = re.compile(r"(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::\d{1,5})?", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def redact_url(url: str) -> str:
    """The URL without its query string, fragment and `user:password@`.

    Works on anything URL-like: a bare host/path keeps everything before `?` or `#`.
    """
    text = re.split(r"[?#]", url, maxsplit=1)[0]
    scheme, separator, rest = text.partition("://")
    if not separator:
        return text
    authority, slash, path = rest.partition("/")
    return f"{scheme}{separator}{authority.rpartition('@')[2]}{slash}{path}"


def redact_urls(text: str) -> str:
    """`text` with every http(s) URL in it shown by `redact_url`.

    A URL runs to the next whitespace; what closes it (a quote, a bracket, a comma) is kept
    when the query or fragment is dropped, so `'https://h/p?code=x'` becomes `'https://h/p'`.
    """
    return _URL_IN_TEXT.sub(_redact_match, text)


def _redact_match(match: re.Match[str]) -> str:
    url = match.group(0)
    shown = redact_url(url)
    if shown == url:
        return url
    closing = url[len(url.rstrip(_CLOSING)) :]
    return shown + closing if not shown.endswith(closing) else shown


def same_origin(url: str, root: str) -> bool:
    """Is `url` an absolute URL on `root`'s exact scheme, host and port (default ports filled in)?

    Anything a client could read differently from `urlsplit` (user info, backslashes, an
    unreadable port) counts as another origin.
    """
    mine, theirs = _origin(root), _origin(url)
    return mine is not None and mine == theirs


def _origin(url: str) -> tuple[str, str, int] | None:
    match = re.match(r"([a-z][a-z0-9+.-]*)://([^/?#]*)", url, re.IGNORECASE)
    if match is None or not _AUTHORITY.fullmatch(match.group(2)):
        return None
    scheme = match.group(1).lower()
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    default = _DEFAULT_PORTS.get(scheme)
    if port is None:
        if default is None:
            return None
        port = default
    return scheme, (parts.hostname or "").lower(), port

"""shared/urls.py: what may be shown of a URL, and which URLs may receive a client's token."""

from __future__ import annotations

import pytest

from shared.urls import redact_url, redact_urls, same_origin


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://connector.example.com/api/graph/notifications?code=KEY",
            "https://connector.example.com/api/graph/notifications",
        ),
        ("https://ops:pa55@pbx.example.com:5001/xapi/v1/Users", "https://pbx.example.com:5001/xapi/v1/Users"),
        ("https://ops@pbx.example.com", "https://pbx.example.com"),
        ("HTTPS://u:p@Host.Example/a#fragment", "HTTPS://Host.Example/a"),
        # an address in the path is not user info: it stays
        (
            "https://graph.microsoft.com/v1.0/users/ada@contoso.com/photo?$x=1",
            "https://graph.microsoft.com/v1.0/users/ada@contoso.com/photo",
        ),
        ("connector.example.com/api?code=KEY", "connector.example.com/api"),
        ("https://graph.microsoft.com/v1.0/users", "https://graph.microsoft.com/v1.0/users"),
    ],
)
def test_a_url_is_shown_without_query_fragment_or_user_info(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_urls_in_text_are_redacted_and_what_closes_them_is_kept() -> None:
    text = (
        "got 'https://h.example/p?code=KEY', (see http://u:p@h.example/q?x=1). "
        'and "https://h.example/r?a=\'b" then https://h.example/plain, done'
    )
    assert redact_urls(text) == (
        "got 'https://h.example/p', (see http://h.example/q). "
        'and "https://h.example/r" then https://h.example/plain, done'
    )
    assert redact_urls("no url at all ?code=x") == "no url at all ?code=x"


ROOT = "https://graph.microsoft.com/v1.0"


@pytest.mark.parametrize(
    "url",
    [
        "https://graph.microsoft.com/v1.0/users?$skiptoken=x",
        "https://GRAPH.microsoft.com:443/beta/users/delta?$deltatoken=y",
    ],
)
def test_same_origin_is_scheme_host_and_port(url: str) -> None:
    assert same_origin(url, ROOT)


@pytest.mark.parametrize(
    "url",
    [
        "https://attacker.example/v1.0/users",
        "http://graph.microsoft.com/v1.0/users",  # another scheme
        "https://graph.microsoft.com:8443/v1.0/users",  # another port
        "https://graph.microsoft.com.attacker.example/v1.0/users",
        "https://graph.microsoft.com@attacker.example/v1.0/users",  # user info: the host is the attacker's
        "https://attacker.example\\@graph.microsoft.com/v1.0/users",  # parsers disagree: refused
        "https://graph.microsoft.com:99999/v1.0/users",  # no such port
        "/v1.0/users",  # not absolute
        "graph.microsoft.com/v1.0/users",
        "ftp://graph.microsoft.com/v1.0/users",
        "",
    ],
)
def test_anything_else_is_another_origin(url: str) -> None:
    assert not same_origin(url, ROOT)

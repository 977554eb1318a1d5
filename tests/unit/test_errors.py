"""One error family for both clients: what may be retried, and the one line an administrator reads."""

from __future__ import annotations

import pytest

from shared.entra import EntraUnavailable, GraphAuthError
from shared.errors import ConfigError, UpstreamRefused, UpstreamUnavailable, one_line
from shared.graph import GraphApiError, GraphRequestRefused, GraphUnavailable
from shared.settings import ConfigError as SettingsConfigError
from shared.threecx import TcxApiError, TcxAuthError, TcxRequestRefused, TcxUnavailable
from sync.contact_sync import ContactRunAborted
from sync.user_sync import RunAborted


@pytest.mark.parametrize(
    "error",
    [
        GraphUnavailable("Microsoft Graph unavailable: GET /users: still 503 after 4 attempts"),
        EntraUnavailable("cannot reach Entra"),
        TcxUnavailable("3CX at https://pbx answered 504 to GET /Users", 504),
        RunAborted("3CX became unreachable after 3 of 9 changes"),
        ContactRunAborted("3CX became unreachable"),
    ],
)
def test_outages_are_retried(error: Exception) -> None:
    assert isinstance(error, UpstreamUnavailable)


@pytest.mark.parametrize(
    "error",
    [
        GraphApiError(403, "Authorization_RequestDenied", "Insufficient privileges"),
        GraphAuthError("AADSTS7000215: check the client secret's value"),
        TcxApiError(400, "WARNINGS.XAPI.ALREADY_IN_USE", "Number in use", "Number"),
        TcxAuthError("3CX rejected the API client credentials (401)"),
        ConfigError("TCX_BASE_URL: required"),
        GraphRequestRefused("foreignLink", "a link to https://attacker.test/v1.0/users is not on Graph's host"),
        TcxRequestRefused("not sent to 3CX: GET https://attacker.test/x is not on the PBX"),
    ],
)
def test_refusals_and_bad_settings_are_not_retried(error: Exception) -> None:
    assert not isinstance(error, UpstreamUnavailable)
    assert isinstance(error, UpstreamRefused | ConfigError)


def test_settings_raise_the_familys_config_error() -> None:
    assert SettingsConfigError is ConfigError


def test_one_line_folds_whitespace_and_is_never_empty() -> None:
    assert one_line(ValueError("first line\n  second\tpart ")) == "first line second part"
    assert one_line(KeyError()) == "KeyError"


def test_one_line_never_shows_a_urls_query_or_credentials() -> None:
    """Fault: an error quoted a whole URL, function key (`?code=`) or user:password@ included."""
    error = RuntimeError(
        "POST https://admin:hunter2@connector.example.com/api/graph/notifications?code=SECRETKEY failed;"
        " then 'http://pbx.example.com:5001/xapi/v1/Users?$filter=x#frag' answered 404"
    )
    assert one_line(error) == (
        "POST https://connector.example.com/api/graph/notifications failed;"
        " then 'http://pbx.example.com:5001/xapi/v1/Users' answered 404"
    )

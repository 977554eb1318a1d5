"""The 3CX client against the fake served over real HTTPS, and instances sharing a token through storage."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from fakes.threecx import XAPI_JOURNAL, ThreeCXFake
from fakes.transport import local_tls, serve
from shared.threecx import (
    ThreeCXClient,
)

CLIENT_ID = "connector"
SECRET = "s3cret-api-key"


class Sleeps(list[float]):
    """An injected `sleep` that records how long it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


# -- served over HTTPS ------------------------------------------------------------------------------------------
def test_client_against_the_fake_served_over_https(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps
) -> None:
    pbx = ThreeCXFake(client_id=CLIENT_ID, client_secret=SECRET)
    tls = local_tls(tmp_path)
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override session.verify, so point them here too.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_bundle))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    server = serve(pbx, tls=tls.server_context)
    mark = len(XAPI_JOURNAL)
    try:
        session = requests.Session()
        session.verify = str(tls.ca_bundle)
        client = ThreeCXClient(server.url, CLIENT_ID, SECRET, session=session, sleep=sleeps)

        created = client.create_user({"FirstName": "Grace", "EmailAddress": "grace.o'neil@example.com"})
        found = client.get_user(created.id)
        client.set_status(created.id, "Away")
        version = client.version()
    finally:
        server.stop()

    assert server.url.startswith("https://")
    assert found is not None
    assert found.id == created.id
    assert pbx.users[created.id]["CurrentProfileName"] == "Away"
    assert version == pbx.version
    assert sleeps == []
    assert len(XAPI_JOURNAL) - mark == 4  # the served fake journals too


def test_instances_sharing_state_share_the_one_token(state) -> None:
    """Two processes (Function instances) on one state never revoke each other's token."""
    import responses as responses_lib

    from fakes.threecx import ThreeCXFake
    from fakes.transport import install
    from shared.state import SharedTcxToken
    from shared.threecx import ThreeCXClient

    fake = ThreeCXFake(client_id="shared", client_secret="shared-secret")
    fake.add_user(Number="100", EmailAddress="a@contoso.com")
    with responses_lib.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru("http://127.0.0.1")
        install(mock, "https://pbx.shared.test", fake)
        first, second = (
            ThreeCXClient("https://pbx.shared.test", "shared", "shared-secret", shared_token=SharedTcxToken(state))
            for _ in range(2)
        )
        for _ in range(3):
            assert len(first.list_users()) == 1
            assert len(second.list_users()) == 1
    assert fake.tokens_issued == 1
    assert fake.rejected_tokens == 0

"""GraphClient over real HTTPS against the served Graph fake, with MSAL discovering it."""

from __future__ import annotations

from pathlib import Path

import certifi
import pytest
import requests

from fakes.graph import GraphFake
from fakes.transport import local_tls, serve
from shared.entra import GraphTokenProvider
from shared.graph import GraphClient

TENANT = "6f1c2b9e-0d7a-4c55-9d0e-3b1f2a4c5d6e"
CLIENT = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
SECRET = "s3cr3t-value~for.tests"


# -- over real HTTPS, with MSAL discovering the fake -----------------------------------------------
def test_end_to_end_over_https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = GraphFake(tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET)
    ada = fake.add_user("ada@contoso.test")
    fake.set_photo(ada, b"jpeg")
    tls = local_tls(tmp_path)
    server = serve(fake, tls=tls.server_context)
    try:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_bundle))
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        provider = GraphTokenProvider(TENANT, CLIENT, client_secret=SECRET, authority_host=server.url)
        client = GraphClient(server.url, provider)

        assert [user.id for user in client.list_users()] == [ada]
        assert client.photo_infos([ada])[ada].etag is not None
        assert client.users_delta(None).full
        assert fake.tokens_issued == 1  # one token for all calls, from MSAL's cache
        with pytest.raises(requests.exceptions.SSLError):  # it really is TLS, trusted only through the bundle
            requests.get(f"{server.url}/v1.0/users", verify=certifi.where(), timeout=5)
    finally:
        server.stop()

"""GraphTokenProvider against the Entra fake, with real MSAL doing discovery and caching."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import msal
import pytest
import requests
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from fakes.graph import GraphFake
from fakes.transport import install
from shared.entra import GraphAuthError, GraphTokenProvider, is_well_known_authority, load_certificate_credential
from shared.errors import UpstreamError, UpstreamRefused, UpstreamUnavailable, one_line

ROOT = "https://graph.fake.test"
TENANT = "6f1c2b9e-0d7a-4c55-9d0e-3b1f2a4c5d6e"
CLIENT = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
SECRET = "s3cr3t-value~for.tests"


def self_signed_pem(common_name: str = "tcx-connector") -> tuple[bytes, bytes]:
    """(private key PEM, certificate PEM) of a fresh self-signed RSA certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as requests_mock:
        yield requests_mock


def secret_fake(mock: responses.RequestsMock, **options: object) -> GraphFake:
    fake = GraphFake(tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET, **options)  # type: ignore[arg-type]
    install(mock, ROOT, fake)
    return fake


def graph_accepts(token: str) -> bool:
    answer = requests.get(f"{ROOT}/v1.0/users", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    return answer.status_code == 200


def test_secret_credential_gets_a_token_graph_accepts(mock: responses.RequestsMock) -> None:
    fake = secret_fake(mock)
    provider = GraphTokenProvider(TENANT, CLIENT, client_secret=SECRET, authority_host=ROOT)
    assert graph_accepts(provider())
    assert fake.tokens_issued == 1


def test_token_is_reused_from_msal_cache(mock: responses.RequestsMock) -> None:
    fake = secret_fake(mock)
    provider = GraphTokenProvider(TENANT, CLIENT, client_secret=SECRET, authority_host=ROOT)
    assert fake.request_counts == {}  # building the provider does no I/O
    first, second = provider(), provider()
    assert first == second
    assert fake.tokens_issued == 1
    assert fake.request_counts["POST"] == 1  # one token request
    assert fake.request_counts["GET"] == 1  # one OIDC discovery, no instance discovery


def test_token_near_expiry_is_fetched_again(mock: responses.RequestsMock) -> None:
    # MSAL treats a token with under five minutes left as expired; the provider must not
    # add a cache of its own that would hand it out anyway.
    fake = secret_fake(mock, token_lifetime_seconds=240)
    provider = GraphTokenProvider(TENANT, CLIENT, client_secret=SECRET, authority_host=ROOT)
    assert provider() != provider()
    assert fake.tokens_issued == 2


def test_wrong_secret_is_one_clear_line_without_the_secret(mock: responses.RequestsMock) -> None:
    secret_fake(mock)
    wrong = "wr0ng-secret-value"
    provider = GraphTokenProvider(TENANT, CLIENT, client_secret=wrong, authority_host=ROOT)
    with pytest.raises(GraphAuthError) as raised:
        provider()
    message = str(raised.value)
    assert "AADSTS7000215" in message
    assert "secret's value" in message  # says what to check
    assert "\n" not in message
    assert "\r" not in message
    assert wrong not in message
    assert SECRET not in message
    assert wrong not in repr(provider)


def test_unknown_tenant_names_the_aadsts_code(mock: responses.RequestsMock) -> None:
    secret_fake(mock)
    provider = GraphTokenProvider("not-our-tenant", CLIENT, client_secret=SECRET, authority_host=ROOT)
    with pytest.raises(GraphAuthError, match="AADSTS90002.*tenant ID"):
        provider()


def test_certificate_credential_signs_an_assertion_the_fake_verifies(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    key_pem, cert_pem = self_signed_pem()
    bundle = tmp_path / "graph-app.pem"
    bundle.write_bytes(key_pem + cert_pem)
    fake = GraphFake(tenant_id=TENANT, client_id=CLIENT, client_certificate_pem=cert_pem)  # no secret at all
    install(mock, ROOT, fake)

    provider = GraphTokenProvider(TENANT, CLIENT, certificate_path=bundle, authority_host=ROOT)
    assert graph_accepts(provider())
    assert "certificate" in repr(provider)


def test_certificate_not_registered_on_the_app_is_refused(mock: responses.RequestsMock, tmp_path: Path) -> None:
    key_pem, cert_pem = self_signed_pem("ours")
    _, registered_pem = self_signed_pem("someone else's")
    bundle = tmp_path / "graph-app.pem"
    bundle.write_bytes(cert_pem + key_pem)  # order in the file does not matter
    install(mock, ROOT, GraphFake(tenant_id=TENANT, client_id=CLIENT, client_certificate_pem=registered_pem))

    provider = GraphTokenProvider(TENANT, CLIENT, certificate_path=bundle, authority_host=ROOT)
    with pytest.raises(GraphAuthError, match="AADSTS700027.*certificate is uploaded"):
        provider()


def test_key_that_does_not_match_the_certificate_fails_signature_check(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    _, cert_pem = self_signed_pem("registered")
    stray_key_pem, _ = self_signed_pem("stray")
    bundle = tmp_path / "mismatched.pem"
    bundle.write_bytes(stray_key_pem + cert_pem)  # thumbprint matches, signature cannot
    install(mock, ROOT, GraphFake(tenant_id=TENANT, client_id=CLIENT, client_certificate_pem=cert_pem))

    provider = GraphTokenProvider(TENANT, CLIENT, certificate_path=bundle, authority_host=ROOT)
    with pytest.raises(GraphAuthError, match="AADSTS700027.*signature"):
        provider()


def test_fake_also_verifies_ps256_assertions(mock: responses.RequestsMock) -> None:
    # MSAL signs with PS256 and x5t#S256 when given a certificate but no SHA-1 thumbprint.
    key_pem, cert_pem = self_signed_pem()
    fake = GraphFake(tenant_id=TENANT, client_id=CLIENT, client_certificate_pem=cert_pem)
    install(mock, ROOT, fake)
    app = msal.ConfidentialClientApplication(
        CLIENT,
        client_credential={"private_key": key_pem.decode(), "public_certificate": cert_pem.decode()},
        authority=f"{ROOT}/{TENANT}",
        instance_discovery=False,
    )
    assert "access_token" in app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    assert fake.tokens_issued == 1


def test_certificate_credential_carries_sha1_thumbprint(tmp_path: Path) -> None:
    key_pem, cert_pem = self_signed_pem()
    bundle = tmp_path / "graph-app.pem"
    bundle.write_bytes(key_pem + cert_pem)
    credential = load_certificate_credential(bundle)
    certificate = x509.load_pem_x509_certificate(cert_pem)
    assert credential["thumbprint"] == certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303
    assert credential["public_certificate"].encode() == cert_pem
    assert "PRIVATE KEY" in credential["private_key"]


def test_unusable_certificate_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(GraphAuthError, match="cannot read"):
        load_certificate_credential(tmp_path / "missing.pem")
    _, cert_pem = self_signed_pem()
    only_cert = tmp_path / "only-cert.pem"
    only_cert.write_bytes(cert_pem)
    with pytest.raises(GraphAuthError, match="private key"):
        load_certificate_credential(only_cert)


def test_exactly_one_credential_is_required(tmp_path: Path) -> None:
    with pytest.raises(GraphAuthError, match="exactly one"):
        GraphTokenProvider(TENANT, CLIENT)
    with pytest.raises(GraphAuthError, match="exactly one"):
        GraphTokenProvider(TENANT, CLIENT, client_secret=SECRET, certificate_path=tmp_path / "x.pem")


@pytest.mark.parametrize(
    ("host", "known"),
    [
        ("https://login.microsoftonline.com", True),
        ("https://login.microsoftonline.us/", True),
        ("login.partner.microsoftonline.cn", True),
        ("https://graph.fake.test", False),
        ("https://127.0.0.1:8443", False),
    ],
)
def test_instance_discovery_only_for_hosts_msal_knows(host: str, known: bool) -> None:
    assert is_well_known_authority(host) is known


def test_entra_out_of_reach_is_an_outage_to_retry_not_a_refused_credential(mock: responses.RequestsMock) -> None:
    """No answer from Entra says nothing about the credential: the work is retried later."""
    mock.add(responses.GET, f"{ROOT}/{TENANT}/v2.0/.well-known/openid-configuration", body=requests.ConnectionError())
    mock.add(responses.GET, f"{ROOT}/{TENANT}/.well-known/openid-configuration", body=requests.ConnectionError())
    provider = GraphTokenProvider(TENANT, CLIENT, client_secret=SECRET, authority_host=ROOT)
    with pytest.raises(UpstreamError) as raised:
        provider()
    assert isinstance(raised.value, UpstreamUnavailable)
    assert not isinstance(raised.value, GraphAuthError)
    assert one_line(raised.value).startswith(f"cannot reach Entra at {ROOT}/{TENANT}")


def test_a_refused_credential_is_not_retried() -> None:
    assert not isinstance(GraphAuthError("AADSTS7000215: invalid client secret"), UpstreamUnavailable)
    assert isinstance(GraphAuthError("x"), UpstreamRefused)

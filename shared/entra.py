"""Access tokens for Microsoft Graph from Entra ID (client credentials through MSAL).

MSAL keeps its token cache inside the application object, so the provider builds that
object once and keeps it: every call after the first is answered from the cache until the
token is close to expiry. The object is built on first use rather than in the constructor
because MSAL discovers the authority over the network when it is created, and a
constructor that does I/O makes module-level wiring (Azure Functions) fragile.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from shared.errors import UpstreamRefused, UpstreamUnavailable

log = logging.getLogger(__name__)

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"

# What to check for the AADSTS codes an operator is most likely to meet.
_HINTS: dict[str, str] = {
    "AADSTS7000215": "check that the configured client secret is the secret's value (not its ID) and is current",
    "AADSTS7000222": "the client secret has expired; create a new one in the app registration",
    "AADSTS7000218": "configure a client secret or a certificate",
    "AADSTS700016": "check the client (application) ID and that the app is registered in this tenant",
    "AADSTS90002": "check the tenant ID",
    "AADSTS900023": "check the tenant ID",
    "AADSTS700027": "check that the certificate is uploaded to the app registration and matches the private key",
    "AADSTS700024": "the client assertion is outside its validity window; check the host clock",
    "AADSTS70011": "check the requested scope",
    "AADSTS1002012": "check the requested scope",
    "AADSTS700023": "check the client (application) ID in the certificate credential",
}
_DEFAULT_HINT = "check the tenant ID, client ID and credential of the app registration"
_AADSTS = re.compile(r"AADSTS\d+")


class GraphAuthError(UpstreamRefused):
    """Entra refused to issue a Graph token; the message is one line and never holds a secret."""


class EntraUnavailable(UpstreamUnavailable):
    """Entra could not be reached for a token or its endpoints; retrying later may work."""


def is_well_known_authority(authority_host: str) -> bool:
    """Whether MSAL knows this authority host, so its instance discovery can validate it.

    Any other host (a sovereign cloud MSAL does not list, a local fake) must be used with
    instance discovery off, or MSAL would ask login.microsoftonline.com about it.
    """
    return _hostname(authority_host) in msal.authority.WELL_KNOWN_AUTHORITY_HOSTS


def load_certificate_credential(certificate_path: str | Path) -> dict[str, str]:
    """Read a PEM file holding the private key and the certificate into MSAL's credential form.

    The SHA-1 thumbprint identifies the certificate to Entra; sending the public
    certificate as well lets Entra accept subject-name/issuer rolled certificates.
    """
    path = Path(certificate_path)
    try:
        pem = path.read_bytes()
    except OSError as error:
        raise GraphAuthError(f"cannot read the certificate file {path}: {error.strerror}") from None
    try:
        private_key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise GraphAuthError(
            f"the certificate file {path} holds no readable unencrypted private key in PEM form"
        ) from None
    try:
        certificate = x509.load_pem_x509_certificates(pem)[0]
    except ValueError:
        raise GraphAuthError(f"the certificate file {path} holds no PEM certificate") from None
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "private_key": key_pem.decode("ascii"),
        "thumbprint": certificate.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Entra's x5t is SHA-1
        "public_certificate": certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    }


class GraphTokenProvider:
    """A callable returning a Graph access token for the app (client credentials flow)."""

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        *,
        client_secret: str | None = None,
        certificate_path: str | Path | None = None,
        authority_host: str = DEFAULT_AUTHORITY_HOST,
        http_client: requests.Session | None = None,
    ) -> None:
        if bool(client_secret) == bool(certificate_path):
            raise GraphAuthError("configure exactly one Graph credential: a client secret or a certificate path")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.authority = f"{_with_scheme(authority_host).rstrip('/')}/{tenant_id}"
        self._client_secret = client_secret
        self._certificate_path = Path(certificate_path) if certificate_path else None
        self._http_client = http_client
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    @property
    def credential_kind(self) -> str:
        return "certificate" if self._certificate_path else "client secret"

    def __repr__(self) -> str:
        return (
            f"GraphTokenProvider(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, "
            f"authority={self.authority!r}, credential={self.credential_kind})"
        )

    def __call__(self) -> str:
        """A valid Graph token, from MSAL's cache when it holds one with time to spare."""
        app = self._application()
        try:
            result = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
        except requests.RequestException as error:
            raise EntraUnavailable(
                f"cannot reach Entra at {self.authority} for a Graph token: {type(error).__name__}"
            ) from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if token:
            log.debug("Graph token for client %s from %s", self.client_id, result.get("token_source", "MSAL"))
            return str(token)
        raise GraphAuthError(self._describe_refusal(result if isinstance(result, dict) else {}))

    # -- internals -----------------------------------------------------------------------
    def _application(self) -> msal.ConfidentialClientApplication:
        with self._lock:
            if self._app is None:
                self._app = self._build_application()
            return self._app

    def _build_application(self) -> msal.ConfidentialClientApplication:
        credential: Any = (
            load_certificate_credential(self._certificate_path) if self._certificate_path else self._client_secret
        )
        options: dict[str, Any] = {}
        if not is_well_known_authority(self.authority):
            options["instance_discovery"] = False
        if self._http_client is not None:
            options["http_client"] = self._http_client
        try:
            return msal.ConfidentialClientApplication(
                self.client_id, client_credential=credential, authority=self.authority, **options
            )
        except requests.RequestException as error:
            raise EntraUnavailable(
                f"cannot reach Entra at {self.authority} to discover its endpoints: {type(error).__name__}"
            ) from None
        except ValueError as error:
            code = _first_aadsts(_chain_text(error))
            hint = _HINTS.get(code or "", "check the tenant ID and the authority host")
            detail = f"{code}: " if code else ""
            raise GraphAuthError(
                self._scrub(f"Entra authority {self.authority} was not usable: {detail}{hint}")
            ) from None

    def _describe_refusal(self, result: dict[str, Any]) -> str:
        error = str(result.get("error") or "unknown_error")
        description = str(result.get("error_description") or "")
        code = _first_aadsts(description)
        if code is None and result.get("error_codes"):
            code = f"AADSTS{result['error_codes'][0]}"
        hint = _HINTS.get(code or "", _DEFAULT_HINT)
        summary = _first_line(description)
        if code and summary.startswith(code):
            summary = summary[len(code) :].lstrip(": ")
        summary = summary.rstrip(". ")
        message = (
            f"Entra refused a Graph token for client {self.client_id} in tenant {self.tenant_id} "
            f"({self.credential_kind}): {code or error} {error}: {summary}; {hint}"
        )
        return self._scrub(message)

    def _scrub(self, message: str) -> str:
        # Entra does not echo secrets, but a message built from its text must never risk it.
        if self._client_secret and len(self._client_secret) >= 8:
            message = message.replace(self._client_secret, "***")
        return " ".join(message.split())


def _first_aadsts(text: str) -> str | None:
    match = _AADSTS.search(text)
    return match.group(0) if match else None


def _chain_text(error: BaseException) -> str:
    """The messages of an exception and its causes: MSAL wraps Entra's answer in a generic one."""
    texts: list[str] = []
    current: BaseException | None = error
    while current is not None and len(texts) < 5:
        texts.append(str(current))
        current = current.__cause__ or current.__context__
    return " ".join(texts)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]


def _with_scheme(host: str) -> str:
    return host if "://" in host else f"https://{host}"


def _hostname(url_or_host: str) -> str:
    return (urlsplit(_with_scheme(url_or_host)).hostname or "").lower()

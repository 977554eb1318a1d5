"""All configuration, read once from the environment (= Function App settings).

The names are the product's contract (see README, "Settings"). A missing or malformed
setting must stop a command at start with one line naming it, so `load_settings` turns
pydantic's errors into a `ConfigError` whose message is exactly that line.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.errors import ConfigError
from shared.identifiers import is_address, is_object_id
from shared.urls import redact_url, redact_urls

__all__ = ["ConfigError"]  # re-exported: callers read settings errors from here too

DEFAULT_STORAGE = "UseDevelopmentStorage=true"


class SyncScope(StrEnum):
    ALL = "all"
    ALL_EXCEPT = "all_except"
    SELECTED_USERS = "selected_users"
    SELECTED_GROUPS = "selected_groups"


class DeprovisionPolicy(StrEnum):
    DISABLE = "disable"
    DELETE = "delete"
    KEEP = "keep"


CommaList = Annotated[list[str], NoDecode]

# Outlook `showAs` values and the 3CX status profiles they may map to.
SHOW_AS_VALUES = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
STATUS_PROFILES = ("Available", "Away", "Out of office", "Custom 1", "Custom 2")
DEFAULT_STATUS_MAP = {"busy": "Out of office", "workingElsewhere": "Out of office", "oof": "Away"}


class Settings(BaseSettings):
    """The connector's settings; field aliases are the environment variable names."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", populate_by_name=True)

    graph_tenant_id: str | None = Field(None, alias="GRAPH_TENANT_ID")
    graph_client_id: str | None = Field(None, alias="GRAPH_CLIENT_ID")
    graph_client_secret: SecretStr | None = Field(None, alias="GRAPH_CLIENT_SECRET")
    graph_client_certificate_path: Path | None = Field(None, alias="GRAPH_CLIENT_CERTIFICATE_PATH")
    graph_authority_host: str = Field("https://login.microsoftonline.com", alias="GRAPH_AUTHORITY_HOST")
    graph_base_url: str = Field("https://graph.microsoft.com/v1.0", alias="GRAPH_BASE_URL")

    tcx_base_url: str | None = Field(None, alias="TCX_BASE_URL")
    tcx_client_id: str | None = Field(None, alias="TCX_CLIENT_ID")
    tcx_client_secret: SecretStr | None = Field(None, alias="TCX_CLIENT_SECRET")

    storage_connection: str = Field(DEFAULT_STORAGE, alias="AzureWebJobsStorage")
    # The Functions host's identity-based form (no shared keys): account name + managed identity.
    storage_account_name: str | None = Field(None, alias="AzureWebJobsStorage__accountName")
    storage_client_id: str | None = Field(None, alias="AzureWebJobsStorage__clientId")
    state_table_prefix: str = Field("tcx", alias="STATE_TABLE_PREFIX")

    user_sync_scope: SyncScope = Field(SyncScope.ALL, alias="USER_SYNC_SCOPE")
    user_sync_users: CommaList = Field(default_factory=list, alias="USER_SYNC_USERS")
    user_sync_groups: CommaList = Field(default_factory=list, alias="USER_SYNC_GROUPS")
    extension_start: int | None = Field(None, alias="EXTENSION_START")
    user_sync_schedule: str = Field("0 0 2 * * *", alias="USER_SYNC_SCHEDULE")
    sync_paused: bool = Field(False, alias="SYNC_PAUSED")

    sync_sso: bool = Field(False, alias="SYNC_SSO")
    sync_office_phone: bool = Field(False, alias="SYNC_OFFICE_PHONE")
    sync_photo: bool = Field(False, alias="SYNC_PHOTO")
    sync_personal_contacts: bool = Field(False, alias="SYNC_PERSONAL_CONTACTS")
    sync_calendar: bool = Field(True, alias="SYNC_CALENDAR")

    shared_mailboxes: CommaList = Field(default_factory=list, alias="SHARED_MAILBOXES")
    deprovision: DeprovisionPolicy = Field(DeprovisionPolicy.DISABLE, alias="DEPROVISION")
    deprovision_max_count: int | None = Field(25, alias="DEPROVISION_MAX_COUNT", ge=0)
    deprovision_max_percent: float | None = Field(20.0, alias="DEPROVISION_MAX_PERCENT", ge=0, le=100)
    webhook_url: str | None = Field(None, alias="WEBHOOK_URL")
    lifecycle_webhook_url: str | None = Field(None, alias="LIFECYCLE_WEBHOOK_URL")

    status_map: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_STATUS_MAP), alias="STATUS_MAP"
    )
    calendar_time_zone: str = Field("UTC", alias="CALENDAR_TIME_ZONE")
    calendar_refresh_minutes: int = Field(15, alias="CALENDAR_REFRESH_MINUTES", ge=1, le=1440)
    presence_schedule: str = Field("0 * * * * *", alias="PRESENCE_SCHEDULE")
    subscription_schedule: str = Field("0 30 */6 * * *", alias="SUBSCRIPTION_SCHEDULE")
    contact_sync_schedule: str = Field("0 */15 * * * *", alias="CONTACT_SYNC_SCHEDULE")
    work_queue: str = Field("tcx-work", alias="WORK_QUEUE")

    @field_validator("user_sync_users", "user_sync_groups", "shared_mailboxes", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("user_sync_users", "shared_mailboxes")
    @classmethod
    def _lower_addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not is_address(address):
                raise ValueError(f"{address!r} is not an e-mail address or UPN (name@domain)")
        return [address.lower() for address in value]

    @field_validator("user_sync_groups")
    @classmethod
    def _group_ids(cls, value: list[str]) -> list[str]:
        for group_id in value:
            _require_guid(group_id)
        return value

    @field_validator("graph_tenant_id", "graph_client_id")
    @classmethod
    def _guid(cls, value: str | None) -> str | None:
        return _require_guid(value) if value else None

    @field_validator("extension_start", mode="before")
    @classmethod
    def _extension(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str) and not re.fullmatch(r"\d{1,9}", value.strip()):
            raise ValueError(f"must be an extension number of 1 to 9 digits, got {value!r}")
        return value

    @field_validator("storage_account_name")
    @classmethod
    def _account_name(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[a-z0-9]{3,24}", value):
            raise ValueError(f"must be a storage account name (3-24 lower-case letters and digits), got {value!r}")
        return value or None

    @property
    def storage_by_identity(self) -> bool:
        """Reach storage with a managed identity: an account name is set and no real connection string."""
        return bool(self.storage_account_name) and self.storage_connection == DEFAULT_STORAGE

    def storage_endpoint(self, service: str) -> str:
        """`https://<account>.<service>.core.windows.net` for the identity-based form."""
        return f"https://{self.storage_account_name}.{service}.core.windows.net"

    @field_validator("graph_client_certificate_path", "graph_client_secret", "tcx_client_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # App settings cannot be deleted from some templates, only emptied.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("deprovision_max_count", "deprovision_max_percent", mode="before")
    @classmethod
    def _none_or_empty_is_off(cls, value: Any) -> Any:
        # `none` lifts a limit on purpose; the deployment (infra/) turns an empty value into the default.
        return None if isinstance(value, str) and value.strip().lower() in ("", "none") else value

    @field_validator("graph_authority_host", "graph_base_url", "tcx_base_url", "webhook_url", "lifecycle_webhook_url")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.match(r"^https://[^/\s]+", value):
            # Named without its query or user info: WEBHOOK_URL's `?code=` is a function key.
            raise ValueError(f"must be an https:// URL, got {redact_url(value)!r}")
        return value.rstrip("/")

    @field_validator("status_map", mode="before")
    @classmethod
    def _status_map(cls, value: Any) -> Any:
        """`busy=Out of office,oof=Away`: showAs=status pairs; a showAs left out changes nothing."""
        if not isinstance(value, str):
            return value
        mapping: dict[str, str] = {}
        for pair in filter(None, (item.strip() for item in value.split(","))):
            show_as, separator, profile = (part.strip() for part in pair.partition("="))
            known_show_as = {name.lower(): name for name in SHOW_AS_VALUES}
            known_profiles = {name.lower(): name for name in STATUS_PROFILES}
            if not separator or show_as.lower() not in known_show_as:
                raise ValueError(f"{pair!r}: expected showAs=status with showAs one of {', '.join(SHOW_AS_VALUES)}")
            if profile.lower() not in known_profiles:
                raise ValueError(f"{pair!r}: the status must be one of {', '.join(STATUS_PROFILES)}")
            mapping[known_show_as[show_as.lower()]] = known_profiles[profile.lower()]
        return mapping

    @field_validator("calendar_time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"must be an IANA time zone such as Europe/Berlin, got {value!r}") from None
        return value

    @field_validator("work_queue")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        # 56, not Storage's 63: the poison queue "<name>-poison" must fit too.
        if not re.fullmatch(r"[a-z0-9](?!.*--)[a-z0-9-]{1,54}[a-z0-9]", value):
            raise ValueError("must be a storage queue name: 3-56 lower-case letters, digits and single hyphens")
        return value

    @field_validator("user_sync_schedule", "presence_schedule", "subscription_schedule", "contact_sync_schedule")
    @classmethod
    def _ncrontab(cls, value: str) -> str:
        if len(value.split()) != 6:
            raise ValueError(
                f"must be an NCRONTAB expression of 6 fields (sec min hour day month weekday), got {value!r}"
            )
        return value

    @field_validator("state_table_prefix")
    @classmethod
    def _table_prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,29}", value):
            raise ValueError("must be 1 to 30 letters or digits, starting with a letter")
        return value

    # -- per-command requirements ----------------------------------------------------
    def require_graph(self) -> None:
        """Graph needs tenant, client and exactly one credential."""
        _require(self, "graph_tenant_id", "the Entra tenant id, a GUID")
        _require(self, "graph_client_id", "the app registration's client id, a GUID")
        if not self.graph_client_secret and not self.graph_client_certificate_path:
            raise ConfigError(
                "configuration error: GRAPH_CLIENT_SECRET or GRAPH_CLIENT_CERTIFICATE_PATH must be set"
                " (the app registration's credential)"
            )
        path = self.graph_client_certificate_path
        if path and not path.is_file():
            raise ConfigError(f"configuration error: GRAPH_CLIENT_CERTIFICATE_PATH: no file at {path}")

    def require_tcx(self) -> None:
        """3CX needs its root URL and the API client's id and secret."""
        _require(self, "tcx_base_url", "the 3CX root URL, e.g. https://pbx.example.com:5001")
        _require(self, "tcx_client_id", "the 3CX API client id (Admin console > Integrations > API)")
        _require(self, "tcx_client_secret", "the 3CX API client's key")

    def require_webhook(self) -> None:
        """Subscriptions need the public notification URL."""
        _require(self, "webhook_url", "the public https URL of /api/graph/notifications that Graph posts to")

    @property
    def lifecycle_url(self) -> str:
        """LIFECYCLE_WEBHOOK_URL, else WEBHOOK_URL with /graph/notifications → /graph/lifecycle (query kept)."""
        if self.lifecycle_webhook_url:
            return self.lifecycle_webhook_url
        self.require_webhook()
        base, _, query = (self.webhook_url or "").partition("?")
        if not base.endswith("/graph/notifications"):
            raise ConfigError(
                "configuration error: LIFECYCLE_WEBHOOK_URL is missing and WEBHOOK_URL does not end in"
                " /graph/notifications, so it cannot be derived"
            )
        lifecycle = base.removesuffix("/graph/notifications") + "/graph/lifecycle"
        return f"{lifecycle}?{query}" if query else lifecycle

    def require_user_sync(self) -> None:
        """Everything a user sync reads, including scope lists that must not be empty."""
        self.require_graph()
        self.require_tcx()
        if self.user_sync_scope in (SyncScope.ALL_EXCEPT, SyncScope.SELECTED_USERS) and not self.user_sync_users:
            raise ConfigError(
                f"configuration error: USER_SYNC_USERS is empty but USER_SYNC_SCOPE is {self.user_sync_scope.value}"
            )
        if self.user_sync_scope is SyncScope.SELECTED_GROUPS and not self.user_sync_groups:
            raise ConfigError("configuration error: USER_SYNC_GROUPS is empty but USER_SYNC_SCOPE is selected_groups")


def _require(settings: Settings, field: str, meaning: str) -> None:
    if not getattr(settings, field):
        alias = Settings.model_fields[field].alias
        raise ConfigError(f"configuration error: {alias} is missing ({meaning})")


def _require_guid(value: str) -> str:
    if not is_object_id(value):
        raise ValueError(f"must be a GUID, got {value!r}")
    return value


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; raise ConfigError with one line on a bad value.

    The line never quotes a URL's query string or user info (see shared/urls.py).
    """
    try:
        return Settings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        alias = Settings.model_fields[field].alias if field in Settings.model_fields else field
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "bool_parsing":
            message = "must be true or false (1/0 and yes/no work too)"
        if first["type"] in ("bool_parsing", "enum", "int_parsing", "float_parsing"):
            message += f", got {first.get('input')!r}"
        # The line quotes the bad value: a URL in it is shown without its query or user info.
        raise ConfigError(redact_urls(f"configuration error: {alias}: {message}")) from None

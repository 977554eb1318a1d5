"""Settings: the contract's names, defaults, and one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.settings import ConfigError, DeprovisionPolicy, Settings, SyncScope, load_settings

ROOT = Path(__file__).resolve().parents[2]
GUID = "8f2e6d4c-1b3a-4c5d-9e8f-0a1b2c3d4e5f"


def test_defaults_are_the_documented_ones() -> None:
    settings = load_settings()
    assert settings.storage_connection == "UseDevelopmentStorage=true"
    assert settings.user_sync_scope is SyncScope.ALL
    assert settings.deprovision is DeprovisionPolicy.DISABLE
    assert settings.user_sync_schedule == "0 0 2 * * *"
    assert settings.graph_authority_host == "https://login.microsoftonline.com"
    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert (settings.sync_sso, settings.sync_office_phone, settings.sync_photo) == (False, False, False)
    assert settings.sync_calendar is True
    assert settings.extension_start is None


@pytest.mark.parametrize(("raw", "value"), [("TRUE", True), ("yes", True), ("1", True), ("No", False), ("0", False)])
def test_booleans_accept_the_contract_spellings(monkeypatch: pytest.MonkeyPatch, raw: str, value: bool) -> None:
    monkeypatch.setenv("SYNC_PHOTO", raw)
    assert load_settings().sync_photo is value


def test_lists_are_comma_separated_and_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_SYNC_USERS", " Ann@Contoso.com, bob@contoso.com ,")
    monkeypatch.setenv("USER_SYNC_GROUPS", f"{GUID}")
    settings = load_settings()
    assert settings.user_sync_users == ["ann@contoso.com", "bob@contoso.com"]
    assert settings.user_sync_groups == [GUID]


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("GRAPH_TENANT_ID", "contoso", "GRAPH_TENANT_ID"),
        ("USER_SYNC_GROUPS", "sales", "USER_SYNC_GROUPS"),
        ("USER_SYNC_USERS", "ann", "USER_SYNC_USERS"),
        ("USER_SYNC_SCHEDULE", "0 2 * * *", "USER_SYNC_SCHEDULE"),
        ("DEPROVISION_MAX_PERCENT", "150", "DEPROVISION_MAX_PERCENT"),
        ("GRAPH_BASE_URL", "graph.microsoft.com", "GRAPH_BASE_URL"),
        # users and mailboxes have the shapes Graph gives them (shared/identifiers.py)
        ("SHARED_MAILBOXES", "sales@contoso.com,../groups@contoso.com", "SHARED_MAILBOXES"),
        ("USER_SYNC_USERS", "ann@contoso", "USER_SYNC_USERS"),
        ("USER_SYNC_GROUPS", "{" + GUID + "}", "USER_SYNC_GROUPS"),
    ],
)
def test_a_bad_value_gives_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, named: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"configuration error: {named}")


@pytest.mark.parametrize("off", ["", "  ", "none", "None", " NONE "])
def test_a_guard_limit_is_lifted_by_none_or_an_empty_value(monkeypatch: pytest.MonkeyPatch, off: str) -> None:
    """`none` says it on purpose: the deployment never passes an empty value (it means the default there)."""
    monkeypatch.setenv("DEPROVISION_MAX_COUNT", off)
    monkeypatch.setenv("DEPROVISION_MAX_PERCENT", off)
    settings = load_settings()
    assert (settings.deprovision_max_count, settings.deprovision_max_percent) == (None, None)
    monkeypatch.setenv("DEPROVISION_MAX_COUNT", "nothing")
    with pytest.raises(ConfigError, match="^configuration error: DEPROVISION_MAX_COUNT"):
        load_settings()


def test_credentials_are_required_per_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPH_TENANT_ID", GUID)
    monkeypatch.setenv("GRAPH_CLIENT_ID", GUID)
    monkeypatch.setenv("GRAPH_CLIENT_CERTIFICATE_PATH", "")  # emptied, not deleted
    with pytest.raises(ConfigError, match="GRAPH_CLIENT_SECRET or GRAPH_CLIENT_CERTIFICATE_PATH"):
        load_settings().require_graph()
    monkeypatch.setenv("GRAPH_CLIENT_CERTIFICATE_PATH", "/nonexistent/cert.pem")
    with pytest.raises(ConfigError, match="no file at"):
        load_settings().require_graph()
    monkeypatch.setenv("GRAPH_CLIENT_SECRET", "s3cret-value")
    monkeypatch.delenv("GRAPH_CLIENT_CERTIFICATE_PATH")
    load_settings().require_graph()
    with pytest.raises(ConfigError, match="TCX_BASE_URL is missing"):
        load_settings().require_tcx()


def test_secrets_never_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPH_CLIENT_SECRET", "graph-secret-value")
    monkeypatch.setenv("TCX_CLIENT_SECRET", "pbx-secret-value")
    text = repr(load_settings()) + str(load_settings().model_dump())
    assert "graph-secret-value" not in text
    assert "pbx-secret-value" not in text


def test_the_example_settings_file_names_every_setting_and_parses() -> None:
    values = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
    aliases = {field.alias for field in Settings.model_fields.values()}
    assert aliases <= set(values)
    load_settings(**{key: value for key, value in values.items() if key in aliases})


def test_the_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Za-z_]+)`", readme, flags=re.MULTILINE))
    documented |= {"TCX_CLIENT_ID", "TCX_CLIENT_SECRET"}  # one row documents both
    aliases = {field.alias for field in Settings.model_fields.values()}
    assert aliases <= documented


def test_storage_by_identity_when_only_an_account_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from sync.runtime import Runtime

    monkeypatch.setenv("AzureWebJobsStorage__accountName", "tcxstate01")
    monkeypatch.setenv("AzureWebJobsStorage__clientId", "11111111-2222-3333-4444-555555555555")
    settings = load_settings()
    assert settings.storage_by_identity
    rt = Runtime(settings)
    assert rt.state._service.url.startswith("https://tcxstate01.table.core.windows.net")
    assert rt.storage_credential.__class__.__name__ == "DefaultAzureCredential"
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://x")
    assert not load_settings().storage_by_identity  # an explicit connection string wins


def test_a_malformed_account_name_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsStorage__accountName", "Not_A_Name")
    with pytest.raises(ConfigError, match="AzureWebJobsStorage__accountName"):
        load_settings()


def test_a_bad_webhook_url_is_named_without_its_function_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault: the ConfigError line quoted the whole WEBHOOK_URL, `?code=<function key>` included."""
    monkeypatch.setenv("WEBHOOK_URL", "http://connector.example.com/api/graph/notifications?code=SECRETKEY")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value) == (
        "configuration error: WEBHOOK_URL: must be an https:// URL,"
        " got 'http://connector.example.com/api/graph/notifications'"
    )


def test_a_url_without_scheme_is_named_without_its_query(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "connector.example.com/api/graph/notifications?code=SECRETKEY")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "SECRETKEY" not in str(raised.value)
    assert "connector.example.com/api/graph/notifications" in str(raised.value)


def test_no_validation_message_quotes_a_urls_query(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any setting's message, not only the URL settings': a URL pasted into the wrong setting keeps its secret."""
    monkeypatch.setenv("CALENDAR_TIME_ZONE", "https://connector.example.com/api/graph/notifications?code=SECRETKEY")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value) == (
        "configuration error: CALENDAR_TIME_ZONE: must be an IANA time zone such as Europe/Berlin,"
        " got 'https://connector.example.com/api/graph/notifications'"
    )

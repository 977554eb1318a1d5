"""The Azure deployment (infra/, azure.yaml), checked offline.

Nothing here talks to Azure: the Bicep is parsed with the tree-sitter Bicep grammar (every
file must parse without error nodes) and read as data to hold it to the code — the app
settings it sets are exactly the settings the code reads, with the code's defaults,
credentials only as Key Vault references, and alerts that match log lines and functions the
code really has. The checkov scan (a subprocess) is in tests/integration/test_infra.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from function_app import registered_functions
from shared.settings import Settings
from tests.bicep_support import (
    INFRA,
    PROJECT_ROOT,
    Declaration,
    Expr,
    bicep_files,
    declared,
    parse,
    resources_of_type,
    syntax_problems,
)
from tests.telemetry_schema import emitted_dimensions, events_read, unknown_dimensions

ROOT = PROJECT_ROOT
MAIN = INFRA / "main.bicep"
MODULES = INFRA / "modules"

# Settings the Functions host reads itself; the deployment may set them beside the code's.
HOST_SETTINGS = frozenset(
    {
        "FUNCTIONS_EXTENSION_VERSION",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "PYTHON_ENABLE_OPENTELEMETRY",
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
    }
)
IDENTITY_STORAGE = frozenset(
    {"AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId"}
)
# Flex Consumption refuses these as app settings (they live in functionAppConfig).
FLEX_FORBIDDEN = {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE"}
# Settings whose values are secrets: WEBHOOK_URL carries the function key (?code=…).
KEY_BEARING_URLS = {"WEBHOOK_URL", "LIFECYCLE_WEBHOOK_URL"}

BUILT_IN_ROLES = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
}


# -- what the code reads -----------------------------------------------------------------------


def code_settings() -> set[str]:
    return {field.alias for field in Settings.model_fields.values() if field.alias}


def field_for(alias: str) -> str:
    return next(name for name, field in Settings.model_fields.items() if field.alias == alias)


def connector_settings() -> dict[str, Any]:
    """The app settings main.bicep gives the connector, as passed to the function app module."""
    function_app = next(m for m in declared(MAIN, "module").values() if m.type_string == "modules/functionapp.bicep")
    passed = function_app.body["params"]["appSettings"]
    assert isinstance(passed, Expr), "main.bicep should pass the connector's settings as one variable"
    return declared(MAIN, "var")[passed.text].body


def host_settings() -> dict[str, Any]:
    """The function app module's own settings (a list of name/value pairs)."""
    pairs = declared(MODULES / "functionapp.bicep", "var")["hostSettings"].body
    names = [pair["name"] for pair in pairs]
    assert len(names) == len(set(names)), f"a host setting is listed twice: {names}"
    return {pair["name"]: pair["value"] for pair in pairs}


def app_setting_names() -> set[str]:
    return set(connector_settings()) | set(host_settings())


def setting_params() -> dict[str, Declaration]:
    """main.bicep's params that feed a setting, by the setting named in their description."""
    aliases = code_settings()
    found = {}
    for param in declared(MAIN, "param").values():
        named = param.description.split(":", 1)[0]
        if named in aliases:
            found[named] = param
    return found


# -- syntax ------------------------------------------------------------------------------------


def test_the_deployment_has_a_main_template_and_its_modules() -> None:
    names = {path.relative_to(INFRA).as_posix() for path in bicep_files()}
    assert "main.bicep" in names
    for module in declared(MAIN, "module").values():
        target = module.type_string
        assert not re.match(r"^(br|ts)[:/]", target), f"{target}: registry modules do not build offline"
        assert (INFRA / target).is_file(), f"main.bicep uses {target}, which is not in infra/"
        assert target in names


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_bicep_file_parses_without_errors(path: Path) -> None:
    problems = syntax_problems(parse(path.read_text()), path.relative_to(ROOT).as_posix())
    assert not problems, "\n".join(problems)


def test_a_broken_file_is_reported_with_its_line() -> None:
    broken = (
        "param location string\n"
        "resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {\n"
        "  name: 'kv'\n"
        "  properties: {\n"
        "    sku: { name: 'standard' \n"
        "    tenantId: tenant().tenantId +\n"
        "}\n"
    )
    problems = syntax_problems(parse(broken), "broken.bicep")
    assert problems
    assert all(problem.startswith("broken.bicep:") for problem in problems)
    assert any(int(problem.split(":")[1]) >= 2 for problem in problems)
    assert syntax_problems(parse("param location string\n"), "fine.bicep") == []


# -- app settings = the settings the code reads --------------------------------------------------


def test_the_app_settings_are_exactly_the_settings_the_code_reads() -> None:
    code = code_settings()
    deployed = app_setting_names()
    assert "AzureWebJobsStorage" not in deployed, "storage is reached by identity, not a connection string"
    assert set(host_settings()) >= IDENTITY_STORAGE
    assert host_settings()["AzureWebJobsStorage__credential"] == "managedidentity"
    expected = code - {"AzureWebJobsStorage"}
    missing = sorted(expected - deployed)
    unexpected = sorted(deployed - expected - HOST_SETTINGS)
    assert not missing, f"the code reads these, the deployment does not set them: {missing}"
    assert not unexpected, f"the deployment sets these, the code does not read them: {unexpected}"
    assert not set(host_settings()) - HOST_SETTINGS, "the host settings variable holds only the host's own"
    assert not set(host_settings()) & set(connector_settings()), "a setting given twice fails the deployment"
    assert not deployed & FLEX_FORBIDDEN, "Flex Consumption takes runtime and version from functionAppConfig"


def test_the_site_is_given_both_groups_of_settings_and_keeps_them_out_of_deployment_history() -> None:
    function_app = declared(MODULES / "functionapp.bicep", "param")["appSettings"]
    assert "secure" in function_app.decorators, "WEBHOOK_URL carries the function key"
    (site,) = resources_of_type(MODULES / "functionapp.bicep", "Microsoft.Web/sites")
    app_settings = site.body["properties"]["siteConfig"]["appSettings"]
    assert isinstance(app_settings, Expr)
    assert {"connectorSettings", "hostSettings"} <= app_settings.identifiers()
    loop = declared(MODULES / "functionapp.bicep", "var")["connectorSettings"]
    assert "items(appSettings)" in (loop.node.named_children[-1].text or b"").decode()


def test_every_deployed_setting_is_in_the_readme_settings_table() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Za-z_]+)`", readme, flags=re.MULTILINE))
    documented |= {"TCX_CLIENT_ID", "TCX_CLIENT_SECRET"}  # one row documents both
    undocumented = sorted(app_setting_names() - HOST_SETTINGS - documented)
    assert not undocumented, f"not in README's settings table: {undocumented}"


def test_each_setting_is_wired_to_the_parameter_named_for_it() -> None:
    params = setting_params()
    by_name = {param.name: alias for alias, param in params.items()}
    for alias, setting in connector_settings().items():
        assert alias in params, f"no main.bicep parameter is described as {alias}"
        wired = setting.identifiers() if isinstance(setting, Expr) else set()
        fed_by = {by_name[name] for name in wired if name in by_name}
        if fed_by:
            assert fed_by == {alias}, f"{alias} is set from the parameter(s) of {sorted(fed_by)}"


def test_parameter_defaults_are_the_code_defaults() -> None:
    code_default = Settings()
    checked = 0
    for alias, param in setting_params().items():
        field = field_for(alias)
        if not param.has_default:
            assert Settings.model_fields[field].default is None, f"{alias} is required by the deployment only"
            continue
        default = param.body
        assert isinstance(default, str), f"{param.name}: app settings are strings, the default is {default!r}"
        read = Settings(**{alias: default})
        assert getattr(read, field) == getattr(code_default, field), f"{param.name} = {default!r} ≠ the code default"
        checked += 1
    assert checked >= 20


def test_credentials_reach_the_app_only_as_key_vault_references() -> None:
    secrets = {alias for alias in code_settings() if _is_secret(alias)}
    assert secrets == {"GRAPH_CLIENT_SECRET", "TCX_CLIENT_SECRET"}
    settings = connector_settings()
    main_params = declared(MAIN, "param")
    for alias in secrets:
        setting = settings[alias]
        assert isinstance(setting, Expr) and "@Microsoft.KeyVault(SecretUri=" in setting.text, alias
    for alias in secrets | KEY_BEARING_URLS:
        param = setting_params()[alias]
        assert "secure" in param.decorators, f"{param.name} holds a secret: it must be @secure()"
    for name, param in main_params.items():
        if "secret" in name.lower():
            assert "secure" in param.decorators, name
    (site,) = resources_of_type(MODULES / "functionapp.bicep", "Microsoft.Web/sites")
    assert isinstance(site.body["properties"]["keyVaultReferenceIdentity"], Expr)


def _is_secret(alias: str) -> bool:
    annotation = Settings.model_fields[field_for(alias)].annotation
    return SecretStr in getattr(annotation, "__args__", (annotation,))


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_no_output_carries_a_secure_value(path: Path) -> None:
    secure = {name for name, param in declared(path, "param").items() if "secure" in param.decorators}
    for output in declared(path, "output").values():
        body = output.body
        used = body.identifiers() if isinstance(body, Expr) else set()
        assert not used & secure, f"output {output.name} uses {sorted(used & secure)}"


# What azd does with infra/main.parameters.json. Each value is a `${NAME}` reference that azd fills
# from the environment with github.com/drone/envsubst (v1.0.3, azure-dev's go.mod): `${NAME}` is the
# value, '' when unset; `${NAME=default}` is the default when the value is empty or unset (the
# library's `=`, `:=` and `:-` all do that). What azd then passes (pkg/infra/provisioning/bicep,
# loadParameters and armParameterFileValue): since 1.15.0 a parameter whose variable is unset and
# whose value came out empty is left out, so Bicep's default applies; before 1.15.0 it was passed
# as ''. A variable set to '' is passed as '' by every version, unless it has a default here.
AZD_FIRST_VERSION_LEAVING_OUT_UNSET = (1, 15, 0)
_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>=|:=|:-)(?P<default>[^}]*))?\}")
# Parameters that are not settings of the code: azd's own environment values, and the infrastructure knobs.
NON_SETTING_VARIABLES = {
    "environmentName": "AZURE_ENV_NAME",
    "location": "AZURE_LOCATION",
    "resourceGroupName": "AZURE_RESOURCE_GROUP",
    "alertEmail": "ALERT_EMAIL",
    "alwaysReadyHttpInstances": "AZURE_ALWAYS_READY_HTTP_INSTANCES",
    "maximumInstanceCount": "AZURE_MAXIMUM_INSTANCE_COUNT",
    "storageSku": "AZURE_STORAGE_SKU",
    "zoneRedundant": "AZURE_ZONE_REDUNDANT",
    "keyVaultPurgeProtection": "AZURE_KEY_VAULT_PURGE_PROTECTION",
    "deployerPrincipalId": "AZURE_PRINCIPAL_ID",
    "consoleClientId": "AZURE_CONSOLE_CLIENT_ID",
    "consoleClientSecret": "AZURE_CONSOLE_CLIENT_SECRET",
}


def azd_parameters() -> dict[str, str]:
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    return {name: entry["value"] for name, entry in given.items()}


def envsubst(template: str, environment: dict[str, str]) -> tuple[str, bool]:
    """One parameter value as azd substitutes it; also whether a variable it names was unset."""
    unset = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal unset
        value = environment.get(match["name"])
        if value is None:
            unset, value = True, ""
        return match["default"] if match["op"] and value == "" else value

    return _REFERENCE.sub(substitute, template), unset


def passed_by_azd(template: str, environment: dict[str, str], *, version: tuple[int, int, int]) -> str | None:
    """The value azd passes to the deployment; None when it leaves the parameter out (Bicep's default)."""
    value, unset = envsubst(template, environment)
    if value == "" and unset and version >= AZD_FIRST_VERSION_LEAVING_OUT_UNSET:
        return None
    return value


def bicep_default(param: Declaration) -> str | None:
    """A parameter's default as azd would write it in the environment (true/false, digits, text)."""
    default = param.body
    if default is None:
        return None
    return str(default).lower() if isinstance(default, bool) else str(default)


def test_every_parameter_comes_from_the_azd_environment_value_named_for_it() -> None:
    given = azd_parameters()
    main_params = declared(MAIN, "param")
    assert set(given) == set(main_params), f"not mapped: {sorted(set(main_params) ^ set(given))}"
    expected = {param.name: alias for alias, param in setting_params().items()} | NON_SETTING_VARIABLES
    assert set(expected) == set(main_params)
    for name, template in given.items():
        match = _REFERENCE.fullmatch(template)
        assert match, f"{name}: {template!r} is not one ${{NAME}} or ${{NAME=default}}"
        assert match["name"] == expected[name], f"{name} should come from {expected[name]}"


def test_every_parameter_default_in_the_parameter_file_is_the_bicep_default() -> None:
    """Fault: `${VAR}` everywhere, so an empty value reached the deployment instead of the default."""
    main_params = declared(MAIN, "param")
    for name, template in azd_parameters().items():
        match = _REFERENCE.fullmatch(template)
        assert match
        default = bicep_default(main_params[name])
        if default:
            assert match["op"] == "=", f"{name}: write ${{{match['name']}={default}}} so an empty value is the default"
            assert match["default"] == default, f"{name}: {match['default']!r} here, {default!r} in main.bicep"
        else:
            assert match["op"] is None, f"{name} has no default in main.bicep ({default!r}): no default here either"


def test_the_defaults_in_the_parameter_file_are_the_readme_defaults() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = dict(re.findall(r"^\| `([A-Za-z_]+)` \| [^\n]* \| ([^|\n]*) \|$", readme, flags=re.MULTILINE))
    given = azd_parameters()
    for alias, param in setting_params().items():
        if alias not in documented:
            continue  # TCX_CLIENT_ID / TCX_CLIENT_SECRET share a row: both required
        match = _REFERENCE.fullmatch(given[param.name])
        assert match
        literal = re.fullmatch(r"`([^`]*)`", documented[alias].strip())
        if match["op"]:
            assert literal and literal.group(1) == match["default"], f"README gives {alias} {documented[alias]!r}"
        else:
            assert not literal, f"README gives {alias} the default {documented[alias]!r}, azd none"


@pytest.mark.parametrize("version", [(1, 14, 0), AZD_FIRST_VERSION_LEAVING_OUT_UNSET], ids=["azd<1.15", "azd>=1.15"])
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_an_unset_or_empty_value_deploys_the_default(version: tuple[int, int, int], value: str | None) -> None:
    """Fault: an unset value reached @allowed parameters as '' on older azd, an empty one on every azd."""
    main_params = declared(MAIN, "param")
    for name, template in azd_parameters().items():
        param = main_params[name]
        variable = _REFERENCE.fullmatch(template)["name"]  # type: ignore[index]
        environment = {} if value is None else {variable: value}
        passed = passed_by_azd(template, environment, version=version)
        default = bicep_default(param)
        if default is None:
            continue  # required: azd asks for it
        deployed = default if passed is None else passed
        assert deployed == default, f"{name}: {variable}={value!r} deploys {deployed!r}, not the default {default!r}"
        allowed = param.decorators.get("allowed")
        if allowed:
            assert deployed in allowed[0], f"{name}: {deployed!r} is not allowed"


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_an_empty_value_never_switches_the_deletion_guard_off(value: str | None) -> None:
    main_params = declared(MAIN, "param")
    given = azd_parameters()
    limits = {}
    for alias in ("DEPROVISION_MAX_COUNT", "DEPROVISION_MAX_PERCENT"):
        param = setting_params()[alias]
        assert param.decorators.get("minLength") == [1], f"{param.name}: Bicep must refuse '' itself"
        environment = {} if value is None else {alias: value}
        for version in ((1, 14, 0), AZD_FIRST_VERSION_LEAVING_OUT_UNSET):
            passed = passed_by_azd(given[param.name], environment, version=version)
            deployed = bicep_default(main_params[param.name]) if passed is None else passed
            assert deployed and deployed.strip(), f"{alias}={value!r} deploys {deployed!r} with azd {version}"
            limits[alias] = deployed
    guard = Settings(**limits)
    assert guard.deprovision_max_count is not None and guard.deprovision_max_percent is not None


def test_azure_yaml_requires_an_azd_that_leaves_unset_values_out() -> None:
    project = yaml.safe_load((ROOT / "azure.yaml").read_text())
    required = project.get("requiredVersions", {}).get("azd", "")
    match = re.fullmatch(r">=\s*(\d+)\.(\d+)\.(\d+)", required)
    assert match, f"azure.yaml should require an azd version range like '>= 1.15.0', not {required!r}"
    assert tuple(int(part) for part in match.groups()) >= AZD_FIRST_VERSION_LEAVING_OUT_UNSET
    readme = (INFRA / "README.md").read_text()
    assert "1.15" in readme and "requiredVersions" in readme, "infra/README.md says which azd and why"


# -- the platform ----------------------------------------------------------------------------------


def test_the_app_runs_on_flex_consumption_with_its_user_assigned_identity() -> None:
    path = MODULES / "functionapp.bicep"
    (plan,) = resources_of_type(path, "Microsoft.Web/serverfarms")
    assert plan.body["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    (site,) = resources_of_type(path, "Microsoft.Web/sites")
    assert site.body["identity"]["type"] == "UserAssigned"
    config = site.body["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    always_ready = config["scaleAndConcurrency"]["alwaysReady"]
    assert isinstance(always_ready, Expr) and "'http'" in always_ready.text
    assert "alwaysReadyHttp" in always_ready.identifiers()
    assert "alwaysReadyHttpInstances" in declared(path, "var")["alwaysReadyHttp"].body.identifiers()
    assert declared(path, "param")["alwaysReadyHttpInstances"].body >= 1, "webhooks must be answered warm"
    assert site.body["properties"]["httpsOnly"] is True


def test_storage_and_key_vault_accept_only_entra_id() -> None:
    (account,) = resources_of_type(MODULES / "storage.bicep", "Microsoft.Storage/storageAccounts")
    properties = account.body["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    (vault,) = resources_of_type(MODULES / "keyvault.bicep", "Microsoft.KeyVault/vaults")
    assert vault.body["properties"]["enableRbacAuthorization"] is True
    (insights,) = resources_of_type(MODULES / "monitoring.bicep", "Microsoft.Insights/components")
    assert insights.body["properties"]["DisableLocalAuth"] is True
    assert isinstance(insights.body["properties"]["WorkspaceResourceId"], Expr)


def _granted(principal: str) -> dict[str, set[str]]:
    """The roles roles.bicep gives one principal parameter, by the scope's symbolic name."""
    path = MODULES / "roles.bicep"
    variables = {name: var.body for name, var in declared(path, "var").items()}
    granted: dict[str, set[str]] = {}
    for assignment in resources_of_type(path, "Microsoft.Authorization/roleAssignments"):
        body = assignment.body
        assert isinstance(body["name"], Expr) and body["name"].text.startswith("guid("), assignment.name
        if body["properties"]["principalId"].text != principal:
            continue
        role_ids: set[str] = set()
        for name in body["properties"]["roleDefinitionId"].identifiers():
            role_ids |= _role_ids(name, assignment, variables)
        granted.setdefault(body["scope"].text, set()).update(role_ids)
    return granted


def test_the_identity_gets_exactly_the_least_roles_on_the_resources_they_concern() -> None:
    path = MODULES / "roles.bicep"
    for assignment in resources_of_type(path, "Microsoft.Authorization/roleAssignments"):
        if assignment.body["properties"]["principalId"].text == "principalId":
            assert assignment.body["properties"]["principalType"] == "ServicePrincipal", assignment.name
    roles = BUILT_IN_ROLES
    assert _granted("principalId") == {
        "storage": {
            roles["Storage Blob Data Owner"],
            roles["Storage Queue Data Contributor"],
            roles["Storage Table Data Contributor"],
        },
        "graphSecret": {roles["Key Vault Secrets User"]},
        "tcxSecret": {roles["Key Vault Secrets User"]},
        "consoleSecret": {roles["Key Vault Secrets User"]},
        "appInsights": {roles["Monitoring Metrics Publisher"]},
    }


def test_the_identity_reads_only_the_secrets_it_uses_not_the_whole_vault() -> None:
    """Fault (issue #12): Key Vault Secrets User on the vault, so the app could read any secret put there."""
    path = MODULES / "roles.bicep"
    secrets = {d.name: d for d in resources_of_type(path, "Microsoft.KeyVault/vaults/secrets")}
    assert set(secrets) == {"graphSecret", "tcxSecret", "consoleSecret"}
    for secret in secrets.values():
        assert secret.existing, f"{secret.name}: the secret is made in keyvault.bicep, referenced here"
        assert secret.body["parent"].text == "vault"
    assert secrets["graphSecret"].body["name"].text == "graphSecretName"
    assert secrets["tcxSecret"].body["name"].text == "tcxSecretName"
    assert secrets["consoleSecret"].body["name"].text == "consoleSecretName"
    # The Graph secret exists only when one was given (a certificate may be used instead).
    assignments = resources_of_type(path, "Microsoft.Authorization/roleAssignments")
    for scope in ("graphSecret", "consoleSecret"):
        (assignment,) = [a for a in assignments if a.body["scope"].text == scope]
        condition = assignment.value_node
        assert condition is not None and condition.type == "if_statement"
        assert f"{scope}Name" in (condition.named_children[0].text or b"").decode()
    roles = next(m for m in declared(MAIN, "module").values() if m.type_string == "modules/roles.bicep")
    params = roles.body["params"]
    assert params["tcxSecretName"].text == "keyVault.outputs.tcxSecretName"
    assert "keyVault.outputs.graphSecretName" in params["graphSecretName"].text
    assert "empty(graphClientSecret)" in params["graphSecretName"].text
    kv_outputs = declared(MODULES / "keyvault.bicep", "output")
    assert kv_outputs["graphSecretName"].body.text == "graphSecretName"
    assert kv_outputs["tcxSecretName"].body.text == "tcxSecretName"


def test_basic_publishing_credentials_are_off() -> None:
    """Fault (issue #12): FTP and SCM basic authentication stayed on; azd deploys with Entra ID."""
    path = MODULES / "functionapp.bicep"
    policies = resources_of_type(path, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert sorted(p.body["name"] for p in policies) == ["ftp", "scm"]
    for policy in policies:
        assert policy.body["parent"].text == "site"
        assert policy.body["properties"] == {"allow": False}
        assert policy.value_node.type == "object", "unconditional"


def test_the_deploying_principal_gets_its_roles_only_when_given() -> None:
    """The admin guide's manual role step (the CLI's table and queue roles) and the secrets, by the template."""
    main_param = declared(MAIN, "param")["deployerPrincipalId"]
    assert main_param.body == ""
    assert azd_parameters()["deployerPrincipalId"] == "${AZURE_PRINCIPAL_ID}"
    roles_module = next(m for m in declared(MAIN, "module").values() if m.type_string == "modules/roles.bicep")
    assert roles_module.body["params"]["deployerPrincipalId"].text == "deployerPrincipalId"
    path = MODULES / "roles.bicep"
    assert declared(path, "param")["deployerPrincipalId"].body == ""
    roles = BUILT_IN_ROLES
    assert _granted("deployerPrincipalId") == {
        "storage": {roles["Storage Queue Data Contributor"], roles["Storage Table Data Contributor"]},
        "vault": {roles["Key Vault Secrets Officer"]},
    }
    for assignment in resources_of_type(path, "Microsoft.Authorization/roleAssignments"):
        if assignment.body["properties"]["principalId"].text != "deployerPrincipalId":
            continue
        node = assignment.value_node
        if node.type == "for_statement":
            node = node.named_children[-1]
        assert node.type == "if_statement", f"{assignment.name}: only when a deployer is given"
        assert "!empty(deployerPrincipalId)" in (node.named_children[0].text or b"").decode()
        # a user for azd up from a workstation, a service principal from a pipeline: ARM looks it up
        assert "principalType" not in assignment.body["properties"]
    guide = (ROOT / "docs" / "admin-guide.md").read_text()
    assert "az role assignment create" not in guide, "the deployment grants the deployer's roles"
    assert "AZURE_PRINCIPAL_ID" in (INFRA / "README.md").read_text()


def _role_ids(name: str, assignment: Declaration, variables: dict[str, Any]) -> set[str]:
    """The role GUIDs an identifier stands for: a variable, or the loop variable of a for."""
    if isinstance(variables.get(name), str):
        return {variables[name]}
    loop = assignment.node.named_children[-1]
    if loop.type == "for_statement" and (loop.named_children[0].text or b"").decode() == name:
        source = (loop.named_children[1].text or b"").decode()
        return {variables[item.text] if isinstance(item, Expr) else item for item in variables[source]}
    return set()


# -- alerts ----------------------------------------------------------------------------------------


def test_every_alert_reads_a_log_line_or_function_the_code_has() -> None:
    path = MODULES / "alerts.bicep"
    queries = alert_queries()
    assert len(queries) == 7
    emitted = emitted_dimensions()
    functions = {function.get_function_name() for function in registered_functions()}
    seen_events: set[str] = set()
    for query in queries:
        assert "parse-kv" not in query and "message startswith" not in query, "read the dimensions, not the text"
        problems = unknown_dimensions(query, emitted)
        assert not problems, "\n".join(problems)
        seen_events |= events_read(query)
        for listed in re.findall(r"name\s+!?in\s+\(([^)]*)\)", query):
            names = set(re.findall(r'"([^"]+)"', listed))
            assert names and names <= functions, f"alert watches {sorted(names - functions)}: no such function"
    assert seen_events == {
        "run_summary",
        "ALERT deletion_guard",
        "ALERT creation_guard",
        "subscription_failed",
        "invocation_failed",
        "poison_messages",
    }
    by_name = {rule["name"]: rule for rule in declared(path, "var")["rules"].body}
    assert 'status == "failed"' in _query_of(by_name["sync-run-failed"])
    failed = _query_of(by_name["invocation-failed"])
    assert "requests" in failed and "success == false" in failed and '"invocation_failed"' in failed
    nightly = _query_of(by_name["no-nightly-sync"])
    assert '== "users"' in nightly and '.trigger) == "timer"' in nightly and "ago(26h)" in nightly
    assert by_name["no-nightly-sync"]["windowSize"] == "P2D", "the window must reach back past 26 hours"
    assert by_name["poison-messages"]["autoMitigate"] is True
    (group,) = resources_of_type(path, "Microsoft.Insights/actionGroups")
    (receiver,) = group.body["properties"]["emailReceivers"]
    assert isinstance(receiver["emailAddress"], Expr) and receiver["emailAddress"].text == "alertEmail"


def test_an_alert_reading_a_dimension_no_line_has_is_caught() -> None:
    emitted = emitted_dimensions()
    good = 'traces | where customDimensions.event == "run_summary" | extend s = tostring(customDimensions.status)'
    assert unknown_dimensions(good, emitted) == []
    assert unknown_dimensions(good.replace(".status", ".satus"), emitted)
    assert unknown_dimensions('traces | where customDimensions.event == "run_sumary"', emitted)
    assert unknown_dimensions(
        'traces | where customDimensions.event == "status_change" | extend x = customDimensions.created', emitted
    )
    assert unknown_dimensions(
        'customMetrics | where name == "connector.runs" | extend r = customDimensions.route', emitted
    )


def alert_queries() -> list[str]:
    variables = declared(MODULES / "alerts.bicep", "var")
    return [q for q in (v.body for v in variables.values()) if isinstance(q, str) and "| where" in q]


def _query_of(rule: dict[str, Any]) -> str:
    return declared(MODULES / "alerts.bicep", "var")[rule["query"].text].body


# -- outputs, azd ------------------------------------------------------------------------------------


def test_the_outputs_give_the_webhook_endpoints_and_say_the_key_is_to_be_added() -> None:
    outputs = declared(MAIN, "output")
    webhook = outputs["WEBHOOK_ENDPOINT"]
    assert webhook.body.text.endswith("/api/graph/notifications'")
    assert "function key" in webhook.description and "WEBHOOK_URL" in webhook.description
    assert outputs["LIFECYCLE_ENDPOINT"].body.text.endswith("/api/graph/lifecycle'")
    assert not set(outputs) & code_settings(), "an output named like a setting would feed it back through azd"


def _webhook_functions() -> dict[str, str]:
    """The webhook functions by name, with their routes."""
    triggers = {f.get_function_name(): f.get_trigger() for f in registered_functions()}
    return {name: t.route for name, t in triggers.items() if getattr(t, "route", "").startswith("graph/")}


def test_webhook_url_is_made_with_a_key_of_the_webhook_functions_not_the_host_key() -> None:
    """Fault: the output and infra/README.md said to use the host key, which also opens
    `POST /api/admin/users/run?allow_deprovision=true`, to anyone who sees a subscription's URL."""
    webhooks = _webhook_functions()
    assert webhooks == {"graph_notifications": "graph/notifications", "graph_lifecycle": "graph/lifecycle"}
    outputs = declared(MAIN, "output")
    for output, route in (("WEBHOOK_ENDPOINT", "graph/notifications"), ("LIFECYCLE_ENDPOINT", "graph/lifecycle")):
        assert outputs[output].body.text.endswith(f"/api/{route}'")
    infra_readme = (INFRA / "README.md").read_text()
    for text, where in (
        (outputs["WEBHOOK_ENDPOINT"].description, "WEBHOOK_ENDPOINT's description"),
        (infra_readme, "infra/README.md"),
    ):
        assert "functionKeys.default" not in text and "az functionapp keys list" not in text, (
            f"{where} uses the host key"
        )
        assert "az functionapp function keys" in text, f"{where} does not say how to make the function key"
        for name in webhooks:
            assert name in text, f"{where} does not name {name}"
        assert "admin" in text, f"{where} does not say why not the host key"


def test_azure_yaml_provisions_infra_and_deploys_the_app_as_the_tagged_service() -> None:
    project = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert project["infra"]["path"] == "infra"
    assert project["infra"].get("module", "main") == "main"
    ((service, spec),) = project["services"].items()
    assert spec == {"project": ".", "language": "python", "host": "function"}
    function_app = next(m for m in declared(MAIN, "module").values() if m.type_string == "modules/functionapp.bicep")
    assert function_app.body["params"]["serviceName"] == service
    (site,) = resources_of_type(MODULES / "functionapp.bicep", "Microsoft.Web/sites")
    assert "'azd-service-name': serviceName" in site.body["tags"].text


def test_the_infra_readme_describes_every_module() -> None:
    readme = (INFRA / "README.md").read_text()
    for path in bicep_files():
        assert path.relative_to(INFRA).as_posix() in readme, f"infra/README.md does not mention {path.name}"


# -- region and redundancy ---------------------------------------------------------------------------


def test_the_location_is_one_of_the_regions_that_offer_flex_consumption() -> None:
    """Fault: any region was accepted, and the deployment failed late where Flex Consumption is not offered."""
    location = declared(MAIN, "param")["location"]
    (regions,) = location.decorators.get("allowed", [[]])
    assert regions, "main.bicep accepts any region"
    assert len(regions) == len(set(regions)) and all(re.fullmatch(r"[a-z0-9]+", r) for r in regions), regions
    assert location.decorators["metadata"] == [{"azd": {"type": "location"}}], "azd offers only these regions"
    source = location.leading_comment
    assert "https://" in source and "list-flexconsumption-locations" in source, "the list says where it is from"
    for doc in (INFRA / "README.md", ROOT / "docs" / "admin-guide.md"):
        for region in re.findall(r"AZURE_LOCATION ([a-z0-9]+)", doc.read_text()):
            assert region in regions, f"{doc.name} suggests {region}, which main.bicep refuses"


def test_storage_is_locally_redundant_unless_zone_redundancy_is_asked_for() -> None:
    """Fault: Standard_ZRS by default, which regions without availability zones do not offer."""
    params = declared(MAIN, "param")
    assert params["storageSku"].body == "Standard_LRS"
    assert declared(MODULES / "storage.bicep", "param")["sku"].body == "Standard_LRS"
    assert params["zoneRedundant"].body is False
    # With zone redundancy, each replication choice becomes its zone-redundant counterpart.
    (choices,) = params["storageSku"].decorators["allowed"]
    zonal = declared(MAIN, "var")["zoneRedundantStorage"].body
    assert set(zonal) == set(choices)
    assert all(zonal[sku] in {"Standard_ZRS", "Standard_GZRS"} for sku in choices), zonal
    assert zonal["Standard_GRS"] == "Standard_GZRS", "geo-redundancy is kept"
    storage = next(m for m in declared(MAIN, "module").values() if m.type_string == "modules/storage.bicep")
    assert storage.body["params"]["sku"].text == "zoneRedundant ? zoneRedundantStorage[storageSku] : storageSku"


def test_zone_redundancy_is_set_on_the_plan_with_the_always_ready_instances_it_needs() -> None:
    function_app = next(m for m in declared(MAIN, "module").values() if m.type_string == "modules/functionapp.bicep")
    assert function_app.body["params"]["zoneRedundant"].text == "zoneRedundant"
    path = MODULES / "functionapp.bicep"
    assert declared(path, "param")["zoneRedundant"].body is False
    (plan,) = resources_of_type(path, "Microsoft.Web/serverfarms")
    assert plan.body["properties"]["zoneRedundant"].text == "zoneRedundant"
    # A zone-redundant Flex Consumption app takes no fewer than two always-ready instances per group.
    (site,) = resources_of_type(path, "Microsoft.Web/sites")
    always_ready = site.body["properties"]["functionAppConfig"]["scaleAndConcurrency"]["alwaysReady"]
    assert "alwaysReadyHttp" in always_ready.identifiers()
    count = declared(path, "var")["alwaysReadyHttp"].body
    expected = (
        "zoneRedundant && alwaysReadyHttpInstances > 0 ? max(2, alwaysReadyHttpInstances) : alwaysReadyHttpInstances"
    )
    assert count.text == expected


# -- telemetry ---------------------------------------------------------------------------------------


def test_the_host_and_the_worker_export_opentelemetry_as_the_managed_identity() -> None:
    """The host in OpenTelemetry mode; the worker hands over its own logs and continues the host's traces."""
    host = json.loads((ROOT / "host.json").read_text())
    assert host["telemetryMode"] == "OpenTelemetry"
    settings = host_settings()
    assert settings["PYTHON_ENABLE_OPENTELEMETRY"] == "true"
    # The worker's own set-up of the distro would export without the managed identity.
    assert "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY" not in settings
    assert isinstance(settings["APPLICATIONINSIGHTS_CONNECTION_STRING"], Expr)
    auth = settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert isinstance(auth, Expr) and "identityClientId" in auth.identifiers() and "Authorization=AAD" in auth.text


def test_what_the_docs_say_of_sampling_is_what_host_json_does() -> None:
    """Fault: the queries and the guide said host.json samples traces, while it excluded them from sampling.

    In OpenTelemetry mode host.json's Application Insights sampling does not apply at all; the
    connector's own log records are not sampled.
    """
    host = json.loads((ROOT / "host.json").read_text())
    assert "applicationInsights" not in host.get("logging", {}), (
        "its samplingSettings do not apply in OpenTelemetry mode"
    )
    for doc in (ROOT / "docs" / "queries.kql", ROOT / "docs" / "admin-guide.md", ROOT / "README.md"):
        text = " ".join(doc.read_text().split())
        assert not re.search(r"host\.json\W+samples", text), f"{doc.name} says host.json samples"
        unsampled_said = "itemCount" not in text or "not sampled" in text.lower()
        assert unsampled_said, f"{doc.name} counts itemCount without saying the log lines are not sampled"


# -- the console behind App Service authentication (issue #13) ---------------------------------------


def _auth_settings() -> Declaration:
    configs = resources_of_type(MODULES / "functionapp.bicep", "Microsoft.Web/sites/config")
    (auth,) = [c for c in configs if c.body["name"] == "authsettingsV2"]
    return auth


def test_the_console_sits_behind_app_service_authentication_when_a_client_id_is_given() -> None:
    auth = _auth_settings()
    assert auth.body["parent"].text == "site"
    condition = auth.value_node
    assert condition is not None and condition.type == "if_statement", "only with a console registration"
    assert (condition.named_children[0].text or b"").decode() == "(!empty(consoleClientId))"
    properties = auth.body["properties"]
    assert properties["platform"]["enabled"] is True
    aad = properties["identityProviders"]["azureActiveDirectory"]
    assert aad["enabled"] is True
    assert aad["registration"]["clientId"].text == "consoleClientId"
    assert aad["registration"]["openIdIssuer"].text == "consoleIssuer"
    assert properties["httpSettings"]["requireHttps"] is True
    # Where the Flex Consumption plan's support for it is documented.
    comment = " ".join(auth.leading_comment.split())
    assert "learn.microsoft.com" in comment and "Flex Consumption plan takes built-in authentication" in comment
    main_params = declared(MAIN, "param")
    assert main_params["consoleClientId"].body == ""
    assert "secure" in main_params["consoleClientSecret"].decorators
    module = next(m for m in declared(MAIN, "module").values() if m.type_string == "modules/functionapp.bicep")
    issuer = module.body["params"]["consoleIssuer"]
    assert issuer.text == "'${graphAuthorityHost}/${graphTenantId}/v2.0'", "Entra's v2.0 issuer of the tenant"
    assert Settings().graph_authority_host == "https://login.microsoftonline.com"


def test_console_authentication_lets_anonymous_requests_through() -> None:
    """Graph's webhooks and the function-key admin routes carry no sign-in; the console checks its own."""
    validation = _auth_settings().body["properties"]["globalValidation"]
    assert validation["requireAuthentication"] is False
    assert validation["unauthenticatedClientAction"] == "AllowAnonymous"
    assert "excludedPaths" not in validation


def test_the_console_secret_reaches_the_auth_settings_only_as_a_key_vault_reference() -> None:
    path = MODULES / "functionapp.bicep"
    variables = declared(path, "var")
    name = variables["consoleSecretSetting"].body
    registration = _auth_settings().body["properties"]["identityProviders"]["azureActiveDirectory"]["registration"]
    assert "consoleSecretSetting" in registration["clientSecretSettingName"].identifiers()
    assert isinstance(name, str) and name, "the setting's name is a literal"
    assert "consoleSecretSetting" in variables["authSettings"].body.identifiers(), "the setting is on the site"
    assert "@Microsoft.KeyVault(SecretUri=${consoleSecretUri})" in (variables["authSettings"].node.text or b"").decode()
    (site,) = resources_of_type(path, "Microsoft.Web/sites")
    assert "authSettings" in site.body["properties"]["siteConfig"]["appSettings"].identifiers()
    (secret,) = [s for s in resources_of_type(MODULES / "keyvault.bicep", "Microsoft.KeyVault/vaults/secrets")
                 if s.name == "consoleSecret"]
    assert "!empty(consoleClientSecret)" in (secret.value_node.text or b"").decode()

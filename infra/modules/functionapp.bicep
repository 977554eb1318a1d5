// The connector itself: a Python 3.11 Function App on the Flex Consumption plan.
//
// Flex Consumption takes the runtime, scaling and deployment package from
// `functionAppConfig`, not from app settings (FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION are not allowed there). The host's storage connection is the
// identity-based form (AzureWebJobsStorage__*), so the account needs no keys.

@description('Function App name (also its default host name).')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Azure region.')
param location string

@description('Tags for the plan; the site gets these plus the azd service tag.')
param tags object = {}

@description('The azd service this app is deployed as (azure.yaml).')
param serviceName string = 'api'

@description('Resource id of the user-assigned identity.')
param identityId string

@description('Client id of the user-assigned identity (what the host and the code authenticate as).')
param identityClientId string

@description('Storage account for AzureWebJobsStorage and the deployment package.')
param storageAccountName string

@description('Blob container holding the deployment package.')
param deploymentContainerName string

@description('Application Insights component the app sends telemetry to.')
param appInsightsName string

@description('Memory of each instance.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Instances kept warm for the HTTP group (Graph webhooks must be answered within seconds); 0 scales HTTP to zero.')
@minValue(0)
param alwaysReadyHttpInstances int = 1

@description('Spread the plan over availability zones (regions with zones only). The HTTP group then keeps at least two always-ready instances, the fewest a zone-redundant Flex Consumption app takes.')
param zoneRedundant bool = false

@description('Client id of the console\'s sign-in app registration; empty = App Service authentication is not configured (the console then refuses everyone).')
param consoleClientId string = ''

@description('OpenID issuer of the console\'s sign-in: https://login.microsoftonline.com/<tenant>/v2.0.')
param consoleIssuer string = ''

@description('Key Vault URI of the console registration\'s client secret; empty = none (sign-in then uses the OpenID Connect implicit flow, with ID tokens).')
param consoleSecretUri string = ''

@secure()
@description('The connector\'s own settings (name → value). Secure because WEBHOOK_URL carries the function key; the credentials are Key Vault references.')
param appSettings object

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Settings the Functions host reads itself rather than the connector's code. A literal list:
// a for-expression may not iterate over values known only during the deployment (the
// connection string), while the connector's settings, a parameter, may be iterated.
var hostSettings = [
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storage.name
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
  {
    // With host.json's telemetryMode OpenTelemetry: the Python worker hands each invocation
    // the host's trace context, and the host leaves the worker's logs to the connector's own
    // exporter (shared/azure_monitor.py), which authenticates as the identity above.
    name: 'PYTHON_ENABLE_OPENTELEMETRY'
    value: 'true'
  }
]

// Always-ready instances of the HTTP group; zone redundancy takes no fewer than two.
var alwaysReadyHttp = zoneRedundant && alwaysReadyHttpInstances > 0 ? max(2, alwaysReadyHttpInstances) : alwaysReadyHttpInstances

// The app setting App Service authentication reads the console registration's client secret from
// (the name the portal gives it), a Key Vault reference resolved with the identity.
var consoleSecretSetting = 'MICROSOFT_PROVIDER_AUTHENTICATION_SECRET'
var authSettings = empty(consoleClientId) || empty(consoleSecretUri) ? [] : [
  {
    name: consoleSecretSetting
    value: '@Microsoft.KeyVault(SecretUri=${consoleSecretUri})'
  }
]

var connectorSettings = [for setting in items(appSettings): {
  name: setting.key
  value: setting.value
}]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Zone redundancy is the zoneRedundant parameter, off by default: regions without availability zones refuse it, and a run lost with a zone is redone by the next timer.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:Microsoft Graph posts to the webhooks from the internet; every route requires a function key, and notifications must carry our clientState.
  // checkov:skip=CKV_AZURE_213:Flex Consumption has no health-check setting; the host restarts unhealthy instances itself.
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales instances itself; there is no instance count or slot to fail over to.
  // checkov:skip=CKV_AZURE_17:Graph does not present client certificates.
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat(connectorSettings, hostSettings, authSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: alwaysReadyHttp > 0 ? [
          {
            name: 'http'
            instanceCount: alwaysReadyHttp
          }
        ] : []
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Basic (user name and password) publishing credentials off, FTP and SCM: azd deploys the
// package with an Entra ID token, and what the credentials would open stays closed
// (https://aka.ms/app-service-disable-basic-auth, the page Azure Policy's built-in
// "local authentication methods disabled for FTP deployments / SCM sites" definitions cite).
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// The console (/api/console) behind App Service authentication with Microsoft Entra ID. The Flex
// Consumption plan takes built-in authentication: Microsoft's guide to moving apps onto it has the
// new app's authentication configured again ("Identify built-in authentication settings",
// "Configure built-in authentication": https://learn.microsoft.com/azure/azure-functions/migration/migrate-plan-consumption-to-flex).
// (During the plan's preview, https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan
// listed EasyAuth as unsupported; admin-guide step 11 has the check that it is in force.)
// Unauthenticated requests go through (AllowAnonymous): Graph's notifications and the admin routes
// carry a function key, not a sign-in, and the console itself sends a browser without a sign-in to
// /.auth/login/aad and requires the app role Connector.Admin (sync/console/security.py). With
// authentication on, App Service removes an X-MS-CLIENT-PRINCIPAL header a client sends and sets
// WEBSITE_AUTH_ENABLED, the only condition under which the console trusts that header.
// No token store: the console reads the signed-in principal, never the user's tokens.
// Without a client secret App Service signs in with the OpenID Connect implicit flow (ID token);
// with one, the authorization code flow (SiteAuthSettings.clientSecret in the App Service API:
// https://learn.microsoft.com/dotnet/api/microsoft.azure.powershell.cmdlets.functions.models.isiteauthsettingsproperties.clientsecret).
resource authSettingsV2 'Microsoft.Web/sites/config@2024-04-01' = if (!empty(consoleClientId)) {
  // checkov reads every sites/config as the site's web configuration; this one is its authentication settings:
  // checkov:skip=CKV_AZURE_13:This resource is the App Service authentication; it lets unauthenticated requests through because the webhooks and admin routes carry function keys, and the console requires a signed-in user with its app role.
  // checkov:skip=CKV_AZURE_63:Not a web configuration; the app's requests and logs go to Application Insights.
  // checkov:skip=CKV_AZURE_65:Not a web configuration; the app's requests and logs go to Application Insights.
  // checkov:skip=CKV_AZURE_66:Not a web configuration; the app's requests and logs go to Application Insights.
  // checkov:skip=CKV_AZURE_80:Not a web configuration, and a Python app has no .NET Framework version.
  // checkov:skip=CKV_AZURE_88:Not a web configuration; Flex Consumption has no Azure Files content share, the state is in Storage tables.
  // checkov:skip=CKV_AZURE_222:Microsoft Graph posts to the webhooks from the internet (as on the site itself).
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: consoleClientId
          openIdIssuer: consoleIssuer
          clientSecretSettingName: empty(consoleSecretUri) ? null : consoleSecretSetting
        }
        validation: {
          allowedAudiences: [
            consoleClientId
            'api://${consoleClientId}'
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    httpSettings: {
      requireHttps: true
    }
  }
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName

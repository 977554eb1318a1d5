// The connector's Azure deployment: `azd up` (azure.yaml) provisions this and deploys the
// app. One resource group holds a Function App on the Flex Consumption plan with its
// user-assigned identity, the storage account for state, queue and package, a Key Vault for
// the two credentials, Log Analytics + Application Insights, the alert rules and a workbook.
//
// Every setting the connector reads (shared/settings.py) is a parameter here whose default is
// the code's default; the app settings are built from them in `connectorSettings` below.

targetScope = 'subscription'

// -- the environment -----------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds the resource names.')
param environmentName string

// The regions that offer the Flex Consumption plan. Microsoft's own Flex Consumption azd
// templates list them (https://github.com/Azure-Samples/functions-quickstart-python-http-azd,
// infra/main.bicep; less its early-access region eastus2euap); Microsoft's documentation
// (https://learn.microsoft.com/azure/azure-functions/flex-consumption-how-to#view-currently-supported-regions)
// gives the live list: `az functionapp list-flexconsumption-locations -o table`. A region that
// gains the plan later can be added here.
@minLength(1)
@description('Azure region of every resource: one that offers the Flex Consumption plan.')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Name of the resource group; empty = rg-<environmentName>.')
param resourceGroupName string = ''

@description('E-mail address that receives the alerts (failed runs, deletion guard, webhook errors, subscription failures).')
param alertEmail string

@description('Instances kept warm for the HTTP functions, so Graph webhooks are answered fast; 0 lets them scale to zero (cheaper, with cold starts).')
@minValue(0)
@maxValue(20)
param alwaysReadyHttpInstances int = 1

@description('Most instances the Function App scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Replication of the storage account that holds the connector\'s state. Locally redundant by default: every Flex Consumption region offers it; zoneRedundant makes it zone-redundant (LRS → ZRS, GRS → GZRS).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_LRS'

@description('Spread the app over availability zones (the plan\'s zoneRedundant) with zone-redundant storage. Only in regions with availability zones that offer it: `az functionapp list-flexconsumption-locations --zone-redundant=true`. The HTTP group then keeps at least two always-ready instances.')
param zoneRedundant bool = false

@description('Principal (object) id of whoever deploys: azd passes the signed-in account (AZURE_PRINCIPAL_ID). Given Key Vault Secrets Officer on the vault and the state table and work queue roles the command line needs; empty = none.')
param deployerPrincipalId string = ''

@description('Client id of the console\'s sign-in app registration (admin guide, step 11): App Service authentication with Microsoft Entra ID in front of /api/console. Empty = not configured; the console then refuses everyone.')
param consoleClientId string = ''

@secure()
@description('A client secret of that registration (stored in Key Vault), for the authorization code flow; empty = the implicit flow with ID tokens.')
param consoleClientSecret string = ''

@description('Turn on Key Vault purge protection (recommended for production; blocks re-creating a deleted environment of the same name for 7 days).')
param keyVaultPurgeProtection bool = false

// -- Microsoft Graph -----------------------------------------------------------------------

@description('GRAPH_TENANT_ID: the Entra tenant id (GUID).')
param graphTenantId string

@description('GRAPH_CLIENT_ID: the app registration (client) id (GUID).')
param graphClientId string

@secure()
@description('GRAPH_CLIENT_SECRET: the app registration\'s client secret (stored in Key Vault); empty when a certificate is used.')
param graphClientSecret string = ''

@description('GRAPH_CLIENT_CERTIFICATE_PATH: PEM file with private key and certificate, on the app\'s file system; wins over the secret when both are set.')
param graphClientCertificatePath string = ''

@description('GRAPH_AUTHORITY_HOST: the Entra login host (sovereign clouds differ).')
param graphAuthorityHost string = 'https://login.microsoftonline.com'

@description('GRAPH_BASE_URL: the Graph root including the version.')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

// -- 3CX -------------------------------------------------------------------------------------

@description('TCX_BASE_URL: the 3CX root, e.g. https://pbx.example.com:5001.')
param tcxBaseUrl string

@description('TCX_CLIENT_ID: the 3CX API client id (Admin console > Integrations > API).')
param tcxClientId string

@secure()
@description('TCX_CLIENT_SECRET: the 3CX API client\'s key (stored in Key Vault).')
param tcxClientSecret string

// -- state and queue -------------------------------------------------------------------------

@description('STATE_TABLE_PREFIX: prefix of the state tables\' names (letters and digits).')
param stateTablePrefix string = 'tcx'

@description('WORK_QUEUE: Storage queue for notifications, status boundaries and refreshes (created here, with its poison queue).')
param workQueue string = 'tcx-work'

// -- user sync -------------------------------------------------------------------------------

@description('USER_SYNC_SCOPE: which users take part.')
@allowed([
  'all'
  'all_except'
  'selected_users'
  'selected_groups'
])
param userSyncScope string = 'all'

@description('USER_SYNC_USERS: comma-separated UPNs for all_except / selected_users.')
param userSyncUsers string = ''

@description('USER_SYNC_GROUPS: comma-separated group object ids for selected_groups.')
param userSyncGroups string = ''

@description('EXTENSION_START: first extension number for new users; empty = 3CX\'s first free number.')
param extensionStart string = ''

@description('USER_SYNC_SCHEDULE: NCRONTAB (6 fields) of the nightly user sync.')
param userSyncSchedule string = '0 0 2 * * *'

@description('SYNC_PAUSED: true makes the timers skip their runs.')
@allowed([
  'true'
  'false'
])
param syncPaused string = 'false'

@description('SYNC_SSO: default of the per-user option "sign in to 3CX with Microsoft".')
@allowed([
  'true'
  'false'
])
param syncSso string = 'false'

@description('SYNC_OFFICE_PHONE: default of the per-user option "office phone as outbound caller ID".')
@allowed([
  'true'
  'false'
])
param syncOfficePhone string = 'false'

@description('SYNC_PHOTO: default of the per-user option "profile photo as 3CX avatar".')
@allowed([
  'true'
  'false'
])
param syncPhoto string = 'false'

@description('SYNC_PERSONAL_CONTACTS: default of the per-user option "personal contacts": 3CX\'s own Microsoft 365 sync copies them (MS365ContactsEnabled).')
@allowed([
  'true'
  'false'
])
param syncPersonalContacts string = 'false'

@description('SYNC_CALENDAR: default of the per-user option "calendar-driven 3CX status".')
@allowed([
  'true'
  'false'
])
param syncCalendar string = 'true'

@description('SHARED_MAILBOXES: comma-separated shared mailboxes whose contacts feed the company phonebook.')
param sharedMailboxes string = ''

@description('DEPROVISION: what happens to the 3CX user of someone who left.')
@allowed([
  'disable'
  'delete'
  'keep'
])
param deprovision string = 'disable'

@description('DEPROVISION_MAX_COUNT: deletion guard, most users one run may disable/delete; none = no count limit. Never empty: an empty app setting would lift the limit.')
@minLength(1)
param deprovisionMaxCount string = '25'

@description('DEPROVISION_MAX_PERCENT: deletion guard, most share (%) of synced users one run may disable/delete; none = no share limit. Never empty: an empty app setting would lift the limit.')
@minLength(1)
param deprovisionMaxPercent string = '20'

// -- notifications, presence, contacts -------------------------------------------------------

@secure()
@description('WEBHOOK_URL: the webhookEndpoint output plus ?code=<function key>. Empty on the first deployment (the key does not exist yet): set it and provision again to turn on subscriptions.')
param webhookUrl string = ''

@secure()
@description('LIFECYCLE_WEBHOOK_URL: public URL of /api/graph/lifecycle; empty = derived from WEBHOOK_URL.')
param lifecycleWebhookUrl string = ''

@description('STATUS_MAP: Outlook showAs → 3CX status, comma-separated showAs=status pairs.')
param statusMap string = 'busy=Out of office,workingElsewhere=Out of office,oof=Away'

@description('CALENDAR_TIME_ZONE: IANA zone whose midnights bound all-day events.')
param calendarTimeZone string = 'UTC'

@description('CALENDAR_REFRESH_MINUTES: a calendar not read for this long is re-read by the presence pass.')
param calendarRefreshMinutes string = '15'

@description('PRESENCE_SCHEDULE: NCRONTAB of the presence pass.')
param presenceSchedule string = '0 * * * * *'

@description('SUBSCRIPTION_SCHEDULE: NCRONTAB of the subscription upkeep.')
param subscriptionSchedule string = '0 30 */6 * * *'

@description('CONTACT_SYNC_SCHEDULE: NCRONTAB of the contacts reconcile.')
param contactSyncSchedule string = '0 */15 * * * *'

// -- names -----------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-${resourceToken}'
// A zone-redundant plan needs zone-redundant storage: each replication choice and its zone-redundant counterpart.
var zoneRedundantStorage = {
  Standard_LRS: 'Standard_ZRS'
  Standard_ZRS: 'Standard_ZRS'
  Standard_GRS: 'Standard_GZRS'
  Standard_GZRS: 'Standard_GZRS'
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    sku: zoneRedundant ? zoneRedundantStorage[storageSku] : storageSku
    deploymentContainerName: 'app-package'
    workQueueName: workQueue
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    workspaceName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    purgeProtection: keyVaultPurgeProtection
    graphClientSecret: graphClientSecret
    tcxClientSecret: tcxClientSecret
    consoleClientSecret: consoleClientSecret
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    // Key Vault Secrets User on each secret the app reads; no Graph secret without a client secret.
    graphSecretName: empty(graphClientSecret) ? '' : keyVault.outputs.graphSecretName
    tcxSecretName: keyVault.outputs.tcxSecretName
    consoleSecretName: empty(consoleClientSecret) ? '' : keyVault.outputs.consoleSecretName
    appInsightsName: monitoring.outputs.appInsightsName
    deployerPrincipalId: deployerPrincipalId
  }
}

// The app settings the connector reads, named as in shared/settings.py (its field aliases).
// AzureWebJobsStorage is set by the function app module in its identity-based form.
var connectorSettings = {
  GRAPH_TENANT_ID: graphTenantId
  GRAPH_CLIENT_ID: graphClientId
  GRAPH_CLIENT_SECRET: empty(graphClientSecret) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.graphCredentialUri})'
  GRAPH_CLIENT_CERTIFICATE_PATH: graphClientCertificatePath
  GRAPH_AUTHORITY_HOST: graphAuthorityHost
  GRAPH_BASE_URL: graphBaseUrl
  TCX_BASE_URL: tcxBaseUrl
  TCX_CLIENT_ID: tcxClientId
  TCX_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.tcxCredentialUri})'
  STATE_TABLE_PREFIX: stateTablePrefix
  WORK_QUEUE: workQueue
  USER_SYNC_SCOPE: userSyncScope
  USER_SYNC_USERS: userSyncUsers
  USER_SYNC_GROUPS: userSyncGroups
  EXTENSION_START: extensionStart
  USER_SYNC_SCHEDULE: userSyncSchedule
  SYNC_PAUSED: syncPaused
  SYNC_SSO: syncSso
  SYNC_OFFICE_PHONE: syncOfficePhone
  SYNC_PHOTO: syncPhoto
  SYNC_PERSONAL_CONTACTS: syncPersonalContacts
  SYNC_CALENDAR: syncCalendar
  SHARED_MAILBOXES: sharedMailboxes
  DEPROVISION: deprovision
  DEPROVISION_MAX_COUNT: deprovisionMaxCount
  DEPROVISION_MAX_PERCENT: deprovisionMaxPercent
  WEBHOOK_URL: webhookUrl
  LIFECYCLE_WEBHOOK_URL: lifecycleWebhookUrl
  STATUS_MAP: statusMap
  CALENDAR_TIME_ZONE: calendarTimeZone
  CALENDAR_REFRESH_MINUTES: calendarRefreshMinutes
  PRESENCE_SCHEDULE: presenceSchedule
  SUBSCRIPTION_SCHEDULE: subscriptionSchedule
  CONTACT_SYNC_SCHEDULE: contactSyncSchedule
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  // The identity's roles must exist before the app first starts and reads its package.
  dependsOn: [
    roles
  ]
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    maximumInstanceCount: maximumInstanceCount
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
    zoneRedundant: zoneRedundant
    appSettings: connectorSettings
    // The console's sign-in: Entra ID's v2.0 issuer of the connector's tenant.
    consoleClientId: consoleClientId
    consoleIssuer: '${graphAuthorityHost}/${graphTenantId}/v2.0'
    consoleSecretUri: empty(consoleClientSecret) ? '' : keyVault.outputs.consoleCredentialUri
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    namePrefix: 'tcx-${resourceToken}'
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    alertEmail: alertEmail
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
  }
}

// -- outputs (azd stores them in the environment; nothing secret) -----------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name

// The key in WEBHOOK_URL is one set on the two webhook functions, not a host key: a host key also
// opens the admin routes (POST /api/admin/users/run?allow_deprovision=true) to whoever sees a
// subscription's notification URL. A function's keys exist only once its code is deployed, after
// provisioning, so the template cannot read one (listKeys) on the first `azd up`.
@description('Graph change-notification endpoint. WEBHOOK_URL is this plus ?code=<key>, a key of the two webhook functions only (a host key would also open the admin routes, e.g. POST /api/admin/users/run?allow_deprovision=true): KEY=$(openssl rand -hex 32); for fn in graph_notifications graph_lifecycle; do az functionapp function keys set -g <group> -n <app> --function-name $fn --key-name graph --key-value $KEY; done; then `azd env set WEBHOOK_URL "<endpoint>?code=$KEY"` and `azd provision`. The same key on graph_lifecycle serves the lifecycle URL derived from WEBHOOK_URL.')
output WEBHOOK_ENDPOINT string = 'https://${functionApp.outputs.defaultHostName}/api/graph/notifications'

@description('Graph lifecycle-notification endpoint. Derived from WEBHOOK_URL by the app when LIFECYCLE_WEBHOOK_URL is empty, with the same ?code=<key>, which graph_lifecycle must also have (az functionapp function keys set … --function-name graph_lifecycle).')
output LIFECYCLE_ENDPOINT string = 'https://${functionApp.outputs.defaultHostName}/api/graph/lifecycle'

// The least the Function App's identity needs, each on the one resource it concerns:
// - Storage Blob Data Owner: the Functions host's own blobs (timer schedules, leases,
//   keys) and the deployment package; the role the host documents for an identity-based
//   AzureWebJobsStorage.
// - Storage Queue Data Contributor: the work queue (trigger, output binding, poison queue).
// - Storage Table Data Contributor: the connector's state tables.
// - Key Vault Secrets User: read the credentials behind the Key Vault references (Graph,
//   3CX and, when given, the console sign-in's client secret), each
//   granted on its secret, not on the vault: Key Vault's RBAC takes role assignments at the
//   scope of one secret (https://learn.microsoft.com/azure/key-vault/general/rbac-guide,
//   "Secret scope role assignment"), so a secret put in the vault later stays out of the app's reach.
// - Monitoring Metrics Publisher: send telemetry to Application Insights with Entra ID
//   (local ingestion keys are disabled).
//
// And, when deployerPrincipalId is given (azd passes the signed-in user, AZURE_PRINCIPAL_ID), the
// roles the administrator's own tools need, so the admin guide has no manual role step:
// - Key Vault Secrets Officer on the vault: set or read the two secrets by hand (`az keyvault secret`).
// - Storage Table Data Contributor and Storage Queue Data Contributor on the storage account: the
//   command line (`python -m sync …`) reads and writes the connector's state and queues work.
// principalType is left out there: it is a user from a workstation, a service principal from a
// pipeline, and ARM looks the principal up itself.

@description('Principal (object) id of the Function App identity.')
param principalId string

@description('Name of the storage account.')
param storageAccountName string

@description('Name of the Key Vault.')
param keyVaultName string

@description('Name of the Graph client secret in the vault; empty when none is stored (a certificate is used).')
param graphSecretName string = ''

@description('Name of the 3CX API key secret in the vault.')
param tcxSecretName string

@description('Name of the console sign-in\'s client secret in the vault; empty when none is stored.')
param consoleSecretName string = ''

@description('Principal (object) id of whoever deploys (a user or a service principal); empty = no roles for the deployer.')
param deployerPrincipalId string = ''

@description('Name of the Application Insights component.')
param appInsightsName string

// Built-in role definition ids (the same in every tenant).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

var storageRoles = [
  storageBlobDataOwner
  storageQueueDataContributor
  storageTableDataContributor
]

// The command line's data roles (state tables, work queue); the host's blobs are not its business.
var deployerStorageRoles = [
  storageQueueDataContributor
  storageTableDataContributor
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource graphSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: graphSecretName
}

resource tcxSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: tcxSecretName
}

resource consoleSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: consoleSecretName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource storageAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in storageRoles: {
  name: guid(storage.id, principalId, role)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

resource graphSecretAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(graphSecretName)) {
  name: guid(graphSecret.id, principalId, keyVaultSecretsUser)
  scope: graphSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource tcxSecretAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(tcxSecret.id, principalId, keyVaultSecretsUser)
  scope: tcxSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// App Service authentication reads the console registration's secret through a Key Vault reference too.
resource consoleSecretAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(consoleSecretName)) {
  name: guid(consoleSecret.id, principalId, keyVaultSecretsUser)
  scope: consoleSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource telemetryAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource deployerStorageAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in deployerStorageRoles: if (!empty(deployerPrincipalId)) {
  name: guid(storage.id, deployerPrincipalId, role)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: deployerPrincipalId
  }
}]

resource deployerVaultAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(vault.id, deployerPrincipalId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: deployerPrincipalId
  }
}

// The connector's credentials, kept out of app settings and deployment history: the Graph
// client secret (when a secret is used rather than a certificate) and the 3CX API key. The
// app reads them through Key Vault references resolved with its managed identity.

@description('Key Vault name (3-24 letters, digits and hyphens).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags for the resource.')
param tags object = {}

@description('Turn on purge protection. Off by default so that `azd down --purge` and re-creating an environment of the same name work; turn it on for production vaults.')
param purgeProtection bool = false

@secure()
@description('The Graph app registration client secret; empty when a certificate is used instead.')
param graphClientSecret string = ''

@secure()
@description('The 3CX API client key.')
param tcxClientSecret string

@secure()
@description('Client secret of the console\'s sign-in app registration (App Service authentication); empty = none stored.')
param consoleClientSecret string = ''

// Secret names; the app settings reference them by URI without a version, so a new
// version (a rotated credential) is picked up without a redeployment.
var graphSecretName = 'graph-client-secret'
var tcxSecretName = 'tcx-client-secret'
var consoleSecretName = 'console-client-secret'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109:The Function App has no VNet integration here and resolves Key Vault references over the public endpoint; every call needs an Entra ID token with an RBAC role.
  // checkov:skip=CKV_AZURE_189:Public endpoint needed for the same reason.
  // checkov:skip=CKV_AZURE_42:Soft delete is always on; purge protection is a parameter (purgeProtection) because it blocks re-creating an environment of the same name for the retention period.
  // checkov:skip=CKV_AZURE_110:Same: purge protection is the purgeProtection parameter.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: purgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource graphSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(graphClientSecret)) {
  // checkov:skip=CKV_AZURE_41:The credential expires where it is issued (Entra ID); a vault expiry would only break the reference before then.
  // checkov:skip=CKV_AZURE_114:contentType is set below; checkov does not read the properties of a conditional resource.
  parent: vault
  name: graphSecretName
  properties: {
    value: graphClientSecret
    contentType: 'text/plain'
  }
}

resource tcxSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41:The 3CX API key does not expire by itself; it is rotated in the 3CX console.
  parent: vault
  name: tcxSecretName
  properties: {
    value: tcxClientSecret
    contentType: 'text/plain'
  }
}

resource consoleSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(consoleClientSecret)) {
  // checkov:skip=CKV_AZURE_41:The credential expires where it is issued (Entra ID); a vault expiry would only break the reference before then.
  // checkov:skip=CKV_AZURE_114:contentType is set below; checkov does not read the properties of a conditional resource.
  parent: vault
  name: consoleSecretName
  properties: {
    value: consoleClientSecret
    contentType: 'text/plain'
  }
}

output id string = vault.id
output name string = vault.name
// URIs of the secrets (no values): what the app settings' Key Vault references point at.
// main.bicep's use of these outputs makes the app wait for this whole module, secrets included.
output graphCredentialUri string = '${vault.properties.vaultUri}secrets/${graphSecretName}'
output tcxCredentialUri string = '${vault.properties.vaultUri}secrets/${tcxSecretName}'
// The secrets' names, for the role assignments scoped to each (roles.bicep); using them makes the
// roles wait for the secrets as well.
output graphSecretName string = graphSecretName
output tcxSecretName string = tcxSecretName
output consoleSecretName string = consoleSecretName
output consoleCredentialUri string = '${vault.properties.vaultUri}secrets/${consoleSecretName}'

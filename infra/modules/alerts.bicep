// Alerts an administrator needs to act on, mailed through one action group. Each rule is a
// log search over Application Insights' `traces` and `requests`, reading the connector's
// own structured log lines (`event key=value …`, see shared/telemetry.py).

@description('Name prefix of the alert rules and the action group.')
param namePrefix string

@description('Azure region of the rules.')
param location string

@description('Tags for the resources.')
param tags object = {}

@description('Resource id of the Application Insights component the rules query.')
param appInsightsId string

@description('Where alert e-mails go.')
param alertEmail string

@description('How often the rules run, and the window each run looks back over.')
param evaluationFrequency string = 'PT15M'

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-alerts'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'tcxalerts'
    enabled: true
    emailReceivers: [
      {
        name: 'administrator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// Each line the connector logs is `event key=value key="quoted value" …`; parse-kv reads
// the pairs after the event name.
var syncRunFailedQuery = '''
traces
| where message startswith "run_summary "
| extend pairs = substring(message, strlen("run_summary "))
| parse-kv pairs as (['kind']: string, trigger: string, subject: string, status: string, run: string, error: string) with (pair_delimiter=' ', kv_delimiter='=', quote='"')
| where status == "failed" and trigger != "queue"
| project timestamp, ['kind'], trigger, subject, run, error
'''

// Both guards: mass deprovisioning (`ALERT deletion_guard`) and mass creation (`ALERT creation_guard`).
var guardQuery = '''
traces
| where message startswith "ALERT deletion_guard " or message startswith "ALERT creation_guard "
| extend guard = extract(@"^ALERT (\S+) ", 1, message)
| extend pairs = substring(message, strlen("ALERT ") + strlen(guard) + 1)
| parse-kv pairs as (run: string, would_remove: long, would_create: long, synced: long) with (pair_delimiter=' ', kv_delimiter='=', quote='"')
| project timestamp, guard, run, would_remove, would_create, synced
'''

var webhookErrorsQuery = '''
requests
| where name in ("graph_notifications", "graph_lifecycle")
| where toint(resultCode) >= 500
| project timestamp, name, resultCode, operation_Id
'''

var subscriptionFailedQuery = '''
traces
| where message startswith "subscription_failed "
| extend pairs = substring(message, strlen("subscription_failed "))
| parse-kv pairs as (action: string, resource: string, error: string) with (pair_delimiter=' ', kv_delimiter='=', quote='"')
| project timestamp, action, resource, error
'''

var rules = [
  {
    name: 'sync-run-failed'
    displayName: 'Connector: a sync run failed'
    description: 'A scheduled or manual run (user sync, contacts, presence pass, subscription upkeep) ended with status=failed (run_summary). Queued work that fails is retried by the host instead. The run\'s error is in the result; `python -m sync runs` lists it too.'
    severity: 1
    query: syncRunFailedQuery
  }
  {
    name: 'deletion-guard'
    displayName: 'Connector: the guard held back mass deprovisioning or creation'
    description: 'A user sync would have disabled or deleted (deletion_guard), or created (creation_guard), more users than DEPROVISION_MAX_COUNT / DEPROVISION_MAX_PERCENT allow, and held those back. Review the plan (`python -m sync users --dry-run`), then run `python -m sync users --allow-deprovision` or `--allow-mass-create` if it is right.'
    severity: 2
    query: guardQuery
  }
  {
    name: 'webhook-5xx'
    displayName: 'Connector: Graph webhook answered 5xx'
    description: 'graph_notifications or graph_lifecycle failed; Graph retries for a while, then drops notifications (the presence pass and nightly run catch up).'
    severity: 2
    query: webhookErrorsQuery
  }
  {
    name: 'subscription-failed'
    displayName: 'Connector: a Graph subscription could not be created or renewed'
    description: 'subscription_failed: notifications for that resource stop until the next subscription upkeep succeeds (403 usually means a missing permission or quota).'
    severity: 2
    query: subscriptionFailedQuery
  }
]

resource queryRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in rules: {
  name: '${namePrefix}-${rule.name}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: rule.displayName
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: evaluationFrequency
    windowSize: evaluationFrequency
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}]

output actionGroupId string = actionGroup.id

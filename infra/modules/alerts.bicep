// Alerts an administrator needs to act on, mailed through one action group. Each rule is a
// log search over Application Insights: `traces` (the connector's log lines, whose fields are
// customDimensions: shared/telemetry.py), `requests` (invocations the Functions host records)
// and `customMetrics` (the connector's metrics).

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

@description('How often most rules run, and the window each run looks back over (the nightly-run and poison-queue rules set their own).')
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

// The connector's log lines arrive with every field as a custom dimension (`customDimensions.kind`);
// `event` is the line's name.
var syncRunFailedQuery = '''
traces
| where customDimensions.event == "run_summary"
| extend ['kind'] = tostring(customDimensions['kind']), trigger = tostring(customDimensions.trigger), status = tostring(customDimensions.status)
| where status == "failed" and trigger != "queue"
| project timestamp, ['kind'], trigger, subject = tostring(customDimensions.subject), run = tostring(customDimensions.run), error = tostring(customDimensions.error)
'''

// Both guards: mass deprovisioning (`ALERT deletion_guard`) and mass creation (`ALERT creation_guard`).
var guardQuery = '''
traces
| where customDimensions.event in ("ALERT deletion_guard", "ALERT creation_guard")
| project timestamp, guard = tostring(customDimensions.event), run = tostring(customDimensions.run), would_remove = tolong(customDimensions.would_remove), would_create = tolong(customDimensions.would_create), synced = tolong(customDimensions.synced)
'''

// The host's request record where it names the webhook functions, and the connector's own
// measure of every answer (an exception escaping the handler counts as the 500 the host sends).
var webhookErrorsQuery = '''
union
    (requests
    | where name in ("graph_notifications", "graph_lifecycle") or url has "/api/graph/notifications" or url has "/api/graph/lifecycle"
    | where toint(resultCode) >= 500
    | project timestamp, route = name, status_code = toint(resultCode), operation_Id),
    (customMetrics
    | where name == "connector.webhook.duration"
    | where toint(customDimensions.status_code) >= 500
    | project timestamp, route = tostring(customDimensions.route), status_code = toint(customDimensions.status_code), operation_Id)
'''

var subscriptionFailedQuery = '''
traces
| where customDimensions.event == "subscription_failed"
| project timestamp, action = tostring(customDimensions.action), resource = tostring(customDimensions.resource), error = tostring(customDimensions.error)
'''

// An invocation that failed outright: the connector's own line (a timer whose setting is bad fails
// before any run is recorded), and the host's request records of failed invocations. Answers
// below 500 are a route doing its job (400, 404, 409); the webhooks have their own rule.
var failedInvocationsQuery = '''
union
    (traces
    | where customDimensions.event == "invocation_failed"
    | project timestamp, function_name = tostring(customDimensions['function']), error = tostring(customDimensions.error), operation_Id),
    (requests
    | where success == false
    | where isempty(resultCode) or toint(resultCode) == 0 or toint(resultCode) >= 500
    | project timestamp, function_name = name, error = strcat("the host recorded the invocation as failed (", resultCode, ")"), operation_Id)
| where function_name !in ("graph_notifications", "graph_lifecycle")
'''

// The nightly user sync reports a `run_summary` with kind=users and trigger=timer. None for 26
// hours, while the connector has been logging runs for longer than that (so a fresh deployment
// does not alert before its first night), means the timer did not run or did not finish.
var noNightlyRunQuery = '''
traces
| where timestamp > ago(2d)
| where customDimensions.event == "run_summary"
| summarize first_seen = min(timestamp), last_nightly = maxif(timestamp, tostring(customDimensions['kind']) == "users" and tostring(customDimensions.trigger) == "timer")
| where first_seen < ago(26h) and (isnull(last_nightly) or last_nightly < ago(26h))
| project first_seen, last_nightly
'''

// `poison_queue_check` counts `<WORK_QUEUE>-poison` every 15 minutes and writes `poison_messages`
// while it holds any: messages the host gave up on after maxDequeueCount tries.
var poisonMessagesQuery = '''
traces
| where customDimensions.event == "poison_messages"
| summarize messages = max(tolong(customDimensions['count'])) by queue = tostring(customDimensions.queue)
'''

var rules = [
  {
    name: 'sync-run-failed'
    displayName: 'Connector: a sync run failed'
    description: 'A scheduled or manual run (user sync, contacts, presence pass, subscription upkeep) ended with status=failed (run_summary). Queued work that fails is retried by the host instead. The run\'s error is in the result; `python -m sync runs` lists it too.'
    severity: 1
    query: syncRunFailedQuery
    evaluationFrequency: evaluationFrequency
    windowSize: evaluationFrequency
    autoMitigate: false
  }
  {
    name: 'deletion-guard'
    displayName: 'Connector: the guard held back mass deprovisioning or creation'
    description: 'A user sync would have disabled or deleted (deletion_guard), or created (creation_guard), more users than DEPROVISION_MAX_COUNT / DEPROVISION_MAX_PERCENT allow, and held those back. Review the plan (`python -m sync users --dry-run`), then run `python -m sync users --allow-deprovision` or `--allow-mass-create` if it is right.'
    severity: 2
    query: guardQuery
    evaluationFrequency: evaluationFrequency
    windowSize: evaluationFrequency
    autoMitigate: false
  }
  {
    name: 'webhook-5xx'
    displayName: 'Connector: Graph webhook answered 5xx'
    description: 'graph_notifications or graph_lifecycle failed; Graph retries for a while, then drops notifications (the presence pass and nightly run catch up).'
    severity: 2
    query: webhookErrorsQuery
    evaluationFrequency: evaluationFrequency
    windowSize: evaluationFrequency
    autoMitigate: false
  }
  {
    name: 'subscription-failed'
    displayName: 'Connector: a Graph subscription could not be created or renewed'
    description: 'subscription_failed: notifications for that resource stop until the next subscription upkeep succeeds (403 usually means a missing permission or quota).'
    severity: 2
    query: subscriptionFailedQuery
    evaluationFrequency: evaluationFrequency
    windowSize: evaluationFrequency
    autoMitigate: false
  }
  {
    name: 'invocation-failed'
    displayName: 'Connector: a function invocation failed'
    description: 'A timer, the queue worker or an admin route failed outright (invocation_failed, or a failed invocation the host recorded): a setting the app cannot read, an outage the queue worker hands back for a retry, an error that escaped. The error is in the result.'
    severity: 1
    query: failedInvocationsQuery
    evaluationFrequency: evaluationFrequency
    windowSize: evaluationFrequency
    autoMitigate: false
  }
  {
    name: 'no-nightly-sync'
    displayName: 'Connector: no nightly user sync in 26 hours'
    description: 'No run_summary with kind=users and trigger=timer for 26 hours while the connector is running: the nightly timer did not run, or did not finish. Resolves itself after the next nightly run.'
    severity: 1
    query: noNightlyRunQuery
    evaluationFrequency: 'PT1H'
    windowSize: 'P2D'
    autoMitigate: true
  }
  {
    name: 'poison-messages'
    displayName: 'Connector: messages wait in the poison queue'
    description: 'poison_messages: the work queue\'s poison queue holds messages the host gave up on after five tries. Resolves itself once the poison queue is empty.'
    severity: 2
    query: poisonMessagesQuery
    evaluationFrequency: evaluationFrequency
    windowSize: 'PT30M'
    autoMitigate: true
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
    evaluationFrequency: rule.evaluationFrequency
    windowSize: rule.windowSize
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
    autoMitigate: rule.autoMitigate
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}]

output actionGroupId string = actionGroup.id

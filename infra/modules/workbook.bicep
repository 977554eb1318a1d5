// A workbook deployed with the app: the connector at a glance in Application Insights
// (Monitoring > Workbooks > "3CX connector"). Its queries are the ones in docs/queries.kql
// of the same names, word for word (tests/unit/test_workbook.py holds them to it): last runs
// and their counts, changes per day by kind, status changes per hour and their lag (p50/p95),
// webhook answer times, failures and their most frequent reasons, subscriptions (the soonest
// expiry and a verdict), and the runs the deletion or creation guard held back.

@description('Azure region of the workbook.')
param location string

@description('Tags for the resources.')
param tags object = {}

@description('Resource id of the Application Insights component the workbook reads.')
param appInsightsId string

@description('Display name of the workbook.')
param displayName string = '3CX connector'

// Last runs of every kind (except queued work) with their status and counts, newest first.
var lastRunsQuery = '''
traces
| where timestamp > ago(7d)
| where customDimensions.event == "run_summary" and customDimensions.trigger != "queue"
| extend counts = bag_remove_keys(customDimensions, dynamic(["event", "run", "kind", "trigger", "subject", "status", "duration_s", "error", "notice"]))
| project timestamp, ['kind'] = tostring(customDimensions['kind']), trigger = tostring(customDimensions.trigger), subject = tostring(customDimensions.subject), status = tostring(customDimensions.status), duration_s = todouble(customDimensions.duration_s), counts, error = tostring(customDimensions.error)
| order by timestamp desc
| take 100
'''

// Did the nightly user sync run? The last run_summary with kind=users and trigger=timer (the alert fires after 26 hours without one).
var nightlyQuery = '''
traces
| where timestamp > ago(3d)
| where customDimensions.event == "run_summary" and customDimensions['kind'] == "users" and customDimensions.trigger == "timer"
| summarize last_nightly = max(timestamp), nightly_runs = count(), statuses = make_set(tostring(customDimensions.status))
| extend hours_ago = round((now() - last_nightly) / 1h, 1)
'''

// Runs per day by kind and status (the connector.runs metric).
var runsPerDayQuery = '''
customMetrics
| where timestamp > ago(14d)
| where name == "connector.runs"
| summarize runs = sum(valueSum) by day = bin(timestamp, 1d), ['kind'] = tostring(customDimensions['kind']), status = tostring(customDimensions.status)
| order by day desc, ['kind'] asc, status asc
'''

// Changes per day by kind, action and outcome (the connector.actions metric: users, phonebook entries, subscriptions).
var changesPerDayQuery = '''
customMetrics
| where timestamp > ago(14d)
| where name == "connector.actions"
| summarize changes = sum(valueSum) by day = bin(timestamp, 1d), ['kind'] = tostring(customDimensions['kind']), action = tostring(customDimensions.action), outcome = tostring(customDimensions.outcome)
| order by day desc, ['kind'] asc, action asc
'''

// Which changes failed in the last 24 hours: user actions, contact actions and status changes, newest first.
var failedChangesQuery = '''
traces
| where timestamp > ago(24h)
| where customDimensions.event in ("user_action", "contact_action", "status_failed")
| extend event = tostring(customDimensions.event), outcome = tostring(customDimensions.outcome)
| where event == "status_failed" or outcome == "failed"
| extend subject = case(event == "user_action", strcat(tostring(customDimensions.upn), iff(isempty(tostring(customDimensions.extension)), "", strcat(" (ext ", tostring(customDimensions.extension), ")"))), event == "contact_action", strcat(tostring(customDimensions.book), " entry ", tostring(customDimensions['key'])), strcat("M365 user ", tostring(customDimensions.user)))
| project timestamp, event, action = tostring(customDimensions.action), subject, fields = tostring(customDimensions.fields), error = tostring(customDimensions.error), run = tostring(customDimensions.run), trigger = operation_Name
| order by timestamp desc
| take 500
'''

// How many 3CX status changes per hour (set = a meeting began, restore = it ended), over two days.
var statusPerHourQuery = '''
traces
| where timestamp > ago(2d)
| where customDimensions.event == "status_change"
| summarize changes = count() by bin(timestamp, 1h), action = tostring(customDimensions.action)
| render timechart
'''

// How late status changes are behind the event's start or end (lag_ms), per hour: median and 95th percentile in seconds.
var lagPerHourQuery = '''
traces
| where timestamp > ago(2d)
| where customDimensions.event == "status_change"
| extend lag_ms = tolong(customDimensions.lag_ms)
| where isnotnull(lag_ms)
| summarize p50_s = percentile(lag_ms, 50) / 1000.0, p95_s = percentile(lag_ms, 95) / 1000.0 by bin(timestamp, 1h)
| render timechart
'''

// Webhook answer time per 5 minutes by route (the connector.webhook.duration metric): answers, average and slowest in ms (Graph treats answers over 10 s as slow).
var webhookMetricQuery = '''
customMetrics
| where timestamp > ago(24h)
| where name == "connector.webhook.duration"
| summarize answers = sum(valueCount), avg_ms = sum(valueSum) / sum(valueCount), max_ms = max(valueMax) by bin(timestamp, 5m), route = tostring(customDimensions.route)
| render timechart
'''

// Webhook latency percentiles per 5 minutes (p50/p95/p99 in ms) from the host's request records of the two routes.
var webhookPercentilesQuery = '''
requests
| where timestamp > ago(24h)
| where name in ("graph_notifications", "graph_lifecycle") or url has "/api/graph/notifications" or url has "/api/graph/lifecycle"
| summarize calls = sum(itemCount), p50_ms = percentile(duration, 50), p95_ms = percentile(duration, 95), p99_ms = percentile(duration, 99) by bin(timestamp, 5m)
| render timechart
'''

// Webhook answers over 7 days by route and status code (503 = storage or configuration trouble; Graph retries for up to 4 hours).
var webhookStatusQuery = '''
customMetrics
| where timestamp > ago(7d)
| where name == "connector.webhook.duration"
| summarize answers = sum(valueCount), first_seen = min(timestamp), last_seen = max(timestamp) by route = tostring(customDimensions.route), status_code = tostring(customDimensions.status_code)
| order by status_code desc, route asc
'''

// Function invocations that failed outright (an exception escaped a timer, the queue worker or a route): the connector's own invocation_failed lines and the host's failed requests.
var failedInvocationsQuery = '''
union
    (traces
    | where timestamp > ago(7d)
    | where customDimensions.event == "invocation_failed"
    | project timestamp, function_name = tostring(customDimensions['function']), error = tostring(customDimensions.error), operation_Id),
    (requests
    | where timestamp > ago(7d)
    | where success == false
    | where isempty(resultCode) or toint(resultCode) == 0 or toint(resultCode) >= 500
    | project timestamp, function_name = name, error = strcat("the host recorded the invocation as failed (", resultCode, ")"), operation_Id)
| summarize failures = count(), last_seen = max(timestamp), errors = make_set(error, 5) by function_name
| order by last_seen desc
'''

// Messages in the poison queue: the last count per queue and when it last held any (poison_queue_check runs every 15 minutes).
var poisonQuery = '''
customMetrics
| where timestamp > ago(7d)
| where name == "connector.poison_messages"
| summarize arg_max(timestamp, valueMax), last_nonzero = maxif(timestamp, valueMax > 0) by queue = tostring(customDimensions.queue)
| project queue, messages_now = valueMax, counted_at = timestamp, last_nonzero
'''

// Subscriptions that could not be created, renewed or deleted over 7 days, with Graph's last error (403 = quota or missing permission).
var subscriptionFailuresQuery = '''
traces
| where timestamp > ago(7d)
| where customDimensions.event == "subscription_failed"
| extend action = tostring(customDimensions.action), resource = tostring(customDimensions.resource), error = tostring(customDimensions.error)
| extend graph_status = toint(extract(@"Graph error (\d+)", 1, error))
| summarize failures = count(), first_seen = min(timestamp), arg_max(timestamp, error, graph_status) by action, resource
| project-rename last_seen = timestamp, last_error = error
| order by last_seen desc
'''

// The most frequent failure reasons over 7 days, so one root cause shows as one row.
var failureReasonsQuery = '''
traces
| where timestamp > ago(7d)
| where customDimensions.event in ("user_action", "contact_action", "status_failed")
| extend event = tostring(customDimensions.event), outcome = tostring(customDimensions.outcome)
| where event == "status_failed" or outcome == "failed"
| summarize failures = count(), first_seen = min(timestamp), last_seen = max(timestamp) by event, action = tostring(customDimensions.action), error = tostring(customDimensions.error)
| order by failures desc
'''

// Are subscriptions being kept alive? The last upkeep's counts, how many exist, the soonest expiry, and a verdict.
var subscriptionHealthQuery = '''
let latest_upkeep = traces
    | where timestamp > ago(2d)
    | where customDimensions.event == "subscription_summary"
    | top 1 by timestamp desc
    | project timestamp, total = tolong(customDimensions.total), created = tolong(customDimensions.created), renewed = tolong(customDimensions.renewed), deleted = tolong(customDimensions.deleted), unchanged = tolong(customDimensions.unchanged), failed = tolong(customDimensions.failed), soonest = todatetime(customDimensions.soonest_expiry)
    | extend hours_since_upkeep = round((now() - timestamp) / 1h, 1), hours_to_soonest_expiry = round((soonest - now()) / 1h, 1)
    | extend verdict = case(
        hours_since_upkeep > 7, "upkeep has not run for over 7 hours (default SUBSCRIPTION_SCHEDULE is every 6): see failed subscription_timer invocations",
        isnull(soonest), "no subscriptions in state yet",
        soonest < now(), "a subscription has expired: its notifications have stopped",
        hours_to_soonest_expiry < 48, "renewals are late (they start 3 days before expiry): see subscription_failed",
        "ok");
let upkeep_lines = toscalar(latest_upkeep | count);
latest_upkeep
| union (print verdict = "no subscription_summary line in 2 days: upkeep is not running (WEBHOOK_URL unset, or subscription_timer failing)" | where upkeep_lines == 0)
'''

// Guard alerts: runs whose disables/deletes (deletion_guard) or creations (creation_guard) were all held back, how many, and which limit they crossed.
var guardHoldsQuery = '''
traces
| where timestamp > ago(30d)
| where customDimensions.event in ("ALERT deletion_guard", "ALERT creation_guard")
| project timestamp, guard = tostring(customDimensions.event), trigger = operation_Name, run = tostring(customDimensions.run), would_remove = tolong(customDimensions.would_remove), would_create = tolong(customDimensions.would_create), recreated = tolong(customDimensions.recreated), synced = tolong(customDimensions.synced), crossed = tostring(customDimensions['limit'])
| order by timestamp desc
'''

var content = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      name: 'intro'
      content: {
        json: '## 3CX ⇄ Microsoft 365 connector\nRuns, changes, calendar status, the Graph webhook and failures. Every panel is a query from docs/queries.kql; the alerts and what to check are in the administrator\'s guide (step 9).'
      }
    }
    {
      type: 1
      name: 'runs'
      content: {
        json: '### Runs'
      }
    }
    {
      type: 3
      name: 'lastRunsQuery'
      content: {
        version: 'KqlItem/1.0'
        title: 'Last runs of every kind (queued work aside): status and counts'
        query: lastRunsQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 3
      name: 'nightlyQuery'
      content: {
        version: 'KqlItem/1.0'
        title: 'The nightly user sync: when it last reported'
        query: nightlyQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 3
      name: 'runsPerDayQuery'
      content: {
        version: 'KqlItem/1.0'
        title: 'Runs per day by kind and status (connector.runs)'
        query: runsPerDayQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'barchart'
      }
    }
    {
      type: 1
      name: 'changes'
      content: {
        json: '### Changes'
      }
    }
    {
      type: 3
      name: 'changesPerDayQuery'
      content: {
        version: 'KqlItem/1.0'
        title: 'Changes per day by kind, action and outcome (connector.actions)'
        query: changesPerDayQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 3
      name: 'failedChangesQuery'
      content: {
        version: 'KqlItem/1.0'
        title: 'Changes that failed in the last 24 hours'
        query: failedChangesQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 3
      name: 'failureReasonsQuery'
      content: {
        version: 'KqlItem/1.0'
        title: 'Failure reasons over 7 days (one root cause, one row)'
        query: failureReasonsQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 1
      name: 'calendar-status'
      content: {
        json: '### Calendar status'
      }
    }
    {
      type: 3
      name: 'statusPerHourQuery'
      content: {
        version: 'KqlItem/1.0'
        title: '3CX status changes per hour'
        query: statusPerHourQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'timechart'
      }
    }
    {
      type: 3
      name: 'lagPerHourQuery'
      content: {
        version: 'KqlItem/1.0'
        title: 'Status change lag per hour (p50/p95, seconds)'
        query: lagPerHourQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'timechart'
      }
    }
    {
      type: 1
      name: 'webhook'
      content: {
        json: '### Webhook'
      }
    }
    {
      type: 3
      name: 'webhookMetricQuery'
      content: {
        version: 'KqlItem/1.0'
        title: 'Webhook answer time per 5 minutes (average and slowest, ms)'
        query: webhookMetricQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'timechart'
      }
    }
    {
      type: 3
      name: 'webhookPercentilesQuery'
      content: {
        version: 'KqlItem/1.0'
        title: 'Webhook latency per 5 minutes (p50/p95/p99, ms)'
        query: webhookPercentilesQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'timechart'
      }
    }
    {
      type: 3
      name: 'webhookStatusQuery'
      content: {
        version: 'KqlItem/1.0'
        title: 'Webhook answers by route and status code'
        query: webhookStatusQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 1
      name: 'failures'
      content: {
        json: '### Failures'
      }
    }
    {
      type: 3
      name: 'failedInvocationsQuery'
      content: {
        version: 'KqlItem/1.0'
        title: 'Function invocations that failed outright'
        query: failedInvocationsQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 3
      name: 'poisonQuery'
      content: {
        version: 'KqlItem/1.0'
        title: 'Messages in the poison queue'
        query: poisonQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 3
      name: 'subscriptionFailuresQuery'
      content: {
        version: 'KqlItem/1.0'
        title: 'Subscriptions Graph refused to create or renew'
        query: subscriptionFailuresQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 3
      name: 'subscriptionHealthQuery'
      content: {
        version: 'KqlItem/1.0'
        title: 'Subscriptions: the last upkeep, the soonest expiry and a verdict'
        query: subscriptionHealthQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 1
      name: 'guard'
      content: {
        json: '### Deletion and creation guard'
      }
    }
    {
      type: 3
      name: 'guardHoldsQuery'
      content: {
        version: 'KqlItem/1.0'
        title: 'Runs the guard held back (30 days): how many and which limit'
        query: guardHoldsQuery
        size: 0
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
  ]
  fallbackResourceIds: [
    appInsightsId
  ]
  '$schema': 'https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json'
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name is a GUID; this one is the same at every deployment of this component.
  name: guid(appInsightsId, 'tcx-connector-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    version: 'Notebook/1.0'
    sourceId: toLower(appInsightsId)
    serializedData: string(content)
  }
}

output workbookId string = workbook.id

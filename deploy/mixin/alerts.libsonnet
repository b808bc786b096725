// Alerting rules. Every per-target series carries region and project_id, so
// every alert about KMS data names the project it is about. Each alert has a
// severity, a summary, a description and a runbook_url into the runbook.
{
  local c = self._config,
  local sel = c.kmsSelector,

  local alert(name, severity, expr, forDuration, summary, description, extra={}) = {
    alert: name,
    expr: expr,
    labels: { severity: severity },
    annotations: {
      summary: summary,
      description: description,
      runbook_url: c.runbookURLBase + '#' + std.asciiLower(name),
    },
  } + (if forDuration != '' then { 'for': forDuration } else {}) + extra,

  local quotaPercent(resource) =
    '100 * kms_quota_used{%s,resource="%s"} / (kms_quota_limit{%s,resource="%s"} > 0)' % [sel, resource, sel, resource],

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'kms-quota',
        rules: [
          alert(
            'KMSQuotaUsageHigh',
            'warning',
            '%s > %d' % [quotaPercent('CMK'), c.quotaWarningPercent],
            '15m',
            'KMS CMK quota above %d%% in project {{ $labels.project_id }} ({{ $labels.region }})' % c.quotaWarningPercent,
            'Project {{ $labels.project_id }} in {{ $labels.region }} uses {{ $value | printf "%.1f" }}% of its KMS CMK quota. Delete unused keys or ask Huawei Cloud for a higher quota before new keys fail to be created.',
          ),
          alert(
            'KMSQuotaUsageCritical',
            'critical',
            '%s > %d' % [quotaPercent('CMK'), c.quotaCriticalPercent],
            '15m',
            'KMS CMK quota above %d%% in project {{ $labels.project_id }} ({{ $labels.region }})' % c.quotaCriticalPercent,
            'Project {{ $labels.project_id }} in {{ $labels.region }} uses {{ $value | printf "%.1f" }}% of its KMS CMK quota. Creating keys is about to fail.',
          ),
          alert(
            'KMSQuotaExhaustionPredicted',
            'warning',
            // Only while there is headroom left: a full quota is
            // KMSQuotaUsageCritical's job.
            |||
              (
                predict_linear(kms_quota_used{%(sel)s,resource="CMK"}[%(window)s], %(days)d * 86400)
                  >= kms_quota_limit{%(sel)s,resource="CMK"}
              )
              and (kms_quota_limit{%(sel)s,resource="CMK"} > 0)
              and (kms_quota_used{%(sel)s,resource="CMK"} < kms_quota_limit{%(sel)s,resource="CMK"})
            ||| % { sel: sel, window: c.quotaForecastWindow, days: c.quotaForecastDays },
            '1h',
            'KMS CMK quota of project {{ $labels.project_id }} ({{ $labels.region }}) runs out within %d days' % c.quotaForecastDays,
            'At the growth rate of the last %s, project {{ $labels.project_id }} in {{ $labels.region }} reaches its KMS CMK quota within %d days.' % [c.quotaForecastWindow, c.quotaForecastDays],
          ),
          alert(
            'KMSGrantQuotaUsageHigh',
            'warning',
            '%s > %d' % [quotaPercent('grant_per_CMK'), c.grantWarningPercent],
            '15m',
            'KMS grants per CMK above %d%% of the limit in project {{ $labels.project_id }} ({{ $labels.region }})' % c.grantWarningPercent,
            'A CMK of project {{ $labels.project_id }} in {{ $labels.region }} carries {{ $value | printf "%.1f" }}% of the grants one key may have (grant_per_CMK is a limit per key, not a pool of the project: deleting other keys does not help). Retire or revoke the grants that are no longer used on that key, or spread the grantees over more keys, before creating a grant on it fails.',
          ),
        ],
      },
      {
        name: 'kms-keys',
        rules: [
          alert(
            'KMSKeyDeletionScheduled',
            'warning',
            '(kms_key_scheduled_deletion_timestamp_seconds{%s} - time()) < %d * 86400' % [sel, c.keyDeletionWarningDays],
            // for: keeps a key that is only briefly in the window from
            // paging; keep_firing_for rides over scrape gaps (a restart, a
            // failed keys collector) instead of resolving and firing again.
            '15m',
            'KMS key {{ $labels.key_alias }} ({{ $labels.key_id }}) will be deleted within %d days' % c.keyDeletionWarningDays,
            'Key {{ $labels.key_id }} (alias {{ $labels.key_alias }}) in project {{ $labels.project_id }} ({{ $labels.region }}) is pending deletion and will be deleted in {{ $value | humanizeDuration }}. Data encrypted with it becomes unreadable; cancel the deletion if it is still needed.',
            { keep_firing_for: '15m' },
          ),
          alert(
            'KMSKeyMaterialExpiring',
            'warning',
            '(kms_key_material_expiration_timestamp_seconds{%s} - time()) < %d * 86400' % [sel, c.keyMaterialExpiryWarningDays],
            '15m',
            'Imported key material of KMS key {{ $labels.key_alias }} ({{ $labels.key_id }}) expires within %d days' % c.keyMaterialExpiryWarningDays,
            'The imported key material of key {{ $labels.key_id }} (alias {{ $labels.key_alias }}) in project {{ $labels.project_id }} ({{ $labels.region }}) expires in {{ $value | humanizeDuration }}. KMS then deletes the material and the key cannot encrypt or decrypt until the same material is imported again.',
            { keep_firing_for: '15m' },
          ),
          alert(
            'KMSKeyRotationDisabled',
            'info',
            'kms_keys_by_spec{%s,key_spec=~"%s",origin="kms",rotation_enabled="false"} > 0' % [sel, std.join('|', c.rotatableKeySpecs)],
            '1h',
            '{{ $value }} {{ $labels.key_spec }} keys without automatic rotation in project {{ $labels.project_id }} ({{ $labels.region }})',
            'Project {{ $labels.project_id }} in {{ $labels.region }} has {{ $value }} symmetric {{ $labels.key_spec }} keys created by KMS with automatic key rotation off. Many compliance baselines ask for yearly rotation: turn rotation on for the keys that need it. This is a compliance signal, not an outage.',
          ),
        ],
      },
      {
        name: 'kms-exporter',
        rules: [
          alert(
            'KMSExporterDown',
            'warning',
            'up{%s} == 0' % sel,
            '10m',
            'Prometheus cannot scrape kms_exporter at {{ $labels.instance }} (job {{ $labels.job }})',
            'The scrape of {{ $labels.instance }} in job {{ $labels.job }} has failed for 10 minutes. Every KMS alert of the targets behind it is blind: a quota can run out unnoticed. Check that the exporter runs and answers on its port.',
          ),
          alert(
            'KMSExporterAbsent',
            'warning',
            'absent(kms_up{%s})' % sel,
            '15m',
            'No kms_up series in Prometheus for 15 minutes',
            'Prometheus has no kms_up series matching {%s}: no kms_exporter is scraped at all (the exporter, its service discovery or its scrape job is gone or renamed). Every KMS alert is blind.' % sel,
          ),
          alert(
            'KMSExporterTargetDown',
            'warning',
            'kms_up{%s} == 0' % sel,
            '10m',
            'kms_exporter cannot read KMS for project {{ $labels.project_id }} ({{ $labels.region }})',
            "kms_up has been 0 for 10 minutes: authentication failed or every collector failed for project {{ $labels.project_id }} in {{ $labels.region }}. Quota alerts for it are blind. Check the exporter's log and credentials.",
          ),
          alert(
            'KMSExporterCollectorFailing',
            'warning',
            'kms_scrape_collector_success{%s} == 0' % sel,
            '15m',
            'kms_exporter collector {{ $labels.collector }} failing for project {{ $labels.project_id }} ({{ $labels.region }})',
            "The {{ $labels.collector }} collector has failed on every scrape for 15 minutes for project {{ $labels.project_id }} in {{ $labels.region }}. Check the exporter's log and the credential's KMS permissions.",
          ),
          alert(
            'KMSExporterThrottled',
            'warning',
            // kms_api_requests_total is on /metrics only.
            'increase(kms_api_requests_total{%s,code="429"}[5m]) > 0' % sel,
            '5m',
            'KMS API throttles kms_exporter in {{ $labels.region }}',
            '{{ $value | printf "%.0f" }} requests to {{ $labels.endpoint }} in {{ $labels.region }} got HTTP 429 in the last 5 minutes. KMS allows 20 requests per second per account, shared with every other client: lower --kms.requests-per-second, raise --kms.cache-ttl or the scrape interval.',
          ),
          alert(
            'KMSExporterConfigReloadFailed',
            'warning',
            'kms_exporter_config_last_reload_successful{%s} == 0' % sel,
            '5m',
            'kms_exporter failed to reload its configuration',
            'The last configuration reload of {{ $labels.instance }} failed; the previous configuration is still in force. Fix the file and reload again.',
          ),
        ],
      },
    ],
  },

  // No recording rules: every alert and panel reads the exporter's series
  // directly, so the dashboard works without rules loaded.
  prometheusRules+:: {
    groups+: [],
  },
}

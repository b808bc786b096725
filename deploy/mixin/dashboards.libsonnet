// The Grafana dashboard (dashboards/kms.json). Queries aggregate with
// max by (region, project_id, ...) so that the panels show one line per
// project whether the exporter is scraped on /metrics or on /probe.
local g = import 'lib/grafana.libsonnet';

{
  local c = self._config,

  // Per-target series follow every variable; the API series (on /metrics
  // only) have no project_id.
  local f = 'job=~"$job",instance=~"$instance",region=~"$region",project_id=~"$project_id"',
  local fapi = 'job=~"$job",instance=~"$instance",region=~"$region"',
  local cmk = 'resource="CMK",' + f,
  local byProject = 'max by (region, project_id)',

  local percentThresholds = g.thresholds([['green', null], ['orange', c.quotaWarningPercent], ['red', c.quotaCriticalPercent]]),

  local quotaRow = [
    g.row('CMK quota', 0),
    g.bargauge(
      'CMK quota usage per project',
      'kms_quota_used / kms_quota_limit for resource CMK (customer master keys), per project. Orange from %d%% (alert KMSQuotaUsageHigh), red from %d%% (KMSQuotaUsageCritical).' % [c.quotaWarningPercent, c.quotaCriticalPercent],
      [0, 1, 12, 8],
      [g.instant('100 * %s (kms_quota_used{%s})\n/ %s (kms_quota_limit{%s} > 0)' % [byProject, cmk, byProject, cmk], '{{project_id}} ({{region}})')],
      { unit: 'percent', min: 0, max: 100, decimals: 1, thresholds: percentThresholds, color: { mode: 'thresholds' } },
      'gradient',
    ),
    g.bargauge(
      'Days until the CMK quota runs out',
      'Free CMK quota divided by the growth of kms_quota_used per day over the last 6 hours (deriv). Capped at 365: a project that did not grow in the last 6 hours (or has less than two samples yet) shows 365, "no growth". Red below %d days (alert KMSQuotaExhaustionPredicted), orange below 30.' % c.quotaForecastDays,
      [12, 1, 12, 8],
      [g.instant(|||
        clamp_min(clamp_max(
          (%(p)s (kms_quota_limit{%(s)s}) - %(p)s (kms_quota_used{%(s)s}))
          / (%(p)s (deriv(kms_quota_used{%(s)s}[6h])) * 86400 > 0),
          365), 0)
        or %(p)s (kms_quota_limit{%(s)s}) * 0 + 365
      ||| % { p: byProject, s: cmk }, '{{project_id}} ({{region}})')],
      {
        unit: 'd',
        min: 0,
        max: 365,
        decimals: 1,
        thresholds: g.thresholds([['red', null], ['orange', c.quotaForecastDays], ['green', 30]]),
        color: { mode: 'thresholds' },
        mappings: [{ type: 'range', options: { from: 365, to: null, result: { text: 'no growth' } } }],
      },
      'basic',
    ),
    g.timeseries(
      'Quota used vs limit',
      'kms_quota_used (solid) and kms_quota_limit (dashed) over time for every quota resource the API reports (CMK, grant_per_CMK: grants on one key, ...).',
      [0, 9, 24, 8],
      [
        g.range('max by (region, project_id, resource) (kms_quota_used{%s})' % f, '{{project_id}} {{resource}} used'),
        g.range('max by (region, project_id, resource) (kms_quota_limit{%s})' % f, '{{project_id}} {{resource}} limit'),
      ],
      { unit: 'short', min: 0, custom: { lineWidth: 2, fillOpacity: 0 } },
      [g.override('byFrameRefID', 'B', [{ id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } }])],
      g.tableLegend,
    ),
  ],

  local keysRow = [
    g.row('Keys', 17),
    g.timeseries(
      'Keys by state',
      'kms_keys: keys of the selected projects by key_state (pending_activation, enabled, disabled, pending_deletion, pending_import), stacked.',
      [0, 18, 12, 8],
      [g.range('sum by (state) (kms_keys{%s})' % f, '{{state}}')],
      { unit: 'short', min: 0, custom: { stacking: { mode: 'normal', group: 'A' }, fillOpacity: 30 } },
      [g.colorOverride('pending_deletion', 'red'), g.colorOverride('enabled', 'green')],
      g.tableLegend,
    ),
    g.bargauge(
      'Keys by tag',
      'kms_keys_by_tag: keys carrying each tag key=value (only the tag keys the exporter is allowed to export, capped by --collector.keys.max-tag-series).',
      [12, 18, 8, 8],
      [g.instant('sum by (tag_key, tag_value) (kms_keys_by_tag{%s})' % f, '{{tag_key}}={{tag_value}}')],
      { unit: 'short', min: 0, color: { mode: 'palette-classic' } },
      'basic',
    ),
    g.stat(
      'Tag series dropped',
      'kms_keys_by_tag_dropped_series: tag series not exported because of --collector.keys.max-tag-series. Above 0, Keys by tag is incomplete.',
      [20, 18, 4, 8],
      [g.instant('sum(kms_keys_by_tag_dropped_series{%s})' % f, 'dropped')],
      { unit: 'short', thresholds: g.thresholds([['green', null], ['orange', 1]]), color: { mode: 'thresholds' } },
      { colorMode: 'value', graphMode: 'none' },
    ),
    g.keyTable(
      'Keys pending deletion',
      'One row per key pending deletion (kms_key_scheduled_deletion_timestamp_seconds) with its deletion date and the days left. Red below %d days (alert KMSKeyDeletionScheduled).' % c.keyDeletionWarningDays,
      [0, 26, 16, 8],
      'kms_key_scheduled_deletion_timestamp_seconds{%s}' % f,
      'Deletion date',
      c.keyDeletionWarningDays,
    ),
    g.timeseries(
      'CMK instances and default keys',
      'kms_cmk_instances: non-default CMKs as user-instances counts them (what the CMK quota counts); kms_default_keys: default master keys created by cloud services (alias like obs/default).',
      [16, 26, 8, 8],
      [
        g.range('%s (kms_cmk_instances{%s})' % [byProject, f], '{{project_id}} CMKs'),
        g.range('%s (kms_default_keys{%s})' % [byProject, f], '{{project_id}} default keys'),
      ],
      { unit: 'short', min: 0 },
    ),
  ],

  local regionsRow = [
    g.row('Regions', 34),
    g.table(
      'Regions supported for cross-region keys',
      'kms_cross_region_info: the regions that cross-region keys of each project can be replicated to (GET /v2/{project_id}/kms/regions).',
      [0, 35, 24, 6],
      [g.tableQuery('max by (region, project_id, supported_region) (kms_cross_region_info{%s})' % f, 'A')],
      [g.organize({ Time: true, Value: true }, ['region', 'project_id', 'supported_region'], { region: 'Region', project_id: 'Project', supported_region: 'Supported region' })],
    ),
  ],

  local attributesRow = [
    g.row('Key attributes', 41),
    g.bargauge(
      'Keys by spec',
      'kms_keys_by_spec: keys by key spec (AES_256, SM4, RSA_2048, EC_P256, SM2, HMAC_256, ...), usage, origin of the key material (kms, or external when imported) and automatic rotation, in any state.',
      [0, 42, 12, 8],
      [g.instant('sum by (key_spec, key_usage, origin, rotation_enabled) (kms_keys_by_spec{%s})' % f, '{{key_spec}} {{key_usage}} origin={{origin}} rotation={{rotation_enabled}}')],
      { unit: 'short', min: 0, color: { mode: 'palette-classic' } },
      'basic',
    ),
    g.stat(
      'Symmetric keys without rotation',
      'Keys of spec %s made by KMS (origin kms) with automatic rotation off: the compliance signal of the KMSKeyRotationDisabled alert (info).' % std.join(', ', c.rotatableKeySpecs),
      [12, 42, 4, 8],
      [g.instant('sum(kms_keys_by_spec{%s,key_spec=~"%s",origin="kms",rotation_enabled="false"}) or vector(0)' % [f, std.join('|', c.rotatableKeySpecs)], 'rotation off')],
      { unit: 'short', thresholds: g.thresholds([['green', null], ['blue', 1]]), color: { mode: 'thresholds' } },
      { colorMode: 'value', graphMode: 'none' },
    ),
    g.bargauge(
      'Keys by enterprise project',
      'kms_keys_by_enterprise_project: keys by the enterprise project they belong to (0 is the default enterprise project).',
      [16, 42, 8, 8],
      [g.instant('sum by (enterprise_project_id) (kms_keys_by_enterprise_project{%s})' % f, '{{enterprise_project_id}}')],
      { unit: 'short', min: 0, color: { mode: 'palette-classic' } },
      'basic',
    ),
    g.keyTable(
      'Imported key material expiring',
      'One row per key whose imported key material expires (kms_key_material_expiration_timestamp_seconds), with the expiration date and the days left. Red below %d days (alert KMSKeyMaterialExpiring): import the material again before then.' % c.keyMaterialExpiryWarningDays,
      [0, 50, 24, 7],
      'kms_key_material_expiration_timestamp_seconds{%s}' % f,
      'Expires',
      c.keyMaterialExpiryWarningDays,
    ),
  ],

  local healthRow = [
    g.row('Exporter health', 57),
    g.stat(
      'Targets up',
      'kms_up per target: 1 when the exporter authenticated and at least one collector succeeded (alert KMSExporterTargetDown after 10 minutes at 0).',
      [0, 58, 8, 8],
      [g.instant('%s (kms_up{%s})' % [byProject, f], '{{project_id}} ({{region}})')],
      g.upDown('DOWN', 'UP'),
      { colorMode: 'background', graphMode: 'none', textMode: 'value_and_name' },
    ),
    g.panel(
      'state-timeline',
      'Collector success',
      'kms_scrape_collector_success per target and collector (quotas, instances, keys, regions). A failed collector never fails the scrape (alert KMSExporterCollectorFailing after 15 minutes).',
      [8, 58, 16, 8],
      [g.range('max by (region, project_id, collector) (kms_scrape_collector_success{%s})' % f, '{{project_id}} {{collector}}')],
      g.upDown('failed', 'ok'),
      [],
      { showValue: 'never', mergeValues: true, rowHeight: 0.9, legend: { showLegend: false } },
    ),
    g.timeseries(
      'Collector duration',
      'kms_scrape_collector_duration_seconds: wall time of each collector in the last scrape.',
      [0, 66, 8, 8],
      [g.range('max by (region, project_id, collector) (kms_scrape_collector_duration_seconds{%s})' % f, '{{project_id}} {{collector}}')],
      { unit: 's', min: 0 },
      [],
      g.listLegend(false),
    ),
    g.timeseries(
      'API requests by status code',
      'Rate of KMS/IAM API requests (kms_api_requests_total, from /metrics) by HTTP status; code "error" is a request without an answer. 429 is throttling (KMS allows 20 requests per second per account): the red line, 0 when not throttled (alert KMSExporterThrottled). Follows job, instance and region: the counter has no project_id.',
      [8, 66, 8, 8],
      [
        g.range('sum by (code) (rate(kms_api_requests_total{%s}[$__rate_interval]))' % fapi, '{{code}}'),
        g.range('sum(rate(kms_api_requests_total{%s,code="429"}[$__rate_interval])) or vector(0)' % fapi, 'throttled (429)'),
      ],
      { unit: 'reqps', min: 0 },
      [g.override('byName', 'throttled (429)', [{ id: 'color', value: { mode: 'fixed', fixedColor: 'red' } }, { id: 'custom.lineWidth', value: 3 }])],
    ),
    g.timeseries(
      'API latency',
      'p50, p90 and p99 of kms_api_request_duration_seconds per endpoint (from /metrics). Follows job, instance and region: the histogram has no project_id.',
      [16, 66, 8, 8],
      [
        g.range('histogram_quantile(%s, sum by (le, endpoint) (rate(kms_api_request_duration_seconds_bucket{%s}[$__rate_interval])))' % [q[0], fapi], q[1] + ' {{endpoint}}')
        for q in [['0.5', 'p50'], ['0.9', 'p90'], ['0.99', 'p99']]
      ],
      { unit: 's', min: 0 },
    ),
  ],

  local selectorVars = [
    g.queryVariable('job', 'Job', 'label_values(up{%s}, job)' % c.kmsSelector),
    g.queryVariable('instance', 'Instance', 'label_values(up{%s,job=~"$job"}, instance)' % c.kmsSelector),
    g.queryVariable('region', 'Region', 'label_values(kms_up{job=~"$job",instance=~"$instance"}, region)'),
    g.queryVariable('project_id', 'Project', 'label_values(kms_up{job=~"$job",instance=~"$instance",region=~"$region"}, project_id)'),
  ],

  grafanaDashboards+:: {
    'kms.json': g.dashboard(
      c.dashboardUID,
      c.dashboardTitle,
      'Huawei Cloud KMS: CMK quota, keys, cross-region support, key attributes and exporter health, from kms_exporter.',
      c.dashboardTags,
      c.dashboardRefresh,
      selectorVars,
      quotaRow + keysRow + regionsRow + attributesRow + healthRow,
    ),
  },
}

// Just enough of a Grafana dashboard builder for dashboards/kms.json: every
// panel and query reads the Prometheus data source of the datasource
// variable.
local ds = { type: 'prometheus', uid: '${datasource}' };
local refIDs = 'ABCDEFGHIJ';
local reduce = { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false } };

{
  instant(expr, legend):: { datasource: ds, expr: expr, legendFormat: legend, instant: true, range: false },
  range(expr, legend):: { datasource: ds, expr: expr, legendFormat: legend, range: true },
  tableQuery(expr, refId):: self.instant(expr, '') + { format: 'table' },

  thresholds(steps):: { mode: 'absolute', steps: [{ color: s[0], value: s[1] } for s in steps] },
  override(matcher, name, properties):: { matcher: { id: matcher, options: name }, properties: properties },
  colorOverride(name, color):: self.override('byName', name, [{ id: 'color', value: { mode: 'fixed', fixedColor: color } }]),
  // A 0/1 series shown as down/up text in red/green.
  upDown(down, up):: {
    mappings: [{ type: 'value', options: { '0': { text: down, color: 'red' }, '1': { text: up, color: 'green' } } }],
    thresholds: $.thresholds([['red', null], ['green', 1]]),
    color: { mode: 'thresholds' },
  },
  tableLegend:: { legend: { displayMode: 'table', placement: 'right', showLegend: true, calcs: ['lastNotNull'] }, tooltip: { mode: 'multi', sort: 'desc' } },
  listLegend(show):: { legend: { displayMode: 'list', placement: 'bottom', showLegend: show }, tooltip: { mode: 'multi', sort: 'desc' } },
  organize(exclude, order, rename):: {
    id: 'organize',
    options: { excludeByName: exclude, indexByName: { [order[i]]: i for i in std.range(0, std.length(order) - 1) }, renameByName: rename },
  },

  row(title, y):: { type: 'row', title: title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y: y }, panels: [] },

  // pos is [x, y, w, h]; queries get refIds A, B, ... in order.
  panel(type, title, description, pos, targets, defaults, overrides, options, extra={}):: {
    type: type,
    title: title,
    description: description,
    datasource: ds,
    gridPos: { x: pos[0], y: pos[1], w: pos[2], h: pos[3] },
    targets: [targets[i] { refId: refIDs[i] } for i in std.range(0, std.length(targets) - 1)],
    fieldConfig: { defaults: defaults, overrides: overrides },
    options: options,
  } + extra,

  bargauge(title, description, pos, targets, defaults, displayMode)::
    self.panel('bargauge', title, description, pos, targets, defaults, [], { displayMode: displayMode, orientation: 'horizontal', showUnfilled: true } + reduce),
  stat(title, description, pos, targets, defaults, options)::
    self.panel('stat', title, description, pos, targets, defaults, [], options + reduce),
  timeseries(title, description, pos, targets, defaults, overrides=[], legend=$.listLegend(true))::
    self.panel('timeseries', title, description, pos, targets, defaults, overrides, legend),
  table(title, description, pos, targets, transformations, overrides=[], options={})::
    self.panel('table', title, description, pos, targets, if overrides == [] then {} else { custom: { align: 'auto' } }, overrides, { showHeader: true } + options, { transformations: transformations }),

  // One row per key of a per-key timestamp series (deletion, material
  // expiration): alias, key, project, region, the date and the days left,
  // red below redBelowDays.
  keyTable(title, description, pos, series, dateColumn, redBelowDays)::
    local by = 'max by (region, project_id, key_id, key_alias)';
    self.table(
      title,
      description,
      pos,
      [
        self.tableQuery('%s (%s) * 1000' % [by, series], 'A'),
        self.tableQuery('%s (%s - time()) / 86400' % [by, series], 'B'),
      ],
      [
        { id: 'merge', options: {} },
        self.organize(
          { Time: true },
          ['key_alias', 'key_id', 'project_id', 'region', 'Value #A', 'Value #B'],
          { key_alias: 'Alias', key_id: 'Key ID', project_id: 'Project', region: 'Region', 'Value #A': dateColumn, 'Value #B': 'Days left' },
        ),
      ],
      [
        self.override('byName', dateColumn, [{ id: 'unit', value: 'dateTimeAsIso' }]),
        self.override('byName', 'Days left', [
          { id: 'decimals', value: 1 },
          { id: 'thresholds', value: $.thresholds([['red', null], ['green', redBelowDays]]) },
          { id: 'custom.cellOptions', value: { type: 'color-background' } },
        ]),
      ],
      { sortBy: [{ displayName: 'Days left', desc: false }] },
    ),

  // A multi-value label_values variable with All as .*.
  queryVariable(name, label, query):: {
    name: name,
    label: label,
    type: 'query',
    datasource: ds,
    query: query,
    definition: query,
    refresh: 2,
    includeAll: true,
    multi: true,
    allValue: '.*',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    options: [],
    regex: '',
    sort: 1,
    hide: 0,
  },

  // The dashboard, importable from a file, by provisioning and from
  // grafana.com (__inputs: the import asks for the Prometheus data source
  // and makes it the datasource variable's default).
  dashboard(uid, title, description, tags, refresh, variables, panels):: {
    __inputs: [{ name: 'DS_PROMETHEUS', label: 'Prometheus', description: 'Prometheus that scrapes kms_exporter', type: 'datasource', pluginId: 'prometheus', pluginName: 'Prometheus' }],
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' },
      { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
    ] + [
      { type: 'panel', id: t, name: t, version: '' }
      for t in std.set([p.type for p in panels if p.type != 'row'])
    ],
    annotations: { list: [{ builtIn: 1, datasource: { type: 'grafana', uid: '-- Grafana --' }, enable: true, hide: true, iconColor: 'rgba(0, 211, 255, 1)', name: 'Annotations & Alerts', type: 'dashboard' }] },
    description: description,
    editable: true,
    graphTooltip: 1,
    links: [],
    panels: [panels[i] { id: i + 1 } for i in std.range(0, std.length(panels) - 1)],
    refresh: refresh,
    schemaVersion: 39,
    tags: tags,
    templating: {
      list: [{
        name: 'datasource',
        label: 'Data source',
        type: 'datasource',
        query: 'prometheus',
        current: { selected: false, text: '${DS_PROMETHEUS}', value: '${DS_PROMETHEUS}' },
        hide: 0,
        includeAll: false,
        multi: false,
        options: [],
        refresh: 1,
        regex: '',
      }] + variables,
    },
    time: { from: 'now-24h', to: 'now' },
    timepicker: {},
    timezone: '',
    title: title,
    uid: uid,
    version: 1,
    weekStart: '',
  },
}

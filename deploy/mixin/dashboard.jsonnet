// dashboards/kms.json, rendered by `make mixin`.
(import 'mixin.libsonnet').grafanaDashboards['kms.json']

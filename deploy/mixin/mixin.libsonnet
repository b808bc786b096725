// kms_exporter monitoring mixin: prometheusAlerts, prometheusRules and
// grafanaDashboards, configured by _config (config.libsonnet).
//
// The shipped deploy/prometheus/alerts.yml, the PrometheusRule of the
// kustomize base and of the Helm chart, and dashboards/kms.json are rendered
// from it by `make mixin` (render.jsonnet); `make mixin-check` fails when
// they differ from what it renders.
(import 'config.libsonnet') +
(import 'alerts.libsonnet') +
(import 'dashboards.libsonnet')

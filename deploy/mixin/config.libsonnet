// Settings of the kms_exporter mixin. Override any of them:
//
//   (import 'mixin.libsonnet') + { _config+:: { kmsSelector: 'job="kms"' } }
{
  _config+:: {
    // Selects the series of kms_exporter's jobs in every alert and in the
    // dashboard's job variable. The default matches the jobs of the shipped
    // prometheus.yml (kms_probe, kms_exporter), the kustomize base and the
    // Helm chart (kms-exporter).
    kmsSelector: 'job=~"kms.*"',

    // CMK quota: the number of customer master keys a project may create.
    quotaWarningPercent: 80,
    quotaCriticalPercent: 95,
    // Growth of the last quotaForecastWindow, extrapolated this many days.
    quotaForecastDays: 7,
    quotaForecastWindow: '6h',
    // grant_per_CMK: the number of grants one CMK may carry.
    grantWarningPercent: 80,

    keyDeletionWarningDays: 7,
    keyMaterialExpiryWarningDays: 30,
    // Symmetric key specs that support automatic rotation.
    rotatableKeySpecs: ['AES_256', 'SM4'],

    // Where the runbook_url annotations point; each alert has a section
    // whose anchor is the alert name in lower case.
    runbookURLBase: 'https://github.com/kms-exporter/kms_exporter/blob/main/deploy/runbook.md',

    dashboardUID: 'kms-exporter-overview',
    dashboardTitle: 'Huawei Cloud KMS',
    dashboardTags: ['kms', 'huaweicloud', 'kms_exporter'],
    dashboardRefresh: '1m',
  },
}

{{/* Name of the chart, or nameOverride. */}}
{{- define "kms-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name, or fullnameOverride. */}}
{{- define "kms-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kms-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kms-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kms-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kms-exporter.labels" -}}
helm.sh/chart: {{ include "kms-exporter.chart" . }}
{{ include "kms-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kms-exporter
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "kms-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kms-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kms-exporter.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}{{ $repo = printf "%s/%s" .Values.image.registry $repo }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (.Values.image.tag | default (printf "v%s" .Chart.AppVersion)) }}
{{- end }}
{{- end }}

{{/* The Secret with the credential files: existingSecret, or the chart's own. */}}
{{- define "kms-exporter.secretName" -}}
{{- .Values.existingSecret | default (include "kms-exporter.fullname" .) }}
{{- end }}

{{/* The secret volume is mounted unless OIDC alone authenticates. */}}
{{- define "kms-exporter.mountSecret" -}}
{{- if or .Values.existingSecret .Values.secrets (not .Values.oidc.enabled) }}true{{ end }}
{{- end }}

{{/* The exporter's config file: .Values.config, plus the OIDC credential. */}}
{{- define "kms-exporter.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- if .Values.oidc.enabled }}
{{- $creds := $cfg.credentials | default dict }}
{{- $_ := set $creds .Values.oidc.credentialName (dict "oidc" (dict "idp_id" (required "oidc.idpID is required with oidc.enabled" .Values.oidc.idpID) "id_token_file" (printf "%s/%s" .Values.oidc.mountPath .Values.oidc.tokenFile))) }}
{{- $_ := set $cfg "credentials" $creds }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "stageset.labels" -}}
app.kubernetes.io/name: stageset-controller
app.kubernetes.io/part-of: stageset-controller
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The selector of the controller's pods, as in config/manager. */}}
{{- define "stageset.selectorLabels" -}}
app.kubernetes.io/name: stageset-controller
{{- end }}

{{- define "stageset.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default (printf "v%s" .Chart.AppVersion) }}
{{- end }}

{{/* The runbook base of the alerts, without a trailing slash. */}}
{{- define "stageset.alertRunbookBase" -}}
{{ .Values.metrics.prometheusRule.runbookBaseURL | default .Values.controller.runbookBaseURL | trimSuffix "/" }}
{{- end }}

{{/* The labels of an alert: its severity, then extraAlertLabels. */}}
{{- define "stageset.alertLabels" -}}
{{ toYaml (merge (dict "severity" .severity) (deepCopy .root.Values.metrics.prometheusRule.extraAlertLabels)) }}
{{- end }}

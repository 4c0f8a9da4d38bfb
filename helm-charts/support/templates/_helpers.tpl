{{/*
Every container and Service port sets `protocol: TCP`: helm 4 installs with server-side apply,
which Kubernetes v1.20 rejects for ports without it ("omits key field protocol").
Only namespace-scoped objects of APIs served by v1.20 (v1, apps/v1, networking.k8s.io/v1).
*/}}
{{- define "support.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "support.labels" -}}
app.kubernetes.io/name: support
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
app.kubernetes.io/component: prometheus
{{- end -}}

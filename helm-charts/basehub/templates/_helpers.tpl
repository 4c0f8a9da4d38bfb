{{/*
Every container and Service port sets `protocol: TCP`: helm 4 installs with server-side apply,
which Kubernetes v1.20 rejects for ports without it ("omits key field protocol").
Only namespace-scoped objects of APIs served by v1.20 (v1, apps/v1, networking.k8s.io/v1).
*/}}
{{/* The name prefix of every object: the release name, so several releases can share a namespace. */}}
{{- define "basehub.fullname" -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "basehub.labels" -}}
app.kubernetes.io/name: basehub
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "basehub.image" -}}
{{- printf "%s:%s" .name (toString .tag) -}}
{{- end -}}

{{- define "basehub.hasSecret" -}}
{{- if or .Values.jupyterhub.hub.apiToken .Values.jupyterhub.proxy.secretToken -}}true{{- end -}}
{{- end -}}

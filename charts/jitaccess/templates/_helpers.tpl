{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "jitaccess.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name when it already contains the chart name ("jitaccess" gives the
ClusterRoles jitaccess-requester, jitaccess-approver, ... that the docs and examples use).
Kept to 51 characters so that suffixed names ("-webhook-tls", "-requester") stay within 63.
*/}}
{{- define "jitaccess.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 51 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 51 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 51 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "jitaccess.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "jitaccess.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jitaccess.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "jitaccess.labels" -}}
helm.sh/chart: {{ include "jitaccess.chart" . }}
{{ include "jitaccess.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jitaccess
{{- end }}

{{- define "jitaccess.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "jitaccess.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "jitaccess.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "jitaccess.webhookServiceName" -}}
{{- printf "%s-webhook" (include "jitaccess.fullname" .) }}
{{- end }}

{{- define "jitaccess.webhookSecretName" -}}
{{- default (printf "%s-webhook-tls" (include "jitaccess.fullname" .)) .Values.webhook.certificate.existingSecret }}
{{- end }}

{{/* The command the container runs: the Dockerfile's ENTRYPOINT (a unit test keeps them equal). */}}
{{- define "jitaccess.command" -}}
- python
- -m
- jitaccess
{{- end }}

{{/* A ClusterRoleBinding of one user-facing role to the users and groups listed in the values. */}}
{{- define "jitaccess.userBinding" -}}
{{- $root := index . 0 }}
{{- $role := index . 1 }}
{{- $subjects := index . 2 }}
{{- if or $subjects.users $subjects.groups }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ include "jitaccess.fullname" $root }}-{{ $role }}
  labels:
    {{- include "jitaccess.labels" $root | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ include "jitaccess.fullname" $root }}-{{ $role }}
subjects:
{{- range $subjects.users }}
  - apiGroup: rbac.authorization.k8s.io
    kind: User
    name: {{ . | quote }}
{{- end }}
{{- range $subjects.groups }}
  - apiGroup: rbac.authorization.k8s.io
    kind: Group
    name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The webhook's CA and serving certificate as Secret data (base64). Generated once per release and then
reused from the existing Secret (lookup), so upgrades keep them; computed once per render and cached on
the root context, so the Secret and the Deployment's checksum annotation see the same certificate.
*/}}
{{- define "jitaccess.webhookTLS" -}}
{{- if not (hasKey $ "jitaccessWebhookTLS") }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "jitaccess.webhookSecretName" .) }}
{{- $data := dict }}
{{- if and $secret $secret.data (hasKey $secret.data "tls.crt") (hasKey $secret.data "tls.key") (hasKey $secret.data "ca.crt") }}
{{- $data = pick $secret.data "tls.crt" "tls.key" "ca.crt" }}
{{- else }}
{{- $service := include "jitaccess.webhookServiceName" . }}
{{- $namespace := .Release.Namespace }}
{{- $days := int .Values.webhook.certificate.validityDays }}
{{- $ca := genCA (printf "%s-webhook-ca" (include "jitaccess.fullname" .)) $days }}
{{- $names := list $service (printf "%s.%s" $service $namespace) (printf "%s.%s.svc" $service $namespace) (printf "%s.%s.svc.cluster.local" $service $namespace) }}
{{- $cert := genSignedCert (printf "%s.%s.svc" $service $namespace) nil $names $days $ca }}
{{- $data = dict "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) "ca.crt" ($ca.Cert | b64enc) }}
{{- end }}
{{- $_ := set $ "jitaccessWebhookTLS" $data }}
{{- end }}
{{- toYaml (get $ "jitaccessWebhookTLS") }}
{{- end }}

{{/* The leader-election Lease, in the release's namespace. */}}
{{- define "jitaccess.leaseName" -}}
{{- .Values.leaderElection.leaseName | default (include "jitaccess.fullname" .) -}}
{{- end }}

{{/* The Slack interactivity endpoint is on: Slack is, and its interactions are. */}}
{{- define "jitaccess.slackInteractions" -}}
{{- if and .Values.slack.enabled .Values.slack.interactions.enabled }}true{{ end }}
{{- end }}

{{/* The ServiceAccount that applies Slack decisions (impersonating the approvers), and its ClusterRole. */}}
{{- define "jitaccess.slackServiceAccountName" -}}
{{- printf "%s-slack" (include "jitaccess.fullname" .) }}
{{- end }}

{{- define "jitaccess.slackImpersonatorRole" -}}
{{- printf "%s-slack-impersonator" (include "jitaccess.fullname" .) }}
{{- end }}

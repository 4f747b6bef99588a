{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "jitaccess.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name when it already contains the chart name ("jitaccess" gives the
ClusterRoles jitaccess-requester, jitaccess-approver, ... that the docs and examples use).
Kept to 51 characters so that suffixed names ("-webhook-tls", "-requester") stay within 63 (RBAC's
names may be longer: "-events-reader", "-slack-impersonator").
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

{{/* A ClusterRoleBinding of one user-facing role to the users and groups listed in the values; given a
fourth item, "namespaced", a RoleBinding of the Role of that name in the release's namespace. */}}
{{- define "jitaccess.userBinding" -}}
{{- $root := index . 0 }}
{{- $role := index . 1 }}
{{- $subjects := index . 2 }}
{{- $kind := ternary "Role" "ClusterRole" (eq (len .) 4) }}
{{- if or $subjects.users $subjects.groups }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ $kind }}Binding
metadata:
  name: {{ include "jitaccess.fullname" $root }}-{{ $role }}
  {{- if eq $kind "Role" }}
  namespace: {{ $root.Release.Namespace }}
  {{- end }}
  labels:
    {{- include "jitaccess.labels" $root | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: {{ $kind }}
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
{{- $whole := and $secret $secret.data (hasKey $secret.data "tls.crt") (hasKey $secret.data "tls.key") (hasKey $secret.data "ca.crt") }}
{{- if $whole }}
{{- $_ := set $ "jitaccessWebhookPreviousCA" (get $secret.data "ca.crt") }}
{{- end }}
{{- if and $whole (not .Values.webhook.certificate.rotate) }}
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

{{/* The CA bundle of the webhook configurations for the generated certificate: its CA, and while
rotating (webhook.certificate.rotate) the previous one too, so that the replicas not yet restarted,
which serve the previous certificate, are still trusted during the rollout. */}}
{{- define "jitaccess.webhookCABundle" -}}
{{- $new := get (include "jitaccess.webhookTLS" . | fromYaml) "ca.crt" }}
{{- $previous := get $ "jitaccessWebhookPreviousCA" | default "" }}
{{- if and .Values.webhook.certificate.rotate $previous (ne $previous $new) }}
{{- printf "%s%s" ($new | b64dec) ($previous | b64dec) | b64enc }}
{{- else }}
{{- $new }}
{{- end }}
{{- end }}

{{/* The leader-election Lease, in the release's namespace. */}}
{{- define "jitaccess.leaseName" -}}
{{- .Values.leaderElection.leaseName | default (include "jitaccess.fullname" .) -}}
{{- end }}

{{/* The name of the ValidatingAdmissionPolicy and its binding when the chart installs them
(admissionPolicy.enabled), else nothing; the operator checks them. */}}
{{- define "jitaccess.admissionPolicyName" -}}
{{- if .Values.admissionPolicy.enabled }}
{{- printf "%s-identity" (include "jitaccess.fullname" .) }}
{{- end }}
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

{{/*
Values the schema lets through but that cannot work: the render fails, naming the value and the fix,
rather than installing an operator that stops at start or a budget that blocks every drain.
*/}}
{{- define "jitaccess.checks" -}}
{{- /* The local development run (make dev, examples/) names its ClusterRoles, bindings and ServiceAccount
jitaccess-dev and jitaccess-dev-*, and its admission policy jitaccess.dev-identity, so that applied beside the
chart it replaces nothing of the chart's: a release of either full name would render those very names, and each
would replace the other's (tests/unit/test_chart_guards.py derives these two from the names). */}}
{{- $full := include "jitaccess.fullname" . }}
{{- if has $full (list "jitaccess-dev" "jitaccess.dev") }}
{{- fail (printf "the release's full name is %s (from the release name, nameOverride or fullnameOverride), which gives the chart's objects the names of the local development run's own (make dev, examples/rbac.yaml and examples/admission-policy.yaml: jitaccess-dev, jitaccess-dev-*, jitaccess.dev-identity): where both are applied, each would replace the other's objects and their rights; choose another release name, or set fullnameOverride" $full) }}
{{- end }}
{{- /* The local run's operator is the ServiceAccount jitaccess-dev/jitaccess-dev (devenv.controlplane.OPERATOR_ACCOUNT),
which examples/rbac.yaml binds to its wider operator role: a release in that namespace whose ServiceAccount has that
name would replace (or, not created, run as) that very account, and the example would then widen what the chart's
operator may do; its webhooks would also take a local run's writes for the operator's own. */}}
{{- $account := include "jitaccess.serviceAccountName" . }}
{{- if and (eq .Release.Namespace "jitaccess-dev") (eq $account "jitaccess-dev") }}
{{- fail "serviceAccount.name is jitaccess-dev in the namespace jitaccess-dev: that is the local development run's own ServiceAccount (make dev, examples/rbac.yaml binds its wider operator role to it), and the chart's operator would run as the development identity; set serviceAccount.name to another name, or install in another namespace" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled: replicas without leader election would all act at once" }}
{{- end }}
{{- /* Each port the container serves on needs a number of its own: the second server could not listen. */}}
{{- $ports := list (list "health.port" .Values.health.port) }}
{{- if .Values.metrics.enabled }}
{{- $ports = append $ports (list "metrics.port" .Values.metrics.port) }}
{{- end }}
{{- if .Values.webhook.enabled }}
{{- $ports = append $ports (list "webhook.port" .Values.webhook.port) }}
{{- end }}
{{- if include "jitaccess.slackInteractions" . }}
{{- $ports = append $ports (list "slack.interactions.port" .Values.slack.interactions.port) }}
{{- end }}
{{- $taken := dict }}
{{- range $ports }}
{{- $name := index . 0 }}
{{- $number := index . 1 | int | toString }}
{{- if hasKey $taken $number }}
{{- fail (printf "%s and %s are both %s: the operator serves each on a port of its own; set one of them to another port" (get $taken $number) $name $number) }}
{{- end }}
{{- $_ := set $taken $number $name }}
{{- end }}
{{- /* The operator's own check (jitaccess/settings.py), which would otherwise stop every replica at start. */}}
{{- if .Values.leaderElection.enabled }}
{{- $election := .Values.leaderElection }}
{{- $retry := float64 $election.retryPeriodSeconds }}
{{- $renew := float64 $election.renewDeadlineSeconds }}
{{- $lease := float64 $election.leaseDurationSeconds }}
{{- if not (and (lt $retry $renew) (lt $renew $lease)) }}
{{- fail (printf "leaderElection needs retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds, and they are %v, %v and %v: a leader must stop acting before anyone else may take its Lease (the operator refuses to start otherwise); set them in that order, like the defaults 2, 8 and 12" $retry $renew $lease) }}
{{- end }}
{{- end }}
{{- /* The ServiceMonitor scrapes, and the PrometheusRule's alerts read, the metrics Service: with metrics off
there is none (and no /metrics), so the chart would render neither and say nothing. */}}
{{- if not .Values.metrics.enabled }}
{{- range $name := list "serviceMonitor" "prometheusRule" }}
{{- if (get $.Values.metrics $name).enabled }}
{{- fail (printf "metrics.%s.enabled needs metrics.enabled: with metrics off the operator serves no /metrics and the chart creates no metrics Service, so no %s would be created; set metrics.enabled=true, or metrics.%s.enabled=false" $name (title $name) $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* The operator reads the groups as one comma-separated variable (JITACCESS_RESPONDER_GROUPS): a group holding a
comma would reach it as two or more, none of them the group the responder binding names. The schema refuses the comma
too; this says why where the schema is skipped (helm --skip-schema-validation). */}}
{{- range .Values.incidentResponders.groups }}
{{- if contains "," . }}
{{- fail (printf "incidentResponders.groups has %q, which holds a comma: the operator reads the groups as one comma-separated list (JITACCESS_RESPONDER_GROUPS), so it would take the groups %s instead, and nobody in the group you meant would be an incident responder (but the members of those would); list each group as an item of its own, and give a group whose name holds a comma (an LDAP distinguished name such as CN=SRE,OU=Groups,DC=corp) a name without one in your authenticator (its cn alone)" . (splitList "," . | toJson)) }}
{{- end }}
{{- end }}
{{- /* config.extraEnv comes after the chart's own variables (jitaccess.env), and Kubernetes takes the later of two:
one of the chart's set there too would make the operator do other than the objects the chart renders from the value say
(a port, a Service, the webhook configurations, a Lease's RBAC). JITACCESS_OPERATOR_USERNAMES is not the chart's, but
the webhook configurations the chart installs skip the writes of its ServiceAccount alone, and the operator, which
expects them to skip those usernames too, would never be ready. */}}
{{- $own := list }}
{{- range include "jitaccess.env" . | fromYamlArray }}
{{- $own = append $own .name }}
{{- end }}
{{- range .Values.config.extraEnv }}
{{- if has .name $own }}
{{- fail (printf "config.extraEnv sets %s, which the chart sets itself from its values: Kubernetes would take extraEnv's, and the operator would do other than what the chart renders from the value (a port, a Service, the webhook configurations, RBAC); set the chart's value instead (docs/install.md#values), and leave %s out of extraEnv" .name .name) }}
{{- else if and (eq .name "JITACCESS_OPERATOR_USERNAMES") $.Values.webhook.enabled }}
{{- fail "config.extraEnv sets JITACCESS_OPERATOR_USERNAMES: the operator would expect webhook configurations that skip the writes of those usernames as well as its own, and the chart installs them skipping the writes of its ServiceAccount alone, so no replica would ever become ready (its log and /healthz would say the matchConditions differ); with the chart, the operator is its ServiceAccount alone: leave the variable out" }}
{{- end }}
{{- end }}
{{- /* The operator's own check too: a signing key signs the archive's batches, and there is no archive. */}}
{{- if and .Values.audit.s3.signingKey (not .Values.audit.s3.bucket) }}
{{- fail "audit.s3.signingKey signs the batches of the audit archive, and there is none: set audit.s3.bucket too, or unset the signing key (the operator refuses to start otherwise)" }}
{{- end }}
{{- /* A budget that keeps every replica up lets no node drain finish (the eviction is refused forever).
The chart's budget has minAvailable only (the schema allows no maxUnavailable). */}}
{{- if and .Values.podDisruptionBudget.enabled (gt (int .Values.replicaCount) 1) }}
{{- $min := .Values.podDisruptionBudget.minAvailable }}
{{- $replicas := int .Values.replicaCount }}
{{- if kindIs "string" $min }}
{{- /* A percentage (the schema allows no other string). The disruption controller rounds it UP to
pods (GetScaledValueFromIntOrPercent with roundUp): 60% of 2 replicas is 2, every one of them. The
ceiling in integers: (pct * replicas + 99) / 100. The largest percentage that still lets one replica
go is floor(100 * (replicas - 1) / replicas): 50% of 2, 66% of 3. */}}
{{- $percent := int (trimSuffix "%" $min) }}
{{- $pods := div (add (mul $percent $replicas) 99) 100 }}
{{- if ge $pods $replicas }}
{{- $most := div (mul 100 (sub $replicas 1)) $replicas }}
{{- fail (printf "podDisruptionBudget.minAvailable is %s: no replica could ever be evicted and node drains would block (Kubernetes rounds a percentage up: %s of replicaCount %d is %d pods); set it to %d%% or less (or a number below replicaCount)" $min $min $replicas $pods $most) }}
{{- end }}
{{- else if ge (int $min) $replicas }}
{{- fail (printf "podDisruptionBudget.minAvailable is %d with replicaCount %d: no replica could ever be evicted and node drains would block; set minAvailable below replicaCount (or raise replicaCount)" (int $min) $replicas) }}
{{- end }}
{{- end }}
{{- end }}

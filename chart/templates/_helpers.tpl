{{/*
Standard helper set: name, fullname, chart, namespace, labels, selectorLabels, serviceAccountName.
*/}}

{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "codegen-mcp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name; the worker appends "-worker-headless" (16 characters), so keep 47. */}}
{{- define "codegen-mcp.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 47 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 47 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 47 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, as used by the helm.sh/chart label. */}}
{{- define "codegen-mcp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Namespace of every object. */}}
{{- define "codegen-mcp.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels of every object. */}}
{{- define "codegen-mcp.labels" -}}
helm.sh/chart: {{ include "codegen-mcp.chart" . }}
{{ include "codegen-mcp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: codegen-mcp
{{- end }}

{{/* Selector labels shared by every component; add a component label to select one. */}}
{{- define "codegen-mcp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "codegen-mcp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Coordinator labels and selector labels. */}}
{{- define "codegen-mcp.coordinator.labels" -}}
{{ include "codegen-mcp.labels" . }}
app.kubernetes.io/component: coordinator
{{- end }}

{{- define "codegen-mcp.coordinator.selectorLabels" -}}
{{ include "codegen-mcp.selectorLabels" . }}
app.kubernetes.io/component: coordinator
{{- end }}

{{/* Worker names, labels and selector labels. */}}
{{- define "codegen-mcp.worker.fullname" -}}
{{- printf "%s-worker" (include "codegen-mcp.fullname" .) }}
{{- end }}

{{- define "codegen-mcp.worker.headlessName" -}}
{{- printf "%s-worker-headless" (include "codegen-mcp.fullname" .) }}
{{- end }}

{{- define "codegen-mcp.worker.serviceName" -}}
{{- printf "%s-worker-service" (include "codegen-mcp.fullname" .) }}
{{- end }}

{{- define "codegen-mcp.worker.labels" -}}
{{ include "codegen-mcp.labels" . }}
app.kubernetes.io/component: worker
{{- end }}

{{- define "codegen-mcp.worker.selectorLabels" -}}
{{ include "codegen-mcp.selectorLabels" . }}
app.kubernetes.io/component: worker
{{- end }}

{{/* FQDN of the worker headless Service: the DNS name the coordinator's worker pool resolves. */}}
{{- define "codegen-mcp.worker.headlessFQDN" -}}
{{- printf "%s.%s.svc.%s" (include "codegen-mcp.worker.headlessName" .) (include "codegen-mcp.namespace" .) .Values.clusterDomain }}
{{- end }}

{{/* Test labels. */}}
{{- define "codegen-mcp.test.selectorLabels" -}}
{{ include "codegen-mcp.selectorLabels" . }}
app.kubernetes.io/component: test
{{- end }}

{{/* ServiceAccount of the coordinator. */}}
{{- define "codegen-mcp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "codegen-mcp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* ServiceAccount of the worker: its own, with no Role, when serviceAccount.create. */}}
{{- define "codegen-mcp.worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- include "codegen-mcp.worker.fullname" . }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Images; the tag defaults to the chart's appVersion. */}}
{{- define "codegen-mcp.coordinator.image" -}}
{{- printf "%s:%s" .Values.coordinator.image.repository (default .Chart.AppVersion .Values.coordinator.image.tag) }}
{{- end }}

{{- define "codegen-mcp.worker.image" -}}
{{- printf "%s:%s" .Values.worker.image.repository (default .Chart.AppVersion .Values.worker.image.tag) }}
{{- end }}

{{- define "codegen-mcp.tests.image" -}}
{{- $repo := default .Values.coordinator.image.repository .Values.tests.image.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.coordinator.image.tag) .Values.tests.image.tag }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}

{{/*
Resources from an explicit map or a preset (small | medium | large | none).
Call with (dict "resources" .Values.x.resources "preset" .Values.x.resourcesPreset).
*/}}
{{- define "codegen-mcp.resources" -}}
{{- $presets := dict
  "small" (dict "requests" (dict "cpu" "100m" "memory" "128Mi") "limits" (dict "cpu" "500m" "memory" "256Mi"))
  "medium" (dict "requests" (dict "cpu" "250m" "memory" "256Mi") "limits" (dict "cpu" "1" "memory" "512Mi"))
  "large" (dict "requests" (dict "cpu" "500m" "memory" "512Mi") "limits" (dict "cpu" "2" "memory" "1Gi"))
}}
{{- if .resources }}
{{- toYaml .resources }}
{{- else if hasKey $presets .preset }}
{{- toYaml (get $presets .preset) }}
{{- end }}
{{- end }}

{{/*
Seconds in a Go-style duration (30s, 1h30m, 500ms), rounded up. The schema has already checked the syntax.
*/}}
{{- define "codegen-mcp.durationSeconds" -}}
{{- $units := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range $part := regexFindAll `[0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h)` (toString .) -1 }}
{{- $number := regexFind `^[0-9]+(\.[0-9]+)?` $part | float64 }}
{{- $unit := regexReplaceAll `^[0-9]+(\.[0-9]+)?` $part "" }}
{{- $total = addf $total (mulf $number (get $units $unit)) }}
{{- end }}
{{- ceil $total | int }}
{{- end }}

{{/* Where the chart mounts the coordinator's config directory. */}}
{{- define "codegen-mcp.configDir" -}}
/etc/codegen-mcp
{{- end }}

{{/* Path of the auth tokens file: config.auth.tokens_file or the schema default. */}}
{{- define "codegen-mcp.tokensFile" -}}
{{- $auth := .Values.config.auth | default dict }}
{{- default "/etc/codegen-mcp/tokens" $auth.tokens_file }}
{{- end }}

{{/* Path of the Redis password file: config.session.redis.password_file or the chart's default. */}}
{{- define "codegen-mcp.redisPasswordFile" -}}
{{- $session := .Values.config.session | default dict }}
{{- $redis := $session.redis | default dict }}
{{- default "/etc/codegen-mcp/redis-password" $redis.password_file }}
{{- end }}

{{/* Name of the Secret holding the auth tokens. */}}
{{- define "codegen-mcp.authSecretName" -}}
{{- default (printf "%s-auth" (include "codegen-mcp.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/* Whether auth is on ("true" or ""). */}}
{{- define "codegen-mcp.authEnabled" -}}
{{- $auth := .Values.config.auth | default dict }}
{{- if $auth.enabled }}true{{ end }}
{{- end }}

{{/* The audit backend: config.audit.backend or the schema default. */}}
{{- define "codegen-mcp.auditBackend" -}}
{{- $audit := .Values.config.audit | default dict }}
{{- default "stdout" $audit.backend }}
{{- end }}

{{/* Redis port from redis.url (default 6379); empty for unix:// URLs. */}}
{{- define "codegen-mcp.redisPort" -}}
{{- if not (hasPrefix "unix://" .Values.redis.url) }}
{{- $hostPort := (urlParse .Values.redis.url).host }}
{{- if regexMatch `:[0-9]+$` $hostPort }}
{{- regexFind `[0-9]+$` $hostPort }}
{{- else }}6379{{ end }}
{{- end }}
{{- end }}

{{/* Whether the coordinator scales beyond one pod ("true" or ""). */}}
{{- define "codegen-mcp.multiReplica" -}}
{{- if .Values.autoscaling.enabled }}
{{- if gt (int .Values.autoscaling.maxReplicas) 1 }}true{{ end }}
{{- else if gt (int .Values.coordinator.replicas) 1 }}true{{ end }}
{{- end }}

{{/* Lowest coordinator replica count. */}}
{{- define "codegen-mcp.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ int .Values.autoscaling.minReplicas }}{{ else }}{{ int .Values.coordinator.replicas }}{{ end }}
{{- end }}

{{/*
The coordinator's config.yaml: .Values.config plus what the chart derives from its other values.
The checksum/config annotation hashes this helper, so that only a config change rolls the pods.
*/}}
{{- define "codegen-mcp.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- if .Values.worker.enabled }}
{{- $worker := get $cfg "worker" | default dict }}
{{- if empty (get $worker "url") }}
{{- $discovery := get $worker "discovery" | default dict }}
{{- if empty (get $discovery "dns_name") }}
{{- $_ := set $discovery "dns_name" (include "codegen-mcp.worker.headlessFQDN" .) }}
{{- end }}
{{- if not (hasKey $discovery "port") }}
{{- $_ := set $discovery "port" 8081 }}
{{- end }}
{{- $_ := set $worker "discovery" $discovery }}
{{- $_ := unset $worker "url" }}
{{- end }}
{{- $_ := set $cfg "worker" $worker }}
{{- end }}
{{- if .Values.redis.enabled }}
{{- $session := get $cfg "session" | default dict }}
{{- $_ := set $session "store" "redis" }}
{{- $redis := get $session "redis" | default dict }}
{{- $_ := set $redis "url" .Values.redis.url }}
{{- if .Values.redis.existingSecret }}
{{- $_ := set $redis "password_file" (include "codegen-mcp.redisPasswordFile" .) }}
{{- end }}
{{- $_ := set $session "redis" $redis }}
{{- $_ := set $cfg "session" $session }}
{{- end }}
{{- if include "codegen-mcp.authEnabled" . }}
{{- $auth := get $cfg "auth" | default dict }}
{{- $_ := set $auth "tokens_file" (include "codegen-mcp.tokensFile" .) }}
{{- $_ := set $cfg "auth" $auth }}
{{- end }}
{{- if eq (include "codegen-mcp.auditBackend" .) "file" }}
{{- $audit := get $cfg "audit" | default dict }}
{{- if empty (get $audit "file_path") }}
{{- $_ := set $audit "file_path" "/var/log/audit/audit.jsonl" }}
{{- end }}
{{- $_ := set $cfg "audit" $audit }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* The worker's config.yaml. */}}
{{- define "codegen-mcp.worker.config" -}}
{{- toYaml (.Values.worker.config | default dict) }}
{{- end }}

{{/*
Secret files of the coordinator, as a list of {name, secret, key, path}. Files directly in the config
directory are projected into it; others get a volume mounted at their own directory.
*/}}
{{- define "codegen-mcp.secretFiles" -}}
{{- $files := list }}
{{- if include "codegen-mcp.authEnabled" . }}
{{- $files = append $files (dict "name" "auth-tokens" "secret" (include "codegen-mcp.authSecretName" .) "key" .Values.auth.secretKey "path" (include "codegen-mcp.tokensFile" .)) }}
{{- end }}
{{- if and .Values.redis.enabled .Values.redis.existingSecret }}
{{- $files = append $files (dict "name" "redis-password" "secret" .Values.redis.existingSecret "key" .Values.redis.existingSecretKey "path" (include "codegen-mcp.redisPasswordFile" .)) }}
{{- end }}
{{- toYaml (dict "files" $files) }}
{{- end }}

{{/* The FluentBit sidecar container (classic or native). */}}
{{- define "codegen-mcp.fluentbit.container" -}}
- name: fluent-bit
  image: "{{ .Values.fluentbit.image.repository }}:{{ .Values.fluentbit.image.tag }}"
  imagePullPolicy: {{ .Values.fluentbit.image.pullPolicy }}
  {{- if .Values.fluentbit.nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  command: ["/fluent-bit/bin/fluent-bit"]
  args: ["--config", "/fluent-bit/etc/codegen-mcp/fluent-bit.conf"]
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
  securityContext:
    {{- toYaml .Values.coordinator.securityContext | nindent 4 }}
  resources:
    {{- toYaml .Values.fluentbit.resources | nindent 4 }}
  volumeMounts:
    - name: fluentbit-config
      mountPath: /fluent-bit/etc/codegen-mcp
      readOnly: true
    {{- include "codegen-mcp.auditMount" . | nindent 4 }}
{{- end }}

{{/* The audit volume mount, per pod sub-directory on a PVC. */}}
{{- define "codegen-mcp.auditMount" -}}
- name: audit
  mountPath: /var/log/audit
  {{- if and .Values.audit.persistence.enabled .Values.audit.persistence.perPodSubPath }}
  subPathExpr: $(POD_NAME)
  {{- end }}
{{- end }}

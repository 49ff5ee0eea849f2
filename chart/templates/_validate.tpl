{{/*
Every impossible combination of values fails here, and only here. Each message names the key, the value
given and what is allowed, and ends with the fix. values.schema.json already checked types and enums.
*/}}
{{- define "codegen-mcp.validate" -}}
{{- $errors := list }}

{{- /* The schema root stays open (Helm injects `global`), so a misspelt top-level key is caught here.
A chart test keeps this list equal to values.schema.json's top-level properties. */}}
{{- $known := list "global" "nameOverride" "fullnameOverride" "namespaceOverride" "clusterDomain" "config" "coordinator" "worker" "service" "serviceAccount" "rbac" "podDisruptionBudget" "autoscaling" "networkPolicy" "fluentbit" "serviceMonitor" "audit" "auth" "redis" "tests" }}
{{- range $key, $_ := .Values }}
{{- if not (has $key $known) }}
{{- $errors = append $errors (printf "%s: unknown top-level value (allowed: %s); check its spelling, e.g. replica counts live at coordinator.replicas and worker.replicas" $key (join ", " (without $known "global"))) }}
{{- end }}
{{- end }}

{{- if lt (int .Values.coordinator.replicas) 1 }}
{{- $errors = append $errors (printf "coordinator.replicas=%v: at least one coordinator pod is needed; set coordinator.replicas to 1 or more (or enable autoscaling)" .Values.coordinator.replicas) }}
{{- end }}
{{- if and .Values.worker.enabled (lt (int .Values.worker.replicas) 1) }}
{{- $errors = append $errors (printf "worker.replicas=%v: the bundled worker needs at least one pod; set worker.replicas to 1 or more, or worker.enabled=false with config.worker.url" .Values.worker.replicas) }}
{{- end }}

{{- if .Values.autoscaling.enabled }}
{{- if lt (int .Values.autoscaling.minReplicas) 1 }}
{{- $errors = append $errors (printf "autoscaling.minReplicas=%v: must be at least 1; set autoscaling.minReplicas to 1 or more" .Values.autoscaling.minReplicas) }}
{{- end }}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) }}
{{- $errors = append $errors (printf "autoscaling.minReplicas=%v is above autoscaling.maxReplicas=%v; set autoscaling.maxReplicas to %v or more" .Values.autoscaling.minReplicas .Values.autoscaling.maxReplicas .Values.autoscaling.minReplicas) }}
{{- end }}
{{- if and (kindIs "invalid" .Values.autoscaling.targetCPUUtilizationPercentage) (kindIs "invalid" .Values.autoscaling.targetMemoryUtilizationPercentage) }}
{{- $errors = append $errors "autoscaling.enabled=true with neither autoscaling.targetCPUUtilizationPercentage nor autoscaling.targetMemoryUtilizationPercentage: the HPA has no metric; set one of them (e.g. autoscaling.targetCPUUtilizationPercentage=70)" }}
{{- end }}
{{- end }}

{{- $minReplicas := int (include "codegen-mcp.minReplicas" .) }}
{{- if and .Values.podDisruptionBudget.enabled (include "codegen-mcp.multiReplica" .) }}
{{- if and (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable) (kindIs "invalid" .Values.podDisruptionBudget.minAvailable) }}
{{- $errors = append $errors "podDisruptionBudget.enabled=true with neither minAvailable nor maxUnavailable; set podDisruptionBudget.minAvailable=1 (or maxUnavailable=1), or podDisruptionBudget.enabled=false" }}
{{- else if kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable }}
{{- if and (kindIs "string" .Values.podDisruptionBudget.minAvailable) (hasSuffix "%" .Values.podDisruptionBudget.minAvailable) }}
{{- if ge (int (trimSuffix "%" .Values.podDisruptionBudget.minAvailable)) 100 }}
{{- $errors = append $errors (printf "podDisruptionBudget.minAvailable=%s blocks every voluntary eviction (node drains hang); set podDisruptionBudget.minAvailable below 100%%" .Values.podDisruptionBudget.minAvailable) }}
{{- end }}
{{- else if ge (int .Values.podDisruptionBudget.minAvailable) $minReplicas }}
{{- $errors = append $errors (printf "podDisruptionBudget.minAvailable=%v is not below the %d coordinator replicas, so no pod can ever be evicted and node drains hang; set podDisruptionBudget.minAvailable to %d or less, or raise coordinator.replicas" .Values.podDisruptionBudget.minAvailable $minReplicas (sub $minReplicas 1)) }}
{{- end }}
{{- end }}
{{- end }}

{{- $session := .Values.config.session | default dict }}
{{- $store := default "memory" $session.store }}
{{- if .Values.redis.enabled }}{{ $store = "redis" }}{{ end }}
{{- if and (eq $store "memory") (include "codegen-mcp.multiReplica" .) (ne .Values.service.sessionAffinity "ClientIP") }}
{{- $errors = append $errors (printf "coordinator.replicas=%v with config.session.store=memory loses sessions across replicas; set redis.enabled=true with redis.url, or service.sessionAffinity=ClientIP" (ternary (printf "%v-%v (autoscaling)" .Values.autoscaling.minReplicas .Values.autoscaling.maxReplicas) .Values.coordinator.replicas .Values.autoscaling.enabled)) }}
{{- end }}
{{- if and .Values.redis.enabled (empty .Values.redis.url) }}
{{- $errors = append $errors "redis.enabled=true with an empty redis.url: the session store has no address; set redis.url=redis://HOST:6379/0" }}
{{- end }}
{{- $redisCfg := $session.redis | default dict }}
{{- if and (eq (default "memory" $session.store) "redis") (not .Values.redis.enabled) (empty $redisCfg.url) }}
{{- $errors = append $errors "config.session.store=redis without redis.enabled or config.session.redis.url: the coordinator would look for Redis on 127.0.0.1; set redis.enabled=true and redis.url=redis://HOST:6379/0" }}
{{- end }}

{{- $workerCfg := .Values.config.worker | default dict }}
{{- if and (not .Values.worker.enabled) (empty $workerCfg.url) (empty (($workerCfg.discovery | default dict).dns_name)) }}
{{- $errors = append $errors "worker.enabled=false with no config.worker.url: the coordinator would fall back to an in-process worker on its read-only root filesystem; set config.worker.url=http://WORKER:8081 or worker.enabled=true" }}
{{- end }}
{{- if and .Values.worker.enabled (ne (toString ((.Values.worker.config | default dict).workspace_root)) "/workspaces") }}
{{- $errors = append $errors (printf "worker.config.workspace_root=%v: the workspace volume is mounted at /workspaces; set worker.config.workspace_root=/workspaces" ((.Values.worker.config | default dict).workspace_root)) }}
{{- end }}

{{- $server := .Values.config.server | default dict }}
{{- $limits := .Values.config.limits | default dict }}
{{- $grace := int (include "codegen-mcp.durationSeconds" (default "30s" $server.shutdown_grace)) }}
{{- $drain := int (include "codegen-mcp.durationSeconds" (default "0s" $server.drain_delay)) }}
{{- $toolTimeout := int (include "codegen-mcp.durationSeconds" (default "5m" $limits.tool_timeout)) }}
{{- $needed := add $grace $drain $toolTimeout (int .Values.coordinator.preStopSleepSeconds) }}
{{- if le (int .Values.coordinator.terminationGracePeriodSeconds) $needed }}
{{- $errors = append $errors (printf "coordinator.terminationGracePeriodSeconds=%v does not exceed coordinator.preStopSleepSeconds (%d) + config.server.shutdown_grace (%ds) + config.server.drain_delay (%ds) + config.limits.tool_timeout (%ds) = %ds, so a rollout would kill running tool calls; set coordinator.terminationGracePeriodSeconds to %d or more" .Values.coordinator.terminationGracePeriodSeconds (int .Values.coordinator.preStopSleepSeconds) $grace $drain $toolTimeout $needed (add $needed 1)) }}
{{- end }}

{{- $backend := include "codegen-mcp.auditBackend" . }}
{{- if and .Values.fluentbit.enabled (ne $backend "file") }}
{{- $errors = append $errors (printf "fluentbit.enabled=true with config.audit.backend=%s: FluentBit tails the audit file, which only the file backend writes; set config.audit.backend=file (or disable fluentbit and collect stdout)" $backend) }}
{{- end }}
{{- if eq $backend "file" }}
{{- $auditCfg := .Values.config.audit | default dict }}
{{- if and $auditCfg.file_path (not (hasPrefix "/var/log/audit/" $auditCfg.file_path)) }}
{{- $errors = append $errors (printf "config.audit.file_path=%s is outside /var/log/audit, where the chart mounts the audit volume; set config.audit.file_path=/var/log/audit/audit.jsonl" $auditCfg.file_path) }}
{{- end }}
{{- $p := .Values.audit.persistence }}
{{- if and $p.enabled (not $p.existingClaim) (include "codegen-mcp.multiReplica" .) (not (has "ReadWriteMany" $p.accessModes)) }}
{{- $errors = append $errors "audit.persistence.accessModes has no ReadWriteMany but the coordinator runs more than one replica, and pods on different nodes cannot mount one ReadWriteOnce claim; set audit.persistence.accessModes=[ReadWriteMany], coordinator.replicas=1, or audit.persistence.enabled=false (emptyDir, shipped by fluentbit)" }}
{{- end }}
{{- end }}

{{- if and (include "codegen-mcp.authEnabled" .) (empty .Values.auth.existingSecret) (empty .Values.auth.tokens) }}
{{- $errors = append $errors "config.auth.enabled=true with no tokens: every call would be refused; set auth.existingSecret=SECRET (key auth.secretKey, one `name: token` per line) or auth.tokens=[{name: NAME, token: TOKEN}]" }}
{{- end }}
{{- range $i, $t := .Values.auth.tokens }}
{{- if or (empty $t.name) (empty $t.token) (contains ":" (toString $t.name)) }}
{{- $errors = append $errors (printf "auth.tokens[%d] needs a name without ':' and a non-empty token; set auth.tokens[%d]={name: NAME, token: TOKEN}" $i $i) }}
{{- end }}
{{- end }}

{{- range $f := (include "codegen-mcp.secretFiles" . | fromYaml).files }}
{{- if eq (dir $f.path) "/var/log/audit" }}
{{- $errors = append $errors (printf "%s file %s is inside the audit volume; move it under /etc/codegen-mcp/" $f.name $f.path) }}
{{- end }}
{{- end }}

{{- if $errors }}
{{- fail (printf "\n\nInvalid values:\n- %s\n" (join "\n- " $errors)) }}
{{- end }}
{{- end }}

{{/*
The chart's name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "auditsvc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: <release>-<chart>, or the release
name alone when it already contains the chart name.
*/}}
{{- define "auditsvc.fullname" -}}
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

{{- define "auditsvc.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "auditsvc.labels" -}}
helm.sh/chart: {{ include "auditsvc.chart" . }}
{{ include "auditsvc.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: auditsvc
{{- end }}

{{/*
Selector labels: the release's pods. Each workload adds a component label
(api, migrate) so that the Service never selects a migration pod.
*/}}
{{- define "auditsvc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "auditsvc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "auditsvc.apiSelectorLabels" -}}
{{ include "auditsvc.selectorLabels" . }}
app.kubernetes.io/component: api
{{- end }}

{{- define "auditsvc.migrateSelectorLabels" -}}
{{ include "auditsvc.selectorLabels" . }}
app.kubernetes.io/component: migrate
{{- end }}

{{- define "auditsvc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "auditsvc.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The migration Job's account. A pre-install hook runs before the release's own
ServiceAccount exists, so the Job gets one of its own, created as a hook.
*/}}
{{- define "auditsvc.migrateServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- printf "%s-migrate" (include "auditsvc.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- include "auditsvc.serviceAccountName" . }}
{{- end }}
{{- end }}

{{- define "auditsvc.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "auditsvc.cnpgClusterName" -}}
{{- default (printf "%s-pg" (include "auditsvc.fullname" .)) .Values.postgresql.cnpg.clusterName | trunc 50 | trimSuffix "-" }}
{{- end }}

{{/*
Hook events of the migration Job (see values.yaml: migrations.hookEvents).
*/}}
{{- define "auditsvc.migrationHookEvents" -}}
{{- if .Values.migrations.hookEvents }}
{{- .Values.migrations.hookEvents }}
{{- else if eq .Values.postgresql.mode "cnpg" }}
{{- print "post-install,pre-upgrade" }}
{{- else }}
{{- print "pre-install,pre-upgrade" }}
{{- end }}
{{- end }}

{{/*
Non-secret settings as a flat map of strings: the ConfigMap's data, and the
migration Job's environment (a pre-install hook runs before the ConfigMap
exists, so the Job carries the same settings inline).
*/}}
{{- define "auditsvc.configData" -}}
{{- $c := .Values.config -}}
AUDITSVC_ENV: {{ $c.env | quote }}
AUDITSVC_LOG_NAME: {{ $c.logName | quote }}
AUDITSVC_RUNTIME_ROLE: {{ $c.runtimeRole | quote }}
AUDITSVC_DATA_DIR: {{ $c.dataDir | quote }}
{{- if $c.migrationsDir }}
AUDITSVC_MIGRATIONS_DIR: {{ $c.migrationsDir | quote }}
{{- end }}
AUDITSVC_MIGRATE_ON_START: {{ $c.migrateOnStart | toString | quote }}
AUDITSVC_HOST: "0.0.0.0"
AUDITSVC_PORT: {{ .Values.containerPort | int64 | toString | quote }}
AUDITSVC_WORKERS: {{ $c.workers | int64 | toString | quote }}
AUDITSVC_MAX_BODY_BYTES: {{ $c.maxBodyBytes | int64 | toString | quote }}
AUDITSVC_MAX_BATCH_EVENTS: {{ $c.maxBatchEvents | int64 | toString | quote }}
AUDITSVC_GROUP_COMMIT_MAX_EVENTS: {{ $c.groupCommitMaxEvents | int64 | toString | quote }}
AUDITSVC_KEEPALIVE_MAX_REQUESTS: {{ $c.keepaliveMaxRequests | int64 | toString | quote }}
AUDITSVC_DB_POOL_SIZE: {{ $c.dbPoolSize | int64 | toString | quote }}
AUDITSVC_DB_STATEMENT_TIMEOUT_MS: {{ $c.dbStatementTimeoutMs | int64 | toString | quote }}
AUDITSVC_LOG_LEVEL: {{ $c.logLevel | quote }}
{{- with $c.logFormat }}
AUDITSVC_LOG_FORMAT: {{ . | quote }}
{{- end }}
{{- if .Values.serviceMonitor.enabled }}
AUDITSVC_PROMETHEUS_METRICS: "true"
{{- end }}
{{- include "auditsvc.syslogConfig" . }}
{{- with .Values.checkpoint }}
{{- if not (kindIs "invalid" .everyEvents) }}
AUDITSVC_CHECKPOINT_EVERY_EVENTS: {{ .everyEvents | int64 | toString | quote }}
{{- end }}
{{- if not (kindIs "invalid" .intervalSeconds) }}
AUDITSVC_CHECKPOINT_INTERVAL_SECONDS: {{ .intervalSeconds | toString | quote }}
{{- end }}
{{- with .dir }}
AUDITSVC_CHECKPOINT_DIR: {{ . | quote }}
{{- end }}
{{- with .webhookUrl }}
AUDITSVC_CHECKPOINT_WEBHOOK_URL: {{ . | quote }}
{{- end }}
{{- with .witnesses }}
AUDITSVC_WITNESSES: {{ toJson . | quote }}
{{- end }}
{{- end }}
{{- if and (eq .Values.postgresql.mode "cnpg") (not (hasKey $c.extra "AUDITSVC_OWNER_ROLE")) }}
{{- /* The operator's "app" login cannot create roles: it owns the schema itself (migration 0005). */}}
AUDITSVC_OWNER_ROLE: "app"
{{- end }}
{{- range $k, $v := $c.extra }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- if .Values.otel.enabled }}
{{- with .Values.otel.endpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- with .Values.otel.protocol }}
OTEL_EXPORTER_OTLP_PROTOCOL: {{ . | quote }}
{{- end }}
OTEL_SERVICE_NAME: {{ default (include "auditsvc.fullname" .) .Values.otel.serviceName | quote }}
{{- with .Values.otel.resourceAttributes }}
{{- $pairs := list }}
{{- range $k, $v := . }}
{{- $pairs = append $pairs (printf "%s=%v" $k $v) }}
{{- end }}
OTEL_RESOURCE_ATTRIBUTES: {{ join "," $pairs | quote }}
{{- end }}
{{- with .Values.otel.tracesSampler }}
OTEL_TRACES_SAMPLER: {{ . | quote }}
{{- end }}
{{- with .Values.otel.tracesSamplerArg }}
OTEL_TRACES_SAMPLER_ARG: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Environment from Secrets, by reference. `migrate` is true for the migration
Job and the verify CronJob, which need only the owner DSN and the secret key:
neither signs a checkpoint nor opens a sealed patient identifier.
*/}}
{{- define "auditsvc.secretEnv" -}}
{{- $pg := .root.Values.postgresql -}}
{{- $s := .root.Values.secrets -}}
{{- if eq $pg.mode "cnpg" }}
- name: AUDITSVC_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ printf "%s-app" (include "auditsvc.cnpgClusterName" .root) }}
      key: uri
{{- if not .migrate }}
- name: RUNTIME_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $pg.cnpg.runtimeRole.passwordSecret }}
      key: password
- name: AUDITSVC_RUNTIME_DATABASE_URL
  value: {{ printf "postgresql://%s:$(RUNTIME_DB_PASSWORD)@%s-rw.%s.svc:5432/%s" .root.Values.config.runtimeRole (include "auditsvc.cnpgClusterName" .root) .root.Release.Namespace $pg.cnpg.database | quote }}
{{- end }}
{{- else }}
- name: AUDITSVC_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $pg.external.existingSecret }}
      key: {{ $pg.external.urlKey }}
{{- if and (not .migrate) $pg.external.runtimeUrlKey }}
- name: AUDITSVC_RUNTIME_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $pg.external.existingSecret }}
      key: {{ $pg.external.runtimeUrlKey }}
{{- end }}
{{- end }}
- name: AUDITSVC_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s.secretKey.existingSecret }}
      key: {{ $s.secretKey.key }}
{{- include "auditsvc.pgTlsEnv" .root }}
{{- if not .migrate }}
- name: AUDITSVC_CHECKPOINT_KEY_FILE
  value: {{ printf "%s/signing.key" $s.signingKey.mountPath | quote }}
- name: AUDITSVC_IDENTIFIER_KEYS_FILE
  value: {{ printf "%s/%s" (trimSuffix "/" $s.identifierKeys.mountPath) $s.identifierKeys.key | quote }}
{{- if and $s.tokenHmacKey.existingSecret $s.tokenHmacKey.envVar }}
- name: {{ $s.tokenHmacKey.envVar }}
  valueFrom:
    secretKeyRef:
      name: {{ $s.tokenHmacKey.existingSecret }}
      key: {{ $s.tokenHmacKey.key }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Volumes both workloads mount: /tmp and the data directory (emptyDir, the
only writable places), and the PostgreSQL CA when TLS verification is on.
*/}}
{{- define "auditsvc.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
- name: data
  emptyDir:
    sizeLimit: 64Mi
{{- include "auditsvc.pgTlsVolume" . }}
{{- end }}

{{- define "auditsvc.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: {{ .Values.config.dataDir }}
{{- include "auditsvc.pgTlsMount" . }}
{{- end }}

{{/*
Egress rules both workloads need: DNS and PostgreSQL.
*/}}
{{- define "auditsvc.egressDnsAndDatabase" -}}
{{- $np := .Values.networkPolicy -}}
- ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
  {{- with $np.egress.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- if eq .Values.postgresql.mode "cnpg" }}
- to:
    - podSelector:
        matchLabels:
          cnpg.io/cluster: {{ include "auditsvc.cnpgClusterName" . }}
  ports:
    - protocol: TCP
      port: 5432
{{- else }}
- ports:
    - protocol: TCP
      port: {{ .Values.postgresql.external.port }}
  {{- with $np.egress.postgresql.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
TLS to PostgreSQL: the sslmode and the CA Secret in force (see values.yaml).
*/}}
{{- define "auditsvc.pgSslMode" -}}
{{- $tls := .Values.postgresql.tls -}}
{{- if $tls.sslMode }}{{ $tls.sslMode }}{{ else if eq .Values.postgresql.mode "cnpg" }}verify-full{{ end }}
{{- end }}

{{- define "auditsvc.pgCaSecret" -}}
{{- $tls := .Values.postgresql.tls -}}
{{- if $tls.caSecret }}{{ $tls.caSecret }}{{ else if eq .Values.postgresql.mode "cnpg" }}{{ include "auditsvc.cnpgClusterName" . }}-ca{{ end }}
{{- end }}

{{- define "auditsvc.pgTlsEnv" -}}
{{- with include "auditsvc.pgSslMode" . }}
- name: PGSSLMODE
  value: {{ . | quote }}
{{- end }}
{{- if include "auditsvc.pgCaSecret" . }}
- name: PGSSLROOTCERT
  value: "/etc/auditsvc/pg-ca/ca.crt"
{{- end }}
{{- end }}

{{- define "auditsvc.pgTlsVolume" -}}
{{- with include "auditsvc.pgCaSecret" . }}
- name: pg-ca
  secret:
    secretName: {{ . }}
    defaultMode: 0444
    items:
      - key: {{ $.Values.postgresql.tls.caKey }}
        path: ca.crt
{{- end }}
{{- end }}

{{- define "auditsvc.pgTlsMount" -}}
{{- if include "auditsvc.pgCaSecret" . }}
- name: pg-ca
  mountPath: /etc/auditsvc/pg-ca
  readOnly: true
{{- end }}
{{- end }}

{{- /* The syslog listener's settings (docs/atna.md), when syslog.enabled. */}}
{{- define "auditsvc.syslogConfig" -}}
{{- $s := .Values.syslog -}}
{{- if $s.enabled }}
{{- if not (or $s.tlsPort $s.tcpPort $s.udpPort) }}
{{- fail "syslog.enabled needs at least one of syslog.tlsPort, syslog.tcpPort, syslog.udpPort" }}
{{- end }}
AUDITSVC_SYSLOG_HOST: "0.0.0.0"
{{- if $s.tlsPort }}
{{- if not $s.tls.existingSecret }}
{{- fail "syslog.tlsPort needs syslog.tls.existingSecret: the listener's certificate and key and the senders' CA" }}
{{- end }}
AUDITSVC_SYSLOG_TLS_PORT: {{ $s.tlsPort | int64 | toString | quote }}
AUDITSVC_SYSLOG_TLS_CERT_FILE: {{ printf "%s/%s" $s.tls.mountPath $s.tls.certKey | quote }}
AUDITSVC_SYSLOG_TLS_KEY_FILE: {{ printf "%s/%s" $s.tls.mountPath $s.tls.keyKey | quote }}
AUDITSVC_SYSLOG_TLS_CLIENT_CA_FILE: {{ printf "%s/%s" $s.tls.mountPath $s.tls.clientCaKey | quote }}
AUDITSVC_SYSLOG_TLS_CLIENT_AUTH: {{ $s.clientAuth | quote }}
{{- end }}
{{- if $s.tcpPort }}
AUDITSVC_SYSLOG_TCP_PORT: {{ $s.tcpPort | int64 | toString | quote }}
{{- end }}
{{- if $s.udpPort }}
AUDITSVC_SYSLOG_UDP_PORT: {{ $s.udpPort | int64 | toString | quote }}
{{- end }}
{{- with $s.cnMap }}
AUDITSVC_SYSLOG_CN_MAP: {{ toJson . | quote }}
{{- end }}
{{- if .Values.serviceMonitor.enabled }}
AUDITSVC_SYSLOG_METRICS_PORT: {{ $s.metricsPort | int64 | toString | quote }}
{{- end }}
{{- end }}
{{- end }}

{{- /* The syslog ports of an API pod, as container ports or Service ports ("service": true). */}}
{{- define "auditsvc.syslogPorts" -}}
{{- $s := .root.Values.syslog -}}
{{- range $name, $port := dict "syslog-tls" $s.tlsPort "syslog-tcp" $s.tcpPort "syslog-udp" $s.udpPort }}
{{- if $port }}
- name: {{ $name }}
  {{- if $.service }}
  port: {{ $port }}
  targetPort: {{ $name }}
  {{- else }}
  containerPort: {{ $port }}
  {{- end }}
  protocol: {{ ternary "UDP" "TCP" (eq $name "syslog-udp") }}
{{- end }}
{{- end }}
{{- end }}

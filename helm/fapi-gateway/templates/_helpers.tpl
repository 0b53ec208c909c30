{{/* Names and labels. */}}
{{- define "fapi-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fapi-gateway.fullname" -}}
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

{{- define "fapi-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fapi-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fapi-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "fapi-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fapi-gateway
{{- end }}

{{- define "fapi-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fapi-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "fapi-gateway.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "fapi-gateway.serverSecretName" -}}
{{- default (printf "%s-tls" (include "fapi-gateway.fullname" .)) .Values.tls.serverSecret }}
{{- end }}

{{- define "fapi-gateway.policiesConfigMapName" -}}
{{- default (printf "%s-policies" (include "fapi-gateway.fullname" .)) .Values.policies.existingConfigMap }}
{{- end }}

{{/*
Refuses values that would deploy an unsafe or broken gateway. values.schema.json encodes the
same rules where JSON Schema can (the replica guard as if/then), so `helm install` fails early.
*/}}
{{- define "fapi-gateway.validate" -}}
{{- if eq .Values.replay.store "memory" }}
{{- if or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled }}
{{- fail "replay.store=memory keeps DPoP jti values inside one pod: with several replicas a proof replayed to another pod would be accepted. Use replay.store=redis, or replicaCount=1 without autoscaling." }}
{{- end }}
{{- if ne (toString .Values.gateway.workers) "1" }}
{{- fail "replay.store=memory cannot be shared by several worker processes: use replay.store=redis, or gateway.workers=1." }}
{{- end }}
{{- end }}
{{- if and (eq .Values.replay.store "redis") (eq .Values.replay.redis.mode "single") (not .Values.replay.redis.url) }}
{{- fail "replay.redis.url is required with replay.redis.mode=single (redis://host:6379 or rediss://host:6380)" }}
{{- end }}
{{- if and (eq .Values.replay.store "redis") (eq .Values.replay.redis.mode "sentinel") (or (not .Values.replay.redis.sentinels) (not .Values.replay.redis.sentinelMasterName)) }}
{{- fail "replay.redis.sentinels and replay.redis.sentinelMasterName are required with replay.redis.mode=sentinel" }}
{{- end }}
{{- if and (eq .Values.replay.store "redis") (eq .Values.replay.redis.mode "cluster") (not .Values.replay.redis.cluster) }}
{{- fail "replay.redis.cluster (seed nodes) is required with replay.redis.mode=cluster" }}
{{- end }}
{{- if and (eq .Values.replay.store "redis") (eq .Values.replay.redis.mode "cluster") .Values.replay.revocationMirror.enabled }}
{{- fail "replay.revocationMirror needs replay.redis.mode single or sentinel: with Redis Cluster, messages from different nodes arrive in no guaranteed order" }}
{{- end }}
{{- if and (not .Values.tls.serverSecret) (not .Values.tls.certManager.enabled) }}
{{- fail "tls.serverSecret is required (a kubernetes.io/tls Secret), or enable tls.certManager" }}
{{- end }}
{{- if and .Values.tls.certManager.enabled (not .Values.tls.certManager.dnsNames) }}
{{- fail "tls.certManager.dnsNames is required: the host names of gateway.publicBaseUrl" }}
{{- end }}
{{- if and (ne .Values.gateway.clientCertificate "off") (not .Values.tls.clientCaSecret) }}
{{- fail "tls.clientCaSecret is required unless gateway.clientCertificate=off" }}
{{- end }}
{{- if not .Values.gateway.issuers }}
{{- fail "gateway.issuers is required: at least one token issuer" }}
{{- end }}
{{- if not .Values.gateway.upstreams }}
{{- fail "gateway.upstreams is required: at least one upstream" }}
{{- end }}
{{- range $name, $secret := .Values.tls.upstreamClientSecrets }}
{{- if not (hasKey $.Values.gateway.upstreams $name) }}
{{- fail (printf "tls.upstreamClientSecrets.%s: there is no upstream %s in gateway.upstreams" $name $name) }}
{{- end }}
{{- $upstream := index $.Values.gateway.upstreams $name }}
{{- if or (hasKey $upstream "certFile") (hasKey $upstream "keyFile") }}
{{- fail (printf "gateway.upstreams.%s: certFile and keyFile come from tls.upstreamClientSecrets.%s; remove them" $name $name) }}
{{- end }}
{{- end }}
{{- if .Values.gateway.authorizationServer }}
{{- if hasKey .Values.gateway.authorizationServer "partnersFile" }}
{{- fail "gateway.authorizationServer.partnersFile: the chart mounts gateway.partners there; remove it" }}
{{- end }}
{{- if not .Values.gateway.partners }}
{{- fail "gateway.partners is required with gateway.authorizationServer: {partners: [...]}" }}
{{- end }}
{{- end }}
{{- if and (not .Values.policies.files) (not .Values.policies.existingConfigMap) }}
{{- fail "policies.files (or policies.existingConfigMap) is required: without routes every request is refused" }}
{{- end }}
{{- end }}

{{/* The gateway configuration file (docs/configuration.md). */}}
{{- define "fapi-gateway.config" -}}
listener:
  host: 0.0.0.0
  port: {{ .Values.containerPorts.https }}
  publicBaseUrl: {{ required "gateway.publicBaseUrl is required: the https:// origin partners call" .Values.gateway.publicBaseUrl | quote }}
  tls:
    certFile: /etc/fapi-gateway/tls/tls.crt
    keyFile: /etc/fapi-gateway/tls/tls.key
    {{- if ne .Values.gateway.clientCertificate "off" }}
    clientCaFile: {{ printf "/etc/fapi-gateway/client-ca/%s" .Values.tls.clientCaKey | quote }}
    {{- if .Values.tls.clientIntermediatesKey }}
    clientIntermediatesFile: {{ printf "/etc/fapi-gateway/client-ca/%s" .Values.tls.clientIntermediatesKey | quote }}
    {{- end }}
    {{- end }}
    clientCertificate: {{ .Values.gateway.clientCertificate }}
    minRsaBits: {{ .Values.gateway.minRsaBits }}
    # cert.near_expiry events from the same threshold as the FapiGatewayCertificateExpiresSoon alert.
    expiryWarningDays: {{ .Values.metrics.prometheusRule.certExpiryDays }}
    {{- with .Values.gateway.ocspStapling }}
    ocspStapling:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  {{- with .Values.gateway.limits }}
  limits:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.gateway.clientCertificateHeader }}
  clientCertificateHeader:
    {{- toYaml . | nindent 4 }}
  {{- end }}
workers: {{ .Values.gateway.workers }}
admin:
  host: 0.0.0.0
  port: {{ .Values.containerPorts.admin }}
  tokenEnv: FAPI_GATEWAY_ADMIN_TOKEN
issuers:
  {{- toYaml .Values.gateway.issuers | nindent 2 }}
upstreams:
  {{- range $name, $upstream := .Values.gateway.upstreams }}
  {{ $name }}:
    {{- toYaml $upstream | nindent 4 }}
    {{- if hasKey $.Values.tls.upstreamClientSecrets $name }}
    certFile: {{ printf "/etc/fapi-gateway/upstream-client/%s/tls.crt" $name | quote }}
    keyFile: {{ printf "/etc/fapi-gateway/upstream-client/%s/tls.key" $name | quote }}
    {{- end }}
  {{- end }}
{{- with .Values.gateway.dpop }}
dpop:
  {{- toYaml . | nindent 2 }}
{{- end }}
replay:
  store: {{ .Values.replay.store }}
  keyPrefix: {{ .Values.replay.keyPrefix | quote }}
  commandTimeoutMs: {{ .Values.replay.commandTimeoutMs }}
  memoryMaxEntries: {{ .Values.replay.memoryMaxEntries | int64 }}
  {{- if eq .Values.replay.store "redis" }}
  redis:
    {{- if eq .Values.replay.redis.mode "single" }}
    url: {{ .Values.replay.redis.url | quote }}
    {{- else if eq .Values.replay.redis.mode "sentinel" }}
    sentinels:
      {{- toYaml .Values.replay.redis.sentinels | nindent 6 }}
    name: {{ .Values.replay.redis.sentinelMasterName | quote }}
    tls: {{ .Values.replay.redis.tls }}
    {{- else }}
    cluster:
      {{- toYaml .Values.replay.redis.cluster | nindent 6 }}
    tls: {{ .Values.replay.redis.tls }}
    {{- end }}
    {{- if .Values.replay.redis.passwordSecret.name }}
    passwordEnv: FAPI_GATEWAY_REDIS_PASSWORD
    {{- end }}
  revocationMirror:
    {{- toYaml .Values.replay.revocationMirror | nindent 4 }}
  {{- end }}
{{- with .Values.gateway.forwarding }}
forwarding:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.gateway.caches }}
caches:
  {{- toYaml . | nindent 2 }}
{{- end }}
policies:
  dir: /etc/fapi-gateway/policies
log:
  level: {{ .Values.gateway.logLevel }}
{{- with .Values.gateway.events }}
events:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.gateway.revocation }}
revocation:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.gateway.reload }}
reload:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.gateway.authorizationServer }}
authorizationServer:
  {{- toYaml . | nindent 2 }}
  partnersFile: /etc/fapi-gateway/partners/partners.yaml
{{- end }}
{{- end }}

{{/* Names, labels and the environment every NearHome container shares. */}}

{{- define "nearhome.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nearhome.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "nearhome.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "nearhome.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nearhome
{{- end -}}

{{- define "nearhome.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nearhome.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* A service's selector labels: call with (dict "root" $ "service" "provider"). */}}
{{- define "nearhome.serviceSelectorLabels" -}}
{{ include "nearhome.selectorLabels" .root }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{- define "nearhome.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "nearhome.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "nearhome.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret a service reads its credentials from. */}}
{{- define "nearhome.serviceSecretName" -}}
{{- $spec := index .root.Values.services .service -}}
{{- default (printf "%s-%s-secrets" (include "nearhome.fullname" .root) .service) $spec.existingSecret -}}
{{- end -}}

{{- define "nearhome.migrationSecretName" -}}
{{- default (printf "%s-migration" (include "nearhome.fullname" .)) .Values.migration.existingSecret -}}
{{- end -}}

{{/* ---------------------------------------------------------------- Kafka */}}

{{- define "nearhome.kafkaClusterName" -}}
{{- default (printf "%s-kafka" (include "nearhome.fullname" .)) .Values.kafka.strimzi.clusterName -}}
{{- end -}}

{{- define "nearhome.kafkaBootstrapServers" -}}
{{- if eq .Values.kafka.mode "strimzi" -}}
{{- printf "%s-kafka-bootstrap.%s.svc:9093" (include "nearhome.kafkaClusterName" .) .Release.Namespace -}}
{{- else -}}
{{- required "kafka.external.bootstrapServers is required with kafka.mode external" .Values.kafka.external.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{/* The KafkaUser (and the Secret Strimzi makes for it) of a service or of "operator". */}}
{{- define "nearhome.kafkaUserName" -}}
{{- printf "%s-%s" (include "nearhome.fullname" .root) .service -}}
{{- end -}}

{{/* The topics each service writes, reads, and dead-letters to (the KafkaUsers' ACLs); the
     same facts as each service's handlers.py and the topic catalogue. */}}
{{- define "nearhome.kafkaAccess" -}}
provider:
  writes: [provider.events, referral.events.dlq]
  reads: [referral.events]
authority:
  writes: [referral.events, provider.events.dlq]
  reads: [provider.events]
ledger:
  writes: [provider.events.dlq, referral.events.dlq]
  reads: [provider.events, referral.events]
alerting:
  writes: [alert.events, provider.events.dlq, referral.events.dlq]
  reads: [provider.events, referral.events]
{{- end -}}

{{/* ---------------------------------------------------------------- PostgreSQL */}}

{{- define "nearhome.postgresClusterName" -}}
{{- default (printf "%s-postgresql" (include "nearhome.fullname" .)) .Values.postgresql.cloudnativepg.clusterName -}}
{{- end -}}

{{/* The basic-auth Secret of a database role: (dict "root" $ "role" "owner"). */}}
{{- define "nearhome.roleSecretName" -}}
{{- $named := index .root.Values.postgresql.cloudnativepg.roleSecrets .role -}}
{{- default (printf "%s-db-%s" (include "nearhome.fullname" .root) .role) $named -}}
{{- end -}}

{{- define "nearhome.postgresHost" -}}
{{- printf "%s-rw.%s.svc" (include "nearhome.postgresClusterName" .) .Release.Namespace -}}
{{- end -}}

{{/* The database URL of a role (cloudnativepg mode): (dict "root" $ "role" "provider"
     "variable" "DATABASE_URL"). The URL names the role but holds no password: asyncpg, which
     every engine and connection of NearHome's uses, takes it from PGPASSWORD when the URL has
     none, and PGPASSWORD comes from the role's basic-auth Secret, the one CloudNativePG sets the
     role's password from. So a password needs no URL encoding and lives in one Secret only. */}}
{{- define "nearhome.cnpgDatabaseUrlEnv" -}}
{{- $role := ternary .root.Values.postgresql.cloudnativepg.owner (index .root.Values.migration.roles .role | default "") (eq .role "owner") -}}
- name: {{ .variable }}
  value: {{ printf "postgresql+asyncpg://%s@%s:5432/%s" $role (include "nearhome.postgresHost" .root) .root.Values.postgresql.cloudnativepg.database | quote }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "nearhome.roleSecretName" (dict "root" .root "role" .role) }}
      key: password
{{- end -}}

{{/* ---------------------------------------------------------------- environment */}}

{{/* How a NearHome process reaches Kafka and PostgreSQL: (dict "root" $ "kafkaUser" "provider").
     Without kafkaUser, nothing of Kafka (the migration step needs none: with SASL_SSL set and
     no user, its settings would be refused). */}}
{{- define "nearhome.connectionEnv" -}}
{{- $root := .root -}}
- name: NEARHOME_ENV
  value: {{ $root.Values.environment | quote }}
{{- if .kafkaUser }}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ include "nearhome.kafkaBootstrapServers" $root | quote }}
- name: NEARHOME_TOPIC_PREFIX
  value: {{ $root.Values.kafka.topicPrefix | quote }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ $root.Values.kafka.securityProtocol | quote }}
{{- if ne $root.Values.kafka.securityProtocol "PLAINTEXT" }}
{{- if or (eq $root.Values.kafka.mode "strimzi") $root.Values.kafka.external.caSecret }}
- name: KAFKA_SSL_CA_FILE
  value: /etc/nearhome/kafka-ca/ca.crt
{{- end }}
{{- end }}
{{- if eq $root.Values.kafka.securityProtocol "SASL_SSL" }}
- name: KAFKA_SASL_MECHANISM
  value: {{ $root.Values.kafka.saslMechanism | quote }}
{{- if and (eq $root.Values.kafka.mode "strimzi") .kafkaUser }}
{{- $user := include "nearhome.kafkaUserName" (dict "root" $root "service" .kafkaUser) }}
- name: KAFKA_SASL_USERNAME
  value: {{ $user | quote }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $user }}, key: password}
{{- end }}
{{- end }}
{{- end }}
{{- if $root.Values.postgresql.sslMode }}
- name: DATABASE_SSL_MODE
  value: {{ $root.Values.postgresql.sslMode | quote }}
{{- end }}
{{- if or (eq $root.Values.postgresql.mode "cloudnativepg") $root.Values.postgresql.external.caSecret }}
- name: DATABASE_SSL_ROOT_CERT
  value: /etc/nearhome/postgresql-ca/ca.crt
{{- end }}
- name: NEARHOME_LOG_LEVEL
  value: {{ $root.Values.common.logLevel | quote }}
- name: NEARHOME_LOG_FORMAT
  value: {{ $root.Values.common.logFormat | quote }}
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
{{- end -}}

{{/* The volumes for the CAs and /tmp, and their mounts: (dict "root" $ "kafka" true). */}}
{{- define "nearhome.volumes" -}}
{{- $kafka := .kafka -}}
{{- with .root -}}
- name: tmp
  emptyDir: {medium: Memory, sizeLimit: 64Mi}
{{- if and $kafka (ne .Values.kafka.securityProtocol "PLAINTEXT") }}
{{- if eq .Values.kafka.mode "strimzi" }}
- name: kafka-ca
  secret:
    secretName: {{ include "nearhome.kafkaClusterName" . }}-cluster-ca-cert
    items: [{key: ca.crt, path: ca.crt}]
{{- else if .Values.kafka.external.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.external.caSecret }}
    items: [{key: {{ .Values.kafka.external.caKey }}, path: ca.crt}]
{{- end }}
{{- end }}
{{- if eq .Values.postgresql.mode "cloudnativepg" }}
- name: postgresql-ca
  secret:
    secretName: {{ include "nearhome.postgresClusterName" . }}-ca
    items: [{key: ca.crt, path: ca.crt}]
{{- else if .Values.postgresql.external.caSecret }}
- name: postgresql-ca
  secret:
    secretName: {{ .Values.postgresql.external.caSecret }}
    items: [{key: {{ .Values.postgresql.external.caKey }}, path: ca.crt}]
{{- end }}
{{- end }}
{{- end -}}

{{- define "nearhome.volumeMounts" -}}
{{- $kafka := .kafka -}}
{{- with .root -}}
- name: tmp
  mountPath: /tmp
{{- if and $kafka (ne .Values.kafka.securityProtocol "PLAINTEXT") (or (eq .Values.kafka.mode "strimzi") .Values.kafka.external.caSecret) }}
- name: kafka-ca
  mountPath: /etc/nearhome/kafka-ca
  readOnly: true
{{- end }}
{{- if or (eq .Values.postgresql.mode "cloudnativepg") .Values.postgresql.external.caSecret }}
- name: postgresql-ca
  mountPath: /etc/nearhome/postgresql-ca
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by every NearHome pod. */}}
{{- define "nearhome.podCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
{{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{/* Why checkov's CKV_K8S_35 (secrets as files) does not apply: the services read their
     credentials from environment variables only. */}}
{{- define "nearhome.checkovAnnotations" -}}
checkov.io/skip1: CKV_K8S_35=NearHome reads its credentials (DATABASE_URL, KAFKA_SASL_PASSWORD, NEARHOME_SECRET_KEYS) from environment variables only
{{- end -}}

{{/* The chart's name, and the release's name for its objects (the release name alone when it
already contains the chart's, as `helm install regprobe ...` does: the objects are then named as
deploy/k8s names them). */}}
{{- define "regprobe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "regprobe.fullname" -}}
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

{{- define "regprobe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "regprobe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Every object's labels: deploy/k8s's (name, part-of) and Helm's own. */}}
{{- define "regprobe.labels" -}}
{{ include "regprobe.selectorLabels" . }}
app.kubernetes.io/part-of: {{ .Chart.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* What the pods do: `probe` (regprobe run) or `serve`; the NetworkPolicy, the Service and the
monitors select on it. */}}
{{- define "regprobe.component" -}}
{{- if eq .Values.mode "serve" }}serve{{ else }}probe{{ end }}
{{- end }}

{{- define "regprobe.podSelectorLabels" -}}
{{ include "regprobe.selectorLabels" . }}
app.kubernetes.io/component: {{ include "regprobe.component" . }}
{{- end }}

{{- define "regprobe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "regprobe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "regprobe.configMapName" -}}
{{ include "regprobe.fullname" . }}-config
{{- end }}

{{- define "regprobe.credentialsName" -}}
{{ default (printf "%s-credentials" (include "regprobe.fullname" .)) .Values.credentials.name }}
{{- end }}

{{- define "regprobe.cacheClaimName" -}}
{{ default (printf "%s-cache" (include "regprobe.fullname" .)) .Values.cache.persistence.existingClaim }}
{{- end }}

{{/* `serve` objects are named <fullname>-serve, as deploy/overlays/serve names them. */}}
{{- define "regprobe.serveName" -}}
{{ include "regprobe.fullname" . }}-serve
{{- end }}

{{- define "regprobe.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* A config number of seconds (dict: value, default - regprobe's own, src/regprobe/config.py - and
key), rounded up; anything else is refused naming the key. */}}
{{- define "regprobe.seconds" -}}
{{- $value := .value | default .default }}
{{- if not (or (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value)) }}
{{- fail (printf "%s: %v is not a number of seconds" .key $value) }}
{{- end }}
{{- int (ceil $value) }}
{{- end }}

{{/* The CronJob's time budget adds up (values.yaml, `cronjob:`): a run that reaches its deadline still
pushes before activeDeadlineSeconds kills the pod, and the Job is gone before the next one is due. */}}
{{- define "regprobe.checkTimeBudget" -}}
{{- $deadline := include "regprobe.seconds" (dict "value" .Values.config.deadline "default" 720 "key" "config.deadline") | int }}
{{- $timeout := include "regprobe.seconds" (dict "value" .Values.config.timeout "default" 30 "key" "config.timeout") | int }}
{{- $registries := len .Values.config.registries }}
{{- $pushes := 0 }}
{{- if .Values.config.pushgateway }}
{{- $pushes = mul $registries $timeout }}
{{- end }}
{{- $startup := int .Values.cronjob.startupSeconds }}
{{- $budget := add $startup $deadline $pushes 15 }}
{{- $active := int .Values.cronjob.activeDeadlineSeconds }}
{{- if gt $budget $active }}
{{- fail (printf "cronjob.startupSeconds (%d) + config.deadline (%d) + %d pushes x config.timeout (%d) + 15 s to spare = %d s, more than cronjob.activeDeadlineSeconds (%d): a run that reaches its deadline would be killed before it pushes; lower config.deadline" $startup $deadline $registries $timeout $budget $active) }}
{{- end }}
{{- if ge $active (int .Values.cronjob.intervalSeconds) }}
{{- fail (printf "cronjob.activeDeadlineSeconds (%d) is not under cronjob.intervalSeconds (%v): a run would still be alive when the next one is due, and concurrencyPolicy Forbid would skip that one" $active .Values.cronjob.intervalSeconds) }}
{{- end }}
{{- end }}

{{/* The pod both modes run: hardened, the config and the credentials mounted read-only, scratch
space on emptyDirs, the cache on an emptyDir or a claim. */}}
{{- define "regprobe.podTemplate" -}}
metadata:
  labels:
    {{- include "regprobe.podSelectorLabels" . | nindent 4 }}
    {{- if eq .Values.mode "serve" }}
    # The scrape job's name when a PodMonitor scrapes the pod (its jobLabel): the stale alert's absent()
    # branch matches it.
    regprobe.io/job: registry-integrity-probe
    {{- end }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- $annotations := .Values.podAnnotations }}
  {{- if eq .Values.mode "serve" }}
  {{- /* serve reads its config once: a changed ConfigMap must roll the pod. A CronJob's next pod
  mounts the new content anyway. */}}
  {{- $annotations = merge (dict "checksum/config" (include (print $.Template.BasePath "/configmap.yaml") . | sha256sum)) $annotations }}
  {{- end }}
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- if eq .Values.mode "cronjob" }}
  restartPolicy: Never
  {{- else }}
  terminationGracePeriodSeconds: {{ .Values.serve.terminationGracePeriodSeconds }}
  {{- end }}
  serviceAccountName: {{ include "regprobe.serviceAccountName" . }}
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: regprobe
      image: {{ include "regprobe.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      {{- if eq .Values.mode "cronjob" }}
      args: ["run", "-c", "/etc/regprobe/config.yaml"]
      {{- else }}
      args: ["serve", "-c", "/etc/regprobe/config.yaml", "--listen", ":{{ .Values.serve.port }}"]
      {{- end }}
      env:
        - name: REGPROBE_CONFIG
          value: /etc/regprobe/config.yaml
        {{- if gt (int .Values.shards) 1 }}
        # Each pod of the Indexed Job walks the share JOB_COMPLETION_INDEX of REGPROBE_SHARDS.
        - name: REGPROBE_SHARDS
          value: {{ .Values.shards | int | quote }}
        {{- end }}
        {{- with .Values.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if eq .Values.mode "serve" }}
      ports:
        - name: http-metrics
          containerPort: {{ .Values.serve.port }}
          protocol: TCP
      # /healthz answers while the schedule is alive; a walk in progress does not block it.
      livenessProbe:
        httpGet:
          path: /healthz
          port: http-metrics
        periodSeconds: 30
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /healthz
          port: http-metrics
        periodSeconds: 10
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: /etc/regprobe
          readOnly: true
        - name: credentials
          mountPath: /var/run/secrets/regprobe
          readOnly: true
        - name: cache
          mountPath: /var/cache/regprobe
        # The root filesystem is read-only; Python and the TLS stack may still want a tmp.
        - name: tmp
          mountPath: /tmp
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "regprobe.configMapName" . }}
    - name: credentials
      secret:
        secretName: {{ include "regprobe.credentialsName" . }}
        # The pod starts before the Secret exists (a registry without auth needs none); a config naming
        # a file in it then fails with exit 2.
        optional: true
        defaultMode: 0400
    - name: cache
      {{- if .Values.cache.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ include "regprobe.cacheClaimName" . }}
      {{- else }}
      emptyDir:
        sizeLimit: {{ .Values.cache.sizeLimit }}
      {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

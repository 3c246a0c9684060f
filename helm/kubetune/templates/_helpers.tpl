{{/* The chart's name, or nameOverride. */}}
{{- define "kubetune.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: fullnameOverride, else "<release>-<chart>" unless the release
name already contains the chart's name. */}}
{{- define "kubetune.fullname" -}}
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

{{- define "kubetune.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubetune.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubetune.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kubetune.labels" -}}
helm.sh/chart: {{ include "kubetune.chart" . }}
{{ include "kubetune.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubetune
{{- end -}}

{{- define "kubetune.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubetune.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: set the name of an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kubetune.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "kubetune.leaseName" -}}
{{- default (include "kubetune.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{/* Exactly what the operator calls in the namespaces it watches (its audit log in
tests/e2e/test_chart.py is checked against these rules both ways), shared by the ClusterRole and
the per-namespace Roles. It creates a trial Role allowing pods get and patch, and RBAC refuses to
grant what the granter does not hold: hence pods get, which it never calls itself. */}}
{{- define "kubetune.operatorRules" -}}
- apiGroups: [kubetune.dev]
  resources: [tuningstudies]
  verbs: [list, watch]
- apiGroups: [kubetune.dev]
  resources: [tuningstudies/status]
  verbs: [patch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch, create, patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, patch]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [create]
- apiGroups: [""]
  resources: [services]
  verbs: [create]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [create]
{{- range .Values.workloads }}
{{- $resource := regexReplaceAll "/.*$" . "" }}
- apiGroups: [{{ regexReplaceAll "^[^.]*\\." $resource "" }}]
  resources: [{{ regexReplaceAll "\\..*$" $resource "" }}]
  verbs: [list, watch, create, patch]
{{- end }}
{{- end -}}

{{/* Who else holds the TuningStudy CRD: empty when it is absent (or when rendering without a
cluster), when this release owns it, or when crds.adopt is set; else a phrase naming the owner. */}}
{{- define "kubetune.crdOwnedElsewhere" -}}
{{- $name := (.Files.Get "files/tuningstudy.yaml" | fromYaml).metadata.name -}}
{{- $found := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" $name -}}
{{- if and $found (not .Values.crds.adopt) -}}
{{- $owner := index ($found.metadata.annotations | default dict) "meta.helm.sh/release-name" | default "" -}}
{{- $ownerNs := index ($found.metadata.annotations | default dict) "meta.helm.sh/release-namespace" | default "" -}}
{{- if not $owner -}}
applied outside Helm (kubectl apply)
{{- else if not (and (eq $owner .Release.Name) (eq $ownerNs .Release.Namespace)) -}}
owned by the Helm release {{ $owner }} in namespace {{ $ownerNs }} (installed, or uninstalled and kept)
{{- end -}}
{{- end -}}
{{- end -}}

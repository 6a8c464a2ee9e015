{{- define "enclavia-enclave.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "enclavia-enclave.runtimeClass" -}}
{{- if .Values.runtimeClassName -}}
{{ .Values.runtimeClassName }}
{{- else if eq .Values.tee "tdx" -}}
kata-qemu-tdx
{{- else if eq .Values.tee "sev-snp" -}}
kata-qemu-snp
{{- else -}}
{{ fail "tee must be sev-snp or tdx for Confidential Containers" }}
{{- end -}}
{{- end -}}
{{- define "enclavia-enclave.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}
{{- /* Confidential Containers init-data (TOML): the enclave configuration, measured at pod launch. */ -}}
{{- /* The runtime hashes it with `algorithm` into SEV-SNP HOST_DATA (sha256) or TDX MRCONFIGID (sha384); */ -}}
{{- /* pin that digest in the policy (host_data / mrconfigid): docs/attestation.md, Confidential Containers. */ -}}
{{- define "enclavia-enclave.initData" -}}
version = "0.1.0"
algorithm = "{{ if eq .Values.tee "tdx" }}sha384{{ else }}sha256{{ end }}"

[data]
"enclavia.json" = '''{{ dict "tee" .Values.tee "image" (include "enclavia-enclave.image" .) "embeddings" .Values.embeddings "classification" .Values.classification.configMap "models" .Values.models.path "broker" .Values.broker.url | toJson }}'''
{{- range $name, $body := .Values.coco.initData.files }}
{{ $name | quote }} = '''
{{ $body }}'''
{{- end }}
{{- end -}}

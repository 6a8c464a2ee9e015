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

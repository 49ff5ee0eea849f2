{{/*
FluentBit configuration: tail the audit JSON lines from the shared audit volume and ship them to
fluentbit.output (stdout by default). The checksum/fluentbit pod annotation hashes this helper.
*/}}
{{- define "codegen-mcp.fluentbit.config" -}}
fluent-bit.conf: |
  [SERVICE]
      Flush         1
      Log_Level     info
      Daemon        Off
      HTTP_Server   Off
      Parsers_File  /fluent-bit/etc/codegen-mcp/parsers.conf

  [INPUT]
      Name              tail
      Tag               codegen-mcp.audit
      Path              /var/log/audit/*.jsonl
      Parser            audit_json
      DB                /var/log/audit/.fluent-bit.db
      Read_from_Head    On
      Refresh_Interval  5
      Skip_Long_Lines   On
      Mem_Buf_Limit     5MB

  [FILTER]
      Name    record_modifier
      Match   codegen-mcp.audit
      Record  pod ${POD_NAME}
  {{- with .Values.fluentbit.extraFilters }}

  {{- . | nindent 2 }}
  {{- end }}

  [OUTPUT]
  {{- .Values.fluentbit.output | trim | nindent 6 }}
parsers.conf: |
  [PARSER]
      Name         audit_json
      Format       json
{{- end }}

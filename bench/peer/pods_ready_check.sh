#!/usr/bin/env bash
# A Killercoda/Instruqt-style check script: pass when COUNT pods matching
# SELECTOR in NAMESPACE exist, none is being deleted, and all are Ready.
#
# Usage: pods_ready_check.sh NAMESPACE SELECTOR COUNT
ns=$1 selector=$2 count=$3
kubectl get pods -n "$ns" -l "$selector" -o json | jq -e --argjson n "$count" '
  [.items[] | select(.metadata.deletionTimestamp == null)] as $pods
  | ($pods | length) == $n
    and ($pods | all(.status.conditions[]? | select(.type == "Ready") | .status == "True"))
' >/dev/null

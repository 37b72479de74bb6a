#!/usr/bin/env bash
# The peers' way of running a lab headless, for bench/ comparisons.
#
# Modelled on istio.io's doc tests (tests/util/verify.sh): one bash process
# runs each step's commands in order, so exports carry over, then checks the
# step by running its check script in a new process, again and again until it
# passes or VERIFY_TIMEOUT is spent, sleeping VERIFY_DELAY between tries.
# Killercoda and Instruqt check scripts are the same kind of script (bash,
# kubectl, jq); they only lack the retry loop, which this runner adds.
#
# Usage: verify_runner.sh DIR
#   DIR holds, per step N (zero-padded so they sort), N.run (sourced by this
#   shell) and N.check (run with bash in a new process; exit 0 = passed).

set -uo pipefail
VERIFY_TIMEOUT=${VERIFY_TIMEOUT:-120}
VERIFY_DELAY=${VERIFY_DELAY:-1}

_verify_check() {
  local check=$1 started=$SECONDS
  until bash "$check"; do
    if (( SECONDS - started >= VERIFY_TIMEOUT )); then
      echo "VERIFY FAILED $check (timeout after ${VERIFY_TIMEOUT}s)" >&2
      return 1
    fi
    sleep "$VERIFY_DELAY"
  done
}

cd "$1" || exit 2
steps=0
for run in *.run; do
  step=${run%.run}
  # shellcheck disable=SC1090
  source "$run" || { echo "step $step: command failed" >&2; exit 1; }
  _verify_check "$step.check" || exit 1
  steps=$((steps + 1))
done
echo "$steps steps passed"

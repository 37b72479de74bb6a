#!/usr/bin/env bash
# Bring a cluster to the point where a lab starts, so you can begin (or
# re-run) any lab without doing all the earlier ones first. Each lab's
# `setup` calls this with the stage it needs; every stage includes the ones
# before it, and every action is idempotent, so running it twice is harmless.
#
#   istio    Istio (demo profile) installed           (after install-istio)
#   addons   ... plus Prometheus, Grafana, Jaeger, Kiali
#   apps     ... plus the sample apps and the HTTP gateway route (after ingress-gateway)
#   https    ... plus certificates and the HTTPS gateway   (after https-ingress)
#   mesh     ... plus sidecars in every istioinaction pod  (after sidecar-injection)
#   strict   ... plus the legacy client and STRICT mTLS     (after strict-mtls)
#
# Usage: bash manifests/setup/workshop-state.sh STAGE [--addons]
# Run from the workshop root (where labs/ and manifests/ are).
set -euo pipefail

stage=${1:?usage: workshop-state.sh istio|addons|apps|https|mesh|strict [--addons]}
with_addons=false
[ "$stage" = addons ] && with_addons=true
[ "${2:-}" = --addons ] && with_addons=true
NS=istioinaction

say() { printf '» %s\n' "$*"; }

wait_for_deployments() { # wait_for_deployments NAMESPACE
  local d
  for d in $(kubectl get deployments -n "$1" -o name); do
    kubectl rollout status "$d" -n "$1" --timeout=300s
  done
}

ensure_istio() {
  if kubectl get deployment istiod -n istio-system >/dev/null 2>&1; then
    say "Istio control plane found in istio-system"
  else
    if ! command -v istioctl >/dev/null 2>&1; then
      echo "Istio is not installed and istioctl is not on PATH: do the install-istio lab first" >&2
      exit 1
    fi
    say "installing Istio ${ISTIO_VERSION:-} (demo profile)"
    istioctl install --set profile=demo -y
  fi
  kubectl rollout status deployment/istiod -n istio-system --timeout=300s
  kubectl rollout status deployment/istio-ingressgateway -n istio-system --timeout=300s
}

ensure_addons() {
  local addon
  for addon in prometheus grafana jaeger kiali; do
    if ! kubectl get deployment "$addon" -n istio-system >/dev/null 2>&1; then
      local file="${ISTIO_HOME:-}/samples/addons/$addon.yaml"
      if [ ! -f "$file" ]; then
        echo "the $addon add-on is missing and $file does not exist: do the install-istio lab first" >&2
        exit 1
      fi
      say "installing the $addon add-on"
      kubectl apply -f "$file"
    fi
    kubectl rollout status "deployment/$addon" -n istio-system --timeout=300s
  done
}

ensure_apps() {
  say "sample apps and the HTTP route in $NS"
  kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
  # Label first when the stage wants sidecars, so new pods get one straight away.
  case "$stage" in mesh | strict) kubectl label namespace "$NS" istio-injection=enabled --overwrite ;; esac
  kubectl apply -f manifests/sample-apps/
  if ! kubectl get gateways.networking.istio.io web-api-gateway -n "$NS" >/dev/null 2>&1; then
    kubectl apply -f manifests/ingress/web-api-gateway.yaml
  fi
  kubectl apply -f manifests/ingress/web-api-virtualservice.yaml
}

ensure_https() {
  say "workshop certificates and the HTTPS gateway"
  labrunner certs
  kubectl create secret tls istioinaction-cert -n istio-system \
    --cert certs/istioinaction.io.crt --key certs/istioinaction.io.key \
    --dry-run=client -o yaml | kubectl apply -f -
  kubectl apply -f manifests/ingress/web-api-gateway-https.yaml
}

ensure_mesh() {
  say "sidecar injection for $NS"
  kubectl label namespace "$NS" istio-injection=enabled --overwrite
  # Pods started before the label have no sidecar until they are recreated.
  local missing
  missing=$(kubectl get pods -n "$NS" \
    -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.metadata.annotations.sidecar\.istio\.io/status}{"\n"}{end}' \
    | awk 'NF < 2 {print $1}')
  if [ -n "$missing" ]; then
    say "restarting workloads without a sidecar: ${missing//$'\n'/ }"
    kubectl rollout restart deployment -n "$NS"
  fi
}

ensure_strict() {
  say "out-of-mesh client in legacy and mesh-wide STRICT mTLS"
  kubectl apply -f manifests/legacy/namespace.yaml
  kubectl apply -f manifests/legacy/curl.yaml
  kubectl apply -f manifests/security/peer-authentication-strict.yaml
  wait_for_deployments legacy
}

case "$stage" in
  istio | addons | apps | https | mesh | strict) ;;
  *) echo "unknown stage $stage (istio, addons, apps, https, mesh or strict)" >&2; exit 2 ;;
esac

ensure_istio
$with_addons && ensure_addons
if [ "$stage" != istio ] && [ "$stage" != addons ]; then
  ensure_apps
  case "$stage" in https | mesh | strict) ensure_https ;; esac
  case "$stage" in mesh | strict) ensure_mesh ;; esac
  wait_for_deployments "$NS"
  [ "$stage" = strict ] && ensure_strict
fi
say "ready for stage $stage"

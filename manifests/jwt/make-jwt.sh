#!/usr/bin/env bash
# Make everything the end-user-jwt lab needs, with nothing but bash and openssl:
#
#   signing.key   RSA private key of our pretend identity provider (mode 0600)
#   jwks.json     its public key as a JSON Web Key Set (what Istio checks against)
#   token.jwt     a token it signed: iss https://auth.istioinaction.io, sub learner,
#                 aud istioinaction.io, valid for 7 days
#   forged.jwt    the same claims signed by a different key (must be rejected)
#   request-authentication.yaml
#                 manifests/jwt/request-authentication.yaml with the JWKS filled in
#
# Usage: bash manifests/jwt/make-jwt.sh [OUTPUT_DIR]   (default .lab-work/jwt)
#
# Keys are kept when they already exist, so the key set in the cluster stays
# valid; tokens are minted afresh each time. Nothing here is ever committed:
# the private keys stay in OUTPUT_DIR on your machine.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-.lab-work/jwt}
issuer=https://auth.istioinaction.io
audience=istioinaction.io
kid=workshop-signing-key
lifetime=$((7 * 24 * 3600))

umask 077
mkdir -p "$out"
# Keep git away from the keys, wherever the output goes.
printf '*\n' > "$out/.gitignore"

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

new_key() {
  [ -s "$1" ] || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
}

sign() { # sign KEY CLAIMS_JSON -> compact JWT on stdout
  local header payload
  header=$(printf '{"alg":"RS256","typ":"JWT","kid":"%s"}' "$kid" | b64url)
  payload=$(printf '%s' "$2" | b64url)
  printf '%s.%s.%s\n' "$header" "$payload" \
    "$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$1" | b64url)"
}

new_key "$out/signing.key"
new_key "$out/forged.key"

# The modulus comes out as hex; turn it into bytes, then base64url (RFC 7518 §6.3.1).
modulus=$(openssl rsa -in "$out/signing.key" -noout -modulus 2>/dev/null | cut -d= -f2)
n=$(printf '%b' "$(printf '%s' "$modulus" | sed 's/../\\x&/g')" | b64url)
exponent=$(openssl rsa -in "$out/signing.key" -noout -text 2>/dev/null | sed -n 's/^publicExponent: \([0-9]*\).*/\1/p')
[ "$exponent" = 65537 ] || { echo "unexpected RSA exponent: $exponent" >&2; exit 1; }
printf '{"keys":[{"kty":"RSA","kid":"%s","alg":"RS256","use":"sig","n":"%s","e":"AQAB"}]}\n' \
  "$kid" "$n" > "$out/jwks.json"

now=$(date +%s)
claims=$(printf '{"iss":"%s","sub":"learner","aud":"%s","iat":%d,"exp":%d,"groups":["shoppers"]}' \
  "$issuer" "$audience" "$now" "$((now + lifetime))")
sign "$out/signing.key" "$claims" > "$out/token.jwt"
sign "$out/forged.key" "$claims" > "$out/forged.jwt"

sed "s|jwks: '__JWKS__'|jwks: '$(cat "$out/jwks.json")'|" "$here/request-authentication.yaml" \
  > "$out/request-authentication.yaml"

echo "wrote $out: jwks.json, token.jwt, forged.jwt, request-authentication.yaml"

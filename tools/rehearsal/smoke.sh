#!/usr/bin/env bash
# The rehearsal's quick check of a provisioned lab (run inside the sandbox, in the clone): every
# service answers, the identity provider issues a token, and one chat message posted through the
# edge (https://localhost, verified against the lab CA) is answered by the worker. Exit 0 or say why.
set -euo pipefail

CA="${SECLAB_CA:-/etc/seclab/pki/ca/ca-bundle.crt}"
EDGE="${SECLAB_EDGE:-https://localhost}"
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }

echo "smoke: ./lab status"
./lab status || fail "./lab status: a service does not answer"

echo "smoke: ./lab token alice"
token="$(./lab token alice | tail -n1)"
[ -n "$token" ] || fail "no token for alice"

api() {  # METHOD PATH [JSON]: prints the body, then the HTTP status on its own last line
  curl -sS --cacert "$CA" -X "$1" -w '\n%{http_code}' -H "Authorization: Bearer $token" \
       -H 'Content-Type: application/json' -H 'Prefer: wait=10' ${3:+-d "$3"} "$EDGE$2"
}

out="$(api POST /api/v1/conversations '{"title":"rehearsal smoke"}')"
code="${out##*$'\n'}"; body="${out%$'\n'*}"
[ "$code" = 201 ] || fail "create conversation: HTTP $code: $body"
conv="$(jq -r .id <<<"$body")"
echo "smoke: conversation $conv"

out="$(api POST "/api/v1/conversations/$conv/messages" '{"content":"What is TLS?"}')"
code="${out##*$'\n'}"; body="${out%$'\n'*}"
case "$code" in 201|202) ;; *) fail "post message: HTTP $code: $body" ;; esac
mid="$(jq -r .message.id <<<"$body")"
# 202: stored, not answered within the 10 s wait; read it back until the worker answered (60 s).
for _ in $(seq 1 12); do
  reply="$(jq -r '.reply.content // empty' <<<"$body")"
  [ -n "$reply" ] && break
  sleep 5
  out="$(api GET "/api/v1/conversations/$conv/messages/$mid")"
  code="${out##*$'\n'}"; body="${out%$'\n'*}"
  case "$code" in 200|201|202) ;; *) fail "read message back: HTTP $code: $body" ;; esac
done
[ -n "${reply:-}" ] || fail "message $mid not answered within 70 s: $body"
echo "smoke: answered (${#reply} characters; guard $(jq -c .message.guard <<<"$body"))"
echo "smoke: passed"

#!/usr/bin/env bash
# Send a payload to the served model: ./predict.sh PAYLOAD [CONTENT_TYPE]   (default text/csv)
# Docker and native serving both listen on 127.0.0.1:$PORT (8080). One prediction per line comes back.
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ "${1:-}" != "--native" ] || shift # accepted for symmetry with the other scripts
PAYLOAD="${1:-}"
CONTENT_TYPE="${2:-text/csv}"
[ -n "$PAYLOAD" ] || fail "usage: predict.sh PAYLOAD [CONTENT_TYPE], e.g. ./predict.sh payload.csv text/csv"
[ -f "$PAYLOAD" ] || fail "no payload file $PAYLOAD"
curl --silent --show-error --fail-with-body --data-binary "@$PAYLOAD" \
  -H "Content-Type: $CONTENT_TYPE" "http://127.0.0.1:$PORT/invocations"

#!/usr/bin/env bash
# Send a payload to the served model: ./predict.sh [--native] payload.csv [text/csv|application/json]
# Docker and native serving both listen on 127.0.0.1:$PORT (8080); the flag is accepted for symmetry.
set -euo pipefail
source "$(dirname "$0")/common.sh"
PAYLOAD="${1:?usage: predict.sh [--native] PAYLOAD [CONTENT_TYPE]}"
CONTENT_TYPE="${2:-text/csv}"
PORT="${PORT:-8080}"
curl --silent --show-error --fail-with-body --data-binary "@$PAYLOAD" \
  -H "Content-Type: $CONTENT_TYPE" "http://127.0.0.1:$PORT/invocations"

#!/usr/bin/env bash
# Serve test_dir/model on port 8080 (GET /ping, POST /invocations) until Ctrl-C.
# Usage: ./serve_local.sh [--native]   (Docker by default; --native runs sagemaker/serve)
set -euo pipefail
source "$(dirname "$0")/common.sh"
PORT="${PORT:-8080}"
if [ "$MODE" = native ]; then
  exec "$PYTHON" "$REPO/sagemaker/serve" --prefix "$TEST_DIR" --host 127.0.0.1 --port "$PORT"
else
  exec docker run --rm -p "127.0.0.1:$PORT:8080" -v "$TEST_DIR:/opt/ml" "$IMAGE" serve
fi

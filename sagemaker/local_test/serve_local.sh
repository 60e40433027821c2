#!/usr/bin/env bash
# Serve test_dir/model on 127.0.0.1:$PORT (8080): GET /ping, POST /invocations, until Ctrl-C.
# Usage: ./serve_local.sh IMAGE [--native]
#   IMAGE     the image ../build_and_push.sh built (e.g. random_forest): docker run IMAGE serve
#   --native  run sagemaker/serve with this checkout's Python instead (no Docker; IMAGE optional)
set -euo pipefail
source "$(dirname "$0")/common.sh"
parse_image_arguments "$@"
if [ "$MODE" = native ]; then
  exec "$PYTHON" "$REPO/sagemaker/serve" --prefix "$TEST_DIR" --host 127.0.0.1 --port "$PORT"
else
  exec docker run --rm -p "127.0.0.1:$PORT:8080" -v "$TEST_DIR:/opt/ml" "$IMAGE" serve
fi

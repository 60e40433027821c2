#!/usr/bin/env bash
# Train the pulsar model the way SageMaker would: test_dir/ is the container's /opt/ml.
# Usage: ./train_local.sh IMAGE [--native]
#   IMAGE     the image ../build_and_push.sh built (e.g. random_forest): docker run IMAGE train
#   --native  run sagemaker/train with this checkout's Python instead (no Docker; IMAGE optional)
# Hyperparameters: test_dir/input/config/hyperparameters.json. Training data: the pulsar CSV
# (PULSAR_CSV, default src/ancora/datasets/pulsar/HTRU_2.csv) as test_dir/input/data/training/train.csv, written
# once (set PULSAR_CSV to write it again). Nothing is deleted: the new model replaces the old one
# only when training succeeds.
set -euo pipefail
source "$(dirname "$0")/common.sh"
parse_image_arguments "$@"

CHANNEL="$TEST_DIR/input/data/training"
if [ -n "${PULSAR_CSV:-}" ] || [ ! -s "$CHANNEL/train.csv" ]; then
  SOURCE="${PULSAR_CSV:-$REPO/src/ancora/datasets/pulsar/HTRU_2.csv}"
  [ -f "$SOURCE" ] || fail "no pulsar CSV at $SOURCE (set PULSAR_CSV)"
  mkdir -p "$CHANNEL"
  PARTIAL="$(mktemp "$CHANNEL/.train.csv.XXXXXX")"
  trap 'rm -f "$PARTIAL"' EXIT
  # SageMaker's CSV convention: no header, label first (HTRU_2.csv has a header and the label last).
  PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -c \
    'import sys; from pathlib import Path; from ancora.sagemaker.data import write_training_csv as w; print(w(Path(sys.argv[1]), Path(sys.argv[2])), "training rows")' \
    "$SOURCE" "$PARTIAL"
  mv "$PARTIAL" "$CHANNEL/train.csv"
fi

if [ "$MODE" = native ]; then
  "$PYTHON" "$REPO/sagemaker/train" --prefix "$TEST_DIR"
else
  docker run --rm -v "$TEST_DIR:/opt/ml" "$IMAGE" train
fi
ls -l "$TEST_DIR/model"

#!/usr/bin/env bash
# Train the pulsar model the way SageMaker would: test_dir/ is mounted as /opt/ml.
# Usage: ./train_local.sh [--native] [PULSAR_CSV]   (Docker by default; --native runs sagemaker/train)
set -euo pipefail
source "$(dirname "$0")/common.sh"
CSV="${1:-$REPO/data/pulsar/HTRU_2.csv}"
mkdir -p "$TEST_DIR/input/data/training"
rm -rf "$TEST_DIR/model" "$TEST_DIR/output"
# SageMaker's CSV convention: no header, label first (HTRU_2.csv has a header and the label last).
awk -F, 'NR > 1 { sub(/\r$/, ""); line = $NF; for (i = 1; i < NF; i++) line = line "," $i; print line }' "$CSV" \
  > "$TEST_DIR/input/data/training/train.csv"
if [ "$MODE" = native ]; then
  "$PYTHON" "$REPO/sagemaker/train" --prefix "$TEST_DIR"
else
  docker run --rm -v "$TEST_DIR:/opt/ml" "$IMAGE" train
fi
ls -l "$TEST_DIR/model"

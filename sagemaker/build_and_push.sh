#!/usr/bin/env bash
# Build the SageMaker image (sagemaker/Dockerfile) and push it to Amazon ECR.
# Usage: ./build_and_push.sh IMAGE [--tag TAG]      e.g. ./build_and_push.sh random_forest
# Uses the AWS credentials of `aws configure` (or AWS_* variables) and ANCORA_AWS_REGION (us-east-1);
# creates the ECR repository IMAGE if it is missing, logs Docker in, builds IMAGE:TAG (latest),
# tags and pushes <account>.dkr.ecr.<region>.amazonaws.com/IMAGE:TAG, and prints that URI.
# Needs Docker: there is no --native here (the local scripts' --native mode needs no image).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
if [ $# -lt 1 ]; then
  echo "usage: $0 IMAGE [--tag TAG]   (e.g. $0 random_forest)" >&2
  exit 2
fi
exec "$PYTHON" -m ancora sagemaker build-and-push "$@"

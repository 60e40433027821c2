#!/bin/sh
# MLflow tracking server for compose: MySQL backend store, MinIO (S3) artifacts served through the
# server, so clients never hold bucket credentials.
#
#   entrypoint.sh init     wait for the database, `mlflow db upgrade`, create the bucket (one-shot)
#   entrypoint.sh server   run the server (the default)
#
# Configuration (all from the environment; .env.example lists them):
#   MLFLOW_BACKEND_STORE_URI       mysql+pymysql://user:password@mysql:3306/mlflow
#   MLFLOW_ARTIFACTS_DESTINATION   s3://mlflow/artifacts
#   MLFLOW_S3_ENDPOINT_URL         http://minio:9000 (read by boto3 inside the server only)
#   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY   MinIO credentials, server side only
#   MLFLOW_HOST (0.0.0.0)  MLFLOW_PORT (5000)  MLFLOW_WORKERS (2)
#   MLFLOW_ALLOWED_HOSTS   Host headers accepted, e.g. mlflow,mlflow:5000,localhost:5000
#   MLFLOW_DB_WAIT_SECONDS (60)
set -eu

: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION}"

wait_for_database() {
    deadline=$(( $(date +%s) + ${MLFLOW_DB_WAIT_SECONDS:-60} ))
    until python - <<'PY'
import os
import sqlalchemy

sqlalchemy.create_engine(os.environ["MLFLOW_BACKEND_STORE_URI"]).connect().close()
PY
    do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "database of MLFLOW_BACKEND_STORE_URI not reachable" >&2
            exit 1
        fi
        sleep 2
    done
}

create_bucket() {
    case "$MLFLOW_ARTIFACTS_DESTINATION" in
        s3://*) python - <<'PY'
import os
from urllib.parse import urlparse

import boto3
from botocore.exceptions import ClientError

bucket = urlparse(os.environ["MLFLOW_ARTIFACTS_DESTINATION"]).netloc
s3 = boto3.client("s3", endpoint_url=os.environ.get("MLFLOW_S3_ENDPOINT_URL"))
try:
    s3.head_bucket(Bucket=bucket)
except ClientError:
    s3.create_bucket(Bucket=bucket)
    print(f"created bucket {bucket}")
PY
        ;;
    esac
}

case "${1:-server}" in
    init)
        wait_for_database
        mlflow db upgrade "$MLFLOW_BACKEND_STORE_URI"
        create_bucket
        ;;
    server)
        set -- --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
            --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
            --serve-artifacts \
            --host "${MLFLOW_HOST:-0.0.0.0}" \
            --port "${MLFLOW_PORT:-5000}" \
            --workers "${MLFLOW_WORKERS:-2}"
        if [ -n "${MLFLOW_ALLOWED_HOSTS:-}" ]; then
            set -- "$@" --allowed-hosts "$MLFLOW_ALLOWED_HOSTS"
        fi
        exec mlflow server "$@"
        ;;
    *)
        exec "$@"
        ;;
esac

#!/bin/sh
# airflow-init, the compose one-shot every Airflow service waits for: migrate Airflow's metadata
# database, give the admin the password from .env, and bring the raw-data store to its latest schema.
# Idempotent: it runs on every `docker compose up` and is a no-op on an up-to-date stack.
set -eu

: "${ANCORA_AIRFLOW_PASSWORD:?set ANCORA_AIRFLOW_PASSWORD in .env}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?}"

airflow db migrate

# Airflow's simple auth manager reads passwords from this JSON file (and would invent one otherwise).
umask 077
python - <<'PY'
import json
import os
from pathlib import Path

path = Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
user = os.environ.get("ANCORA_AIRFLOW_USERNAME", "admin")
path.write_text(json.dumps({user: os.environ["ANCORA_AIRFLOW_PASSWORD"]}))
print(f"Airflow user {user!r}: password set from ANCORA_AIRFLOW_PASSWORD")
PY

ancora db upgrade

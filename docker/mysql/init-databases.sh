# Sourced by the mysql image's entrypoint (docker-entrypoint-initdb.d) once, when the data volume is
# empty: creates Ancora's databases and two users from the environment (.env via docker-compose.yml),
# each user with rights on its own databases only. Not executable on purpose: sourced files get the
# entrypoint's docker_process_sql, which logs in as root without a password on the command line.
#
#   MYSQL_ANCORA_USER / MYSQL_ANCORA_PASSWORD   raw data, dispatch events, task service, BYOM registry
#   MYSQL_MLFLOW_USER / MYSQL_MLFLOW_PASSWORD   MLflow's backend store

: "${MYSQL_ANCORA_USER:?}" "${MYSQL_ANCORA_PASSWORD:?}" "${MYSQL_MLFLOW_USER:?}" "${MYSQL_MLFLOW_PASSWORD:?}"

sql_string() {
    # A single-quoted SQL literal: quotes and backslashes in passwords are escaped, never interpreted.
    printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")"
}

ancora_user=$(sql_string "$MYSQL_ANCORA_USER")
mlflow_user=$(sql_string "$MYSQL_MLFLOW_USER")

mysql_note "Creating Ancora's databases and users"
docker_process_sql --database=mysql <<SQL
CREATE DATABASE IF NOT EXISTS ancora_data CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS ancora_events CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS ancora_tasks CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS ancora_provisioning CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS mlflow CHARACTER SET utf8mb4;

CREATE USER IF NOT EXISTS ${ancora_user}@'%' IDENTIFIED BY $(sql_string "$MYSQL_ANCORA_PASSWORD");
GRANT ALL PRIVILEGES ON ancora_data.* TO ${ancora_user}@'%';
GRANT ALL PRIVILEGES ON ancora_events.* TO ${ancora_user}@'%';
GRANT ALL PRIVILEGES ON ancora_tasks.* TO ${ancora_user}@'%';
GRANT ALL PRIVILEGES ON ancora_provisioning.* TO ${ancora_user}@'%';

CREATE USER IF NOT EXISTS ${mlflow_user}@'%' IDENTIFIED BY $(sql_string "$MYSQL_MLFLOW_PASSWORD");
GRANT ALL PRIVILEGES ON mlflow.* TO ${mlflow_user}@'%';
SQL

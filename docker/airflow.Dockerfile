# syntax=docker/dockerfile:1
# Image of Airflow (api-server, scheduler, dag-processor, triggerer, Celery workers) with Ancora's
# DAGs and plugins, for docker compose.
# Build from the repository root:  docker build -f docker/airflow.Dockerfile -t ancora-airflow:local .
# Not the apache/airflow image: the core dependencies and the `airflow` extra at uv.lock's pins
# (`uv sync --frozen --no-dev --extra airflow`), so a DAG task in a container runs the versions a
# native task runs. The project is installed as a wheel (--no-editable); the DAGs and plugins are
# read from the installed package (ancora_airflow), and only the virtualenv reaches the final stage.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_FROZEN=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/ancora
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock changes, not on every code edit.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv uv sync --no-dev --extra airflow --no-install-workspace
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv uv sync --no-dev --extra airflow --no-editable

FROM ${PYTHON_IMAGE}
ARG ANCORA_CODE_VERSION=""
# The DAGs and plugins are package data of ancora_airflow, in the virtualenv's site-packages (the
# Python of PYTHON_IMAGE, 3.11).
ENV PATH=/opt/ancora/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/ancora/lib/python3.11/site-packages/ancora_airflow/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/ancora/lib/python3.11/site-packages/ancora_airflow/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    ANCORA_CODE_VERSION=${ANCORA_CODE_VERSION} \
    ANCORA_BIND_HOST=0.0.0.0 \
    ANCORA_STATE_DIR=/var/lib/ancora
# uid 50000, gid 0: Airflow's convention, shared with the role images so all may write the state volume.
RUN useradd --uid 50000 --gid 0 --home-dir /opt/airflow --create-home --shell /usr/sbin/nologin airflow \
    && mkdir -p /opt/airflow/logs /opt/airflow/auth /var/lib/ancora \
    && chown -R 50000:0 /opt/airflow /var/lib/ancora \
    && chmod 770 /opt/airflow/logs /opt/airflow/auth /var/lib/ancora
COPY --from=builder /opt/ancora /opt/ancora
COPY --chmod=755 docker/airflow/init.sh /usr/local/bin/ancora-airflow-init
COPY --chmod=755 docker/healthcheck.py /usr/local/bin/healthcheck
USER 50000
WORKDIR /opt/airflow
VOLUME ["/opt/airflow/logs", "/var/lib/ancora"]
# api-server, worker log server, scheduler health server
EXPOSE 8080 8793 8974
ENTRYPOINT ["airflow"]
CMD ["version"]

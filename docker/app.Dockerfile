# syntax=docker/dockerfile:1
# Ancora's own services (`ancora serve`, `ancora task-service`, `ancora provisioning`, `ancora data-api`,
# `ancora ui`) for docker compose. Build from the repository root:
#   docker build -f docker/app.Dockerfile -t ancora-app:local .
# The environment is uv.lock's, exactly (`uv sync --frozen --no-dev`), so the containers run the code
# and versions `make up` runs. The project is installed editable on purpose: the package finds its
# shipped data, DAGs and UI relative to the source tree (ancora.config.PROJECT_ROOT = /opt/ancora).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_FROZEN=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/ancora/.venv
WORKDIR /opt/ancora
# Dependencies first: this layer is rebuilt only when the lock changes, not on every code edit.
COPY pyproject.toml uv.lock README.md ./
COPY client/pyproject.toml client/
RUN --mount=type=cache,target=/root/.cache/uv uv sync --no-dev --no-install-workspace
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv uv sync --no-dev

FROM ${PYTHON_IMAGE}
ARG ANCORA_CODE_VERSION=""
ENV PATH=/opt/ancora/.venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ANCORA_CODE_VERSION=${ANCORA_CODE_VERSION} \
    ANCORA_BIND_HOST=0.0.0.0 \
    ANCORA_STATE_DIR=/var/lib/ancora
# uid 50000, gid 0 as in Airflow's image: the Airflow containers share the state volume with these.
RUN useradd --uid 50000 --gid 0 --no-create-home --home-dir /var/lib/ancora --shell /usr/sbin/nologin ancora \
    && mkdir -p /var/lib/ancora \
    && chown 50000:0 /var/lib/ancora \
    && chmod 770 /var/lib/ancora
COPY --from=builder /opt/ancora /opt/ancora
COPY --chmod=755 docker/healthcheck.py /usr/local/bin/healthcheck
USER 50000
WORKDIR /opt/ancora
VOLUME ["/var/lib/ancora"]
EXPOSE 8000 8001 8002 8003 8501
ENTRYPOINT ["ancora"]
CMD ["--help"]

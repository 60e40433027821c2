# syntax=docker/dockerfile:1
# Image of the BYOM provisioning API (`ancora provisioning`) with its `local` endpoints, for docker compose.
# Build from the repository root:  docker build -f docker/byom.Dockerfile -t ancora-byom:local .
# Only the `byom` role: uv.lock's pins for the core dependencies and the `byom` extra
# (`uv sync --frozen --no-dev --extra byom`), nothing of the other roles. The project is installed
# as a wheel (--no-editable) and only the virtualenv reaches the final stage: no source tree.
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
RUN --mount=type=cache,target=/root/.cache/uv uv sync --no-dev --extra byom --no-install-workspace
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv uv sync --no-dev --extra byom --no-editable

FROM ${PYTHON_IMAGE}
ARG ANCORA_CODE_VERSION=""
ENV PATH=/opt/ancora/bin:${PATH} \
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
WORKDIR /var/lib/ancora
VOLUME ["/var/lib/ancora"]
EXPOSE 8003
ENTRYPOINT ["ancora"]
CMD ["provisioning"]

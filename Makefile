# Native stack: every service a local process on 127.0.0.1, all state in ANCORA_STATE_DIR (./.ancora).
# `python3 -m uv` is the fallback when uv is not on PATH: `pip install uv` may put the binary elsewhere.
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN := $(UV) run --frozen
# Bytecode is compiled once at install: with PYTHONDONTWRITEBYTECODE set (as on CI machines) every
# process would otherwise compile Airflow and MLflow from source, adding seconds to each start.

.PHONY: uv sync up down status logs clean checks system-deps test

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install uv

# Every role's extra: the native stack runs them all, and the tests cover them all.
sync: uv
	$(UV) sync --frozen --all-extras --compile-bytecode

up: sync
	$(RUN) ancora stack up

down: uv
	$(RUN) ancora stack down

status: uv
	$(RUN) ancora stack status

logs: uv
	$(RUN) ancora stack logs

clean: uv
	$(RUN) ancora stack clean

# lint-imports checks the contracts in pyproject.toml: ancora imports no face, no Streamlit, no FastAPI,
# and Airflow only in ancora.airflow.
checks: sync
	$(RUN) ruff check . && $(RUN) ruff format --check . && $(RUN) mypy src client/src && $(RUN) lint-imports

# The supply-chain check (tools/audit_lock.py) fails on a known-vulnerable pin in uv.lock unless
# supply-chain-allowlist.toml says why; a second run within 12 hours reuses PyPI's answers.
# System packages the tests drive (Debian's chromium for the browser test); a no-op once installed.
system-deps:
	bash scripts/install-test-system.sh

test: checks system-deps
	$(RUN) python -m tools.audit_lock && $(RUN) pytest

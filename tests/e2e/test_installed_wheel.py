"""The wheel works outside the checkout: built, installed into a clean virtualenv in a temporary
folder, and `ancora stack up` run from an empty folder finds its data, DAGs, plugins and UI in the
installed packages.

The locked dependencies are installed from `uv export` (uv's cache makes that fast and works
offline once `uv sync` ran), then the project's wheels without their dependencies, so the test
checks the wheel's contents, not the resolver.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.native_stack import HTTP_TIMEOUT, RunningStack, native_stack, wait_for
from tests.support.repo import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

COLLECT_DAG_ID = "covertype_collect"


def run(*argv: str | Path, cwd: Path = REPO_ROOT) -> str:
    result = subprocess.run(
        [str(part) for part in argv], cwd=cwd, capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv outside the repository with the locked dependencies and the project's wheels."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH: the test builds and installs the wheel with it")
    root = tmp_path_factory.mktemp("installed-wheel")
    dist, venv, requirements = root / "dist", root / "venv", root / "requirements.txt"
    run(uv, "build", "--wheel", "--all-packages", "--out-dir", dist)
    run(
        uv, "export", "--frozen", "--no-dev", "--all-extras", "--no-emit-workspace",
        "--output-file", requirements,
    )  # fmt: skip
    run(uv, "venv", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    run(uv, "pip", "install", "--python", python, "--requirement", requirements)
    run(uv, "pip", "install", "--python", python, "--no-deps", *sorted(dist.glob("*.whl")))
    return venv


@pytest.fixture(scope="module")
def stack(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    site = tmp_path_factory.mktemp("empty-folder")
    isolated = {
        "PATH": os.pathsep.join([str(venv / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]),
        "VIRTUAL_ENV": str(venv),
        "PYTHONPATH": "",
    }
    with native_stack(site, isolated, python=str(venv / "bin" / "python")) as running:
        yield running


def test_the_wheel_has_no_generic_top_level_module_and_runs_from_site_packages(venv: Path) -> None:
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = Path(run(venv / "bin" / "python", "-c", purelib).strip())
    top_level = {path.name for path in site_packages.iterdir() if (path / "__init__.py").is_file()}
    ours = {name for name in top_level if name.startswith("ancora")}
    assert {"ancora", "ancora_inference", "ancora_task_service", "ancora_ui", "ancora_airflow"} <= ours
    assert not {"inference", "task_service", "provisioning", "data_api", "ui", "dags"} & top_level
    for shipped in ("datasets/covertype/covertype.csv", "datasets/pulsar/HTRU_2.csv", "py.typed"):
        assert (site_packages / "ancora" / shipped).is_file(), shipped
    assert list((site_packages / "ancora" / "store" / "migrations" / "versions").glob("0001_*.py"))
    assert (site_packages / "ancora_airflow" / "dags" / f"{COLLECT_DAG_ID}.py").is_file()
    assert (site_packages / "ancora_airflow" / "plugins" / "ancora_remote" / "operators.py").is_file()
    assert (site_packages / "ancora_ui" / "app_pages" / "predict.py").is_file()

    where = run(
        venv / "bin" / "python", "-c",
        "from ancora import locations; print(locations.PACKAGE_FOLDER); print(locations.checkout_root());"
        "print(locations.code_version())",
        cwd=venv.parent,
    ).split()  # fmt: skip
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert where == [str(site_packages.resolve() / "ancora"), "None", f"ancora-{version}"]


def test_build_from_source_commands_say_they_need_a_checkout(venv: Path) -> None:
    for command in (("sagemaker", "requirements"), ("config", "write-docs")):
        result = subprocess.run(
            [venv / "bin" / "python", "-m", "ancora", *command],
            cwd=venv.parent, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 2, result.stdout + result.stderr
        assert "needs a source checkout" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_the_stack_starts_from_an_empty_folder(stack: RunningStack) -> None:
    settings = stack.settings
    local = httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False)
    health = local.get(f"{settings.airflow_api_url}/api/v2/monitor/health").json()
    for component in ("metadatabase", "scheduler", "dag_processor", "triggerer"):
        assert health[component]["status"] == "healthy", health
    assert local.get(f"http://127.0.0.1:{settings.mlflow_port}/health").status_code == 200
    assert local.get(f"http://127.0.0.1:{settings.task_service_port}/health").status_code == 200
    assert local.get(f"{settings.ui_url}/_stcore/health").status_code == 200

    assert local.get(f"{settings.inference_url}/health").status_code == 200
    waiting = local.get(f"{settings.inference_url}/ready")
    assert waiting.status_code == 503 and "champion" in waiting.text, waiting.text

    batch = local.get(f"{settings.simulator_url}/data", params={"group_number": 1})
    assert batch.status_code == 200, batch.text
    assert len(batch.json()["data"][0]) == 13
    assert sorted(path.name for path in stack.workdir.iterdir()) == ["state"]


def test_airflow_finds_the_shipped_dags(stack: RunningStack, venv: Path) -> None:
    def collect_dag() -> dict[str, object] | None:
        with stack.airflow() as airflow:
            response = airflow.get(f"/api/v2/dags/{COLLECT_DAG_ID}/details")
        return dict(response.json()) if response.status_code == 200 else None

    details = wait_for(collect_dag, timeout=180, every=5)
    assert details is not None, f"Airflow did not list {COLLECT_DAG_ID} within 3 minutes"
    assert str(details["fileloc"]).startswith(str(venv)), details["fileloc"]

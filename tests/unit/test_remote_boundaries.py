"""What the remote-execution code depends on."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import ancora.remote


def test_the_remote_package_and_its_runners_import_nothing_from_airflow() -> None:
    """The task service follows and cancels Slurm jobs itself: it must not need Airflow for that."""
    modules = [
        name
        for _, name, _ in pkgutil.walk_packages(ancora.remote.__path__, "ancora.remote.")
        if ".migrations" not in name
    ]
    assert "ancora.remote.runners.hpc" in modules and "ancora.remote.service" in modules
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "import ancora_task_service.app\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] == 'airflow'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

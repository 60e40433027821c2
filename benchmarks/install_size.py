"""What each installable part of Ancora weighs: packages and bytes a role's virtualenv holds.

For every extra of the ``ancora`` distribution (a role: ``serve``, ``ui``, ``airflow``, ``tasks``, ...)
the locked requirements are exported with ``uv export --extra ROLE``, installed into a throwaway
virtualenv with the project's wheel, and measured: installed size, package count, and which heavy
frameworks the role can import (a ``serve`` image must not carry Airflow, Streamlit or Celery). The
client distribution (``client/``) is installed from its own wheel into a Python 3.9 virtualenv when
one is available, as a researcher on an HPC login node would.

A checkout without extras (before issue #16) is measured as one role, ``whole lock``: what every
image installed then. Docker is not needed: an image's Python layer is this virtualenv.

    uv run --frozen python -m benchmarks.install_size
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from benchmarks.machine import describe_machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FRAMEWORKS = ("airflow", "streamlit", "celery", "sklearn", "mlflow", "fastapi", "onnxruntime")
COMPILE = ("--compile-bytecode",)
"""Images compile bytecode at build time (UV_COMPILE_BYTECODE=1), so the measure includes it."""
CLIENT_PYTHONS = ("python3.9", "/root/.pyenv/versions/3.9.18/bin/python3.9")


def run(*argv: str, cwd: Path = ROOT) -> str:
    return subprocess.run(argv, cwd=cwd, check=True, capture_output=True, text=True).stdout


def extras(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    return sorted(project.get("optional-dependencies", {}))


def build_wheel(project_dir: Path, out_dir: Path) -> Path:
    run("uv", "build", "--wheel", "--out-dir", str(out_dir), str(project_dir))
    wheels = sorted(out_dir.glob("*.whl"), key=lambda path: path.stat().st_mtime)
    return wheels[-1]


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3.*/site-packages"))


def measure_venv(venv: Path) -> dict[str, Any]:
    packages = site_packages(venv)
    size = sum(
        path.stat().st_size for path in packages.rglob("*") if path.is_file() and not path.is_symlink()
    )
    distributions = sorted(path.name.split("-")[0] for path in packages.glob("*.dist-info"))
    probe = (
        "import importlib.util, json; "
        f"print(json.dumps([m for m in {FRAMEWORKS!r} if importlib.util.find_spec(m) is not None]))"
    )
    # -I: the checkout (the working directory) is not on sys.path; its mlflow/ folder (the server
    # image) would otherwise pass for the mlflow package.
    importable = json.loads(run(str(venv / "bin" / "python"), "-I", "-c", probe))
    return {
        "installed_mib": round(size / 2**20, 1),
        "packages": len(distributions),
        "importable_frameworks": importable,
    }


def measure_role(role: str | None, wheel: Path, python: str, workdir: Path) -> dict[str, Any]:
    name = role or "whole lock"
    requirements = workdir / f"requirements-{name.replace(' ', '-')}.txt"
    export = ["uv", "export", "--frozen", "--no-dev", "--no-emit-project", "--no-emit-workspace"]
    if role:
        export += ["--extra", role]
    requirements.write_text(run(*export))
    venv = workdir / f"venv-{name.replace(' ', '-')}"
    run("uv", "venv", "--quiet", "--python", python, str(venv))
    run(
        "uv",
        "pip",
        "install",
        "--quiet",
        *COMPILE,
        "--python",
        str(venv / "bin" / "python"),
        "-r",
        str(requirements),
    )
    run(
        "uv",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        *COMPILE,
        "--python",
        str(venv / "bin" / "python"),
        str(wheel),
    )
    result = {"role": name, **measure_venv(venv)}
    shutil.rmtree(venv)
    return result


def client_python() -> str | None:
    """A Python 3.9 that runs (a pyenv shim on PATH may name a version it will not start)."""
    for candidate in CLIENT_PYTHONS:
        found = shutil.which(candidate) or (candidate if Path(candidate).exists() else None)
        if found and subprocess.run([found, "-I", "-c", ""], capture_output=True).returncode == 0:
            return found
    return None


def measure_client(workdir: Path) -> dict[str, Any] | None:
    client_dir = ROOT / "client"
    if not (client_dir / "pyproject.toml").exists():
        return None
    python = client_python() or sys.executable
    wheel = build_wheel(client_dir, workdir / "client-dist")
    venv = workdir / "venv-client"
    run("uv", "venv", "--quiet", "--python", python, str(venv))
    run("uv", "pip", "install", "--quiet", *COMPILE, "--python", str(venv / "bin" / "python"), str(wheel))
    version = run(str(venv / "bin" / "python"), "-c", "import platform; print(platform.python_version())")
    result = {"role": "ancora-client", "python": version.strip(), **measure_venv(venv)}
    shutil.rmtree(venv)
    return result


def markdown_table(report: dict[str, Any], before: dict[str, Any] | None) -> str:
    """The README's table: the whole lock before the extras, then each role, smallest first."""
    rows = [
        "| installs | Python | installed size | packages | importable frameworks |",
        "|---|---|---|---|---|",
    ]
    smallest_first = sorted(report["roles"], key=lambda row: row["installed_mib"])
    measured_before = before["machine"]["date"][:10] if before else ""
    for row in [*(before["roles"] if before else []), *smallest_first]:
        name = row["role"] if row["role"] in ("whole lock", "ancora-client") else f"ancora[{row['role']}]"
        if row["role"] == "whole lock":
            name = f"the whole lock of {measured_before}, every image's then (before #16)"
        rows.append(
            f"| {name} | {row.get('python', report['machine']['python'])} | {row['installed_mib']:,.1f} MiB "
            f"| {row['packages']} | {', '.join(row['importable_frameworks']) or 'none'} |"
        )
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="", help="Free text stored with the results (e.g. 'before #16').")
    parser.add_argument("--out", type=Path, default=RESULTS / "install_size.json")
    parser.add_argument("--before", type=Path, default=RESULTS / "install_size_before.json")
    parser.add_argument(
        "--table-only", action="store_true", help="Write the Markdown table of --out again; install nothing."
    )
    args = parser.parse_args()
    if args.table_only:
        report = json.loads(args.out.read_text())
    else:
        report = measure(args.label)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    before = json.loads(args.before.read_text()) if args.before.exists() and args.before != args.out else None
    table = markdown_table(report, before)
    args.out.with_suffix(".md").write_text(table)
    print(table, end="")


def measure(label: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ancora-install-size-") as scratch:
        workdir = Path(scratch)
        wheel = build_wheel(ROOT, workdir / "dist")
        roles: list[str | None] = list(extras(ROOT / "pyproject.toml")) or [None]
        results = [measure_role(role, wheel, sys.executable, workdir) for role in roles]
        client = measure_client(workdir)
        if client:
            results.append(client)
    return {"label": label, "machine": describe_machine(), "roles": results}


if __name__ == "__main__":
    main()

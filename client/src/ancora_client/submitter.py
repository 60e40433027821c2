"""``Submitter``: send a dataset zip, a processor zip and a command to the task service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from ancora_client.connection import UPLOAD_TIMEOUT_SECONDS, Server_connection, expect


class Submitter:
    """One submission. Extra keyword arguments are model parameters: the job gets them as
    ``-P name=value`` (``mlflow run``) or ``--name=value`` (other commands)."""

    def __init__(
        self,
        dataset_name: str | None = None,
        dataset_file: str | None = None,
        processor_file: str | None = None,
        runner_location: str = "atena02",
        execution_mode: str = "mlflow",
        experiment_name: str = "default_experiment",
        execution_command: str = "mlflow run project",
        tracking_uri: str | None = None,
        instance_type: str = "gpu",
        account: str = "default_account",
        **model_params: Any,
    ) -> None:
        self.dataset_name = dataset_name
        self.dataset_file = dataset_file
        self.processor_file = processor_file
        self.runner_location = runner_location
        self.execution_mode = execution_mode
        self.experiment_name = experiment_name
        self.execution_command = execution_command
        self.tracking_uri = tracking_uri
        self.instance_type = instance_type
        self.account = account
        self.model_params = model_params
        self.connection = Server_connection()

    def form(self) -> dict[str, str]:
        fields = {
            "runner_location": self.runner_location,
            "execution_mode": self.execution_mode,
            "experiment_name": self.experiment_name,
            "execution_command": self.execution_command,
            "instance_type": self.instance_type,
            "account": self.account,
            "model_params": json.dumps(self.model_params),
        }
        if self.dataset_name is not None:
            fields["dataset_name"] = self.dataset_name
        if self.tracking_uri is not None:
            fields["tracking_uri"] = self.tracking_uri
        return fields

    def submit_task(self) -> requests.Response:
        """POST /tasks; the JSON has ``job_id``, ``id``, ``experiment_name``, ``instance_type``."""
        if not self.dataset_file or not self.processor_file:
            raise ValueError("dataset_file and processor_file are both needed")
        dataset, processor = Path(self.dataset_file), Path(self.processor_file)
        with dataset.open("rb") as dataset_stream, processor.open("rb") as processor_stream:
            response = self.connection.request(
                "POST",
                "/tasks",
                timeout=UPLOAD_TIMEOUT_SECONDS,
                data=self.form(),
                files={
                    "dataset_file": (dataset.name, dataset_stream, "application/zip"),
                    "processor_file": (processor.name, processor_stream, "application/zip"),
                },
            )
        return expect(response, 201)

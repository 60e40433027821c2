"""The task service's ``sagemaker`` runner: a task becomes a SageMaker training job of the Ancora image.

The task's dataset (already validated and unpacked by the service under ``work/dataset``) is uploaded
to ``s3://<sagemaker_bucket>/tasks/<task_id>/training/`` and the job runs the image's ``train`` program
on it with the task's model parameters as hyperparameters and its environment (MLflow variables) as
the job's environment. The processor zip and command are not shipped: the image's ``train`` is the
program (script mode for arbitrary code would need SageMaker's framework images).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ancora.config import Settings
from ancora.remote.jobs import InvalidJob, JobRequest, param_text
from ancora.remote.runners.base import JobState, Runner, Submission, register_runner
from ancora.remote.status import TaskStatus
from ancora.sagemaker.aws import aws_client
from ancora.sagemaker.configs import s3_uri, sagemaker_name, training_job_config

log = logging.getLogger(__name__)

STARTING_SECONDARY = frozenset({"Starting", "Pending", "LaunchingMLInstances", "PreparingTrainingStack"})
"""Secondary statuses of an InProgress job that has not started running the container yet."""


def from_sagemaker(status: str, secondary: str = "") -> TaskStatus:
    """SageMaker's TrainingJobStatus (and SecondaryStatus) in the client's five words.

    ``Stopping`` is already CANCELLED: the stop was accepted and cannot be undone. An unknown status
    counts as RUNNING, so the follower keeps polling rather than inventing an outcome.
    """
    if status == "InProgress":
        return TaskStatus.PENDING if secondary in STARTING_SECONDARY else TaskStatus.RUNNING
    return {
        "Completed": TaskStatus.COMPLETED,
        "Failed": TaskStatus.FAILED,
        "Stopping": TaskStatus.CANCELLED,
        "Stopped": TaskStatus.CANCELLED,
    }.get(status, TaskStatus.RUNNING)


@register_runner("sagemaker")
class SageMakerRunner(Runner):
    """Stateless apart from its boto3 clients: the job name is the submission's id."""

    def __init__(self, settings: Settings, sagemaker: Any = None, s3: Any = None) -> None:
        super().__init__(settings)
        self._sagemaker = sagemaker
        self._s3 = s3

    @property
    def sagemaker(self) -> Any:
        if self._sagemaker is None:
            self._sagemaker = aws_client(self.settings, "sagemaker")
        return self._sagemaker

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = aws_client(self.settings, "s3")
        return self._s3

    def instance_type(self, requested: str) -> str:
        """``ml.*`` types pass through; the client's generic names (cpu, gpu) get the configured type."""
        return requested if requested.startswith("ml.") else self.settings.sagemaker_training_instance_type

    def submit(self, job: JobRequest) -> Submission:
        dataset = Path(job.local_work_dir) / "work" / "dataset"
        files = sorted(path for path in dataset.rglob("*") if path.is_file()) if dataset.is_dir() else []
        if not any(path.suffix == ".csv" for path in files):
            raise InvalidJob("the sagemaker runner trains on CSV files; the dataset zip holds none")
        prefix = f"tasks/{job.task_id}/training"
        for path in files:
            self.s3.upload_file(
                str(path), self.settings.sagemaker_bucket, f"{prefix}/{path.relative_to(dataset).as_posix()}"
            )
        job_name = sagemaker_name("ancora", job.task_id)
        config = training_job_config(
            self.settings,
            job_name=job_name,
            training_data_uri=s3_uri(self.settings.sagemaker_bucket, prefix) + "/",
            output_uri=s3_uri(self.settings.sagemaker_bucket, "tasks", job.task_id, "output"),
            hyperparameters={name: param_text(value) for name, value in job.model_params.items()},
            instance_type=self.instance_type(job.instance_type),
            environment=dict(job.environment),
        )
        self.sagemaker.create_training_job(**config)
        log.info("submitted SageMaker training job %s for task %s", job_name, job.task_id)
        return Submission(
            job_id=job_name, work_dir=s3_uri(self.settings.sagemaker_bucket, "tasks", job.task_id)
        )

    def poll(self, submission: Submission) -> JobState:
        described = self.sagemaker.describe_training_job(TrainingJobName=submission.job_id)
        status = described["TrainingJobStatus"]
        secondary = described.get("SecondaryStatus", "")
        detail = f"{status} ({secondary})" if secondary else status
        if described.get("FailureReason"):
            detail += f": {described['FailureReason']}"
        artifacts = described.get("ModelArtifacts", {}).get("S3ModelArtifacts")
        if status == "Completed" and artifacts:
            detail += f"; model at {artifacts}"
        return JobState(from_sagemaker(status, secondary), detail)

    def cancel(self, submission: Submission) -> None:
        from botocore.exceptions import ClientError

        try:
            self.sagemaker.stop_training_job(TrainingJobName=submission.job_id)
        except ClientError as problem:
            message = problem.response.get("Error", {}).get("Message", "")
            if "already" in message.lower() or "status" in message.lower():
                log.info("training job %s had already ended: %s", submission.job_id, message)
                return
            raise

    def logs(self, submission: Submission, tail_bytes: int) -> str:
        """The end of the job's CloudWatch stream(s); empty when there are none yet."""
        from botocore.exceptions import ClientError

        logs = aws_client(self.settings, "logs")
        group = "/aws/sagemaker/TrainingJobs"
        try:
            streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=submission.job_id)
            lines: list[str] = []
            for stream in streams.get("logStreams", []):
                events = logs.get_log_events(
                    logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=False
                )
                lines += [event["message"] for event in events.get("events", [])]
        except ClientError:
            return ""
        text = "\n".join(lines)
        return text[-tail_bytes:]

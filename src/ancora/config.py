"""The one typed settings object of Ancora.

Every URL, port, path and credential is read here, from ``ANCORA_*`` environment variables
(or a ``.env`` file), so services, DAGs, the CLI and the UI never disagree about where things are.
"""

from __future__ import annotations

import os
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, computed_field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ancora.locations import COVERTYPE_CSV, PULSAR_CSV, shipped_dataset

MIN_PROVISIONING_TOKEN_LENGTH = 32
"""``secrets.token_urlsafe(24)`` is 32 characters: 192 random bits."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ANCORA_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    state_dir: Path = Field(
        default=Path(".ancora"),
        description="Folder for all native state: databases, logs, pid files, MLflow artifacts.",
    )
    bind_host: str = Field(
        default="127.0.0.1",
        description="Address every native service listens on; compose sets 0.0.0.0 inside containers.",
    )

    data_api_url: str = Field(
        default="http://127.0.0.1:8001",
        description="Base URL of the batch data API (the simulator or the course's own API).",
    )
    group_number: int = Field(default=1, ge=1, le=10, description="Group whose batches are collected.")
    data_api_timeout_seconds: float = Field(default=30.0, gt=0, description="HTTP timeout of one fetch.")

    data_db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the raw-data store; default: SQLite under state_dir.",
    )

    simulator_port: int = Field(default=8001, description="Port of the data API simulator.")
    simulator_rotation_seconds: float = Field(
        default=300.0, gt=0, description="Seconds between batch advances in the simulator."
    )
    simulator_dataset_path: Path = Field(
        default=shipped_dataset(COVERTYPE_CSV),
        description="CSV the simulator serves (header row, label last); default: the shipped sample, "
        "ancora/datasets/covertype/covertype.csv in the installed package.",
    )
    simulator_state_path: Path | None = Field(
        default=None,
        description="JSON file keeping the simulator's per-group state across restarts.",
    )
    simulator_batches: int = Field(default=10, ge=1, description="Number of batches the data is split into.")
    simulator_seed: int | None = Field(
        default=None, description="Seed of the simulator's sampling; unset for a fresh random sample."
    )
    simulator_mode: Literal["reference", "intended"] = Field(
        default="reference",
        description="Which rows the simulator serves: reference (as the course's server really does: every "
        "batch samples the group's one slice, group 10 answers HTTP 500) or intended (batch B samples the "
        "B-th slice, fresh rows every batch).",
    )

    airflow_port: int = Field(default=8080, description="Port of the Airflow API server and UI.")
    airflow_parallelism: int = Field(
        default=4, ge=1, description="Airflow task slots natively (the default 32 wastes memory on 2 cores)."
    )
    collect_schedule: str = Field(
        default="*/5 * * * *",
        description="Schedule of covertype_collect: a cron expression or an Airflow preset "
        "(@continuous: back to back, for a simulator rotating in seconds).",
    )

    mlflow_port: int = Field(default=5000, description="Port of the MLflow tracking server.")
    mlflow_tracking_uri: str | None = Field(
        default=None, description="Tracking URI clients use; default: the native server on mlflow_port."
    )
    mlflow_backend_store_uri: str | None = Field(
        default=None, description="MLflow server's backend store; default: SQLite under state_dir."
    )
    mlflow_artifacts_destination: str | None = Field(
        default=None,
        description="MLflow artifact destination (folder or s3://bucket/prefix); default under state_dir.",
    )
    mlflow_allowed_hosts: str | None = Field(
        default=None,
        description="Host headers MLflow accepts (--allowed-hosts); default: its localhost set.",
    )
    mlflow_experiment: str = Field(default="covertype", description="MLflow experiment of the training runs.")
    registered_model_name: str = Field(default="covertype", description="Registered model name in MLflow.")

    train_families: str = Field(
        default="logistic_regression,random_forest,hist_gradient_boosting",
        description="Model families `ancora train` searches by default, comma-separated.",
    )
    train_search_budget: int = Field(
        default=3, ge=1, le=50, description="Hyper-parameter configurations tried per family (bounded)."
    )
    train_seed: int = Field(default=42, description="Seed of every split, search and estimator in training.")
    train_min_rows: int = Field(
        default=500,
        ge=10,
        description="Training refuses to start with fewer distinct validated rows (contents) than this.",
    )
    train_min_class_rows: int = Field(
        default=5,
        ge=3,
        description="Distinct rows a class needs to be stratified; a thinner class is left out of the run.",
    )
    train_validation_fraction: float = Field(
        default=0.2, gt=0, lt=0.5, description="Share of training rows held out to pick the best candidate."
    )
    train_n_jobs: int = Field(
        default=2,
        ge=1,
        description="Candidates fitted at once, each single-threaded (OpenMP threads thrash shared cores).",
    )
    eval_fraction: float = Field(
        default=0.2, gt=0, lt=0.5, description="Share of new rows drawn into the frozen evaluation set."
    )
    promotion_margin: float = Field(
        default=0.005,
        ge=0,
        description="Macro F1 by which a challenger must beat the champion on the evaluation set.",
    )
    code_version: str | None = Field(
        default=None,
        description="Code version recorded on training runs; default: the checkout's git commit, else the "
        "package version (images set it at build time).",
    )

    stack_start_timeout_seconds: float = Field(
        default=120.0, gt=0, description="How long `ancora stack up` waits for every service to be healthy."
    )
    stack_stop_timeout_seconds: float = Field(
        default=15.0, gt=0, description="Grace period between SIGTERM and SIGKILL in `ancora stack down`."
    )

    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for state-changing admin endpoints; no default on purpose."
    )

    inference_port: int = Field(default=8000, description="Port of the inference API.")
    serving_alias: str = Field(
        default="champion", description="Registry alias the inference API serves (of registered_model_name)."
    )
    model_poll_interval_seconds: float = Field(
        default=5.0, gt=0, le=300, description="Seconds between the inference API's checks of the alias."
    )
    inference_batch_max_rows: int = Field(
        default=10_000, ge=1, description="Most rows one /predict/batch request may carry (more: 413)."
    )
    serving_microbatch_max_rows: int = Field(
        default=256, ge=1, description="Most concurrent single-row requests coalesced into one predict call."
    )
    serving_n_jobs: int = Field(
        default=1,
        ge=1,
        description="n_jobs of the served estimator; 1 avoids a thread start-up per call on small batches.",
    )
    registry_timeout_seconds: int = Field(
        default=5, ge=1, description="HTTP timeout of the inference API's registry calls (MLflow client)."
    )
    registry_max_retries: int = Field(
        default=1, ge=0, description="Retries of a failed registry call before the check counts as failed."
    )
    model_cache_dir: Path | None = Field(
        default=None, description="Local copy of served model artifacts; default: state_dir/inference/models."
    )

    task_service_port: int = Field(
        default=8002, description="Port of the task service (remote jobs; the client library's server)."
    )
    task_service_url: str | None = Field(
        default=None, description="URL the client library calls; default: the native task service."
    )
    task_service_username: str | None = Field(
        default=None, description="User the client library logs in as (Submitter, TaskHandler)."
    )
    task_service_password: SecretStr | None = Field(
        default=None, description="Password of task_service_username for the client library."
    )
    remote_db_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the task service's tasks and users; default: SQLite."
    )
    remote_executor: Literal["airflow", "inline"] = Field(
        default="airflow",
        description="Who runs submitted jobs: a remote_task Airflow DAG run, or the task service itself "
        "(inline: a laptop or tests without a scheduler).",
    )
    remote_locations: str = Field(
        default='{"atena02":"hpc"}',
        description="JSON map of runner_location names to runner kinds (hpc, local, sagemaker); a local "
        "location also needs remote_local_enabled.",
    )
    remote_login_minutes: int = Field(
        default=60, ge=1, description="Lifetime of a task service login token (signed JWT)."
    )
    remote_jwt_secret: SecretStr | None = Field(
        default=None,
        description="Key signing task service tokens; default: generated once into state_dir/task_service.",
    )
    remote_max_upload_mb: float = Field(
        default=200, gt=0, description="Largest zip file the service accepts."
    )
    remote_max_unpacked_mb: float = Field(
        default=2048, gt=0, description="Largest total unpacked size of one zip (zip bomb guard)."
    )
    remote_max_zip_ratio: float = Field(
        default=200, gt=1, description="Highest unpacked/packed size ratio of a zip entry (zip bomb guard)."
    )
    remote_max_zip_entries: int = Field(default=20_000, ge=1, description="Most entries one zip may hold.")
    remote_poll_seconds: float = Field(
        default=1.0, gt=0, description="Seconds between status polls of a running remote job."
    )
    remote_log_tail_bytes: int = Field(
        default=65_536, ge=1024, description="How much of the end of a job's log is fetched and kept."
    )
    airflow_username: str = Field(
        default="admin", description="Airflow account the task service triggers remote_task runs with."
    )
    airflow_password: SecretStr | None = Field(
        default=None, description="Password of airflow_username; default: the native stack's generated one."
    )
    hpc_host: str = Field(
        default="atena02", description="Slurm login node reached over SSH by the hpc runner."
    )
    hpc_port: int = Field(default=22, description="SSH port of the Slurm login node.")
    hpc_username: str | None = Field(
        default=None, description="SSH user on the login node; default: the local user."
    )
    hpc_key_file: Path | None = Field(default=None, description="Private key for the login node.")
    hpc_known_hosts: Path = Field(
        default=Path("~/.ssh/known_hosts"),
        description="known_hosts file that must hold the login node's host key (unknown hosts are refused).",
    )
    hpc_work_root: str = Field(
        default="ancora-tasks",
        description="Folder on the cluster holding one work folder per task (relative: under the SSH home).",
    )
    hpc_job_setup: str = Field(
        default="",
        description="Shell lines the batch script runs before the command (module load, venv activation); "
        "set by the operator, never by submitters.",
    )
    hpc_instance_types: str = Field(
        default='{"gpu":{"partition":"gpu","gpus":1,"time_limit":"04:00:00"},'
        '"cpu":{"partition":"cpu","gpus":0,"time_limit":"02:00:00"}}',
        description="JSON map of the client's instance_type to Slurm partition, GPUs and time limit.",
    )
    hpc_accounts: str = Field(
        default='{"default_account":""}',
        description="JSON map of the client's account to a Slurm account (empty: none); others are refused.",
    )
    hpc_ssh_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of the SSH connection and of each command on the login node."
    )

    # --- Task service: jobs, MLflow runs, tokens, retention (src/ancora/remote, src/ancora_task_service/) ---
    remote_mlflow_env_manager: Literal["local", "virtualenv", "uv", "conda"] = Field(
        default="local",
        description="--env-manager of `mlflow run` in mlflow-mode jobs that do not name one; local: the "
        "environment the operator provides (hpc_job_setup), no download on the compute node.",
    )
    remote_local_enabled: bool = Field(
        default=False,
        description="Allow the local runner (jobs on the task service's host, admins only); off by default.",
    )
    remote_local_run_as: str | None = Field(
        default=None,
        description="Unprivileged OS account local jobs run as; required when the service runs as root "
        "(jobs never run as root).",
    )
    remote_local_work_root: Path | None = Field(
        default=None,
        description="Folder of the local jobs' work folders, outside state_dir; default: the system "
        "temporary folder's ancora-jobs.",
    )
    remote_local_job_path: str | None = Field(
        default=None,
        description="PATH of local jobs; default: this Python's bin folder, /usr/local/bin, /usr/bin, /bin.",
    )
    remote_task_retention_hours: float = Field(
        default=168.0,
        ge=0,
        description="Hours a finished task's files (uploads, work folders here and on the cluster) are "
        "kept; the task's record and log tail stay.",
    )
    remote_user_quota_mb: float = Field(
        default=10_240, gt=0, description="Disk one user's kept task files may use (uploads and unpacked)."
    )
    remote_login_max_failures: int = Field(
        default=5, ge=1, description="Failed task service logins per username within the window before 429."
    )
    remote_login_max_failures_per_address: int = Field(
        default=20, ge=1, description="Failed task service logins per client address within the window."
    )
    remote_login_window_seconds: float = Field(
        default=300.0, gt=0, description="Window of the failed-login limits; also the longest Retry-After."
    )
    task_service_tls_cert_file: Path | None = Field(
        default=None, description="Certificate (PEM) the task service serves HTTPS with; unset: plain HTTP."
    )
    task_service_tls_key_file: Path | None = Field(
        default=None, description="Private key (PEM) of task_service_tls_cert_file."
    )

    aws_region: str = Field(default="us-east-1", description="AWS region of the SageMaker and S3 calls.")
    aws_endpoint_url: str | None = Field(
        default=None,
        description="boto3 AWS endpoint override (moto in tests, a VPC endpoint); default: AWS's own.",
    )
    sagemaker_aws_conn_id: str = Field(
        default="aws_default",
        description="Airflow connection of the sagemaker_pulsar DAG (extra endpoint_url: moto in tests).",
    )
    sagemaker_role_arn: str = Field(
        default="arn:aws:iam::000000000000:role/AncoraSageMakerRole",
        description="IAM role SageMaker jobs and models run as; the default is a placeholder for moto.",
    )
    sagemaker_image_uri: str = Field(
        default="ancora-sagemaker:latest",
        description="Image (an ECR URI on AWS) of sagemaker/Dockerfile: training and built-in BYOM models.",
    )
    sagemaker_bucket: str = Field(
        default="ancora-sagemaker", description="S3 bucket for SageMaker training data, models and outputs."
    )
    sagemaker_training_instance_type: str = Field(
        default="ml.m5.large", description="Instance type of SageMaker training jobs."
    )
    sagemaker_inference_instance_type: str = Field(
        default="ml.m5.large", description="Instance type of the endpoint the sagemaker_pulsar DAG deploys."
    )
    sagemaker_max_runtime_seconds: int = Field(
        default=3600, ge=60, description="SageMaker stops a training job that runs longer than this."
    )
    pulsar_dataset_path: Path = Field(
        default=shipped_dataset(PULSAR_CSV),
        description="HTRU2 pulsar CSV (header row, label last) the sagemaker_pulsar DAG trains on; "
        "default: ancora/datasets/pulsar/HTRU_2.csv in the installed package.",
    )
    provisioning_port: int = Field(default=8003, description="Port of the BYOM provisioning API.")
    provisioning_db_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the BYOM pipeline registry; default: SQLite."
    )
    byom_target: Literal["local", "sagemaker"] = Field(
        default="local",
        description="Where BYOM pipelines deploy: serve processes on this machine, or SageMaker (boto3).",
    )
    byom_artifact_roots: str | None = Field(
        default=None,
        description="Comma-separated folders and s3://bucket/prefix that model.tar.gz may come from (its "
        "pickle is loaded: trusted); default: state_dir/provisioning/artifacts and s3://sagemaker_bucket.",
    )
    byom_max_model_bytes: int = Field(
        default=512 * 1024 * 1024, ge=1024, description="Largest model.tar.gz accepted, packed and unpacked."
    )
    byom_start_timeout_seconds: float = Field(
        default=60.0, gt=0, description="How long a local endpoint may take to answer /ping after a deploy."
    )
    byom_inference_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of one /inference call to an endpoint."
    )
    provisioning_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that may provision and delete BYOM pipelines (and read them); at least "
        "32 characters, not the same as ANCORA_ADMIN_TOKEN; unset: the provisioning API is closed.",
    )
    provisioning_read_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for /pipelinestatus and /inference of the provisioning API only; at "
        "least 32 characters; unset: only ANCORA_PROVISIONING_TOKEN reads.",
    )
    byom_assets_root: str | None = Field(
        default=None,
        description="Where a relative model_artifact_location is read (the orchestrator's assets bucket); "
        "default: state_dir/provisioning/artifacts on the local target, s3://sagemaker_bucket on sagemaker.",
    )
    byom_data_roots: str | None = Field(
        default=None,
        description="Comma-separated folders and s3://bucket/prefix that data_capture_location, "
        "batch_inference_data and batch_job_output_location may name; default: "
        "state_dir/provisioning/data and s3://sagemaker_bucket.",
    )
    byom_capture_flush_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How often a local endpoint's captured requests are written to an s3:// "
        "data_capture_location (one object per endpoint and flush).",
    )

    # --- Streamlit UI (ui/, `ancora ui`, `ancora users`) ---
    ui_port: int = Field(default=8501, description="Port of the Streamlit app.")
    ui_users_file: Path | None = Field(
        default=None,
        description="YAML file of the app's users (Argon2 hashes, roles); default: state_dir/ui/users.yaml.",
    )
    ui_refresh_seconds: float = Field(
        default=15.0, ge=2, le=3600, description="Auto-refresh interval of the Monitor and running DAG runs."
    )
    ui_http_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of the app's calls to Airflow, MLflow and the inference API."
    )
    ui_inference_url: str | None = Field(
        default=None, description="Inference API the app calls; default: the native one on inference_port."
    )
    ui_airflow_public_url: str | None = Field(
        default=None, description="Airflow UI address the app links to in the browser; default: airflow_url."
    )
    ui_mlflow_public_url: str | None = Field(
        default=None,
        description="MLflow UI address the app links to in the browser; default: the tracking URI.",
    )
    ui_sign_in_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed sign-ins a username may have in ui_sign_in_window_seconds before it is locked.",
    )
    ui_sign_in_window_seconds: float = Field(
        default=900.0,
        gt=0,
        description="Window of ui_sign_in_max_failures; a locked username unlocks as its failures age out.",
    )

    # --- Dispatches: scheduled batch scoring over a datalake (`ancora dispatch`, covertype_dispatch) ---
    datalake_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the datalake dispatches score (mysql+pymysql, postgresql+psycopg, "
        "sqlite, mssql+pyodbc, ...); default: a demo SQLite file under state_dir.",
    )
    datalake_table: str = Field(
        default="covertype_observations",
        description="Datalake table holding the rows to score; schema.table for another schema.",
    )
    datalake_key_column: str = Field(
        default="id", description="Unique key column of the datalake table; rows are read and updated by it."
    )
    datalake_feature_columns: str = Field(
        default="",
        description="JSON map from a contract feature name to the table's column, for names that differ; "
        "empty: the contract's names.",
    )
    datalake_prediction_column: str = Field(
        default="predicted_cover_type",
        description="Integer column the predicted Cover_Type goes to; NULL means awaiting a prediction.",
    )
    datalake_marker_column: str = Field(
        default="dispatch_id",
        description="Text column set to the dispatch id on every row a dispatch handles (invalid rows too, "
        "so they are not retried until cleared); empty: no marker, invalid rows are retried every dispatch.",
    )
    datalake_connect_timeout_seconds: int = Field(
        default=5, ge=1, description="Connect timeout to the datalake (dispatches and GET /datalake/status)."
    )
    dispatch_schedule: str = Field(default="0 * * * *", description="Cron schedule of covertype_dispatch.")
    dispatch_batch_rows: int = Field(
        default=10_000,
        ge=1,
        le=100_000,
        description="Rows read, scored and written back per batch (one datalake transaction each).",
    )
    dispatch_n_jobs: int = Field(
        default=2, ge=1, description="n_jobs of the champion while a dispatch scores (large batches gain)."
    )
    dispatch_events_db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the dispatch events database (dispatches, events, predictions); "
        "default: SQLite under state_dir.",
    )
    dispatch_history_hours: float = Field(
        default=24.0, gt=0, description="Default time window of GET /dispatches, back from now, in hours."
    )
    dispatch_heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="Seconds between the heartbeats a running dispatch records."
    )
    dispatch_stale_after_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A running dispatch without a heartbeat for this long is marked failed by the next "
        "dispatch (at once when its process on the same host is gone); at least 3 heartbeats.",
    )

    # --- Docker Compose: services reach each other by name, not on bind_host (docker-compose.yml) ---
    airflow_api_url: str | None = Field(
        default=None,
        description="Airflow API server the task service and the UI call; default: the native one on "
        "bind_host:airflow_port.",
    )

    # --- Inference API throughput (src/ancora/serving/worker.py, batcher.py; benchmarks/serve.py) ---
    serving_predict_worker: bool = Field(
        default=True,
        description="Run predict_proba in a child process of the inference API, so HTTP handling and "
        "prediction use separate cores; false: in a thread of the API process.",
    )
    serving_predict_workers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Prediction worker processes (with serving_predict_worker), each with its own copy "
        "of the model; more than 1 pays off only with cores to spare (on 2 cores, 1 is faster).",
    )
    serving_microbatch_max_wait_ms: float = Field(
        default=10.0,
        ge=0,
        le=1000,
        description="Longest wait, right after a predict call, for the rows of the callers it answered "
        "(capped at half that call's time; an idle service never waits); 0: take only what is queued. "
        "Versions served by their compiled engine never wait (measured: waiting only added latency).",
    )

    # --- Compiled serving (src/ancora/training/compile.py, serving/engines.py; issue #18) ---
    train_compile: bool = Field(
        default=True,
        description="Compile each registered version to ONNX Runtime (parity-checked on the frozen "
        "evaluation set); false: versions are registered without, and scikit-learn serves them.",
    )
    train_compile_timing_max_rows: int = Field(
        default=8192,
        ge=1,
        le=100_000,
        description="Largest call size timed on both engines to find the crossover (sizes 1, 8, 32, ... "
        "up to this); a larger call uses the engine that won at the largest size timed.",
    )
    serving_compiled: bool = Field(
        default=True,
        description="Serve a version's compiled engine (ONNX Runtime) below its crossover when it passed "
        "parity; false: scikit-learn answers every call (the inference API and dispatches).",
    )
    serving_compiled_in_process: bool = Field(
        default=True,
        description="Run the calls the compiled engine takes in a thread of the API process (ONNX Runtime "
        "releases the GIL), without the hop to the prediction worker; false: the worker runs them too.",
    )

    # --- Monitoring: prediction log, drift, alerts, health watch (src/ancora/monitoring/) ---
    prediction_log_enabled: bool = Field(
        default=True,
        description="Record every online prediction (features, class, probability, latency, user) in the "
        "events database, off the request path.",
    )
    prediction_log_sample_rate: float = Field(
        default=1.0, ge=0, le=1, description="Share of prediction requests the log keeps (per request)."
    )
    prediction_log_queue_rows: int = Field(
        default=100_000,
        ge=1,
        description="Most rows waiting to be written; a request arriving at a full queue is not logged "
        "(counted in /metrics), never delayed.",
    )
    prediction_log_write_rows: int = Field(
        default=2_000, ge=1, description="Most rows the prediction log writes in one transaction."
    )
    drift_served_schedule: str = Field(
        default="0 * * * *",
        description="Cron schedule of covertype_drift_served, which compares the last served window "
        "with the champion's training data.",
    )
    drift_window_hours: float = Field(
        default=1.0, gt=0, description="Length of the served window covertype_drift_served compares."
    )
    drift_min_rows: int = Field(
        default=30, ge=1, description="A batch or window with fewer rows is not compared (skipped)."
    )
    drift_reference_max_rows: int = Field(
        default=20_000, ge=100, description="Most training rows sampled as the drift reference."
    )
    drift_numeric_threshold: float = Field(
        default=0.1,
        gt=0,
        description="Normed Wasserstein distance above which a numeric feature counts as drifted.",
    )
    drift_categorical_threshold: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Jensen-Shannon distance above which a categorical feature or the class mix drifted.",
    )
    drift_share_threshold: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of drifted features at or above which a report breaches (raises an alert).",
    )
    drift_retrain: bool = Field(
        default=False, description="Trigger covertype_train when a drift report breaches the threshold."
    )
    alert_smtp_connection: SecretStr | None = Field(
        default=None,
        description="Airflow connection URI of the SMTP server alerts are mailed through, e.g. "
        "smtp://user:password@mail.example.org:587?from_email=ancora%40example.org; unset: no mail.",
    )
    alert_email_to: str = Field(default="", description="Comma-separated addresses alert mails go to.")
    alert_webhook_url: SecretStr | None = Field(
        default=None,
        description='Slack-compatible incoming webhook alerts are posted to ({"text": ...}); unset: none.',
    )
    alert_unhealthy_minutes: float = Field(
        default=10.0, gt=0, description="A service unhealthy for longer than this raises an alert."
    )
    alert_gate_streak: int = Field(
        default=3, ge=1, description="Gate rejections in a row (kept champion) that raise an alert."
    )
    health_watch_schedule: str = Field(
        default="*/5 * * * *", description="Cron schedule of ancora_health_watch, which probes every service."
    )
    monitor_extra_hosts: str = Field(
        default="[]",
        description="JSON list of extra checks for the Monitor page and the health watch: "
        '{"name", "kind": "tcp"|"tls"|"dns", "host", "port", "warn_days"}.',
    )
    monitor_history_days: float = Field(
        default=7.0, gt=0, description="How far back the Monitor page plots drift and lists alerts."
    )
    ui_task_service_username: str | None = Field(
        default=None,
        description="Task service account of the UI's Tasks page (an admin there lists everyone's tasks; "
        "the page shows each user their own); default: task_service_username.",
    )
    ui_task_service_password: SecretStr | None = Field(
        default=None, description="Password of ui_task_service_username; default: task_service_password."
    )

    # --- Security limits (docs/security.md; src/ancora/http_server.py, src/ancora_inference/limits.py) ---
    inference_header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Time a client has to send a request's line and headers to the inference API "
        "(slowloris bound); past it the connection is closed.",
    )
    inference_body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Time a client has to send a request body to the inference API once the headers "
        "are in; past it the answer is 408.",
    )

    @field_validator("state_dir")
    @classmethod
    def _absolute_state_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("provisioning_token", "provisioning_read_token")
    @classmethod
    def _long_provisioning_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """A guessable token would hand out deploys (a pickle runs code): refuse to start with one."""
        if value is None or not value.get_secret_value():
            return None
        length = len(value.get_secret_value())
        if length < MIN_PROVISIONING_TOKEN_LENGTH:
            raise ValueError(
                f"ANCORA_{str(info.field_name).upper()} has {length} characters; use at least "
                f"{MIN_PROVISIONING_TOKEN_LENGTH}, e.g. python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'"
            )
        return value

    @model_validator(mode="after")
    def _separate_tokens(self) -> Settings:
        """One leaked token must not open the other doors: each token is its own."""
        tokens = {
            "ANCORA_ADMIN_TOKEN": self.admin_token,
            "ANCORA_PROVISIONING_TOKEN": self.provisioning_token,
            "ANCORA_PROVISIONING_READ_TOKEN": self.provisioning_read_token,
        }
        seen: dict[str, str] = {}
        for name, token in tokens.items():
            if token is None or not token.get_secret_value():
                continue
            other = seen.setdefault(token.get_secret_value(), name)
            if other != name:
                raise ValueError(f"{name} must differ from {other}: each token grants different rights")
        return self

    @model_validator(mode="after")
    def _stale_after_several_heartbeats(self) -> Settings:
        if self.dispatch_stale_after_seconds < 3 * self.dispatch_heartbeat_seconds:
            raise ValueError(
                "ANCORA_DISPATCH_STALE_AFTER_SECONDS must be at least 3 times "
                "ANCORA_DISPATCH_HEARTBEAT_SECONDS, or a live dispatch that missed a beat is taken for dead"
            )
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_data_db_url(self) -> str:
        if self.data_db_url:
            return self.data_db_url
        return f"sqlite:///{self.state_dir / 'data' / 'raw.db'}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_simulator_state_path(self) -> Path:
        return self.simulator_state_path or self.state_dir / "data_api" / "state.json"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"http://{self.bind_host}:{self.mlflow_port}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_mlflow_backend_store_uri(self) -> str:
        return self.mlflow_backend_store_uri or f"sqlite:///{self.state_dir / 'mlflow' / 'mlflow.db'}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_mlflow_artifacts_destination(self) -> str:
        return self.mlflow_artifacts_destination or str(self.state_dir / "mlflow" / "artifacts")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_model_cache_dir(self) -> Path:
        return self.model_cache_dir or self.state_dir / "inference" / "models"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_remote_db_url(self) -> str:
        return self.remote_db_url or f"sqlite:///{self.state_dir / 'task_service' / 'tasks.db'}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_remote_local_work_root(self) -> Path:
        return self.remote_local_work_root or Path(tempfile.gettempdir()) / "ancora-jobs"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_remote_local_job_path(self) -> str:
        default = [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
        return self.remote_local_job_path or os.pathsep.join(default)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_task_service_url(self) -> str:
        return self.task_service_url or f"http://{self.bind_host}:{self.task_service_port}"

    @property
    def inference_url(self) -> str:
        return f"http://{self.bind_host}:{self.inference_port}"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    @property
    def airflow_url(self) -> str:
        return (self.airflow_api_url or f"http://{self.bind_host}:{self.airflow_port}").rstrip("/")

    @property
    def simulator_url(self) -> str:
        return f"http://{self.bind_host}:{self.simulator_port}"

    @property
    def resolved_provisioning_db_url(self) -> str:
        return self.provisioning_db_url or f"sqlite:///{self.state_dir / 'provisioning' / 'pipelines.db'}"

    @property
    def resolved_byom_artifact_roots(self) -> list[str]:
        if self.byom_artifact_roots:
            return [root.strip() for root in self.byom_artifact_roots.split(",") if root.strip()]
        return [str(self.state_dir / "provisioning" / "artifacts"), f"s3://{self.sagemaker_bucket}/"]

    @property
    def resolved_byom_assets_root(self) -> str:
        if self.byom_assets_root:
            return self.byom_assets_root.strip()
        if self.byom_target == "sagemaker":
            return f"s3://{self.sagemaker_bucket}/"
        return str(self.state_dir / "provisioning" / "artifacts")

    @property
    def resolved_byom_data_roots(self) -> list[str]:
        if self.byom_data_roots:
            return [root.strip() for root in self.byom_data_roots.split(",") if root.strip()]
        return [str(self.state_dir / "provisioning" / "data"), f"s3://{self.sagemaker_bucket}/"]

    @property
    def provisioning_url(self) -> str:
        return f"http://{self.bind_host}:{self.provisioning_port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.bind_host}:{self.ui_port}"

    @property
    def resolved_ui_users_file(self) -> Path:
        return (self.ui_users_file or self.state_dir / "ui" / "users.yaml").expanduser()

    @property
    def resolved_ui_inference_url(self) -> str:
        return (self.ui_inference_url or self.inference_url).rstrip("/")

    @property
    def resolved_ui_airflow_public_url(self) -> str:
        return (self.ui_airflow_public_url or self.airflow_url).rstrip("/")

    @property
    def resolved_ui_mlflow_public_url(self) -> str:
        return (self.ui_mlflow_public_url or self.resolved_mlflow_tracking_uri).rstrip("/")

    @property
    def resolved_datalake_url(self) -> str:
        return self.datalake_url or f"sqlite:///{self.state_dir / 'datalake' / 'datalake.db'}"

    @property
    def resolved_dispatch_events_db_url(self) -> str:
        return self.dispatch_events_db_url or f"sqlite:///{self.state_dir / 'dispatch' / 'events.db'}"


@lru_cache
def get_settings() -> Settings:
    """Build the settings once per process; tests clear the cache after changing the environment."""
    return Settings()

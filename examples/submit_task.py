"""Submit the pulsar random forest to the HPC cluster, as an existing biganchoring_ml_module script does.

Run in a folder holding test_data.zip and test_processor.zip (`python make_zips.py` builds them),
with ANCORA_TASK_SERVICE_URL, ANCORA_TASK_SERVICE_USERNAME and ANCORA_TASK_SERVICE_PASSWORD set.
"""

from biganchoring_ml_module import Submitter

submitter = Submitter(
    dataset_file="test_data.zip",
    processor_file="test_processor.zip",
    runner_location="atena02",
    execution_mode="mlflow",
    experiment_name="test_lib",
    execution_command="mlflow run project --env-manager local",
    instance_type="gpu",
    account="twinscie",
    n_estimators=2,
    random_state=42,
)
response = submitter.submit_task()
print(response.json()["job_id"])
print(response.json()["id"])

from biganchoring_ml_module import Submitter
import time
import json
# Create a Submitter object
sb = Submitter( dataset_name="Dataset_name",
                dataset_file="test_data.zip",
                processor_file="test_processor.zip",
                runner_location="atena02", execution_mode="mlflow", experiment_name="test_lib",
                execution_command="mlflow run measurements_regression_training_right",
                instance_type="gpu", account="twinscie", n_estimators=2, random_state=42)

submission_response = sb.submit_task()
response_data = json.loads(submission_response.text)

if response_data:
    job_id = response_data.get("job_id")
    task_id = response_data.get("id")
    experiment_name = response_data.get("experiment_name")
    instance_type = response_data.get("instance_type")

    print(f"Job ID: {job_id}")
    print(f"ID: {task_id}")
    print(f"experiment_name: {experiment_name}")
    print(f"instance_type: {instance_type}")

"""Print the MLflow run id of a task as JSON."""

from biganchoring_ml_module.task_management import TaskHandler

task_id = input("Task id: ")
print(TaskHandler(task_id).get_job_run_id().json())

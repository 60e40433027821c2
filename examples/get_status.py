"""Print a task's status (PENDING, RUNNING, COMPLETED, FAILED or CANCELLED) as JSON."""

from biganchoring_ml_module.task_management import TaskHandler

task_id = input("Task id: ")
print(TaskHandler(task_id).get_job_status().json())

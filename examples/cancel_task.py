"""Cancel a task and print the answer as JSON."""

from biganchoring_ml_module.task_management import TaskHandler

task_id = input("Task id: ")
print(TaskHandler(task_id).cancel_task().json())

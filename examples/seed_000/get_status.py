from biganchoring_ml_module import TaskHandler
import json

task_id = input('Entre com o seu task_id: ')

task = TaskHandler(task_id)
status_response = task.get_job_status()

status_data = json.loads(status_response.text)
print(status_data)

"""Remote execution: tasks submitted through the task service and run by a runner (hpc, local, ...)."""

"""Airflow side of remote execution: the operator that follows a task's job and its deferrable trigger.

The logic (runners, Slurm over SSH, the task store) lives in ``ancora.remote``; this package only
adapts it to Airflow's deferral, so a job that runs for hours holds no worker slot.
"""

"""Runners: one class per place a job runs, chosen through ``runner_location`` in settings."""

from ancora.remote.runners.base import JobState, Runner, Submission, build_runner, register_runner

__all__ = ["JobState", "Runner", "Submission", "build_runner", "register_runner"]

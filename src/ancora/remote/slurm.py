"""Slurm batch scripts and the cluster mappings in settings.

The script is the one place where a shell reads what a submitter sent, so every user-supplied word
goes through ``shlex.quote``; the ``#SBATCH`` values come from the operator's settings and are still
checked against a strict pattern, because sbatch reads those lines itself and quoting means nothing
there.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from ancora.config.remote import SBATCH_VALUE, InstanceType
from ancora.remote.jobs import InvalidJob

JOB_ID = re.compile(r"^\d+(_\d+)?$")
LOG_NAME = "job.log"
KEPT_VARIABLES = (
    "HOME", "USER", "LOGNAME", "PATH", "SHELL", "LANG", "LC_*", "TZ", "TMPDIR", "TERM",
    "SLURM_*", "SLURMD_*", "MODULEPATH", "MODULESHOME", "LMOD_*", "_LMFILES_", "LOADEDMODULES",
)  # fmt: skip
"""What the batch script keeps of the environment sbatch hands it (the submitting SSH session's):
the user's identity and PATH, Slurm's own variables, and what environment modules need for the
operator's ``module load``. Everything else, SSH_CLIENT included (with it every ``bash -c`` the job
starts, ``mlflow run`` does, sources ~/.bashrc as an SSH login would), is unset before the
operator's set-up and the task's own variables."""


@dataclass(frozen=True)
class ClusterPlan:
    """Where a job goes on the cluster, resolved from the client's instance_type and account."""

    instance: InstanceType
    slurm_account: str


def plan_for(
    instance_type: str, account: str, types: Mapping[str, InstanceType], accounts: Mapping[str, str]
) -> ClusterPlan:
    if instance_type not in types:
        raise InvalidJob(f"instance_type {instance_type!r} is not offered; choose one of {sorted(types)}")
    if account not in accounts:
        raise InvalidJob(f"account {account!r} may not submit to this cluster")
    return ClusterPlan(instance=types[instance_type], slurm_account=accounts[account])


def render_batch_script(
    *,
    task_id: str,
    work_dir: str,
    argv: tuple[str, ...],
    environment: Mapping[str, str],
    plan: ClusterPlan,
    setup: str = "",
) -> str:
    """A bash batch script that runs ``argv`` in ``work_dir/processor`` with ``environment`` exported."""
    if not SBATCH_VALUE.fullmatch(work_dir) or not re.fullmatch(r"[0-9a-f]{32}", task_id):
        raise ValueError("work folder and task id must be plain paths and hex ids")
    instance = plan.instance
    directives = [
        f"--job-name=ancora-{task_id[:12]}",
        f"--output={work_dir}/{LOG_NAME}",
        f"--chdir={work_dir}/processor",
        f"--partition={instance.partition}",
        f"--time={instance.time_limit}",
        f"--cpus-per-task={instance.cpus}",
    ]
    if plan.slurm_account:
        directives.append(f"--account={plan.slurm_account}")
    if instance.gpus:
        directives.append(f"--gpus={instance.gpus}")
    if instance.mem:
        directives.append(f"--mem={instance.mem}")
    lines = ["#!/bin/bash", *(f"#SBATCH {directive}" for directive in directives), ""]
    lines += [
        "# a minimal environment: only what KEPT_VARIABLES names survives from the submitting session",
        "for name in $(compgen -e); do",
        f'  case "$name" in {"|".join(KEPT_VARIABLES)}) ;; *) unset "$name" 2>/dev/null ;; esac',
        "done",
        "unset name",
        "",
    ]
    if setup.strip():
        lines += ["# operator's set-up (ANCORA_HPC_JOB_SETUP)", setup.strip(), ""]
    for name, value in sorted(environment.items()):
        if not name.isidentifier():
            raise ValueError(f"environment variable name {name!r}")
        lines.append(f"export {name}={shlex.quote(value)}")
    lines += ["", f"exec {shlex.join(argv)}", ""]
    return "\n".join(lines)


def parse_sbatch_output(stdout: str) -> str:
    """``sbatch --parsable`` prints ``jobid`` or ``jobid;cluster``."""
    job_id = stdout.strip().splitlines()[-1].split(";")[0].strip() if stdout.strip() else ""
    if not JOB_ID.fullmatch(job_id):
        raise RuntimeError(f"sbatch answered {stdout.strip()!r}, not a job id")
    return job_id


def check_job_id(job_id: str) -> str:
    """Job ids are pasted into remote commands, so they must be what Slurm hands out: digits."""
    if not JOB_ID.fullmatch(job_id):
        raise ValueError(f"{job_id!r} is not a Slurm job id")
    return job_id


def state_command(job_id: str) -> str:
    """One round trip: squeue knows live and recently finished jobs, sacct the rest (with accounting)."""
    job = check_job_id(job_id)
    return (
        f"state=$(squeue -h -t all -j {job} -o %T 2>/dev/null | head -n 1); "
        f'if [ -n "$state" ]; then echo "$state"; '
        f"else sacct -n -X -P -j {job} -o State 2>/dev/null | head -n 1; fi"
    )

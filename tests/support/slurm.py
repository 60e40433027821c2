"""A real single-node Slurm cluster and an sshd in front of it, for the HPC runner's tests.

Installs Debian's ``slurm-wlm``, ``munge`` and ``openssh-server`` when missing, then starts, with
every file under one temporary folder: munged (own key and socket), slurmctld and slurmd (own ports,
``ProctrackType=proctrack/linuxproc``, ``TaskPlugin=task/none``, ``SelectType=select/cons_tres``,
no accounting), and an sshd on 127.0.0.1 and a free port with a generated host key and a generated
client key in a temporary ``AuthorizedKeysFile``. Only the processes started here are stopped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.simulator import free_port

PACKAGES = ("slurm-wlm", "munge", "openssh-server")
BINARIES = ("slurmctld", "slurmd", "sbatch", "munged", "mungekey", "sshd", "ssh-keygen")
SBIN = ("/usr/sbin", "/usr/bin", "/sbin")
START_TIMEOUT_SECONDS = 60.0
PARTITION = "debug"


@dataclass
class SlurmCluster:
    """How to reach the test cluster: SSH coordinates for the runner, SLURM_CONF for direct checks."""

    folder: Path
    conf: Path
    node: str
    ssh_port: int
    username: str
    key_file: Path
    known_hosts: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def slurm(self, *argv: str) -> str:
        """Run a Slurm command against this cluster on the local host (not over SSH)."""
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=30, check=True)
        return result.stdout

    def job_state(self, job_id: str) -> str:
        """JobState from ``scontrol show job``: without accounting, sacct knows no finished job."""
        output = self.slurm("scontrol", "show", "job", "-o", job_id)
        for word in output.split():
            if word.startswith("JobState="):
                return word.removeprefix("JobState=")
        raise AssertionError(f"no JobState in {output!r}")

    def settings_env(self, work_root: Path) -> dict[str, str]:
        """The ANCORA_HPC_* variables that point the hpc runner at this cluster."""
        return {
            "ANCORA_HPC_HOST": "127.0.0.1",
            "ANCORA_HPC_PORT": str(self.ssh_port),
            "ANCORA_HPC_USERNAME": self.username,
            "ANCORA_HPC_KEY_FILE": str(self.key_file),
            "ANCORA_HPC_KNOWN_HOSTS": str(self.known_hosts),
            "ANCORA_HPC_WORK_ROOT": str(work_root),
            "ANCORA_HPC_INSTANCE_TYPES": (
                f'{{"gpu":{{"partition":"{PARTITION}","gpus":0,"time_limit":"00:10:00"}},'
                f'"cpu":{{"partition":"{PARTITION}","gpus":0,"time_limit":"00:10:00"}}}}'
            ),
            "ANCORA_HPC_ACCOUNTS": '{"default_account":"","twinscie":"twinscie"}',
        }


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (f"{folder}/{name}" for folder in SBIN if Path(folder, name).exists()), None
    )


def ensure_installed() -> None:
    if all(_which(name) for name in BINARIES):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
        check=True,
        env=env,
        capture_output=True,
        timeout=600,
    )


def _binary(name: str) -> str:
    path = _which(name)
    assert path is not None, f"{name} not found after installing {PACKAGES}"
    return path


def _start(cluster: SlurmCluster, name: str, argv: list[str]) -> None:
    log = (cluster.folder / "log" / f"{name}.out").open("ab")
    cluster.processes[name] = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, env=cluster.env, start_new_session=True
    )
    log.close()


def _wait(cluster: SlurmCluster, what: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for name, process in cluster.processes.items():
            if process.poll() is not None:
                log = (cluster.folder / "log" / f"{name}.out").read_text(errors="replace")
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{log[-3000:]}")
        try:
            if ready():
                return
        except (subprocess.SubprocessError, OSError):
            pass
        time.sleep(0.2)
    logs = cluster.folder / "log"
    raise TimeoutError(f"{what} not ready after {START_TIMEOUT_SECONDS:g} s; logs in {logs}")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _write_slurm_conf(cluster: SlurmCluster, munge_socket: Path) -> None:
    folder = cluster.folder
    cpus = os.cpu_count() or 1
    cluster.conf.write_text(
        "\n".join(
            [
                "ClusterName=ancoratest",
                f"SlurmctldHost={cluster.node}(127.0.0.1)",
                f"SlurmctldPort={free_port()}",
                f"SlurmdPort={free_port()}",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={munge_socket}",
                f"StateSaveLocation={folder / 'state'}",
                f"SlurmdSpoolDir={folder / 'spool'}",
                f"SlurmctldPidFile={folder / 'run' / 'slurmctld.pid'}",
                f"SlurmdPidFile={folder / 'run' / 'slurmd.pid'}",
                f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={folder / 'log' / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "AccountingStorageType=accounting_storage/none",
                "JobAcctGatherType=jobacct_gather/none",
                "JobCompType=jobcomp/none",
                "SlurmUser=root",
                "SlurmdUser=root",
                "MpiDefault=none",
                "ReturnToService=2",
                "MailProg=/bin/true",
                "KillWait=2",
                f"NodeName={cluster.node} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN",
                f"PartitionName={PARTITION} Nodes={cluster.node} Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )


def _write_sshd(cluster: SlurmCluster, keygen: str) -> Path:
    folder = cluster.folder
    host_key = folder / "ssh" / "ssh_host_ed25519_key"
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(cluster.key_file)], check=True)
    authorized = folder / "ssh" / "authorized_keys"
    authorized.write_text(Path(f"{cluster.key_file}.pub").read_text())
    authorized.chmod(0o600)
    key_type, key_data = Path(f"{host_key}.pub").read_text().split()[:2]
    cluster.known_hosts.write_text(f"[127.0.0.1]:{cluster.ssh_port} {key_type} {key_data}\n")
    config = folder / "ssh" / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {cluster.ssh_port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {folder / 'run' / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",
                f"SetEnv SLURM_CONF={cluster.conf}",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    return config


def _stop(cluster: SlurmCluster) -> None:
    if "slurmctld" in cluster.processes and cluster.processes["slurmctld"].poll() is None:
        subprocess.run(
            ["scancel", "--user", cluster.username], env=cluster.env, capture_output=True, timeout=30
        )
    for name in ("sshd", "slurmd", "slurmctld", "munged"):
        process = cluster.processes.get(name)
        if process is None or process.poll() is not None:
            continue
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_slurm(folder: Path) -> Iterator[SlurmCluster]:
    """Start munged, slurmctld, slurmd and sshd under ``folder``; stop exactly those on exit."""
    ensure_installed()
    folder = folder.resolve()
    for sub in ("state", "spool", "run", "log", "munge", "ssh"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    (folder / "munge").chmod(0o700)
    cluster = SlurmCluster(
        folder=folder,
        conf=folder / "slurm.conf",
        node=socket.gethostname().split(".")[0],
        ssh_port=free_port(),
        username="root",
        key_file=folder / "ssh" / "id_ed25519",
        known_hosts=folder / "ssh" / "known_hosts",
    )
    munge_socket = folder / "munge" / "munge.socket"
    key = folder / "munge" / "munge.key"
    subprocess.run([_binary("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
    key.chmod(0o600)
    _write_slurm_conf(cluster, munge_socket)
    sshd_config = _write_sshd(cluster, _binary("ssh-keygen"))
    with ExitStack() as stack:
        stack.callback(_stop, cluster)
        _start(
            cluster,
            "munged",
            [
                _binary("munged"), "--foreground", "--force",
                f"--socket={munge_socket}", f"--key-file={key}",
                f"--pid-file={folder / 'munge' / 'munged.pid'}",
                f"--log-file={folder / 'log' / 'munged.log'}",
                f"--seed-file={folder / 'munge' / 'munged.seed'}",
            ],
        )  # fmt: skip
        _wait(cluster, "munged", lambda: munge_socket.exists())
        _start(cluster, "slurmctld", [_binary("slurmctld"), "-D", "-i", "-f", str(cluster.conf)])
        _wait(cluster, "slurmctld", lambda: cluster.slurm("scontrol", "ping").find("UP") >= 0)
        _start(cluster, "slurmd", [_binary("slurmd"), "-D", "-N", cluster.node, "-f", str(cluster.conf)])
        _wait(cluster, "slurmd", lambda: "idle" in cluster.slurm("sinfo", "-h", "-o", "%T"))
        _start(cluster, "sshd", [_binary("sshd"), "-D", "-e", "-f", str(sshd_config)])
        _wait(cluster, "sshd", lambda: _port_open(cluster.ssh_port))
        yield cluster

"""Real farm engines for the tests, started and stopped by them: a single-node SLURM (Debian's slurm-wlm + munge) and
a Ray head on loopback. Each lives in its own temp dir with its own ports and sockets; teardown stops exactly the
daemons it started (by their pid files / process group) and nothing else on the machine."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

SBIN = Path("/usr/sbin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


class Slurm:
    """A one-node SLURM cluster; `env` is what client commands (sbatch, squeue, scontrol) need to reach it."""

    def __init__(self, root: Path):
        self.root, self.host = root, socket.gethostname()
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, check=check, timeout=timeout)

    def sbatch(self, *args: str, wait: bool = False) -> tuple[str, int]:
        """Submit; returns the job id and, with wait=True, sbatch's exit code (the job's, or the worst task's)."""
        result = self.run("sbatch", "--parsable", *(["--wait"] if wait else []), *args, check=False)
        if not result.stdout.strip():
            raise RuntimeError(f"sbatch failed: {result.stderr}")
        return result.stdout.strip().split(";")[0].splitlines()[0], result.returncode

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as key=value pairs (first task of an array)."""
        out = self.run("scontrol", "-o", "show", "job", job_id, check=False).stdout.splitlines()
        return dict(field.split("=", 1) for field in (out[0].split() if out else []) if "=" in field)

    def wait_gone(self, job_id: str, timeout: float = 600) -> None:
        _wait(lambda: not self.run("squeue", "-h", "-j", job_id, check=False).stdout.strip(), timeout,
              f"job {job_id} to leave the queue")  # fmt: skip


def slurm_missing() -> str | None:
    needed = [SBIN / "slurmctld", SBIN / "slurmd", SBIN / "munged"]
    if not all(p.exists() for p in needed) or not shutil.which("sbatch"):
        return "SLURM is not installed (Debian: apt-get install slurm-wlm munge; .ci/run does it)"
    if os.geteuid() != 0:
        return "the test SLURM cluster runs its daemons as root"
    return None


@contextmanager
def slurm_cluster(root: Path, cpus: int = 4) -> Iterator[Slurm]:
    cluster = Slurm(root)
    (root / "state").mkdir(parents=True)
    (root / "spool").mkdir()
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    sock = root / "munge.sock"
    plugins = next(Path("/usr/lib").glob("*/slurm-wlm"), Path("/usr/lib/slurm-wlm"))
    cluster.conf.write_text(f"""\
ClusterName=fbgentest
SlurmctldHost={cluster.host}
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=10
MinJobAge=600
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
PluginDir={plugins}
NodeName={cluster.host} CPUs={cpus} RealMemory=65536 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    pids = [root / "slurmd.pid", root / "slurmctld.pid", root / "munged.pid"]
    try:
        subprocess.run([str(SBIN / "munged"), f"--socket={sock}", f"--key-file={key}", f"--pid-file={pids[2]}",
                        f"--log-file={root}/munged.log", f"--seed-file={root}/munge.seed", "--force"],
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run([str(SBIN / "slurmctld"), "-f", str(cluster.conf), "-i"], check=True, env=cluster.env,
                       capture_output=True)  # fmt: skip
        subprocess.run([str(SBIN / "slurmd"), "-f", str(cluster.conf)], check=True, env=cluster.env,
                       capture_output=True)  # fmt: skip
        _wait(lambda: cluster.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip() == "idle", 60,
              "the SLURM node to be idle")  # fmt: skip
        yield cluster
    finally:
        if cluster.conf.exists() and (root / "slurmctld.pid").exists():
            cluster.run("scancel", "--full", "--partition=test", check=False, timeout=30)
            with suppress(RuntimeError):
                _wait(lambda: not cluster.run("squeue", "-h", check=False).stdout.strip(), 60, "jobs to end")
        for pid_file in pids:  # exactly the daemons this cluster started
            _stop(pid_file)


def _stop(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text():
                return  # exited; only not reaped yet
        except OSError:
            return
        time.sleep(0.2)
    with suppress(OSError):
        os.kill(pid, signal.SIGKILL)


class RayHead:
    """`ray start --head --block` on loopback with its own ports and temp dir; `address` is what --ray takes."""

    def __init__(self, ray: str, root: Path, cpus: int):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.client_port = free_port()
        self.proc = subprocess.Popen(
            [ray, "start", "--head", "--block", f"--port={self.port}", "--node-ip-address=127.0.0.1",
             f"--num-cpus={cpus}", "--num-gpus=0", f"--temp-dir={root}", "--include-dashboard=false",
             "--disable-usage-stats", f"--ray-client-server-port={self.client_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "RAY_ADDRESS": ""},
        )  # fmt: skip

    def wait_ready(self, timeout: float = 120) -> None:
        def listening() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.proc.returncode}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        _wait(listening, timeout, "the Ray head")

    def stop(self) -> None:
        """SIGTERM to the head's process group (every process `ray start` began), SIGKILL what is left after 5 s."""
        with suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        with suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

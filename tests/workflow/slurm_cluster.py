"""A one-node SLURM cluster started in a scratch folder, for the workflow tests.

As root (CI), Debian's ``slurm-wlm`` + ``munge`` are installed with apt when missing (bounded in
time; skipped when ``slurmctld`` is already there), then ``munged``, ``slurmctld`` and
``slurmd`` are started in a scratch folder with their own munge socket, config (``SLURM_CONF``)
and pid files; /etc/slurm/slurm.conf (read by `srun` inside jobs) is written for the test and
restored afterwards. The daemons are stopped by the PIDs in their pid files. Where SLURM cannot
be started (not root, no apt, install failure, a daemon that does not come up) the caller gets
``pytest.skip``'s exception with the reason.

All of this is opt-in: nothing is installed or started unless ``TMEFLOW_SLURM=1`` (``make
test-slurm`` and ``.ci/run`` set it; ``make test`` leaves it unset and deselects the marker
``slurm``). ``TMEFLOW_SLURM_NO_INSTALL=1`` still forbids the apt install (a SLURM already
installed is then used).
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

APT_TIMEOUT_S = 900
START_TIMEOUT_S = 60
RUN_TIMEOUT_S = 3600
PACKAGES = ("slurm-wlm", "munge")
ETC_CONF = Path("/etc/slurm/slurm.conf")
#: The variable that asks for the SLURM test (installs and daemons as root); off when unset,
#: empty or one of :data:`OFF`.
OPT_IN = "TMEFLOW_SLURM"
OFF = ("", "0", "no", "false")


def requested() -> bool:
    """Whether ``TMEFLOW_SLURM`` asks for the SLURM cluster (``1``, ``yes``, ...)."""
    return os.environ.get(OPT_IN, "").strip().lower() not in OFF


def tail(path: Path, n: int = 2000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else f"({path} missing)"


def _apt(*args: str, timeout: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(
        ["apt-get", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def ensure_installed() -> None:
    """Install slurm-wlm + munge with apt unless present; skip the test where not possible."""
    if shutil.which("slurmctld") and shutil.which("slurmd") and shutil.which("munged"):
        return
    if os.environ.get("TMEFLOW_SLURM_NO_INSTALL"):
        pytest.skip("SLURM is not installed and TMEFLOW_SLURM_NO_INSTALL forbids installing it")
    if os.geteuid() != 0:
        pytest.skip("SLURM is not installed and installing it needs root (apt-get)")
    if not shutil.which("apt-get"):
        pytest.skip("SLURM is not installed and there is no apt-get to install it")
    try:
        proc = _apt(
            "install", "-y", "-q", "--no-install-recommends", *PACKAGES, timeout=APT_TIMEOUT_S
        )
        if proc.returncode != 0:  # stale package lists: update once, then retry
            _apt("update", "-q", timeout=APT_TIMEOUT_S)
            proc = _apt(
                "install", "-y", "-q", "--no-install-recommends", *PACKAGES, timeout=APT_TIMEOUT_S
            )
    except subprocess.TimeoutExpired:
        pytest.skip(f"apt-get did not finish within {APT_TIMEOUT_S} s")
    if proc.returncode != 0 or not shutil.which("slurmctld"):
        pytest.skip(f"apt-get install {' '.join(PACKAGES)} failed:\n{proc.stderr[-1500:]}")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_by_pidfile(path: Path, timeout: float = 15) -> None:
    """SIGTERM the PID written in ``path`` (SIGKILL after ``timeout``); never by name."""
    pid = _read_pid(path)
    if pid is None or not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(1)
    return False


def slurm_conf(scratch: Path, host: str, cpus: int, mem_mb: int) -> str:
    return f"""\
ClusterName=tmeflowtest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={scratch}/munge/munge.socket
StateSaveLocation={scratch}/state
SlurmdSpoolDir={scratch}/spool
SlurmctldPidFile={scratch}/slurmctld.pid
SlurmdPidFile={scratch}/slurmd.pid
SlurmctldLogFile={scratch}/slurmctld.log
SlurmdLogFile={scratch}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=600
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=main Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class Cluster:
    """A one-node SLURM cluster with its own munged, config and state in ``scratch``."""

    def __init__(self, scratch: Path, cpus: int = 2):
        self.scratch = scratch
        self.cpus = cpus
        self.conf = scratch / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self._etc_backup: bytes | None = None
        self._etc_written = False
        self.pidfiles = [
            scratch / "slurmd.pid",
            scratch / "slurmctld.pid",
            scratch / "munge/munged.pid",
        ]

    def _run(self, *cmd: str, timeout: int = 30) -> subprocess.CompletedProcess:
        return subprocess.run(
            cmd, capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )

    def start(self) -> None:
        s = self.scratch
        munge_dir = s / "munge"
        munge_dir.mkdir()
        for sub in ("state", "spool"):
            (s / sub).mkdir()
        user = pwd.getpwnam("munge")
        key = munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        for path in (munge_dir, key):
            os.chown(path, user.pw_uid, user.pw_gid)
        key.chmod(0o400)
        munge_dir.chmod(0o711)
        proc = subprocess.run(
            ["runuser", "-u", "munge", "--", shutil.which("munged"),
             f"--socket={munge_dir}/munge.socket", f"--key-file={key}",
             f"--pid-file={munge_dir}/munged.pid", f"--log-file={munge_dir}/munged.log",
             f"--seed-file={munge_dir}/munged.seed"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            self.skip(f"munged did not start: {proc.stderr[-800:]}")
        mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.9)
        host = socket.gethostname().split(".")[0]
        self.conf.write_text(slurm_conf(s, host, self.cpus, mem_mb))
        # Inside a batch job, slurmstepd does not pass SLURM_CONF on, so the `srun` that the
        # executor's job step runs reads /etc/slurm/slurm.conf: put ours there for the test,
        # restoring whatever was there in stop().
        self._etc_backup = ETC_CONF.read_bytes() if ETC_CONF.exists() else None
        self._etc_written = True
        ETC_CONF.parent.mkdir(parents=True, exist_ok=True)
        ETC_CONF.write_text(self.conf.read_text())
        for daemon in ("slurmctld", "slurmd"):
            proc = self._run(shutil.which(daemon), "-f", str(self.conf))
            if proc.returncode != 0:
                self.skip(f"{daemon} did not start ({proc.returncode}): {proc.stderr[-800:]}")
            if daemon == "slurmctld" and not _wait(
                lambda: self._run("scontrol", "ping").returncode == 0, START_TIMEOUT_S
            ):
                self.skip("slurmctld does not answer `scontrol ping`")
        if not _wait(self.idle, START_TIMEOUT_S):
            self.skip(f"the node is not idle after {START_TIMEOUT_S} s")

    def idle(self) -> bool:
        out = self._run("sinfo", "-h", "-N", "-o", "%t").stdout.split()
        return bool(out) and all(state == "idle" for state in out)

    def skip(self, reason: str) -> None:
        logs = "\n".join(
            f"--- {p.name}\n{tail(p, 1000)}"
            for p in (self.scratch / "slurmctld.log", self.scratch / "slurmd.log")
        )
        self.stop()
        pytest.skip(f"SLURM cannot be started here: {reason}\n{logs}")

    def stop(self) -> None:
        for pidfile in self.pidfiles:
            stop_by_pidfile(pidfile)
        if self._etc_written:
            if self._etc_backup is None:
                ETC_CONF.unlink(missing_ok=True)
            else:
                ETC_CONF.write_bytes(self._etc_backup)
            self._etc_written = False


@contextmanager
def running_cluster() -> Iterator[Cluster]:
    """Start the cluster (installing SLURM when allowed); stop its daemons on leaving.

    Raises ``pytest.skip.Exception`` with the reason where SLURM was not asked for
    (:func:`requested`) or cannot be started here.
    """
    if not requested():
        pytest.skip(
            f"SLURM is opt-in (as root it apt-installs {' '.join(PACKAGES)} and starts daemons):"
            f" set {OPT_IN}=1 or run `make test-slurm`"
        )
    if os.geteuid() != 0:
        pytest.skip("a local SLURM cluster needs root (slurmd runs jobs as their user)")
    ensure_installed()
    for tool in ("runuser", "sinfo", "sbatch", "squeue", "scontrol"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not found after installing {' '.join(PACKAGES)}")
    # Not under pytest's tmp (mode 700): munged runs as the munge user and needs to enter it.
    scratch = Path(tempfile.mkdtemp(prefix="tmeflow-slurm-"))
    scratch.chmod(0o755)
    cluster = Cluster(scratch)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)

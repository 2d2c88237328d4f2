"""A workflow run killed twice (SIGKILL of the whole process group) and resumed each time.

:func:`kill_and_resume` runs the small demo the way a crashed user's run goes: killed while
scVI trains, resumed with ``--rerun-incomplete``, killed again while DE runs, resumed to the
end. The session's ``demo_run`` is this run; ``test_reproducibility`` compares it byte for byte
with an uninterrupted run of the same code and config (``fresh_run``), so a difference is
either nondeterminism or a resume that went wrong.
"""

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import snakemake

# Guard against a hung run only; nothing is asserted about durations.
STAGE_DEADLINE_S = 3600
POLL_S = 0.5
INTEGRATED = "results/integrate/integrated.h5ad"
GOI = "results/de/genes_of_interest.tsv"


def incomplete_marker(work: Path, rel: str) -> Path:
    """Snakemake's marker of an output whose job started but did not finish."""
    return work / ".snakemake" / "incomplete" / base64.urlsafe_b64encode(rel.encode()).decode()


def _start(work: Path, cfg: Path, name: str, *extra: str) -> subprocess.Popen:
    with (work / f"{name}.out").open("w") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(cfg), *extra],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill reaches every job
        )


def _kill_when(proc: subprocess.Popen, work: Path, name: str, ready) -> None:
    """Wait until ``ready()``; then SIGKILL the whole process group of ``proc``."""
    deadline = time.monotonic() + STAGE_DEADLINE_S
    while not ready():
        if proc.poll() is not None:
            tail = (work / f"{name}.out").read_text()[-4000:]
            pytest.fail(
                f"{name}: snakemake ended ({proc.returncode}) before the kill point:\n{tail}"
            )
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"{name}: kill point not reached")
        time.sleep(POLL_S)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _log_says(path: Path, text: str) -> bool:
    return path.is_file() and text in path.read_text(errors="replace")


def _not_left_finished(work: Path, rel: str) -> bool:
    """The output is absent, or Snakemake marked it incomplete (so it will be rebuilt)."""
    return not (work / rel).exists() or incomplete_marker(work, rel).exists()


def kill_and_resume(work: Path, cfg: Path) -> dict:
    """Run the workflow in ``work``, killed during scVI, then during DE, each time resumed.

    Returns what was seen at each kill (``work`` included) for the tests to check.
    """
    seen: dict = {"work": work}
    scvi_log = work / "logs/integrate_scvi/integrate_scvi.log"
    proc = _start(work, cfg, "run1")
    # Training has started once Lightning reports the devices; not finished while no output.
    _kill_when(
        proc,
        work,
        "run1",
        lambda: _log_says(scvi_log, "GPU available") and not (work / INTEGRATED).exists(),
    )
    seen["scvi_log_at_kill"] = scvi_log.read_text(errors="replace")
    seen["integrated_ok_after_kill1"] = _not_left_finished(work, INTEGRATED)

    # A killed run leaves its lock; releasing it is part of resuming.
    snakemake(work, "--unlock", "--configfile", str(cfg))
    de_log = work / "logs/de_pseudobulk/de_pseudobulk.log"
    proc = _start(work, cfg, "run2", "--rerun-incomplete")
    # At least one cell type tested, and the job not finished.
    _kill_when(
        proc,
        work,
        "run2",
        lambda: _log_says(de_log, "tmeflow.stats._de: DE cell_type=") and not (work / GOI).exists(),
    )
    seen["goi_ok_after_kill2"] = _not_left_finished(work, GOI)
    seen["integrated_after_kill2"] = (work / INTEGRATED).is_file()

    snakemake(work, "--unlock", "--configfile", str(cfg))
    snakemake(work, "--rerun-incomplete", "--configfile", str(cfg))
    return seen

"""The small demo runs shared by the end-to-end test modules (each takes minutes).

- ``demo_run``: the whole workflow on the small demo, killed twice and resumed
  (:mod:`.resume`); the demo tests check its results, ``test_reproducibility`` its resume.
- ``fresh_run``: the same code and config run once more, uninterrupted, on a one-node SLURM
  cluster with one CPU per job (:mod:`.slurm_cluster`; opt-in: ``TMEFLOW_SLURM=1``, ``make
  test-slurm``), or locally with ``--cores 1`` where SLURM was not asked for or cannot be
  started here. Its outputs must equal ``demo_run``'s byte for byte: that shows
  at once that a run is deterministic, that resuming after a crash changes nothing, that
  ``--cores`` (each job's CPUs) does not change results, and that the SLURM profile works.

Both start in the background when the tests are collected (:mod:`.background`), from copies of
the code taken at that same moment, while the unit tests run.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from . import background
from .helpers import SMALL_DEMO, snakemake, write_config
from .resume import kill_and_resume
from .slurm_cluster import RUN_TIMEOUT_S, running_cluster, tail


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the long runs the selected tests need (:mod:`.background`)."""
    background.start(session)


def pytest_sessionfinish(session: pytest.Session) -> None:
    background.stop()


@background.register("demo_resumed", cost_s=350)
def _build_demo_resumed(work: Path) -> dict:
    cfg = write_config(work, SMALL_DEMO)
    return kill_and_resume(work, cfg)


@pytest.fixture(scope="session")
def demo_resumed(tmp_path_factory) -> dict:
    """The small demo in a fresh copy of the repository, killed during scVI and DE, resumed."""
    return background.result("demo_resumed", tmp_path_factory)


@pytest.fixture(scope="session")
def demo_run(demo_resumed) -> Path:
    """The finished small demo run (see ``demo_resumed``)."""
    return demo_resumed["work"]


def _on_slurm(work: Path, cfg: Path) -> dict:
    """Run the workflow through profiles/slurm on a local cluster; raises Skipped without one."""
    with running_cluster() as cluster:
        cmd = [
            sys.executable, "-m", "snakemake", "--configfile", str(cfg),
            "--profile", "profiles/slurm", "--profile", "tests/slurm/profile",
        ]  # fmt: skip
        proc = subprocess.run(
            cmd, cwd=work, env=cluster.env, capture_output=True, text=True,
            timeout=RUN_TIMEOUT_S, check=False,
        )  # fmt: skip
    slurm_logs = "\n".join(
        f"--- {p}\n{tail(p, 1500)}"
        for p in sorted((work / ".snakemake").rglob("slurm_logs/**/*.log"))
    )
    assert proc.returncode == 0, f"{proc.stderr[-5000:]}\n{slurm_logs[-8000:]}"
    return {"work": work, "executor": "slurm", "why_local": None}


@background.register("fresh_run", cost_s=575)
def _build_fresh_run(work: Path) -> dict:
    """The demo's code (copied at the same moment as ``demo_resumed``'s) and config, once.

    ``-m "not slurm"`` asks for the local run without trying SLURM.
    """
    shutil.copytree(Path(__file__).parents[1] / "slurm", work / "tests" / "slurm")
    cfg = write_config(work, SMALL_DEMO)
    try:
        if "not slurm" in background.MARKEXPR[0]:
            pytest.skip("SLURM deselected with -m 'not slurm'")
        return _on_slurm(work, cfg)
    except pytest.skip.Exception as exc:
        # No SLURM here: the same comparison, locally with one core (demo_run has two).
        snakemake(work, "--configfile", str(cfg), cores=1)
        return {"work": work, "executor": "local --cores 1", "why_local": str(exc)}


@pytest.fixture(scope="session")
def fresh_run(demo_run, tmp_path_factory) -> dict:
    """An uninterrupted run of ``demo_run``'s code and config: SLURM, else ``--cores 1``."""
    run = background.result("fresh_run", tmp_path_factory)
    assert yaml.safe_load((run["work"] / "test.yaml").read_text()) == SMALL_DEMO
    assert yaml.safe_load((demo_run / "test.yaml").read_text()) == SMALL_DEMO
    return run

"""The small demo runs shared by the end-to-end test modules (each takes minutes).

- ``demo_run``: the whole workflow on the small demo, killed twice and resumed
  (:mod:`.resume`); the demo tests check its results, ``test_reproducibility`` its resume.
- ``fresh_run``: the same code and config run once more, uninterrupted, on a one-node SLURM
  cluster with one CPU per job (:mod:`.slurm_cluster`), or locally with ``--cores 1`` where
  SLURM cannot be started here. Its outputs must equal ``demo_run``'s byte for byte: that shows
  at once that a run is deterministic, that resuming after a crash changes nothing, that
  ``--cores`` (each job's CPUs) does not change results, and that the SLURM profile works.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .helpers import COPY, SMALL_DEMO, copy_workflow, snakemake, write_config
from .resume import kill_and_resume
from .slurm_cluster import RUN_TIMEOUT_S, running_cluster, tail


@pytest.fixture(scope="session")
def demo_resumed(tmp_path_factory) -> dict:
    """The small demo in a fresh copy of the repository, killed during scVI and DE, resumed."""
    work = copy_workflow(tmp_path_factory.mktemp("demo"))
    cfg = write_config(work, SMALL_DEMO)
    return kill_and_resume(work, cfg)


@pytest.fixture(scope="session")
def demo_run(demo_resumed) -> Path:
    """The finished small demo run (see ``demo_resumed``)."""
    return demo_resumed["work"]


def _copy_code(src: Path, dest: Path) -> Path:
    """The workflow code and config of the run in ``src`` (not its results), into ``dest``.

    Copying from the ``demo_run`` folder, not from the repository, makes both runs use the
    same code even when the repository changes while the tests run.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        if (src / name).is_dir():
            shutil.copytree(src / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src / name, dest / name)
    return dest


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


@pytest.fixture(scope="session")
def fresh_run(demo_run, tmp_path_factory, request) -> dict:
    """An uninterrupted run of ``demo_run``'s code and config: SLURM, else ``--cores 1``.

    ``-m "not slurm"`` asks for the local run without trying SLURM.
    """
    work = _copy_code(demo_run, tmp_path_factory.mktemp("fresh"))
    shutil.copytree(Path(__file__).parents[1] / "slurm", work / "tests" / "slurm")
    cfg = work / "test.yaml"
    shutil.copy2(demo_run / "test.yaml", cfg)
    assert yaml.safe_load(cfg.read_text()) == SMALL_DEMO
    try:
        if "not slurm" in (request.config.option.markexpr or ""):
            pytest.skip("SLURM deselected with -m 'not slurm'")
        return _on_slurm(work, cfg)
    except pytest.skip.Exception as exc:
        # No SLURM here: the same comparison, locally with one core (demo_run has two).
        snakemake(work, "--configfile", str(cfg), cores=1)
        return {"work": work, "executor": "local --cores 1", "why_local": str(exc)}

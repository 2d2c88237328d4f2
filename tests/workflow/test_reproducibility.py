"""Determinism and resume after a crash, on the small demo.

One extra workflow run serves both properties: a fresh copy of the code of the session
``demo_run`` is run with its config, SIGKILLed (whole process group) while scVI trains,
resumed with ``--rerun-incomplete``, SIGKILLed again while DE runs, and resumed to the end.
Its outputs are then compared with the uninterrupted ``demo_run``: a difference is either
nondeterminism or a resume that went wrong, and both must be fixed.
"""

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest
import yaml

from .helpers import COPY, SMALL_DEMO, snakemake

pytestmark = pytest.mark.workflow

# Guard against a hung run only; nothing is asserted about durations.
STAGE_DEADLINE_S = 3600
POLL_S = 0.5
TABLE_SUFFIXES = (".tsv", ".tsv.gz")
FIGURE_SUFFIXES = (".pdf", ".png")
# Wall-clock times: the only output allowed to differ between runs.
NOT_COMPARED = {"results/provenance_times.json"}


def _incomplete_marker(work: Path, rel: str) -> Path:
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
    return not (work / rel).exists() or _incomplete_marker(work, rel).exists()


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


@pytest.fixture(scope="module")
def resumed_run(demo_run, tmp_path_factory) -> dict:
    """A fresh run of the demo killed during scVI, then during DE, each time resumed."""
    work = _copy_code(demo_run, tmp_path_factory.mktemp("resumed"))
    cfg = work / "test.yaml"
    shutil.copy2(demo_run / "test.yaml", cfg)
    assert yaml.safe_load(cfg.read_text()) == SMALL_DEMO
    seen: dict = {"work": work}

    scvi_log = work / "logs/integrate_scvi/integrate_scvi.log"
    integrated = "results/integrate/integrated.h5ad"
    proc = _start(work, cfg, "run1")
    # Training has started once Lightning reports the devices; not finished while no output.
    _kill_when(
        proc,
        work,
        "run1",
        lambda: _log_says(scvi_log, "GPU available") and not (work / integrated).exists(),
    )
    seen["scvi_log_at_kill"] = scvi_log.read_text(errors="replace")
    seen["integrated_ok_after_kill1"] = _not_left_finished(work, integrated)
    seen["tmp_after_kill1"] = sorted(str(p.relative_to(work)) for p in work.rglob("*.tmp"))

    # A killed run leaves its lock; releasing it is part of resuming.
    snakemake(work, "--unlock", "--configfile", str(cfg))
    de_log = work / "logs/de_pseudobulk/de_pseudobulk.log"
    goi = "results/de/genes_of_interest.tsv"
    proc = _start(work, cfg, "run2", "--rerun-incomplete")
    # At least one cell type tested, and the job not finished.
    _kill_when(
        proc,
        work,
        "run2",
        lambda: _log_says(de_log, "tmeflow.de: DE cell_type=") and not (work / goi).exists(),
    )
    seen["goi_ok_after_kill2"] = _not_left_finished(work, goi)
    seen["integrated_after_kill2"] = (work / integrated).is_file()

    snakemake(work, "--unlock", "--configfile", str(cfg))
    snakemake(work, "--rerun-incomplete", "--configfile", str(cfg))
    return seen


def _files(root: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in sorted((root / "results").rglob("*"))
        if p.is_file()
        and p.name.endswith(suffixes)
        and str(p.relative_to(root)) not in NOT_COMPARED
    }


def _differing(a: Path, b: Path, suffixes: tuple[str, ...]) -> tuple[list[str], list[str]]:
    fa, fb = _files(a, suffixes), _files(b, suffixes)
    assert sorted(fa) == sorted(fb), "different sets of output files"
    return sorted(fa), [rel for rel in fa if fa[rel].read_bytes() != fb[rel].read_bytes()]


def test_killed_jobs_never_leave_a_finished_output(resumed_run):
    assert "`Trainer.fit` stopped" not in resumed_run["scvi_log_at_kill"], "killed after training"
    assert resumed_run["integrated_ok_after_kill1"]
    assert resumed_run["goi_ok_after_kill2"]
    # The scVI result of the second run was kept when it was killed during DE.
    assert resumed_run["integrated_after_kill2"]


def test_every_h5ad_opens_after_resume(resumed_run):
    work = resumed_run["work"]
    h5ads = sorted((work / "results").rglob("*.h5ad"))
    assert len(h5ads) >= 6 * 3 + 4  # ingest, species, qc per sample; merged..annotated
    for path in h5ads:
        adata = ad.read_h5ad(path, backed="r")
        try:
            assert adata.n_obs > 0 and adata.n_vars > 0, path
        finally:
            adata.file.close()


def test_resumed_run_has_nothing_left_to_do(resumed_run):
    work = resumed_run["work"]
    dry = snakemake(work, "-n", "--configfile", str(work / "test.yaml"))
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_tables_byte_identical_to_uninterrupted_run(demo_run, resumed_run):
    compared, differing = _differing(demo_run, resumed_run["work"], TABLE_SUFFIXES)
    assert len(compared) >= 30, compared
    assert "results/annotate/labels.tsv.gz" in compared
    assert differing == []


def test_labels_identical_to_uninterrupted_run(demo_run, resumed_run):
    def labels(root: Path) -> pd.DataFrame:
        obs = ad.read_h5ad(root / "results/annotate/annotated.h5ad", backed="r").obs
        return obs[["sample", "barcode", "leiden", "cell_type", "cell_subtype"]].astype(str)

    one, two = labels(demo_run), labels(resumed_run["work"])
    assert len(one) > 1000
    pd.testing.assert_frame_equal(one, two)


def test_provenance_identical_to_uninterrupted_run(demo_run, resumed_run):
    one = (demo_run / "results/provenance.json").read_bytes()
    two = (resumed_run["work"] / "results/provenance.json").read_bytes()
    assert b'"inputs"' in one
    assert one == two


def test_figures_byte_identical_to_uninterrupted_run(demo_run, resumed_run):
    compared, differing = _differing(demo_run, resumed_run["work"], FIGURE_SUFFIXES)
    assert len(compared) >= 20, compared
    assert differing == []

"""Run the workflow on a copy of the repository in a temporary folder."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COPY = ("Snakefile", "workflow", "config", "profiles")


def copy_workflow(dest: Path) -> Path:
    """Copy what a user's clone holds (not results) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def write_config(dest: Path, overrides: dict, name: str = "test.yaml") -> Path:
    path = dest / name
    path.write_text(yaml.safe_dump(overrides, sort_keys=False))
    return path


def snakemake(
    workdir: Path, *args: str, check: bool = True, cores: int = 2
) -> subprocess.CompletedProcess:
    """Run Snakemake from the venv (the interpreter running the tests) in ``workdir``."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        logs = (
            "\n".join(
                f"--- {p}\n{p.read_text()[-3000:]}"
                for p in sorted((workdir / "logs").rglob("*.log"))
            )
            if (workdir / "logs").exists()
            else ""
        )
        raise AssertionError(
            f"snakemake failed ({proc.returncode}):\n{proc.stderr[-6000:]}\n{logs[-12000:]}"
        )
    return proc


# A small demo that keeps the default design (3 + 3 animals) but fewer cells and epochs.
#: The retraining settings of the test runs: the PCA baseline only (each scVI setting is a whole
#: training; test_one_replicate retrains scVI with another seed).
RETRAIN_PCA_ONLY = {"seeds": 0, "n_latent": [], "n_top_genes": [], "pca": True}

SMALL_DEMO = {
    "demo": {
        "n_replicates": 3,
        "cells_per_sample": 700,
        "n_genes_mouse": 1500,
        "n_genes_human": 600,
    },
    # one torch thread: the suite runs workflows side by side (tests/workflow/background.py)
    "scvi": {"max_epochs": 40, "threads": 1},
    # the DE on the ambient-corrected counts too (off by default: it doubles the DE's time)
    "de": {"ambient_corrected": True},
    # kBET costs minutes per embedding; the other batch metrics (iLISI, BRAS, graph
    # connectivity, PCR) still run. The default config keeps it on.
    "integration_metrics": {"kbet": False},
    # two of the sweep's other resolutions instead of all nine: each is a Leiden run plus a
    # whole re-annotation (the default config tries every one)
    # and of the retraining settings the PCA baseline only
    # and leave-one-marker-out for TAM and its subtypes (25 settings; the default adds CAF's 18:
    # the same code, and the test table keeps 47 settings)
    "sensitivity": {
        "resolutions": [0.4, 1.6],
        "retrain": RETRAIN_PCA_ONLY,
        "marker_out": ["TAM"],
    },
}


def dry_run_jobs(text: str) -> dict[str, int]:
    """Rule -> job count from the first 'Job stats' table of a dry run ('all' excluded)."""
    counts: dict[str, int] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if line.split()[:2] == ["job", "count"]:
            break
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            if parts[0] == "total":
                break
            if parts[0] != "all":
                counts[parts[0]] = int(parts[1])
    return counts

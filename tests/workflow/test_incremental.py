"""Changing only DE parameters re-runs only the DE job and what depends on it (dry run)."""

import shutil

from .helpers import SMALL_DEMO, dry_run_jobs, snakemake, write_config


def test_de_parameter_change_reruns_only_de_and_its_figures(demo_run, tmp_path):
    work = tmp_path / "run"
    shutil.copytree(demo_run, work, symlinks=True)  # keeps mtimes and .snakemake metadata
    same = write_config(work, SMALL_DEMO, "same.yaml")
    proc = snakemake(work, "-n", "--configfile", str(same))
    # Unchanged config: nothing to do, except the provenance record, whose params hold the
    # absolute workflow folder (workflow.basedir), which the copy changes.
    assert set(dry_run_jobs(proc.stdout + proc.stderr)) <= {"provenance"}, proc.stdout[-3000:]

    changed = {**SMALL_DEMO, "de": {"alpha": 0.1, "min_cells": 12}}
    cfg = write_config(work, changed, "changed.yaml")
    proc = snakemake(work, "-n", "--rerun-triggers", "params", "--configfile", str(cfg))
    jobs = dry_run_jobs(proc.stdout + proc.stderr)
    assert "de_pseudobulk" in jobs, proc.stdout[-3000:]
    upstream = {
        *("demo_simulate", "ingest_sample", "species_assign", "qc_filter", "integrate_merge"),
        *("integrate_scvi", "cluster_leiden", "annotate_cells"),
    }
    assert not upstream & set(jobs), jobs
    # Only the DE job, consumers of its outputs or of de.* parameters (composition_test and
    # figures_stats take de.alpha; confirmatory_test and confirmatory_sensitivity de.alpha and
    # de.min_cells, confirmatory_robustness joins them; figures_communication draws the
    # confirmatory table's interaction rows) and the provenance record (the whole config).
    allowed = {"de_pseudobulk", "figures_stats", "gsea_prerank", "figures_gsea",
               "composition_test", "figures_composition", "confirmatory_test",
               "figures_confirmatory", "confirmatory_sensitivity", "figures_sensitivity",
               "confirmatory_robustness", "figures_communication", "provenance"}  # fmt: skip
    assert set(jobs) <= allowed, jobs
    # issue 28: the sensitivity's tests re-run, the labels of its annotation settings do not
    assert "confirmatory_sensitivity" in jobs, jobs
    assert not {"sensitivity_labels", "sensitivity_retrain"} & set(jobs), jobs
    assert all(n == 1 for n in jobs.values()), jobs

"""bench/scaling.py helpers: job-table parsing, config merging and the results table."""

import importlib.util
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("scaling", REPO / "bench" / "scaling.py")
scaling = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scaling)

DRY_RUN = """\
Building DAG of jobs...
Job stats:
job               count
--------------  -------
all                   1
de_pseudobulk         1
figures_stats         1
sources_gene          4
total                 7

Reasons:
    (check individual jobs above for details)

This was a dry-run (flag -n). The order of jobs does not reflect the order of execution.
Job stats:
job               count
--------------  -------
all                   1
de_pseudobulk         1
figures_stats         1
sources_gene          4
total                 7
"""


def test_parse_job_stats_lists_each_job_but_not_all_or_total():
    jobs = scaling.parse_job_stats(DRY_RUN)
    assert sorted(set(jobs)) == ["de_pseudobulk", "figures_stats", "sources_gene"]
    assert len(jobs) == 6


def test_parse_job_stats_nothing_to_do():
    assert scaling.parse_job_stats("Building DAG of jobs...\nNothing to be done.\n") == []


def test_merge_is_deep_and_leaves_inputs_alone():
    base = {"demo": {"cells_per_sample": 10}, "de": {"alpha": 0.05, "min_cells": 10}}
    out = scaling.merge(base, {"de": {"alpha": 0.1}})
    assert out == {"demo": {"cells_per_sample": 10}, "de": {"alpha": 0.1, "min_cells": 10}}
    assert base["de"]["alpha"] == 0.05


def test_rerun_change_touches_only_de_parameters():
    assert set(scaling.RERUN_CHANGE) == {"de"}


def _row(n, rule, wall):
    row = {
        "n_cells": n, "rule": rule, "n_jobs": 1, "wall_s": wall, "peak_rss_mb": 100.0,
        "source": "psutil", "counts_csr_mb": 10.0, "scvi_max_epochs": 60, "cores": 2,
    }  # fmt: skip
    return scaling.add_ratios(row, 10.0, {"core": 30.0, "scvi": 80.0})


def test_ratios_subtract_the_jobs_imports_but_not_from_whole_runs():
    assert _row(10, "qc_filter", 1.0)["net_over_csr"] == 7.0  # (100 - 30) / 10
    assert _row(10, "integrate_scvi", 1.0)["net_over_csr"] == 2.0  # torch + scvi: 80
    total = _row(10, "TOTAL", 1.0)
    assert total["net_over_csr"] == total["rss_over_csr"] == 10.0
    assert total["import_rss_mb"] == 0.0


def test_save_replaces_same_size_and_rule_and_keeps_the_rest(tmp_path):
    out = tmp_path / "scaling.tsv"
    scaling.save([_row(10, "TOTAL", 1.0), _row(10, "qc_filter", 2.0)], out)
    scaling.save([_row(10, "TOTAL", 5.0), _row(20, "TOTAL", 7.0)], out)
    text = out.read_text()
    assert text.startswith("# tmeflow scaling benchmark")
    assert "# machine: " in text
    table = pd.read_csv(out, sep="\t", comment="#")
    assert list(table.columns) == scaling.COLUMNS
    got = {(r.n_cells, r.rule): r.wall_s for r in table.itertuples()}
    assert got == {(10, "TOTAL"): 5.0, (10, "qc_filter"): 2.0, (20, "TOTAL"): 7.0}


def test_script_regex_names_the_rule_of_a_snakemake_script_job():
    cmd = "/x/.venv/bin/python /tmp/w/.snakemake/scripts/tmp7l9rpjoy.integrate_scvi.py"
    assert scaling.SCRIPT_RE.search(cmd).group(1) == "integrate_scvi"

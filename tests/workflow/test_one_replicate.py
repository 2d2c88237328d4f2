"""End to end: a design with one animal per arm runs to the end and says it is exploratory.

With one replicate per arm no test across animals is possible: DE falls back to a cell-level
Wilcoxon test whose rows are labelled ``wilcoxon_exploratory`` (and the summary says so),
and the composition table is descriptive only.
"""

from pathlib import Path

import pandas as pd
import pytest

from . import background
from .helpers import RETRAIN_PCA_ONLY, snakemake, write_config

pytestmark = pytest.mark.workflow

ONE_REPLICATE = {
    "samples": "config/samples_one_replicate.tsv",
    "demo": {
        "n_replicates": 1,
        "cells_per_sample": 700,
        "n_genes_mouse": 1500,
        "n_genes_human": 600,
    },
    "scvi": {"max_epochs": 30, "threads": 1},
    "gsea": {"permutations": 200},
    "integration_metrics": {"kbet": False},
    # two other resolutions in the sensitivity table, not the whole sweep's nine
    # and the PCA baseline of the retraining settings (tests/unit/stats/test_retrain.py
    # retrains scVI; a training here would be the slowest job of this run)
    # leave-one-marker-out is tested on the small demo (about 40 re-annotations)
    "sensitivity": {"resolutions": [0.4, 1.6], "retrain": RETRAIN_PCA_ONLY, "marker_out": []},
}


@background.register("one_run", cost_s=165)
def _build_one_run(work: Path) -> Path:
    (work / "config/samples_one_replicate.tsv").write_text(
        "sample\tcondition\tpath\n"
        "control_1\tcontrol\tresources/demo/control_1.h5\n"
        "alectinib_1\talectinib\tresources/demo/alectinib_1\n"
    )
    cfg = write_config(work, ONE_REPLICATE)
    snakemake(work, "--configfile", str(cfg))
    return work


@pytest.fixture(scope="module")
def one_run(tmp_path_factory) -> Path:
    return background.result("one_run", tmp_path_factory)


def test_de_rows_are_exploratory_and_the_summary_says_so(one_run):
    tables = sorted((one_run / "results/de/pseudobulk").glob("*.tsv"))
    assert tables
    tested = 0
    for path in tables:
        table = pd.read_csv(path, sep="\t")
        if len(table):
            tested += 1
            assert (table["method"] == "wilcoxon_exploratory").all(), path.name
            assert table["note"].str.contains("exploratory").all(), path.name
            assert table["lfcSE"].isna().all() and table["ci_low"].isna().all()
    assert tested >= 5
    summary = pd.read_csv(one_run / "results/de/summary.tsv", sep="\t")
    done = summary[summary["method"] != "not_tested"]
    assert done["exploratory"].all()
    assert (done["method"] == "wilcoxon_exploratory").all()
    assert done["note"].str.contains("animal-to-animal").all()
    caf = summary[(summary["level"] == "cell_type") & (summary["cell_type"] == "CAF")].iloc[0]
    assert caf["n_samples_reference"] == 1 and caf["n_samples_test"] == 1
    log = (one_run / "logs/de_pseudobulk/de_pseudobulk.log").read_text()
    assert "NOT evidence" in log


def test_goi_report_and_downstream_tables_carry_the_label(one_run):
    goi = pd.read_csv(one_run / "results/de/genes_of_interest.tsv", sep="\t")
    mmp11 = goi[(goi["gene"] == "Mmp11") & (goi["cell_type"] == "CAF")].iloc[0]
    assert mmp11["method"] == "wilcoxon_exploratory"
    assert "exploratory" in mmp11["note"]
    comp = pd.read_csv(one_run / "results/composition/test.tsv", sep="\t")
    assert (comp["method"] == "descriptive_only").all()
    assert comp["pvalue"].isna().all()
    gsea = pd.read_csv(one_run / "results/gsea/summary.tsv", sep="\t")
    ran = gsea[gsea["n_sets"] > 0]
    assert len(ran) and (ran["de_method"] == "wilcoxon_exploratory").all()


def test_retrained_embedding_joins_the_sensitivity_table(one_run):
    table = pd.read_csv(one_run / "results/sensitivity.tsv", sep="\t", keep_default_na=False)
    rows = table[(table["setting"] == "retrain") & (table["value"] == "pca")]
    assert len(rows) == table["hypothesis"].nunique() > 0
    assert rows["note"].str.startswith("PCA (50 components) of the variable genes").all()
    labels = pd.read_csv(one_run / "results/sensitivity/retrain/pca.tsv.gz", sep="\t")
    annotated = pd.read_csv(one_run / "results/annotate/labels.tsv.gz", sep="\t")
    assert list(labels["cell"]) == list(annotated["cell"])


def test_every_final_output_written(one_run):
    for rel in (
        "results/figures/gsea_dotplot.pdf",
        "results/figures/primary_sources.pdf",
        "results/figures/composition.pdf",
        "results/sources/primary_sources.tsv",
    ):
        assert (one_run / rel).stat().st_size > 0, rel
    dry = snakemake(one_run, "-n", "--configfile", str(one_run / "test.yaml"))
    assert "Nothing to be done" in dry.stdout + dry.stderr

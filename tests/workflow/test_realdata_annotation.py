"""Annotation of real mouse tissue (one sample each) through the workflow.

Tabula Muris lung (fibroblasts, macrophages, ...) and 10x heart_1k_v2 (fibroblasts,
erythroid cells), each run as a one-sample, one-condition sheet with ``species: mouse`` and few
scVI epochs; the lung runs the whole workflow (DE, composition and GSEA report "nothing to
compare"), the heart up to the annotation.
Truth comes from the cells' own counts: a clear fibroblast is Col1a1+ Pdgfra+ Ptprc-, a clear
macrophage (C1qa+ or Adgre1+) and Ptprc+, an erythroid cell haemoglobin-high.
"""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from .helpers import copy_workflow, snakemake, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.realdata]

TARGETS = (
    "results/annotate/annotated.h5ad",
    "results/annotate/labels.tsv.gz",
    "results/integrate/metrics.tsv",
    "results/cluster/resolution_sweep.tsv",
)


def run_one_sample(tmp_path: Path, name: str, path: Path, targets=TARGETS) -> Path:
    work = copy_workflow(tmp_path / name)
    (work / "samples.tsv").write_text(f"sample\tcondition\tpath\n{name}\tcontrol\t{path}\n")
    cfg = write_config(
        work,
        {
            "samples": "samples.tsv",
            "species": "mouse",
            "genes_of_interest": ["Gas6", "Mmp11"],
            "scvi": {"max_epochs": 30},
            "integration_metrics": {"kbet": False},
        },
    )
    # a one-condition sheet is accepted with a parse-time warning (no 'alectinib' sample)
    proc = snakemake(work, *targets, "--configfile", str(cfg))
    assert "no sample has condition = 'alectinib'" in proc.stdout + proc.stderr
    return work


def counts_of(adata: ad.AnnData, gene: str) -> np.ndarray:
    if gene not in adata.var_names:
        return np.zeros(adata.n_obs)
    x = adata[:, gene].layers["counts"]
    return np.asarray(x.todense() if sp.issparse(x) else x).ravel()


@pytest.fixture(scope="module")
def lung_run(shared_data, tmp_path_factory) -> Path:
    # the lung runs the whole workflow (default target): issue 4 asks that a one-sample,
    # one-condition design goes through DE, composition, GSEA and the figures without crashing
    return run_one_sample(
        tmp_path_factory.mktemp("real"), "lung", shared_data / "tabula_muris_lung_P7_8", ()
    )


@pytest.fixture(scope="module")
def lung(lung_run) -> ad.AnnData:
    return ad.read_h5ad(lung_run / "results/annotate/annotated.h5ad")


@pytest.fixture(scope="module")
def heart(shared_data, tmp_path_factory) -> tuple[Path, ad.AnnData]:
    h5 = sorted((shared_data / "heart_1k_v2").glob("*.h5"))
    if not h5:
        pytest.skip("heart_1k_v2 has no .h5 file")
    work = run_one_sample(tmp_path_factory.mktemp("real"), "heart", h5[0])
    return work, ad.read_h5ad(work / "results/annotate/annotated.h5ad")


def test_lung_fibroblasts_labelled_caf(lung):
    clear = (
        (counts_of(lung, "Col1a1") > 0)
        & (counts_of(lung, "Pdgfra") > 0)
        & (counts_of(lung, "Ptprc") == 0)
    )
    assert clear.sum() >= 20, clear.sum()
    labels = lung.obs["cell_type"].astype(str)[clear]
    assert (labels == "CAF").mean() >= 0.9, labels.value_counts()


@pytest.mark.xfail(
    strict=True,
    reason="measured 0.44 (61/138; 0.71 without Ly6c2+/Ccr2+ monocytes) with the "
    "alveolar_macrophage entry (parent: TAM; 0.00 without it on the same clustering): the "
    "misses are 40 Ly6c2+/Ccr2+ cells of a monocyte cluster (labelled monocyte: Emr1/Adgre1 "
    "also marks monocytes), 17 in a cluster with TAM score 0.34 < min_score 0.5 (unassigned) "
    "and 9 in a DC cluster",
)
def test_lung_macrophages_labelled_tam(lung):
    # Emr1 is the former symbol of Adgre1, used by this data set
    adgre1 = counts_of(lung, "Adgre1") + counts_of(lung, "Emr1")
    clear = ((counts_of(lung, "C1qa") > 0) | (adgre1 > 0)) & (counts_of(lung, "Ptprc") > 0)
    assert clear.sum() >= 20, clear.sum()
    labels = lung.obs["cell_type"].astype(str)[clear]
    assert (labels == "TAM").mean() >= 0.9, labels.value_counts()


def test_lung_has_own_groups_and_absent_types_do_not_crash(lung):
    counts = lung.obs["cell_type"].value_counts()
    assert counts.get("CAF", 0) >= 20, counts
    # macrophage-like cells are never called stroma: unassigned rather than wrong
    adgre1 = counts_of(lung, "Adgre1") + counts_of(lung, "Emr1")
    myeloid = ((counts_of(lung, "C1qa") > 0) | (adgre1 > 0)) & (counts_of(lung, "Ptprc") > 0)
    wrong = lung.obs["cell_type"].astype(str)[myeloid].isin(["CAF", "pericyte", "endothelial"])
    assert wrong.mean() <= 0.05, lung.obs["cell_type"][myeloid].value_counts()
    # a normal lung has no tumour cells: the human entry is not used with species: mouse
    assert "tumor" not in set(lung.obs["cell_type"].astype(str))
    assert "cell_subtype" in lung.obs and "cell_state" in lung.obs


def test_lung_one_condition_comparisons_say_nothing_to_compare(lung_run):
    # no 'alectinib' sample: every comparison is reported as not tested, nothing crashes
    note = "'alectinib' has no samples: nothing to compare"
    de = pd.read_csv(lung_run / "results/de/summary.tsv", sep="\t")
    assert len(de) and (de["method"] == "not_tested").all(), de
    assert de.loc[de["level"] == "cell_type", "note"].str.contains(note).all(), de
    comp = pd.read_csv(lung_run / "results/composition/test.tsv", sep="\t")
    assert (comp["method"] == "descriptive_only").all() and comp["note"].str.contains(note).all()
    assert comp["fraction_test"].isna().all()
    assert comp["fraction_reference"].sum() == pytest.approx(1.0, abs=1e-4)  # rounded in TSV
    gsea = pd.read_csv(lung_run / "results/gsea/summary.tsv", sep="\t")
    assert (gsea["n_sets"] == 0).all() and gsea["note"].str.startswith("not tested").all()
    goi = pd.read_csv(lung_run / "results/de/genes_of_interest.tsv", sep="\t")
    caf = goi[(goi["level"] == "cell_type") & (goi["cell_type"] == "CAF") & (goi["gene"] == "Gas6")]
    assert len(caf) == 1 and caf["frac_expressing_reference"].iat[0] > 0, caf
    for fig in ("composition", "goi_Gas6", "primary_sources", "gsea_dotplot", "volcano/CAF"):
        assert (lung_run / f"results/figures/{fig}.png").stat().st_size > 0, fig


def test_lung_metrics_with_one_batch(lung_run):
    # the metrics table of a one-sample run: batch metrics are undefined, bio metrics are not
    table = pd.read_csv(lung_run / "results/integrate/metrics.tsv", sep="\t")
    table = table.set_index("embedding")
    assert table["n_batches"].eq(1).all()
    assert table["ilisi"].isna().all()
    assert table["silhouette_label"].notna().all()
    assert table["condition_signal_mean"].isna().all()


def test_heart_fibroblasts_found_and_erythroid_not_caf_or_tam(heart):
    work, adata = heart
    counts = adata.obs["cell_type"].value_counts()
    assert counts.get("CAF", 0) >= 20, counts
    hb = counts_of(adata, "Hba-a1") + counts_of(adata, "Hbb-bs")
    total = np.asarray(adata.layers["counts"].sum(axis=1)).ravel()
    erythroid = hb / np.maximum(total, 1) > 0.2  # haemoglobin is > 20% of the cell's UMIs
    assert erythroid.sum() >= 5, erythroid.sum()  # most red cells fail QC (few genes)
    labels = adata.obs["cell_type"].astype(str)[erythroid]
    assert not labels.isin(["CAF", "TAM"]).any(), labels.value_counts()
    assert (labels == "erythroid").mean() >= 0.8, labels.value_counts()
    sweep = pd.read_csv(work / "results/cluster/resolution_sweep.tsv", sep="\t")
    assert sweep["chosen"].sum() == 1

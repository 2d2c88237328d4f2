"""Annotation of real mouse tissue (one sample each) through the workflow.

Tabula Muris lung (fibroblasts, macrophages, ...) and 10x heart_1k_v2 (fibroblasts,
erythroid cells), each run as a one-sample sheet with ``species: mouse`` and few scVI epochs.
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


def run_one_sample(tmp_path: Path, name: str, path: Path) -> Path:
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
    dry = snakemake(work, *TARGETS, "-n", "--configfile", str(cfg), check=False)
    if "the contrast needs both arms" in dry.stdout + dry.stderr:
        # tmeflow.config.validate_sample_sheet refuses a one-arm sheet at parse time; accepting
        # it needs DE/composition to skip a missing arm first (reported on issue 4)
        pytest.xfail("one-sample (single-condition) sheets are refused at parse time")
    snakemake(work, *TARGETS, "--configfile", str(cfg))
    return work


def counts_of(adata: ad.AnnData, gene: str) -> np.ndarray:
    if gene not in adata.var_names:
        return np.zeros(adata.n_obs)
    x = adata[:, gene].layers["counts"]
    return np.asarray(x.todense() if sp.issparse(x) else x).ravel()


@pytest.fixture(scope="module")
def lung_run(shared_data, tmp_path_factory) -> Path:
    return run_one_sample(
        tmp_path_factory.mktemp("real"), "lung", shared_data / "tabula_muris_lung_P7_8"
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
    reason="measured 0.44 (0.71 without Ly6c2+/Ccr2+ monocytes): alveolar macrophages are "
    "C1q-low (TAM score 0.40 < min_score 0.5, so unassigned) and Emr1/Adgre1 also marks "
    "monocytes; see the issue 4 report",
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

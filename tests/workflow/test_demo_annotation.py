"""Annotation, clustering and integration quality on the small demo, checked against its truth."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def labels(demo_run) -> pd.DataFrame:
    truth = pd.read_csv(demo_run / "resources/demo/truth.tsv", sep="\t")
    called = pd.read_csv(demo_run / "results/annotate/labels.tsv.gz", sep="\t")
    return called.merge(truth, on=["sample", "barcode"], suffixes=("", "_true"), validate="1:1")


@pytest.fixture(scope="module")
def integration(demo_run) -> pd.DataFrame:
    return pd.read_csv(demo_run / "results/integrate/metrics.tsv", sep="\t").set_index("embedding")


def test_cell_type_accuracy_at_least_95_percent(labels):
    accuracy = (labels["cell_type"] == labels["cell_type_true"]).mean()
    assert accuracy >= 0.95, pd.crosstab(labels["cell_type_true"], labels["cell_type"])


@pytest.mark.parametrize("parent", ["CAF", "TAM"])
def test_subtype_accuracy_at_least_85_percent(labels, parent):
    cells = labels[labels["cell_type_true"] == parent]
    accuracy = (cells["cell_subtype"] == cells["cell_subtype_true"]).mean()
    assert accuracy >= 0.85, pd.crosstab(cells["cell_subtype_true"], cells["cell_subtype"])


def test_interferon_state_does_not_steal_tam_subtypes(labels, demo_run):
    """The demo plants an interferon programme in every TAM of the alectinib arm: it must not
    replace TAM_Mrc1/TAM_Spp1 as the subtype of those cells."""
    planted = yaml.safe_load((demo_run / "resources/demo/planted.yaml").read_text())
    assert planted["pathway"]["cell_type"] == "TAM"
    tams = labels[(labels["cell_type_true"] == "TAM") & (labels["condition"] == "alectinib")]
    assert (tams["cell_subtype"] == "TAM_IFN").mean() <= 0.02
    assert (tams["cell_subtype"] == tams["cell_subtype_true"]).mean() >= 0.85
    annotated = ad.read_h5ad(demo_run / "results/annotate/annotated.h5ad")
    tam = (annotated.obs["cell_type"] == "TAM").to_numpy()
    ifn = annotated.obs.loc[tam].groupby("condition", observed=True)["score_TAM_IFN"].mean()
    assert ifn["alectinib"] > ifn["control"] + 0.3  # the per-cell score sees the programme


def test_gas6_high_tam_subset_is_its_own_group(demo_run):
    annotated = ad.read_h5ad(demo_run / "results/annotate/annotated.h5ad")
    tam = annotated[annotated.obs["cell_type"] == "TAM"]
    gas6 = np.asarray(tam[:, "Gas6"].X.todense()).ravel()
    by_subtype = pd.Series(gas6).groupby(tam.obs["cell_subtype"].astype(str).to_numpy()).mean()
    assert by_subtype.idxmax() == "TAM_Mrc1", by_subtype
    assert by_subtype["TAM_Mrc1"] > 2 * by_subtype["TAM_Spp1"], by_subtype


def test_scvi_improves_batch_mixing_over_pca(integration):
    assert integration.loc["scVI", "ilisi"] > integration.loc["PCA", "ilisi"] + 0.2
    assert (
        integration.loc["scVI", "graph_connectivity"] > integration.loc["PCA", "graph_connectivity"]
    )
    assert integration.loc["scVI", "batch_correction"] > integration.loc["PCA", "batch_correction"]
    # integration keeps the cell types apart
    assert integration.loc["scVI", "silhouette_label"] > 0.6
    assert (
        integration.loc["scVI", "bio_conservation"]
        >= integration.loc["PCA", "bio_conservation"] - 0.05
    )


def test_removed_tam_condition_signal_is_flagged(demo_run, integration):
    """scVI (batch = sample) removes the planted interferon difference between the arms' TAMs
    from the embedding; the metrics table and the log say so."""
    cond = pd.read_csv(demo_run / "results/integrate/condition_signal.tsv", sep="\t")
    tam = cond.set_index("cell_type").loc["TAM"]
    assert tam["condition_signal_PCA"] >= 0.4
    assert bool(tam["flagged"])
    assert "TAM" in str(integration.loc["scVI", "condition_signal_lost"]).split(";")
    log = (demo_run / "logs/integrate_metrics/integrate_metrics.log").read_text()
    assert "removed most of the condition signal in TAM" in log


def test_resolution_sweep_table_and_figures(demo_run):
    sweep = pd.read_csv(demo_run / "results/cluster/resolution_sweep.tsv", sep="\t")
    assert len(sweep) == 10
    assert sweep["resolution"].is_monotonic_increasing
    assert sweep["n_clusters"].iloc[-1] > sweep["n_clusters"].iloc[0]
    assert sweep["stability"].between(0, 1).all()
    chosen = sweep[sweep["chosen"]]
    assert list(chosen["resolution"]) == [1.0]  # the default: fixed resolution 1.0
    annotated = ad.read_h5ad(demo_run / "results/annotate/annotated.h5ad", backed="r")
    assert annotated.obs["leiden"].nunique() == int(chosen["n_clusters"].iloc[0])
    for stem in ("resolution_sweep", "integration_metrics", "annotation_scores"):
        for ext in ("pdf", "png"):
            assert (demo_run / f"results/figures/{stem}.{ext}").stat().st_size > 1000, stem

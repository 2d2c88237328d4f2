"""Retraining settings of the sensitivity table: embedding, Leiden and annotation again."""

import numpy as np
import pandas as pd
import pytest

from tmeflow.stats import _retrain as retrain
from tmeflow.stats import _sensitivity as sensitivity

from .test_sensitivity import ANNOTATE, PANEL, annotated

SCVI = dict(n_latent=5, n_hidden=16, n_layers=1, max_epochs=15, early_stopping=False,
            patience=5, batch_size=128, accelerator="cpu", threads=1)  # fmt: skip
HVG = dict(batch_key="sample", fallback_span=0.6, fallback_min_cells=3, min_species_fraction=0.25)


def test_variant_names_skip_the_configured_values():
    names = retrain.retrain_variants(
        seeds=2, n_latent=[10, 20], n_top_genes=[2000, 4000], pca=True,
        configured={"n_latent": 10, "n_top_genes": 2000},
    )  # fmt: skip
    assert names == ["seed1", "seed2", "n_latent20", "n_top_genes4000", "pca"]
    assert retrain.retrain_variants() == []
    with pytest.raises(ValueError, match="unknown retraining setting 'tsne'"):
        retrain._parse("tsne")


@pytest.fixture(scope="module")
def integrated():
    """The synthetic annotated xenograft as the integrated object: labels kept to compare."""
    adata = annotated(seed=5)
    adata.var["highly_variable"] = True
    return adata


@pytest.mark.parametrize("variant", ["pca", "seed1", "n_top_genes60"])
def test_retrained_labels_recover_the_cell_types(integrated, variant):
    labels, note = retrain.retrain_labels(
        integrated, variant, PANEL, scvi_options=SCVI, hvg_options=HVG, n_neighbors=10,
        resolution=1.0, seed=0, annotate_options=ANNOTATE,
    )  # fmt: skip
    assert labels.index.equals(integrated.obs_names)
    assert {"cell_type", "cell_subtype"} <= set(labels.columns)
    same = (labels["cell_type"] == integrated.obs["cell_type"].astype(str)).mean()
    # the planted types are marker-defined: every embedding finds them (scVI after 15 epochs too)
    assert same > 0.9, (variant, same)
    assert "Leiden 1: " in note
    if variant == "pca":
        assert note.startswith("PCA (50 components)")
    if variant == "n_top_genes60":
        assert "on 60 variable genes" in note


def test_retrained_labels_join_the_annotation_settings(tmp_path, integrated):
    made = sensitivity.label_settings(
        integrated, PANEL, min_scores=[50.0], annotate_options=ANNOTATE
    )
    made.write(tmp_path / "labels.tsv.gz", tmp_path / "settings.tsv")
    labels, note = retrain.retrain_labels(
        integrated, "pca", PANEL, scvi_options=SCVI, hvg_options=HVG, n_neighbors=10,
        resolution=1.0, seed=0, annotate_options=ANNOTATE,
    )  # fmt: skip
    labels.to_csv(tmp_path / "pca.tsv.gz", sep="\t", index_label="cell")
    pd.DataFrame({"variant": ["pca"], "note": [note]}).to_csv(
        tmp_path / "pca.note.tsv", sep="\t", index=False
    )
    read = sensitivity.LabelSettings.read(
        tmp_path / "labels.tsv.gz", tmp_path / "settings.tsv",
        retrain=[(tmp_path / "pca.tsv.gz", tmp_path / "pca.note.tsv")],
    )  # fmt: skip
    assert [s.label for s in read.settings()] == ["min_score 50", "retrain pca"]
    variant = read.variant(integrated, sensitivity.Setting("retrain", "pca"))
    assert variant.note == note
    np.testing.assert_array_equal(
        variant.adata.obs["cell_type"].astype(str).to_numpy(), labels["cell_type"].to_numpy()
    )
    with pytest.raises(ValueError, match="other cells"):
        made.extend(sensitivity.Setting("retrain", "pca"), labels.iloc[::-1], note)

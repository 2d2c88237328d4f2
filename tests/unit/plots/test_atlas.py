"""Tests of tmeflow.plots.atlas: UMAPs, marker dot plot, integration metrics, resolution sweep
and annotation scores."""

import logging

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tmeflow.embed._metrics import BATCH_METRICS, BIO_METRICS
from tmeflow.plots import atlas

from .. import _plots_data as D


def metrics_table():
    rows = []
    for emb, v in (("PCA", 0.3), ("scVI", 0.7)):
        row = {"embedding": emb, **dict.fromkeys(BATCH_METRICS + BIO_METRICS, v)}
        row.update(batch_correction=v, bio_conservation=v, total=v)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.loc[0, "kbet"] = np.nan
    cond = pd.DataFrame(
        {"cell_type": ["TAM", "CAF"], "condition_signal_PCA": [0.7, 0.0],
         "condition_signal_scVI": [0.0, 0.0], "flagged": [True, False]}
    )  # fmt: skip
    return table, cond


def sweep_table():
    return pd.DataFrame(
        {"resolution": [0.2, 0.6, 1.0], "n_clusters": [5, 8, 12], "n_clusters_min": [5, 8, 11],
         "n_clusters_max": [5, 9, 12], "stability": [1.0, 0.9, 0.85],
         "ari_previous": [np.nan, 0.8, 0.9], "chosen": [False, False, True]}
    )  # fmt: skip


def score_table():
    return pd.DataFrame(
        {"level": ["cell_type", "cell_type", "subtype:TAM", "subtype:TAM"],
         "species": ["mouse", "mouse", "", ""], "group": ["0", "1", "0", "1"],
         "n_cells": [50, 40, 30, 20], "label": ["CAF", "unassigned", "TAM_Mrc1", "TAM_Spp1"],
         "best_label": ["CAF", "TAM", "TAM_Mrc1", "TAM_Spp1"],
         "score_CAF": [1.2, -0.3, np.nan, np.nan], "score_TAM": [-0.5, 0.4, np.nan, np.nan],
         "score_TAM_Mrc1": [np.nan, np.nan, 0.9, -0.8],
         "score_TAM_Spp1": [np.nan, np.nan, -0.7, 1.0]}
    )  # fmt: skip


def test_figures_written_and_byte_identical(tmp_path):
    table, cond = metrics_table()
    for name, draw in [
        ("metrics", lambda stem: atlas.integration_metrics_plot(table, cond, stem=stem)),
        ("sweep", lambda stem: atlas.resolution_sweep_plot(sweep_table(), stem=stem)),
        ("scores", lambda stem: atlas.score_heatmap(score_table(), stem=stem)),
    ]:
        first = draw(tmp_path / "a" / name)
        second = draw(tmp_path / "b" / name)
        assert [p.suffix for p in first] == [".pdf", ".png"]
        for p, q in zip(first, second, strict=True):
            assert p.stat().st_size > 1000
            assert p.read_bytes() == q.read_bytes(), p.name


def test_empty_inputs_give_a_message_panel_not_an_error(tmp_path):
    table, _ = metrics_table()
    assert atlas.integration_metrics_plot(
        table, pd.DataFrame({"cell_type": []}), stem=tmp_path / "m"
    )
    assert atlas.resolution_sweep_plot(pd.DataFrame(), stem=tmp_path / "s")
    assert atlas.score_heatmap(pd.DataFrame(), stem=tmp_path / "h")


# --------------------------------------------------------------------------- UMAP
def test_umap_variants_and_drawing_order(tmp_path):
    adata = D.adata()
    for color in ("species", "score"):
        D.assert_written(
            atlas.umap_plot(adata, color=color, stem=tmp_path / color), tmp_path / color
        )
    a = atlas.umap_plot(adata, color="cell_type", stem=tmp_path / "s0", seed=0)
    b = atlas.umap_plot(adata, color="cell_type", stem=tmp_path / "s1", seed=1)
    assert a[1].read_bytes() != b[1].read_bytes()  # the seed sets which cell is on top
    ordered = atlas.umap_plot(
        adata, color="condition", stem=tmp_path / "o", order=["vehicle", "drug"]
    )
    plain = atlas.umap_plot(adata, color="condition", stem=tmp_path / "p")
    assert ordered[1].read_bytes() != plain[1].read_bytes()


def test_umap_handles_no_cells_and_reports_missing_inputs(tmp_path):
    adata = D.adata()
    D.assert_written(atlas.umap_plot(adata[:0].copy(), color="cell_type", stem=tmp_path / "e"),
                    tmp_path / "e")  # fmt: skip
    with pytest.raises(ValueError, match="no obs column 'leiden'"):
        atlas.umap_plot(adata, color="leiden", stem=tmp_path / "x")
    del adata.obsm["X_umap"]
    with pytest.raises(ValueError, match="X_umap"):
        atlas.umap_plot(adata, color="cell_type", stem=tmp_path / "x")


# --------------------------------------------------------------------------- marker dot plot
def test_group_stats_values_sparse_and_dense():
    x = np.array([[0.0, 2.0], [1.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    codes = np.array([0, 0, 1, 1])
    for matrix in (x, sp.csr_matrix(x)):
        mean, frac = atlas._group_stats(matrix, codes, 2)
        np.testing.assert_allclose(mean, [[0.5, 1.0], [1.5, 2.0]])
        np.testing.assert_allclose(frac, [[0.5, 0.5], [0.5, 0.5]])


def test_marker_dotplot_skips_missing_genes_and_uses_layer(tmp_path, caplog):
    adata = D.adata()
    adata.layers["other"] = adata.X.copy() * 2
    markers = {"tumor": ["AXL", "NOT_A_GENE"], "CAF": ["Col1a1"]}
    with caplog.at_level(logging.INFO, logger="tmeflow.plots.atlas"):
        x = atlas.marker_dotplot(adata, markers=markers, groupby="cell_type", stem=tmp_path / "x")
    assert "NOT_A_GENE" in caplog.text
    D.assert_written(x, tmp_path / "x")
    lay = atlas.marker_dotplot(
        adata, markers=markers, groupby="cell_type", stem=tmp_path / "l", layer="other"
    )
    # scaling per gene makes a doubled layer look the same; a different layer would not
    assert lay[1].read_bytes() == x[1].read_bytes()
    with pytest.raises(ValueError, match="no layer 'nope'"):
        atlas.marker_dotplot(adata, markers=markers, groupby="cell_type", stem=tmp_path / "n",
                         layer="nope")  # fmt: skip


def test_marker_dotplot_without_any_known_gene(tmp_path):
    paths = atlas.marker_dotplot(
        D.adata(), markers={"x": ["NOPE"]}, groupby="cell_type", stem=tmp_path / "none"
    )
    D.assert_written(paths, tmp_path / "none")

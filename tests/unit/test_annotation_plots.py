"""Figures of the integration metrics, the resolution sweep and the annotation scores."""

import numpy as np
import pandas as pd

from tmeflow import annotation_plots
from tmeflow.metrics import BATCH_METRICS, BIO_METRICS


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
        ("metrics", lambda stem: annotation_plots.integration_metrics_plot(table, cond, stem=stem)),
        ("sweep", lambda stem: annotation_plots.resolution_sweep_plot(sweep_table(), stem=stem)),
        ("scores", lambda stem: annotation_plots.score_heatmap(score_table(), stem=stem)),
    ]:
        first = draw(tmp_path / "a" / name)
        second = draw(tmp_path / "b" / name)
        assert [p.suffix for p in first] == [".pdf", ".png"]
        for p, q in zip(first, second, strict=True):
            assert p.stat().st_size > 1000
            assert p.read_bytes() == q.read_bytes(), p.name


def test_empty_inputs_give_a_message_panel_not_an_error(tmp_path):
    table, _ = metrics_table()
    assert annotation_plots.integration_metrics_plot(
        table, pd.DataFrame({"cell_type": []}), stem=tmp_path / "m"
    )
    assert annotation_plots.resolution_sweep_plot(pd.DataFrame(), stem=tmp_path / "s")
    assert annotation_plots.score_heatmap(pd.DataFrame(), stem=tmp_path / "h")

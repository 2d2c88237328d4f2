"""Integration metrics (scib-metrics) and the condition signal on embeddings of known structure."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

from tmeflow.embed import _metrics as metrics


def design(n_per=40, seed=0):
    """2 labels x 4 samples (2 per condition); obs only."""
    rows = []
    for label in ("A", "B"):
        for s, cond in enumerate(("ctrl", "ctrl", "trt", "trt")):
            rows += [{"label": label, "sample": f"s{s}", "condition": cond, "k": s}] * n_per
    obs = pd.DataFrame(rows)
    obs.index = [f"c{i}" for i in range(len(obs))]
    return obs


def embedding(obs, *, batch=0.0, label=6.0, condition=0.0, seed=0):
    rng = np.random.default_rng(seed)
    n = len(obs)
    x = rng.normal(0, 1, (n, 6))
    x[:, 0] += label * (obs["label"] == "B").to_numpy()
    samples = obs["k"].to_numpy()
    x[:, 1] += batch * samples  # a different offset per sample
    x[:, 2] += condition * (obs["condition"] == "trt").to_numpy()
    return x.astype(np.float32)


def test_batch_mixing_scores_higher_without_batch_effect():
    obs = design()
    mixed = embedding(obs, batch=0.0)
    split = embedding(obs, batch=6.0)
    batch, labels = obs["sample"].to_numpy(), obs["label"].to_numpy()
    # kBET (minutes even on small data) is covered by the demo workflow test
    good = metrics.scib_scores(mixed, split, batch=batch, labels=labels, kbet=False)
    bad = metrics.scib_scores(split, split, batch=batch, labels=labels, kbet=False)
    assert good["ilisi"] > bad["ilisi"] + 0.3
    assert np.isnan(good["kbet"])  # skipped
    assert good["bras"] > bad["bras"]
    assert good["pcr_comparison"] > 0.5 and bad["pcr_comparison"] == pytest.approx(0, abs=1e-6)
    # both keep the labels apart
    assert good["silhouette_label"] > 0.6 and bad["silhouette_label"] > 0.6
    assert good["ari_kmeans"] > 0.9


def test_one_batch_gives_nan_batch_metrics_not_an_error():
    obs = design()
    x = embedding(obs)
    out = metrics.scib_scores(
        x, x, batch=np.full(len(obs), "only"), labels=obs["label"], kbet=False
    )
    assert np.isnan(out["ilisi"]) and np.isnan(out["kbet"])
    assert np.isfinite(out["silhouette_label"])


def test_condition_signal_flags_a_removed_treatment_effect():
    obs = design()
    before = embedding(obs, batch=0.5, condition=4.0)
    after = embedding(obs, batch=0.0, condition=0.0, seed=1)
    cond = metrics.condition_signal(
        {"PCA": before, "scVI": after}, obs, label_key="label", batch_key="sample",
        condition_key="condition",
    )  # fmt: skip
    assert (cond["condition_signal_PCA"] > 0.7).all()
    assert (cond["condition_signal_scVI"] < 0.3).all()


def test_condition_signal_needs_two_samples_per_condition():
    obs = design()
    obs["sample"] = obs["condition"]  # one sample per condition
    x = embedding(obs, condition=4.0)
    cond = metrics.condition_signal(
        {"PCA": x}, obs, label_key="label", batch_key="sample", condition_key="condition"
    )
    assert cond["condition_signal_PCA"].isna().all()


def adata_for_metrics(condition_in_scvi: float):
    obs = design(n_per=30)
    rng = np.random.default_rng(0)
    genes = 60
    x = rng.poisson(1.0, (len(obs), genes)).astype(np.float32)
    x[(obs["label"] == "B").to_numpy(), :10] += 6
    samples = obs["k"].to_numpy()
    x[:, 10:20] += samples[:, None] * 2.0  # a batch effect in expression
    x[(obs["condition"] == "trt").to_numpy(), 20:30] += 5  # a treatment effect
    adata = AnnData(X=sp.csr_matrix(np.log1p(x)), obs=obs.rename(columns={"label": "cell_type"}))
    adata.var_names = [f"g{i}" for i in range(genes)]
    adata.obsm["X_scVI"] = embedding(obs, condition=condition_in_scvi)
    return adata


def test_integration_metrics_table(caplog):
    adata = adata_for_metrics(condition_in_scvi=0.0)
    with caplog.at_level("WARNING", logger="tmeflow.embed._metrics"):
        table, cond = metrics.integration_metrics(adata, n_comps=10, kbet=False)
    assert list(table["embedding"]) == ["PCA", "scVI"]
    row = table.set_index("embedding")
    for col in (*metrics.BATCH_METRICS, *metrics.BIO_METRICS, "batch_correction",
                "bio_conservation", "total", "condition_signal_mean",
                "condition_signal_retained", "condition_signal_lost"):  # fmt: skip
        assert col in table.columns, col
    assert row.loc["scVI", "batch_correction"] > row.loc["PCA", "batch_correction"]
    assert row.loc["scVI", "total"] == pytest.approx(
        0.4 * row.loc["scVI", "batch_correction"] + 0.6 * row.loc["scVI", "bio_conservation"]
    )
    assert cond["flagged"].all()
    assert row.loc["scVI", "condition_signal_lost"] == "A;B"
    assert row.loc["scVI", "condition_signal_retained"] < 0.5
    assert "removed most of the condition signal" in caplog.text
    assert adata.obsm["X_pca_unintegrated"].shape == (adata.n_obs, 10)


def test_integration_metrics_keeps_quiet_when_signal_kept(caplog):
    adata = adata_for_metrics(condition_in_scvi=4.0)
    with caplog.at_level("WARNING", logger="tmeflow.embed._metrics"):
        table, cond = metrics.integration_metrics(adata, n_comps=10, kbet=False)
    assert not cond["flagged"].any()
    assert table.set_index("embedding").loc["scVI", "condition_signal_lost"] == ""
    assert "removed most" not in caplog.text


def test_subsample_is_stratified_seeded_and_bounded():
    batch = np.repeat(["a", "b", "c"], [600, 300, 100])
    idx = metrics.subsample(batch, max_cells=200, seed=1)
    assert len(idx) == 200 and np.all(np.diff(idx) > 0)
    counts = pd.Series(batch[idx]).value_counts()
    assert counts.to_dict() == {"a": 120, "b": 60, "c": 20}
    np.testing.assert_array_equal(idx, metrics.subsample(batch, max_cells=200, seed=1))
    assert not np.array_equal(idx, metrics.subsample(batch, max_cells=200, seed=2))
    np.testing.assert_array_equal(metrics.subsample(batch, max_cells=None), np.arange(1000))
    np.testing.assert_array_equal(metrics.subsample(batch, max_cells=5000), np.arange(1000))


def test_integration_metrics_subsample_scores_fewer_cells_same_conclusion():
    adata = adata_for_metrics(condition_in_scvi=0.0)
    half = adata.n_obs // 2
    table, cond = metrics.integration_metrics(adata, n_comps=10, kbet=False, max_cells=half)
    row = table.set_index("embedding")
    assert (table["n_cells_scored"] == half).all()
    assert adata.uns["integration_metrics"]["n_cells_scored"] == half
    assert row.loc["scVI", "batch_correction"] > row.loc["PCA", "batch_correction"]
    # the condition signal always uses every cell: flagged as in the full run
    assert cond["flagged"].all()


def test_metrics_log_embedding_and_metric_counters(caplog):
    adata = adata_for_metrics(condition_in_scvi=4.0)
    with caplog.at_level("INFO", logger="tmeflow.embed._metrics"):
        metrics.integration_metrics(adata, n_comps=10, kbet=False)
    messages = [r.getMessage() for r in caplog.records]
    n = adata.n_obs
    assert f"scib metrics 1/2: PCA (10 dims, {n} cells)" in messages
    assert any(m.startswith("scib metrics 2/2: scVI (") for m in messages)
    # kbet off: neighbours, 3 batch and 5 bio metrics
    per_scvi = [m for m in messages if m.startswith("scVI: metric ")]
    assert per_scvi[0] == "scVI: metric 1/9: neighbours"
    assert per_scvi[-1] == "scVI: metric 9/9: clisi"
    assert len(per_scvi) == 9 and not any("kbet" in m for m in per_scvi)
    assert [m for m in messages if m.startswith("condition signal ")] == [
        "condition signal 1/2: A",
        "condition signal 2/2: B",
    ]


def test_scib_scores_one_batch_logs_only_the_bio_metrics(caplog):
    obs = design()
    x = embedding(obs)
    with caplog.at_level("INFO", logger="tmeflow.embed._metrics"):
        metrics.scib_scores(
            x, x, batch=np.full(len(obs), "only"), labels=obs["label"], kbet=False, name="X"
        )
    steps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("X: metric")]
    assert steps[0] == "X: metric 1/6: neighbours" and steps[-1] == "X: metric 6/6: clisi"

"""Neighbours, UMAP and Leiden on a known embedding."""

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from tmeflow.embed import _cluster as cluster


def blobs(n=90, seed=0) -> AnnData:
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0, 0], [8, 0, 0, 0], [0, 8, 0, 0]], dtype=float)
    z = np.vstack([c + rng.normal(0, 0.5, (n // 3, 4)) for c in centers]).astype(np.float32)
    truth = np.repeat(["a", "b", "c"], n // 3)
    a = AnnData(obs=pd.DataFrame({"truth": truth}, index=[f"c{i}" for i in range(n)]))
    a.obsm["X_scVI"] = z
    return a


def test_clusters_recover_blobs_and_are_ordered_by_size():
    a = blobs()
    cluster.embed_and_cluster(a, n_neighbors=10, resolution=0.3, seed=0)
    tab = pd.crosstab(a.obs["leiden"], a.obs["truth"])
    assert tab.shape[0] == 3
    assert (tab.max(axis=1) == tab.sum(axis=1)).all()  # pure clusters
    sizes = a.obs["leiden"].value_counts().reindex(a.obs["leiden"].cat.categories)
    assert list(sizes) == sorted(sizes, reverse=True)
    assert a.obsm["X_umap"].shape == (90, 2)
    assert a.uns["cluster"]["n_clusters"] == 3


def test_seeded_runs_are_identical():
    a, b = blobs(), blobs()
    for x in (a, b):
        cluster.embed_and_cluster(x, n_neighbors=10, resolution=1.0, seed=5)
    np.testing.assert_array_equal(a.obsm["X_umap"], b.obsm["X_umap"])
    assert (a.obs["leiden"] == b.obs["leiden"]).all()


def test_missing_embedding_is_a_clear_error():
    a = blobs()
    del a.obsm["X_scVI"]
    try:
        cluster.embed_and_cluster(a)
    except ValueError as err:
        assert "integration step" in str(err)
    else:  # pragma: no cover
        raise AssertionError("expected ValueError")


def test_resolution_sweep_reports_clusters_and_stability():
    a = blobs(n=150)
    cluster.embed_and_cluster(a, n_neighbors=10, resolution=0.3, seed=0)
    sweep = cluster.resolution_sweep(a, [0.1, 0.3, 3.0], n_seeds=3, seed=0)
    assert list(sweep["resolution"]) == [0.1, 0.3, 3.0]
    low = sweep.set_index("resolution").loc[0.3]
    assert low["n_clusters"] == 3
    assert low["stability"] == 1.0  # three clean blobs: every seed agrees
    assert sweep.set_index("resolution").loc[3.0, "n_clusters"] > 3
    assert np.isnan(sweep["ari_previous"].iloc[0])
    assert 0 <= sweep["ari_previous"].iloc[2] < 1
    assert "sweep" not in a.obs  # the input is left alone


def test_choose_resolution_fixed_and_stability():
    sweep = pd.DataFrame({"resolution": [0.2, 0.5, 1.0, 2.0], "stability": [1.0, 0.97, 0.96, 0.7]})
    assert cluster.choose_resolution(sweep, method="fixed", resolution=0.8) == 0.8
    # the finest resolution within the tolerance of the most stable one
    assert cluster.choose_resolution(sweep, method="stability", resolution=0.8) == 1.0
    assert (
        cluster.choose_resolution(sweep, method="stability", resolution=0.8, tolerance=0.01) == 0.2
    )
    with pytest.raises(ValueError, match="fixed"):
        cluster.choose_resolution(sweep, method="best", resolution=1.0)


def test_embed_and_cluster_uses_stability_choice_and_marks_it():
    a = blobs(n=150)
    sweep = cluster.embed_and_cluster(
        a, n_neighbors=10, resolution=3.0, seed=0, sweep_resolutions=[0.1, 0.3],
        sweep_seeds=2, choice="stability", stability_tolerance=0.0,
    )  # fmt: skip
    assert a.uns["cluster"]["resolution"] in (0.1, 0.3)
    assert a.uns["cluster"]["resolution_choice"] == "stability"
    assert sweep["chosen"].sum() == 1
    assert a.uns["cluster"]["n_clusters"] == 3


def test_resolution_sweep_logs_each_run_with_counters(caplog):
    a = blobs()
    cluster.embed_and_cluster(a, n_neighbors=10, resolution=0.3, seed=0)
    with caplog.at_level("INFO", logger="tmeflow.embed._cluster"):
        cluster.resolution_sweep(a, [0.6, 0.2], n_seeds=2, seed=7)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sweep ")]
    assert lines == [
        "sweep 1/2: resolution 0.2, seed 1/2",
        "sweep 1/2: resolution 0.2, seed 2/2",
        "sweep 2/2: resolution 0.6, seed 1/2",
        "sweep 2/2: resolution 0.6, seed 2/2",
    ]

"""Neighbours, UMAP and Leiden on a known embedding."""

import numpy as np
import pandas as pd
from anndata import AnnData

from tmeflow import cluster


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

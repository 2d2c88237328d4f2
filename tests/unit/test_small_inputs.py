"""Generated extremes for the steps after QC (issue 13): tiny data sets, types missing from an
arm, samples that lose most of their cells. Each step works, falls back with a logged and
recorded reason, or stops with a message that names the fix."""

import logging

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from tmeflow import cluster


def embedding(n: int, seed: int = 0) -> AnnData:
    rng = np.random.default_rng(seed)
    a = AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]))
    a.obsm["X_scVI"] = rng.normal(size=(n, 4)).astype(np.float32)
    return a


# --- neighbours, UMAP, Leiden -------------------------------------------------------------


def test_fewer_cells_than_neighbours_caps_with_a_warning_and_records_it(caplog):
    a = embedding(8)
    with caplog.at_level(logging.WARNING, logger="tmeflow.cluster"):
        cluster.embed_and_cluster(a, n_neighbors=15, resolution=1.0, seed=0)
    assert a.uns["cluster"]["n_neighbors"] == 7
    assert a.uns["cluster"]["n_neighbors_configured"] == 15
    assert "capped at 7" in a.uns["cluster"]["notes"][0]
    assert any("capped at 7" in r.getMessage() for r in caplog.records)
    assert a.obs["leiden"].notna().all()


def test_three_cells_cluster_with_random_umap_init():
    # scanpy's spectral UMAP initialisation failed: "Cannot use scipy.linalg.eigh for sparse A
    # with k >= N"
    a = embedding(3)
    sweep = cluster.embed_and_cluster(
        a, n_neighbors=15, sweep_resolutions=[0.5, 1.0], choice="stability", seed=0
    )
    assert np.isfinite(a.obsm["X_umap"]).all() and a.obsm["X_umap"].shape == (3, 2)
    assert a.uns["cluster"]["n_neighbors"] == 2
    assert any("UMAP initialised at random" in n for n in a.uns["cluster"]["notes"])
    assert sweep["chosen"].sum() == 1


@pytest.mark.parametrize("n", [1, 2])
def test_too_few_cells_give_one_cluster_with_a_reason(n, caplog):
    a = embedding(n)
    with caplog.at_level(logging.WARNING, logger="tmeflow.cluster"):
        sweep = cluster.embed_and_cluster(
            a, n_neighbors=15, sweep_resolutions=[0.5, 1.0], choice="stability", seed=0
        )
    assert list(a.obs["leiden"].astype(str)) == ["0"] * n
    assert a.uns["cluster"]["n_clusters"] == 1
    assert "not clustered" in a.uns["cluster"]["notes"][0]
    assert any(f"only {n} cell" in r.getMessage() for r in caplog.records)
    assert a.obsm["X_umap"].shape == (n, 2)
    assert a.obsp["connectivities"].shape == (n, n)
    assert list(sweep["n_clusters"]) == [1, 1] and sweep["chosen"].sum() == 1


def test_no_cells_is_a_clear_error():
    with pytest.raises(ValueError, match="relax the QC"):
        cluster.embed_and_cluster(embedding(0))


def test_normal_size_records_no_adjustment():
    a = embedding(60)
    cluster.embed_and_cluster(a, n_neighbors=15, resolution=1.0, seed=0)
    assert "notes" not in a.uns["cluster"] and "n_neighbors_configured" not in a.uns["cluster"]

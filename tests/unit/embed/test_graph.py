"""The neighbour graph: scanpy's exact graph, built without umap's numba code."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse import SparseEfficiencyWarning

from tmeflow.embed import _graph as graph

from .._fresh import fresh_python
from .test_cluster import blobs


@pytest.mark.parametrize("duplicates", [False, True])
def test_neighbors_is_scanpys_exact_graph(duplicates):
    """The graph equals scanpy's brute-force one, also where cells share a point."""
    import scanpy as sc

    a = blobs(n=300, seed=3)
    if duplicates:  # 12 cells on the same point as cell 0 (ties at distance 0)
        a.obsm["X_scVI"][1:13] = a.obsm["X_scVI"][0]
    want = a.copy()
    with warnings.catch_warnings():  # scanpy's own diagonal fix-up warns on ties
        warnings.simplefilter("ignore", SparseEfficiencyWarning)
        sc.pp.neighbors(want, use_rep="X_scVI", n_neighbors=10, transformer="sklearn")
    graph.neighbors(a, use_rep="X_scVI", n_neighbors=10)
    dist = a.obsp["distances"].tocsr()
    assert (np.diff(dist.indptr) == 9).all()  # the 9 nearest other cells
    assert not (dist.indices == np.repeat(np.arange(300), 9)).any()  # never the cell itself
    conn = a.obsp["connectivities"]
    assert conn.dtype == np.float32 and abs(conn - conn.T).max() == 0  # symmetric
    if not duplicates:  # with ties the two methods may pick other, equally near cells
        for key in ("distances", "connectivities"):
            diff = abs(a.obsp[key] - want.obsp[key])
            assert diff.max() < 1e-5, key
    for key in ("connectivities_key", "distances_key"):
        assert a.uns["neighbors"][key] == want.uns["neighbors"][key]
    assert a.uns["neighbors"]["params"] == want.uns["neighbors"]["params"] | {"use_rep": "X_scVI"}


@pytest.mark.parametrize(("n", "dim", "k"), [(2000, 10, 15), (400, 3, 30), (60, 2, 5)])
def test_connectivities_are_umaps(n, dim, k):
    """Sigma, rho and the fuzzy union agree with umap's compiled code (same kNN input)."""
    from umap.umap_ import fuzzy_simplicial_set, smooth_knn_dist

    rng = np.random.default_rng(n)
    x = rng.gamma(1.0, 1.0, size=(n, dim)).astype(np.float32)  # uneven densities
    idx, dist = graph.knn(x, k)
    dist32 = dist.astype(np.float32)
    sigma, rho = graph.smooth_knn_dist(dist32, float(k))
    want_sigma, want_rho = smooth_knn_dist(dist32, float(k))
    np.testing.assert_array_equal(rho, want_rho)
    np.testing.assert_allclose(sigma, want_sigma, rtol=1e-5)
    want = fuzzy_simplicial_set(
        sp.coo_matrix((n, 1)), k, None, None, knn_indices=idx, knn_dists=dist32
    )[0].tocsr()
    got = graph.umap_connectivities(idx, dist)
    assert got.nnz == want.nnz
    assert abs(got - want).max() < 1e-5


def test_knn_puts_the_cell_first_and_breaks_ties_by_index():
    x = np.array([[0.0], [1.0], [-1.0], [2.0], [0.0], [5.0]])  # cells 0 and 4 share a point
    idx, dist = graph.knn(x, 3)
    assert idx[:, 0].tolist() == list(range(6))
    assert (dist[:, 0] == 0).all()
    assert idx[0].tolist() == [0, 4, 1]  # 4 at distance 0, then 1 before 2 (tie, lower index)
    assert idx[4].tolist() == [4, 0, 1]
    np.testing.assert_array_equal(dist[5], [0.0, 3.0, 4.0])


def test_every_other_cell_as_a_neighbour():
    x = np.arange(5, dtype=np.float32)[:, None]
    idx, _ = graph.knn(x, 5)
    assert sorted(idx[2]) == list(range(5)) and idx[2, 0] == 2


def test_too_many_neighbours_is_a_clear_error():
    a = blobs(n=9)
    with pytest.raises(
        ValueError, match=r"n_neighbors 10 must be between 2 and the number of cells \(9\)"
    ):
        graph.neighbors(a, use_rep="X_scVI", n_neighbors=10)


def test_building_a_graph_imports_neither_umap_nor_pynndescent():
    """The point of the module: no numba compilation of umap's code in each job."""
    code = (
        "import sys, numpy as np, anndata as ad; from tmeflow import embed;"
        "a = ad.AnnData(np.zeros((200, 2), np.float32));"
        "a.obsm['X_scVI'] = np.random.default_rng(0).normal(size=(200, 5)).astype(np.float32);"
        "embed.neighbors(a, use_rep='X_scVI', n_neighbors=15);"
        "embed.leiden(a, resolution=1.0, seed=0);"
        "print(sorted(m for m in ('umap', 'pynndescent') if m in sys.modules))"
    )
    assert fresh_python(code).strip() == "[]"

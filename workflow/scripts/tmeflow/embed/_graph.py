"""The neighbour graph scanpy builds (exact kNN + UMAP connectivities), without numba.

``sc.pp.neighbors`` finds neighbours with pynndescent above 8,192 cells and turns them into
connectivities with ``umap.fuzzy_simplicial_set``. Both are numba code compiled again in every
new process: importing umap (which imports pynndescent) and compiling its functions took 9-14 s
of each job that builds a graph (clustering, annotation's sub-clustering, the sensitivity
settings), against 0.1 s to build the graph of the demo's 8,302 cells once compiled.

Here the kNN is exact (scikit-learn; a KD-tree on a low-dimensional embedding) at every size,
and the connectivities are UMAP's fuzzy simplicial set written with numpy: per cell, ``rho``
is the distance to the nearest other cell and ``sigma`` solves
``sum_j exp(-(d_j - rho) / sigma) = log2(k)`` by UMAP's bisection (64 steps, tolerance 1e-5,
the same floor); memberships ``exp(-(d - rho) / sigma)`` are combined by the fuzzy union
``A + A.T - A * A.T``. The result equals umap's to float rounding
(``tests/unit/embed/test_graph.py`` compares them: connectivities within 1e-5); umap's compiled
loop and numpy round the partial sums differently in the last bits.
"""

import numpy as np
import scipy.sparse as sp
from anndata import AnnData
from sklearn.neighbors import NearestNeighbors

__all__ = ["knn", "neighbors", "smooth_knn_dist", "umap_connectivities"]

#: UMAP's constants (``umap.umap_``).
SMOOTH_K_TOLERANCE = 1e-5
MIN_K_DIST_SCALE = 1e-3
N_ITER = 64


def neighbors(adata: AnnData, *, use_rep: str, n_neighbors: int, seed: int = 0) -> None:
    """Scanpy's neighbour graph of ``obsm[use_rep]`` (``"X"``: ``X``), exact, as scanpy stores it.

    Writes ``obsp["distances"]`` (each cell's ``n_neighbors - 1`` nearest other cells),
    ``obsp["connectivities"]`` (UMAP's, :func:`umap_connectivities`) and ``uns["neighbors"]``
    with scanpy's keys, so ``sc.tl.leiden`` and ``sc.tl.umap`` read it as theirs. ``seed`` is
    recorded as scanpy's ``random_state`` (the exact graph uses no randomness).
    """
    x = adata.X if use_rep == "X" else adata.obsm[use_rep]
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    n = x.shape[0]
    if not 2 <= n_neighbors <= n:
        raise ValueError(
            f"n_neighbors {n_neighbors} must be between 2 and the number of cells ({n}); "
            "lower cluster.n_neighbors"
        )
    idx, dist = knn(x, n_neighbors)
    rows = np.repeat(np.arange(n), n_neighbors - 1)
    distances = sp.csr_matrix(
        (dist[:, 1:].ravel(), (rows, idx[:, 1:].ravel())), shape=(n, n), dtype=dist.dtype
    )
    distances.sort_indices()
    adata.obsp["distances"] = distances
    adata.obsp["connectivities"] = umap_connectivities(idx, dist)
    params = {"n_neighbors": int(n_neighbors), "method": "umap", "random_state": seed,
              "metric": "euclidean", "use_rep": use_rep}  # fmt: skip
    adata.uns["neighbors"] = {
        "connectivities_key": "connectivities",
        "distances_key": "distances",
        "params": params,
    }


def knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each cell first, then its ``k - 1`` nearest other cells (ties: the lower index).

    Returns ``(indices, distances)``, both ``(n_cells, k)``, as scanpy passes them to UMAP.
    Where more than ``k`` cells share a point, the cell itself may not be among the ``k + 1``
    found; it is put first all the same. scikit-learn's ``algorithm="auto"`` takes a KD-tree up
    to 15 dimensions (the default ``scvi.n_latent`` is 10) and brute force above: O(n^2) time,
    in chunks of its ``working_memory`` (1 GB).
    """
    n = x.shape[0]
    m = min(k + 1, n)
    dist, idx = NearestNeighbors(n_neighbors=m).fit(x).kneighbors(x)
    own = idx == np.arange(n)[:, None]
    own[~own.any(axis=1), -1] = True  # the cell itself not found: drop the farthest instead
    others, other_dist = idx[~own].reshape(n, m - 1), dist[~own].reshape(n, m - 1)
    order = np.lexsort((others, other_dist), axis=-1)[:, : k - 1]
    others = np.take_along_axis(others, order, axis=1)
    other_dist = np.take_along_axis(other_dist, order, axis=1)
    indices = np.hstack([np.arange(n)[:, None], others])
    distances = np.hstack([np.zeros((n, 1), dtype=dist.dtype), other_dist])
    return indices, distances


def smooth_knn_dist(dist: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """UMAP's ``sigma`` and ``rho`` per cell, all cells at once.

    ``umap.umap_.smooth_knn_dist`` with local connectivity 1; column 0 of ``dist`` is the cell
    itself.
    """
    dist = np.asarray(dist, dtype=np.float32)
    n = dist.shape[0]
    positive = dist > 0
    first = positive.argmax(axis=1)
    rho = np.where(positive.any(axis=1), dist[np.arange(n), first], 0).astype(np.float32)
    target = np.log2(k)
    big = np.finfo(np.float32).max
    lo = np.zeros(n, np.float32)
    hi = np.full(n, big, np.float32)
    mid = np.ones(n, np.float32)
    active = np.arange(n)
    for _ in range(N_ITER):
        if active.size == 0:
            break
        d = dist[active, 1:] - rho[active, None]
        with np.errstate(over="ignore"):
            terms = np.exp(-(d / mid[active, None]).astype(np.float64))
        psum = np.where(d > 0, terms, 1.0).sum(axis=1)
        done = np.abs(psum - target) < SMOOTH_K_TOLERANCE
        over, under = active[~done & (psum > target)], active[~done & (psum <= target)]
        hi[over] = mid[over]
        mid[over] = (lo[over] + hi[over]) / 2
        lo[under] = mid[under]
        unbounded = hi[under] >= big
        mid[under[unbounded]] *= 2
        bounded = under[~unbounded]
        mid[bounded] = (lo[bounded] + hi[bounded]) / 2
        active = active[~done]
    floor = MIN_K_DIST_SCALE * np.where(rho > 0, dist.mean(axis=1), dist.mean())
    sigma = np.maximum(mid, floor).astype(np.float32)
    return sigma, rho


def umap_connectivities(indices: np.ndarray, dist: np.ndarray) -> sp.csr_matrix:
    """UMAP's fuzzy simplicial set of a kNN, a float32 CSR matrix.

    ``umap.umap_.fuzzy_simplicial_set`` as scanpy calls it (set_op_mix_ratio 1, local
    connectivity 1) on ``indices``/``dist`` from :func:`knn`.
    """
    n, k = indices.shape
    dist = np.asarray(dist, dtype=np.float32)
    sigma, rho = smooth_knn_dist(dist, float(k))
    d = dist - rho[:, None]
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        vals = np.exp(-(d / sigma[:, None]).astype(np.float64)).astype(np.float32)
    vals[(d <= 0) | (sigma[:, None] == 0)] = 1
    vals[indices == np.arange(n)[:, None]] = 0  # the cell itself
    rows = np.repeat(np.arange(n, dtype=np.int32), k)
    member = sp.coo_matrix((vals.ravel(), (rows, indices.ravel())), shape=(n, n))
    member.eliminate_zeros()
    transpose = member.transpose()
    union = member + transpose - member.multiply(transpose)
    union = sp.csr_matrix(union)
    union.eliminate_zeros()
    return union

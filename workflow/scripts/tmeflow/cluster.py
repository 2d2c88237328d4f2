"""Neighbour graph, UMAP and Leiden clustering on the scVI embedding."""

import logging

import numpy as np
import scanpy as sc
from anndata import AnnData

log = logging.getLogger(__name__)


def leiden(
    adata: AnnData,
    *,
    resolution: float,
    seed: int,
    key_added: str = "leiden",
    neighbors_key: str | None = None,
) -> None:
    """Leiden (igraph implementation, seeded) on an existing neighbour graph.

    Writes ``obs[key_added]`` as a categorical of cluster numbers, ordered by size (largest
    cluster "0"), so labels do not depend on the implementation's arbitrary numbering.
    """
    sc.tl.leiden(
        adata,
        resolution=resolution,
        random_state=seed,
        key_added=key_added,
        flavor="igraph",
        n_iterations=-1,
        directed=False,
        neighbors_key=neighbors_key,
    )
    raw = adata.obs[key_added].astype(str)
    sizes = raw.value_counts()
    order = sorted(sizes.index, key=lambda c: (-sizes[c], int(c)))
    mapping = {old: str(i) for i, old in enumerate(order)}
    adata.obs[key_added] = raw.map(mapping).astype("category")
    adata.obs[key_added] = adata.obs[key_added].cat.reorder_categories(
        [str(i) for i in range(len(order))]
    )


def embed_and_cluster(
    adata: AnnData,
    *,
    use_rep: str = "X_scVI",
    n_neighbors: int = 15,
    resolution: float = 1.0,
    seed: int = 0,
) -> None:
    """kNN graph on ``obsm[use_rep]``, UMAP and Leiden.

    Writes ``obsp["connectivities"]``/``obsp["distances"]``, ``obsm["X_umap"]``,
    ``obs["leiden"]`` and ``uns["cluster"]`` (parameters, number of clusters).
    """
    if use_rep not in adata.obsm:
        raise ValueError(f"obsm[{use_rep!r}] is missing; run the integration step first")
    n_neighbors = int(min(n_neighbors, max(adata.n_obs - 1, 2)))
    sc.pp.neighbors(adata, use_rep=use_rep, n_neighbors=n_neighbors, random_state=seed)
    sc.tl.umap(adata, random_state=seed)
    adata.obsm["X_umap"] = np.asarray(adata.obsm["X_umap"], dtype=np.float32)
    leiden(adata, resolution=resolution, seed=seed)
    adata.uns["cluster"] = {
        "use_rep": use_rep,
        "n_neighbors": n_neighbors,
        "resolution": float(resolution),
        "seed": int(seed),
        "n_clusters": int(adata.obs["leiden"].nunique()),
    }

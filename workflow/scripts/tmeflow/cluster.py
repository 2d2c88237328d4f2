"""Neighbour graph, UMAP and Leiden clustering on the scVI embedding, with a resolution sweep.

The sweep runs Leiden at each resolution with several seeds on the same graph and records the
number of clusters, the stability (mean pairwise adjusted Rand index between seeds) and the
agreement with the next lower resolution. The resolution used is either the configured one
(``fixed``) or chosen by stability (``stability``): the highest resolution whose stability is
within ``tolerance`` of the most stable one. Finer is preferred because marker annotation labels
clusters and merges over-split ones for free, while under-clustering merges cell types that no
annotation can separate again.
"""

import itertools
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData
from sklearn.metrics import adjusted_rand_score

logger = logging.getLogger(__name__)


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


def resolution_sweep(
    adata: AnnData,
    resolutions: Sequence[float],
    *,
    n_seeds: int = 3,
    seed: int = 0,
    neighbors_key: str | None = None,
) -> pd.DataFrame:
    """Leiden at each resolution with ``n_seeds`` seeds (``seed``, ``seed + 1``, ...).

    Needs an existing neighbour graph; ``adata`` is not modified. Returns one row per
    resolution: ``resolution``, ``n_clusters`` (first seed), ``n_clusters_min``/``_max`` (over
    seeds), ``stability`` (mean pairwise ARI between seeds; 1.0 with one seed) and
    ``ari_previous`` (ARI of the first seed with the next lower resolution; NaN for the first).
    """
    if not resolutions:
        raise ValueError("resolution sweep needs at least one resolution")
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, not {n_seeds}")
    work = AnnData(obs=pd.DataFrame(index=adata.obs_names))
    key = neighbors_key or "neighbors"
    if key not in adata.uns:
        raise ValueError(f"no neighbour graph uns[{key!r}]; compute neighbours first")
    conn_key = adata.uns[key].get("connectivities_key", "connectivities")
    dist_key = adata.uns[key].get("distances_key", "distances")
    work.obsp["connectivities"] = adata.obsp[conn_key]
    work.obsp["distances"] = adata.obsp[dist_key]
    work.uns["neighbors"] = {
        "connectivities_key": "connectivities",
        "distances_key": "distances",
        "params": dict(adata.uns[key].get("params", {})),
    }
    rows, previous = [], None
    for res in sorted(float(r) for r in resolutions):
        runs = []
        for s in range(seed, seed + n_seeds):
            leiden(work, resolution=res, seed=s, key_added="sweep")
            runs.append(work.obs["sweep"].astype(str).to_numpy())
        pairs = list(itertools.combinations(runs, 2))
        sizes = [len(set(r)) for r in runs]
        rows.append(
            {
                "resolution": res,
                "n_clusters": sizes[0],
                "n_clusters_min": min(sizes),
                "n_clusters_max": max(sizes),
                "stability": float(np.mean([adjusted_rand_score(a, b) for a, b in pairs]))
                if pairs
                else 1.0,
                "ari_previous": float(adjusted_rand_score(previous, runs[0]))
                if previous is not None
                else np.nan,
            }
        )
        previous = runs[0]
    return pd.DataFrame(rows)


def choose_resolution(
    sweep: pd.DataFrame, *, method: str, resolution: float, tolerance: float = 0.05
) -> float:
    """Choose the resolution to use.

    ``resolution`` itself (``fixed``), or the highest resolution of the sweep whose stability
    is within ``tolerance`` of the best (``stability``).
    """
    if method == "fixed":
        return float(resolution)
    if method != "stability":
        raise ValueError(f"resolution choice must be 'fixed' or 'stability', not {method!r}")
    if sweep.empty:
        raise ValueError("stability choice needs a resolution sweep; set cluster.sweep_resolutions")
    best = float(sweep["stability"].max())
    ok = sweep.loc[sweep["stability"] >= best - tolerance, "resolution"]
    return float(ok.max())


def embed_and_cluster(
    adata: AnnData,
    *,
    use_rep: str = "X_scVI",
    n_neighbors: int = 15,
    resolution: float = 1.0,
    seed: int = 0,
    sweep_resolutions: Sequence[float] = (),
    sweep_seeds: int = 3,
    choice: str = "fixed",
    stability_tolerance: float = 0.05,
) -> pd.DataFrame:
    """KNN graph on ``obsm[use_rep]``, UMAP, a Leiden resolution sweep and Leiden.

    Writes ``obsp["connectivities"]``/``obsp["distances"]``, ``obsm["X_umap"]``,
    ``obs["leiden"]`` and ``uns["cluster"]`` (parameters, chosen resolution and how, number of
    clusters). Returns the sweep table (:func:`resolution_sweep`) with a boolean ``chosen``
    column (empty when no sweep resolutions are given).
    """
    if use_rep not in adata.obsm:
        raise ValueError(f"obsm[{use_rep!r}] is missing; run the integration step first")
    n_neighbors = int(min(n_neighbors, max(adata.n_obs - 1, 2)))
    sc.pp.neighbors(adata, use_rep=use_rep, n_neighbors=n_neighbors, random_state=seed)
    sc.tl.umap(adata, random_state=seed)
    adata.obsm["X_umap"] = np.asarray(adata.obsm["X_umap"], dtype=np.float32)
    sweep = (
        resolution_sweep(adata, sweep_resolutions, n_seeds=sweep_seeds, seed=seed)
        if len(sweep_resolutions)
        else pd.DataFrame(columns=["resolution", "n_clusters", "stability", "ari_previous"])
    )
    chosen = choose_resolution(
        sweep, method=choice, resolution=resolution, tolerance=stability_tolerance
    )
    sweep["chosen"] = np.isclose(sweep["resolution"].astype(float), chosen)
    leiden(adata, resolution=chosen, seed=seed)
    adata.uns["cluster"] = {
        "use_rep": use_rep,
        "n_neighbors": n_neighbors,
        "resolution": float(chosen),
        "resolution_choice": choice,
        "configured_resolution": float(resolution),
        "sweep_resolutions": [float(r) for r in sweep_resolutions],
        "sweep_seeds": int(sweep_seeds),
        "stability_tolerance": float(stability_tolerance),
        "seed": int(seed),
        "n_clusters": int(adata.obs["leiden"].nunique()),
    }
    logger.info(
        "Leiden resolution %.3g (%s): %d clusters",
        chosen,
        choice,
        adata.uns["cluster"]["n_clusters"],
    )
    return sweep

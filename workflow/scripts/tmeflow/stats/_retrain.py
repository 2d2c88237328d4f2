"""Retraining settings of the sensitivity table: the embedding made again, then the labels.

The cheap settings of :mod:`tmeflow.stats._sensitivity` keep scVI's embedding. These change it:
scVI trained again with another seed, another ``n_latent`` or on another number of highly
variable genes, and a baseline without scVI (PCA of the log-normalised highly variable genes,
no batch correction). Each starts from ``results/integrate/integrated.h5ad`` (the merged,
QC'd cells with their raw counts, log-normalised ``X`` and HVG flags; nothing upstream is run
again), builds the neighbour graph on its embedding, runs Leiden at the resolution the run
used and annotates with the configured panel and thresholds. The labels (one file per
setting, ``results/sensitivity/retrain/<name>.tsv.gz``) join the annotation settings'
(:meth:`tmeflow.stats.LabelSettings.extend`) and are tested like them, so a change of the
tests' settings does not retrain.

Each setting is a job of its own (``sensitivity_retrain``) that runs beside the rest of the
workflow: it needs the integrated object and the chosen resolution only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # the workflow's parse step imports this module for retrain_variants
    from anndata import AnnData

__all__ = ["PCA_COMPONENTS", "RETRAIN_SETTING", "retrain_labels", "retrain_variants"]

logger = logging.getLogger(__name__)

#: The setting name of these rows in ``results/sensitivity.tsv``.
RETRAIN_SETTING = "retrain"
#: Principal components of the PCA baseline (scanpy's default).
PCA_COMPONENTS = 50
_LABELS = ("cell_type", "cell_subtype", "cell_state")
_VARIANT = re.compile(r"^(seed|n_latent|n_top_genes)(\d+)$|^pca$")


def retrain_variants(
    *, seeds: int = 0, n_latent: Sequence[int] = (), n_top_genes: Sequence[int] = (),
    pca: bool = False, configured: Mapping | None = None,
) -> list[str]:  # fmt: skip
    """The retraining settings' names, in table order (also the jobs' wildcards).

    ``seedK`` (scVI with the configured seed + K, K = 1..``seeds``), ``n_latentN``,
    ``n_top_genesN`` and ``pca``. Values equal to the configured ones (``configured``:
    ``n_latent``, ``n_top_genes``) are left out.
    """
    configured = configured or {}
    out = [f"seed{k}" for k in range(1, int(seeds) + 1)]
    out += [f"n_latent{int(n)}" for n in sorted(set(n_latent)) if n != configured.get("n_latent")]
    out += [
        f"n_top_genes{int(n)}"
        for n in sorted(set(n_top_genes))
        if n != configured.get("n_top_genes")
    ]
    return out + (["pca"] if pca else [])


def _parse(variant: str) -> tuple[str, int | None]:
    match = _VARIANT.match(variant)
    if match is None:
        raise ValueError(
            f"unknown retraining setting {variant!r}: seed<K>, n_latent<N>, n_top_genes<N> or pca"
        )
    if variant == "pca":
        return "pca", None
    return match.group(1), int(match.group(2))


def retrain_labels(
    adata: AnnData,
    variant: str,
    panel: dict,
    *,
    scvi_options: Mapping,
    hvg_options: Mapping,
    n_neighbors: int,
    resolution: float,
    seed: int,
    annotate_options: Mapping,
) -> tuple[pd.DataFrame, str]:
    """The cells' labels with the embedding of ``variant`` (:func:`retrain_variants`).

    Parameters
    ----------
    adata
        ``integrated.h5ad``: raw ``layers['counts']``, log-normalised ``X``,
        ``var['highly_variable']``, ``obs['sample']`` (scVI's batches); not modified.
    variant
        ``seedK``, ``n_latentN``, ``n_top_genesN`` or ``pca``.
    panel
        The annotation's marker panel.
    scvi_options
        Keyword arguments of :func:`tmeflow.embed.train_scvi` as configured (``n_latent``,
        ``n_hidden``, ``max_epochs``, ``threads``...; not ``seed``); the variant changes one.
    hvg_options
        Keyword arguments of :func:`tmeflow.embed.select_hvgs` as configured (not
        ``n_top_genes``), for ``n_top_genesN``.
    n_neighbors, resolution, seed
        The graph's neighbours, the Leiden resolution the run used and the run's seed.
    annotate_options
        Keyword arguments of :func:`tmeflow.annotate.annotate` as configured.

    Returns
    -------
    labels
        One row per cell of ``adata`` (same order), the annotation's label columns.
    note
        What was done (the embedding and the number of clusters).
    """
    # scanpy, scVI and the annotation are imported here: the workflow reads
    # retrain_variants when it parses, which must stay light
    from anndata import AnnData

    from tmeflow.annotate import _cell_types as annotate_mod
    from tmeflow.embed import _cluster as cluster
    from tmeflow.embed import _graph as graph
    from tmeflow.embed import _hvg as hvg
    from tmeflow.embed import _integrate as integrate
    from tmeflow.embed import _metrics as metrics

    kind, value = _parse(variant)
    work = AnnData(
        X=adata.X,
        obs=adata.obs[[c for c in adata.obs.columns if not _derived(c)]].copy(),
        var=adata.var.copy(),
        layers={"counts": adata.layers["counts"]},
    )
    scvi = {**scvi_options, "seed": int(seed)}
    if kind == "seed":
        scvi["seed"] = int(seed) + int(value)
        what = f"scVI retrained with seed {scvi['seed']}"
    elif kind == "n_latent":
        scvi["n_latent"] = int(value)
        what = f"scVI retrained with n_latent {value}"
    elif kind == "n_top_genes":
        hvg.select_hvgs(work, n_top_genes=int(value), **hvg_options)
        what = f"scVI retrained on {int(work.var['highly_variable'].sum())} variable genes"
    else:
        what = f"PCA ({PCA_COMPONENTS} components) of the variable genes, no scVI"
    if kind == "pca":
        work.obsm["X_pca"] = metrics.unintegrated_pca(work, n_comps=PCA_COMPONENTS, seed=seed)
        rep = "X_pca"
    else:
        integrate.train_scvi(work, **scvi)
        rep = "X_scVI"
    k = int(min(n_neighbors, work.n_obs - 1))
    graph.neighbors(work, use_rep=rep, n_neighbors=k, seed=seed)
    cluster.leiden(work, resolution=float(resolution), seed=seed)
    n_clusters = work.obs["leiden"].nunique()
    annotate_mod.annotate(work, panel, cluster_key="leiden", **annotate_options)
    labels = pd.DataFrame(
        {key: work.obs[key].astype(str).to_numpy() for key in _LABELS if key in work.obs},
        index=adata.obs_names.copy(),
    )
    note = f"{what}; Leiden {resolution:g}: {n_clusters} clusters"
    logger.info("%s: %s", variant, note)
    return labels, note


def _derived(column: str) -> bool:
    """An ``obs`` column of the clustering or annotation (made again here, not carried over)."""
    return column in (*_LABELS, "leiden") or column.startswith(("score_", "annotation_"))

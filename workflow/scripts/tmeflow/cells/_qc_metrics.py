"""Per-cell QC metrics: library size, genes, mitochondrial share, and QC's hard floors.

The metrics every QC step reads (:func:`qc_metrics`), the cells within the hard floors
(:func:`passes_floors`: those the cluster-aware doublet caller scores) and the name of a
sample for messages. Thresholds and the filter are :mod:`tmeflow.cells._qc`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from tmeflow.cells._species import strip_prefix

logger = logging.getLogger("tmeflow.cells._qc")  # QC's log lines, one logger

MITO_PREFIXES: tuple[str, ...] = ("MT-", "mt-")


def sample_name(adata: AnnData) -> str:
    """Name the sample(s) of ``adata`` for messages (``"<unknown>"`` without cells)."""
    if "sample" in adata.obs and adata.n_obs:
        return ",".join(map(str, pd.unique(adata.obs["sample"].astype(str))))
    return "<unknown>"


def mito_mask(adata: AnnData) -> np.ndarray:
    """Mitochondrial features of both species.

    A feature is mitochondrial when its symbol, after removing any genome prefix (from
    ``var["feature_name"]`` when present, else the var name), starts with ``MT-`` (human) or
    ``mt-`` (mouse).
    """
    names = (
        adata.var["feature_name"].astype(str)
        if "feature_name" in adata.var
        else pd.Series(adata.var_names.astype(str))
    )
    return np.array([strip_prefix(n).startswith(MITO_PREFIXES) for n in names], dtype=bool)


def qc_metrics(adata: AnnData) -> None:
    """Compute per-cell QC metrics from the raw counts in ``X`` (never densified).

    Writes ``obs["total_counts"]``, ``obs["n_genes_by_counts"]`` (features with a count > 0),
    ``obs["total_counts_mt"]``, ``obs["pct_counts_mt"]`` (0 for a cell without counts) and
    ``var["mt"]``.

    Kept by hand rather than :func:`scanpy.pp.calculate_qc_metrics`, whose columns differ
    (measured by ``bench/lib_equality.py``): totals in the counts' dtype (int64/float32, not
    float64), ``n_genes_by_counts`` int32 for sparse input, NaN ``pct_counts_mt`` for empty
    cells, and ``mt / total * 100`` differing from ``100 * mt / total`` in the last bit for
    about 28% (integer counts) to 81% (float32 counts) of cells even after aligning dtypes.
    """
    X = adata.X
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        total = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
        n_genes = np.diff((X > 0).tocsr().indptr)
    else:
        X = np.asarray(X)
        total = X.sum(axis=1, dtype=np.float64)
        n_genes = (X > 0).sum(axis=1)
    mt = mito_mask(adata)
    if mt.any():
        mt_counts = np.asarray(X[:, np.flatnonzero(mt)].sum(axis=1), dtype=np.float64).ravel()
    else:
        mt_counts = np.zeros(adata.n_obs)
        logger.warning(
            "sample %s: no mitochondrial features (MT-/mt-) found; pct_counts_mt is 0",
            sample_name(adata),
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(total > 0, 100.0 * mt_counts / np.where(total > 0, total, 1), 0.0)
    adata.var["mt"] = mt
    adata.obs["total_counts"] = total
    adata.obs["n_genes_by_counts"] = n_genes.astype(np.int64)
    adata.obs["total_counts_mt"] = mt_counts
    adata.obs["pct_counts_mt"] = pct


def passes_floors(
    obs: pd.DataFrame, *, min_counts: int = 500, min_genes: int = 200, max_pct_mito: float = 25.0
) -> np.ndarray:
    """Cells within the hard QC floors: the cells the cluster-aware doublet caller scores.

    Reads ``total_counts``, ``n_genes_by_counts`` and ``pct_counts_mt`` (:func:`qc_metrics`).
    The floors remove the other cells whatever the MAD bounds, and a cluster of dying cells
    would otherwise pass for a cell type whose doublets the caller simulates.
    """
    return (
        (obs["total_counts"].to_numpy() >= min_counts)
        & (obs["n_genes_by_counts"].to_numpy() >= min_genes)
        & (obs["pct_counts_mt"].to_numpy() <= max_pct_mito)
    )

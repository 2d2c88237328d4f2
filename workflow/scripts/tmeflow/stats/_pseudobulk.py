"""Pseudobulk: raw counts summed per (animal, group), and the count helpers DE builds on.

Shared by :mod:`tmeflow.stats._de` (the tests) and :mod:`tmeflow.stats._genes_of_interest` (the
genes-of-interest report): the raw-count check, the sparse (sample, group) indicator and log1p
CP10k; and :func:`select_arms`, the cells of one contrast's two arms, with which every
comparison of a study with more arms starts.
"""

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from tmeflow._utils import ROW_SUM_BLOCK, TARGET_SUM, cp10k, observed_levels, row_runs

__all__ = [
    "TARGET_SUM",
    "check_obs",
    "counts_matrix",
    "cp10k_log",
    "pair_indicator",
    "pseudobulk",
    "select_arms",
]

logger = logging.getLogger(__name__)

#: Counts per cell after normalisation (CP10k) in :func:`cp10k_log`.


def select_arms(adata: AnnData, condition_key: str, reference: str, test: str) -> AnnData:
    """The cells of a contrast's two arms, the others left out and logged.

    A study with a third arm (``contrasts`` in the config) keeps every arm upstream; each
    comparison (DE, composition, the confirmatory family, communication) then sees only its
    own two, so a third arm is never pooled into the reference. Unused categories of ``obs``
    columns are dropped.

    Parameters
    ----------
    adata
        The annotated object.
    condition_key
        ``obs`` column of the arms. Absent: ``adata`` is returned as is (the caller's own
        check names the missing column).
    reference, test
        The two arms kept.

    Returns
    -------
    AnnData
        ``adata`` itself when every cell is in one of the two arms (no copy), else a copy of
        the arms' cells.
    """
    if condition_key not in adata.obs.columns:
        return adata
    arm = adata.obs[condition_key].astype(str)
    keep = arm.isin([str(reference), str(test)]).to_numpy()
    if keep.all():
        return adata
    others = arm[~keep].value_counts().sort_index()
    logger.info(
        "contrast %s vs %s: %d of %d cells are in other arms and left out (%s)",
        test,
        reference,
        int((~keep).sum()),
        adata.n_obs,
        ", ".join(f"{k}: {v}" for k, v in others.items()),
    )
    sub = adata[keep].copy()
    for col in sub.obs.columns:
        if isinstance(sub.obs[col].dtype, pd.CategoricalDtype):
            sub.obs[col] = sub.obs[col].cat.remove_unused_categories()
    return sub


def counts_matrix(adata: AnnData, layer: str | None) -> sp.csr_matrix:
    """Return the raw counts as CSR, checking they hold integers (no copy when already CSR).

    Parameters
    ----------
    adata
        The object.
    layer
        Layer of raw integer counts (``X`` when ``None``).

    Returns
    -------
    scipy.sparse.csr_matrix
        Cells x genes.

    Raises
    ------
    KeyError
        When ``layer`` is missing.
    ValueError
        When the values are not integers (normalised expression).
    """
    if layer is None:
        mat = adata.X
    else:
        if layer not in adata.layers:
            msg = (
                f"no layer {layer!r} in the AnnData (layers: {list(adata.layers)}); "
                "pass the layer holding raw integer counts (layers['counts'] in annotated.h5ad)"
            )
            raise KeyError(msg)
        mat = adata.layers[layer]
    if not isinstance(mat, sp.csr_matrix):
        mat = sp.csr_matrix(mat)  # dense, CSC or csr_array input
    if mat.dtype.kind == "f":
        data = mat.data
        if data.size and not np.array_equal(data, np.round(data)):
            msg = (
                f"layer {layer!r} holds non-integer values; pseudobulk tests need raw counts, "
                "not normalised expression"
            )
            raise ValueError(msg)
    return mat


def check_obs(adata: AnnData, keys: Sequence[str]) -> None:
    """Raise a KeyError naming the ``obs`` columns among ``keys`` that are missing.

    Parameters
    ----------
    adata
        The object.
    keys
        Required ``obs`` columns.
    """
    missing = [k for k in keys if k not in adata.obs.columns]
    if missing:
        msg = f"obs lacks column(s) {missing}; available: {list(adata.obs.columns)}"
        raise KeyError(msg)


def pair_indicator(
    adata: AnnData, sample_key: str, group_key: str
) -> tuple[sp.csr_matrix, pd.DataFrame]:
    """Sparse (pair x cell) indicator of the observed (sample, group) pairs, deterministic order.

    Parameters
    ----------
    adata
        The object.
    sample_key, group_key
        ``obs`` columns of the animals and the groups.

    Returns
    -------
    indicator
        Pairs x cells, 1 where the cell belongs to the pair; ``indicator @ counts`` sums them.
    pairs
        One row per observed pair (ordered by sample, then group, in level order), index
        ``f"{sample}|{group}"``, columns ``sample``, ``group``, ``n_cells``.
    """
    obs = adata.obs
    samples = observed_levels(obs[sample_key])
    groups = observed_levels(obs[group_key])
    s_code = pd.Categorical(obs[sample_key].astype(str), categories=samples).codes
    g_code = pd.Categorical(obs[group_key].astype(str), categories=groups).codes
    valid = (s_code >= 0) & (g_code >= 0)
    pair = np.where(valid, s_code.astype(np.int64) * len(groups) + g_code, -1)
    used, inverse = np.unique(pair[valid], return_inverse=True)
    cells = np.flatnonzero(valid)
    ind = sp.csr_matrix(
        (np.ones(cells.size, dtype=np.int64), (inverse, cells)),
        shape=(used.size, adata.n_obs),
    )
    s_of = np.asarray(samples, dtype=object)[used // len(groups)]
    g_of = np.asarray(groups, dtype=object)[used % len(groups)]
    pairs = pd.DataFrame({"sample": s_of, "group": g_of})
    pairs.index = pd.Index([f"{s}|{g}" for s, g in zip(s_of, g_of, strict=True)], dtype=object)
    pairs["n_cells"] = np.asarray(ind.sum(axis=1)).ravel().astype(np.int64)
    return ind, pairs


def _sample_level_columns(adata: AnnData, sample_key: str, exclude: Sequence[str]) -> list[str]:
    """Obs columns that take a single value within every sample."""
    obs = adata.obs
    cols = []
    for col in obs.columns:
        if col in exclude or col == sample_key:
            continue
        nun = obs.groupby(obs[sample_key].astype(str), observed=True)[col].nunique(dropna=False)
        if (nun <= 1).all():
            cols.append(col)
    return cols


def _sample_table(adata: AnnData, sample_key: str, columns: Sequence[str]) -> pd.DataFrame:
    first = adata.obs.groupby(adata.obs[sample_key].astype(str), observed=True)[list(columns)]
    table = first.first()
    for col in columns:
        if isinstance(adata.obs[col].dtype, pd.CategoricalDtype):
            table[col] = table[col].astype(str)
    return table


def cp10k_log(counts: sp.csr_matrix, totals: np.ndarray) -> sp.csr_matrix:
    """log1p of counts per 10,000 (sparse, rows = cells, float64): :func:`tmeflow._utils.cp10k`.

    Parameters
    ----------
    counts
        Cells x genes (a subset of genes is fine).
    totals
        Each cell's total count over all genes (the library size); 0 gives a zero row.
    """
    return cp10k(counts, totals)


def _pair_sums(ind: sp.csr_matrix, mat: sp.csr_matrix) -> np.ndarray:
    """``ind @ mat`` (pairs x genes, float64), a run of cells at a time.

    The float64 product is exact for integer counts below 2**53 (the int64 cast gives the
    integer sums). scanpy's ``get.aggregate``, used before, converts the whole counts matrix
    to float64 first: 1.5x its CSR on top of it (the sensitivity job at 100k cells). Here only
    a run of rows holding about :data:`tmeflow._utils.ROW_SUM_BLOCK` values is converted at
    once.
    """
    ind = sp.csc_matrix(ind, dtype=np.float64)
    out = np.zeros((ind.shape[0], mat.shape[1]), dtype=np.float64)
    for lo, hi in row_runs(mat, ROW_SUM_BLOCK):
        out += (ind[:, lo:hi] @ mat[lo:hi]).toarray()
    return out


def pseudobulk(
    adata: AnnData,
    *,
    group_key: str = "cell_type",
    sample_key: str = "sample",
    layer: str | None = "counts",
    min_cells: int = 10,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sum raw counts per (sample, group).

    Parameters
    ----------
    adata
        Annotated object with raw integer counts in ``layers[layer]`` (``X`` when ``None``).
    group_key, sample_key
        ``obs`` columns defining the groups (cell types) and the animals.
    layer
        Layer of raw counts.
    min_cells
        Pseudobulk profiles from fewer cells are flagged ``kept=False`` (still returned).

    Returns
    -------
    counts
        Rows ``f"{sample}|{group}"`` (observed pairs only, ordered by sample then group),
        columns ``var_names``; int64 sums.
    metadata
        Same rows; columns ``sample``, ``group``, ``n_cells``, ``kept`` and every ``obs``
        column that is constant within each sample (``condition`` and sample-sheet columns).
        Nothing is written into ``adata``.
    """
    check_obs(adata, [sample_key, group_key])
    mat = counts_matrix(adata, layer)
    ind, pairs = pair_indicator(adata, sample_key, group_key)
    counts = pd.DataFrame(
        _pair_sums(ind, mat).astype(np.int64),
        index=pairs.index,
        columns=adata.var_names.astype(str),
    )

    extra = [
        c
        for c in _sample_level_columns(adata, sample_key, exclude=[group_key])
        if c not in {"sample", "group", "n_cells", "kept"}
    ]
    meta = pairs.copy()
    if extra:
        per_sample = _sample_table(adata, sample_key, extra)
        meta = meta.join(per_sample, on="sample")
    meta["kept"] = meta["n_cells"] >= min_cells
    lead = ["sample", "group", *extra, "n_cells", "kept"]
    return counts, meta[lead]

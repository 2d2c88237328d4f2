"""Small helpers shared by several stages: level order, natural sort, row sums, CP10k, p-values."""

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "ROW_SUM_BLOCK",
    "TARGET_SUM",
    "adjust_pvalues",
    "cp10k",
    "cp10k_scale",
    "missing_from_union",
    "natural_key",
    "observed_levels",
    "row_runs",
    "row_sums",
]


def observed_levels(values: pd.Series) -> list[str]:
    """Observed levels of a column, in categorical order when categorical, else sorted.

    Parameters
    ----------
    values
        A column of ``obs`` (or any Series); missing values are ignored.

    Returns
    -------
    list of str
        The levels that occur at least once, as strings.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        observed = set(values.dropna().astype(str))
        return [str(c) for c in values.cat.categories if str(c) in observed]
    return sorted(values.dropna().astype(str).unique())


def natural_key(label: Any) -> tuple:
    """Sort key that orders digit runs by value: ``2 < 10``, ``S2 < S10``, ``3 < 3:1 < 4``.

    Letters compare case-insensitively; the label itself breaks ties, and a label that is a
    prefix of another sorts first.

    Parameters
    ----------
    label
        Any value; it is compared as ``str(label)``.

    Returns
    -------
    tuple
        A key for :func:`sorted`.
    """
    text = str(label)
    parts = re.split(r"(\d+)", text)
    key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p)
    return (*key, (-1, 0, text))


def missing_from_union(
    features: Mapping[str, Iterable[str]], *, max_examples: int = 10
) -> dict[str, dict]:
    """Features of the union that each sample lacks (count and the first examples).

    Parameters
    ----------
    features
        Sample -> the features its matrix measured.
    max_examples
        How many missing feature names to keep per sample.

    Returns
    -------
    dict
        ``{sample: {"n_missing": int, "examples": [name, ...]}}`` for the samples that lack at
        least one feature measured in another sample; empty when all share their features.
        Examples follow the order of the first sample that has them.
    """
    union: dict[str, None] = {}
    have = {}
    for name, names in features.items():
        have[name] = list(dict.fromkeys(str(f) for f in names))
        union.update(dict.fromkeys(have[name]))
    out: dict[str, dict] = {}
    for name, names in have.items():
        if len(names) == len(union):
            continue
        present = set(names)
        lacking = [f for f in union if f not in present]
        out[name] = {"n_missing": len(lacking), "examples": lacking[:max_examples]}
    return out


#: Values :func:`row_sums` converts at once (float64: 8 MB).
ROW_SUM_BLOCK = 1 << 20


def row_runs(mat: Any, block: int = ROW_SUM_BLOCK) -> Iterator[tuple[int, int]]:
    """``(lo, hi)`` row ranges of a sparse matrix holding about ``block`` stored values each.

    For work that converts a matrix's values (to float64) a run of whole rows at a time, so
    that only one run's copy is held at once (:func:`row_sums`, pseudobulk sums).
    """
    n_rows = mat.shape[0]
    step = max(1, int(block) // max(1, mat.nnz // max(n_rows, 1)))  # rows per run
    for lo in range(0, n_rows, step):
        yield lo, min(lo + step, n_rows)


def row_sums(mat: Any, *, block: int = ROW_SUM_BLOCK) -> np.ndarray:
    """Per-row sums (float64) of a matrix, without a whole-matrix copy for sparse input.

    scipy's ``csr.sum(axis=1)`` on int32 counts first converts every stored value to int64: a
    copy as large as the counts' CSR (measured: one CSR of extra peak memory in the
    sensitivity job). Here a CSR matrix is summed in runs of whole rows holding about
    ``block`` values (:func:`row_runs`), each converted to float64 on its own (exact for
    integer counts below 2**53: the same values as before). Other input uses ``sum(axis=1)``.
    """
    if not isinstance(mat, sp.csr_matrix | sp.csr_array):
        return np.asarray(mat.sum(axis=1), dtype=np.float64).ravel()
    out = np.zeros(mat.shape[0], dtype=np.float64)
    for lo, hi in row_runs(mat, block):
        ptr = mat.indptr[lo : hi + 1]
        rows = np.flatnonzero(np.diff(ptr))  # rows with stored values
        if rows.size:
            # each segment runs from one non-empty row's start to the next's: that row's values
            values = mat.data[ptr[0] : ptr[-1]]
            out[lo + rows] = np.add.reduceat(values, ptr[rows] - ptr[0], dtype=np.float64)
    return out


#: The library size counts are scaled to before ``log1p`` (CP10k), in every stage.
TARGET_SUM = 1e4


def cp10k_scale(totals: np.ndarray, *, dtype: type = np.float64) -> np.ndarray:
    """Each row's factor ``TARGET_SUM / total`` in ``dtype`` (0 for an empty row).

    The one normalisation of the workflow: :func:`cp10k` scales a matrix with it, and a
    single gene's column is ``log1p(column * cp10k_scale(totals))``.
    """
    totals = np.asarray(totals, dtype=dtype)
    return np.divide(dtype(TARGET_SUM), totals, out=np.zeros(totals.shape, dtype), where=totals > 0)


def cp10k(
    counts: sp.spmatrix | np.ndarray,
    totals: np.ndarray,
    *,
    log1p: bool = True,
    dtype: type = np.float64,
) -> sp.csr_matrix:
    """``log1p(counts * TARGET_SUM / totals)`` (or without the log), row by row, as CSR.

    Parameters
    ----------
    counts
        Cells x genes (a subset of genes is fine: ``totals`` are the library sizes).
    totals
        Each cell's total count over all genes; 0 gives a zero row.
    log1p
        Apply ``log1p`` (the default) or return the counts per 10,000 themselves.
    dtype
        ``float64`` for statistics, ``float32`` for the object's ``X``.

    Notes
    -----
    Each stored count is multiplied by its row's :func:`cp10k_scale` in ``dtype``; the
    structure (indices, explicit entries) is the input's. Kept by hand rather than
    :func:`scanpy.pp.normalize_total` + :func:`scanpy.pp.log1p`: those take the library size
    from the matrix itself (here ``counts`` may be a gene subset) and divide by
    ``total / 1e4`` instead of multiplying by ``1e4 / total``, 1 ulp apart in ~1% of entries
    (``bench/lib_equality.py``), which would change every output downstream.
    """
    counts = sp.csr_matrix(counts)
    data = counts.data.astype(dtype)
    data *= np.repeat(cp10k_scale(totals, dtype=dtype), np.diff(counts.indptr))
    if log1p:
        np.log1p(data, out=data)
    return sp.csr_matrix((data, counts.indices.copy(), counts.indptr.copy()), shape=counts.shape)


def adjust_pvalues(pvalues: Iterable[float], method: str, *, m: int | None = None) -> np.ndarray:
    """Multiple-testing adjusted p-values by statsmodels, NaN entries left out and kept NaN.

    Parameters
    ----------
    pvalues
        The family's p-values (NaN: not tested).
    method
        A :func:`statsmodels.stats.multitest.multipletests` method: ``"holm"`` or ``"fdr_bh"``.
    m
        The size of the family when it is larger than its finite p-values (a pre-specified
        family whose untestable members still count): the missing members enter as p = 1,
        which leaves Holm's and BH's adjustment of the others as with ``m`` tests.
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(list(pvalues) if not isinstance(pvalues, np.ndarray) else pvalues, float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    k = int(ok.sum())
    if k == 0:
        return out
    pad = max(int(m) - k, 0) if m is not None else 0
    family = np.concatenate([p[ok], np.ones(pad)])
    if method == "holm":  # statsmodels' holm runs gc.collect() on every call (~0.1 s)
        order = np.argsort(family, kind="mergesort")
        steps = (family.size - np.arange(family.size)) * family[order]
        adjusted = np.empty_like(family)
        adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
        out[ok] = adjusted[:k]
        return out
    out[ok] = multipletests(family, method=method)[1][:k]
    return out

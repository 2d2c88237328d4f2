"""Read the counts of an h5ad, whole or the cells of one ``obs`` value (a deposit's sample).

Raw counts are taken from ``layers["counts"]``, else ``raw.X``, else ``X``: the first that
holds non-negative integers. Used by :func:`tmeflow.inputs.read_counts`; :func:`obs_mask`,
:func:`read_h5ad_obs` and :func:`first_values` also by the sample-sheet checks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd

from tmeflow.core._errors import InputError, input_error
from tmeflow.inputs._count_matrix import _build, _is_count_matrix, _unreadable
from tmeflow.inputs._gene_names import make_unique

logger = logging.getLogger("tmeflow.inputs._read_counts")  # the readers' log lines, unchanged


_REWRITE = "Re-download or re-write the file."

_H5AD_COUNTS = (
    ('layers["counts"]', "layers/counts", "var"),
    ("raw.X", "raw/X", "raw/var"),
    ("X", "X", "var"),
)
"""Where an h5ad may keep raw counts, in the order tried: (label, HDF5 key, its var)."""


def _h5ad_out(
    X: Any, obs_names: Iterable[str], obs: pd.DataFrame, var: pd.DataFrame, *, sample, path
) -> ad.AnnData:
    """The reader's AnnData from an h5ad's count matrix, its obs and the matching var."""
    names = var.index.astype(str)
    ids = var["gene_ids"].astype(str) if "gene_ids" in var else names
    out = _build(
        X,
        obs_names,
        ids=ids,
        symbols=names,
        feature_types=var["feature_types"] if "feature_types" in var else None,
        genome=var["genome"] if "genome" in var else None,
        sample=sample,
        path=path,
    )
    obs = obs.copy()
    obs.index = out.obs_names
    out.obs = obs
    return out


def _not_counts_error(sample: str | None, path: Path, tried: Iterable[str]) -> InputError:
    return input_error(
        sample,
        path,
        f"the h5ad holds normalised or non-integer values (tried {', '.join(tried)})",
        'Provide raw UMI counts (in X, layers["counts"] or raw.X).',
    )


def read_h5ad_counts(path: Path, *, sample: str | None) -> ad.AnnData:
    try:
        src = ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as exc:
        raise _unreadable(sample, path, "h5ad", exc, _REWRITE) from exc
    candidates: list[tuple[str, Any, pd.DataFrame]] = []
    if "counts" in src.layers:
        candidates.append(('layers["counts"]', src.layers["counts"], src.var))
    if src.raw is not None:
        candidates.append(("raw.X", src.raw.X, src.raw.var))
    candidates.append(("X", src.X, src.var))
    for where, X, var in candidates:
        if not _is_count_matrix(X):
            logger.info("h5ad %s: %s does not hold non-negative integers; skipped", path, where)
            continue
        logger.info("h5ad %s: counts taken from %s", path, where)
        return _h5ad_out(X, src.obs_names, src.obs, var, sample=sample, path=path)
    raise _not_counts_error(sample, path, [w for w, _, _ in candidates])


def read_h5ad_obs(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Only the ``obs`` table of an h5ad file; no count matrix is read.

    Parameters
    ----------
    path
        An h5ad file (anndata >= 0.7 on-disk format).

    Returns
    -------
    pandas.DataFrame
        ``obs`` with its index (the file's ``obs_names``).
    """
    from anndata.io import read_elem

    with h5py.File(path, "r") as f:
        return read_elem(f["obs"])


def obs_mask(obs: pd.DataFrame, column: str, value: str) -> np.ndarray:
    """Boolean mask of the cells whose ``obs[column]``, as a string, equals ``value``.

    Parameters
    ----------
    obs
        An h5ad's ``obs`` (see :func:`read_h5ad_obs`).
    column, value
        The sample sheet's ``obs_column`` and ``obs_value``; string equality, so a numeric
        column's ``1`` matches the sheet's ``"1"``.

    Returns
    -------
    numpy.ndarray
        One bool per row of ``obs``.
    """
    return (obs[column].astype(str) == str(value)).to_numpy()


def first_values(values: pd.Series, n: int = 8) -> str:
    """``'a', 'b', ... (12 distinct)``: the first distinct values of a column, for messages."""
    uniq = pd.unique(values.astype(str))
    shown = ", ".join(repr(v) for v in uniq[:n])
    return shown + (f", ... ({len(uniq)} distinct)" if len(uniq) > n else "")


def _read_rows(elem: h5py.Group | h5py.Dataset, rows: np.ndarray) -> Any:
    """Rows ``rows`` (increasing integers) of an on-disk matrix, without reading the others.

    A CSR group reads only the selected rows' slices of ``data``/``indices``; a dense dataset
    reads the selected rows. (A CSC group cannot be sliced by row cheaply; anndata reads it.)
    """
    from anndata.io import sparse_dataset

    if isinstance(elem, h5py.Group):
        return sparse_dataset(elem)[rows]
    return elem[rows]


def _read_h5ad_split(path: Path, *, sample: str | None, column: str, value: str) -> ad.AnnData:
    """The cells of an h5ad whose ``obs[column] == value``; only their rows are read."""
    from anndata.io import read_elem

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise _unreadable(sample, path, "h5ad", exc, _REWRITE) from exc
    with fh as f:
        obs = read_elem(f["obs"])
        if column not in obs.columns:
            raise input_error(
                sample,
                path,
                f"obs_column {column!r} is not a column of the file's obs",
                f"Set obs_column to one of {list(obs.columns)}.",
            )
        mask = obs_mask(obs, column, value)
        if not mask.any():
            raise input_error(
                sample,
                path,
                f"obs_value {value!r} selects no cell of obs column {column!r}",
                f"Set obs_value to one of {first_values(obs[column])}.",
            )
        rows = np.flatnonzero(mask)
        sub_obs = obs.iloc[rows]
        names = sub_obs.index.astype(str)
        if names.has_duplicates:
            n_dup = int(names.duplicated().sum())
            logger.warning(
                "sample %s: %d cell names repeat within obs %s == %r of %s (barcodes of "
                "several libraries?); made unique with -N suffixes",
                sample,
                n_dup,
                column,
                value,
                path,
            )
            names = pd.Index(make_unique(names))
        tried = []
        for where, key, var_key in _H5AD_COUNTS:
            if key not in f:
                continue
            tried.append(where)
            X = _read_rows(f[key], rows)
            if not _is_count_matrix(X):
                logger.info("h5ad %s: %s does not hold non-negative integers; skipped", path, where)
                continue
            logger.info(
                "h5ad %s: counts of %d of %d cells (%s == %r) taken from %s",
                path,
                len(rows),
                len(obs),
                column,
                value,
                where,
            )
            var = read_elem(f[var_key])
            return _h5ad_out(X, names, sub_obs, var, sample=sample, path=path)
    raise _not_counts_error(sample, path, tried)

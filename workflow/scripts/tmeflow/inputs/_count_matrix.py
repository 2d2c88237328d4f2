"""The AnnData every reader of :mod:`tmeflow.inputs._read_counts` returns, and the checks of counts.

Internal to the readers (:mod:`tmeflow.inputs._read_counts`, :mod:`tmeflow.inputs._read_h5ad`),
except :func:`check_integer_counts`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from tmeflow.core._errors import InputError, input_error
from tmeflow.inputs._gene_names import make_unique

logger = logging.getLogger("tmeflow.inputs._read_counts")  # the readers' log lines, unchanged

GENE_EXPRESSION = "Gene Expression"


def _decode(arr: Any) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind == "S":
        return a.astype(str)
    if a.dtype.kind == "O":
        return np.array([x.decode() if isinstance(x, bytes) else str(x) for x in a])
    return a.astype(str)


def _build(
    X: sp.spmatrix | np.ndarray,
    barcodes: Iterable[str],
    *,
    ids: Iterable[str],
    symbols: Iterable[str],
    feature_types: Iterable[str] | None = None,
    genome: Iterable[str] | None = None,
    sample: str | None,
    path: str | os.PathLike[str],
) -> ad.AnnData:
    """Assemble the AnnData every reader returns (checks integers, CSR float32)."""
    X = sp.csr_matrix(X)
    check_integer_counts(X, sample=sample, path=path)
    X = X.astype(np.float32)
    X.sum_duplicates()
    X.eliminate_zeros()
    symbols = [str(s) for s in symbols]
    var = pd.DataFrame(
        {"gene_ids": [str(i) for i in ids], "gene_symbols": symbols},
        index=pd.Index(make_unique(symbols)),
    )
    if feature_types is not None:
        var["feature_types"] = [str(x) for x in feature_types]
    if genome is not None:
        var["genome"] = [str(x) for x in genome]
    barcodes = [str(b) for b in barcodes]
    obs_index = pd.Index(barcodes)
    if obs_index.has_duplicates:
        dup = obs_index[obs_index.duplicated()][:3].tolist()
        raise input_error(
            sample,
            path,
            f"duplicated barcodes (e.g. {dup})",
            "Barcodes must be unique within a sample; split the file per library.",
        )
    n_renamed = int(np.sum(np.asarray(var.index) != np.asarray(symbols)))
    if n_renamed:
        logger.info("%d duplicated feature symbols made unique with -N suffixes", n_renamed)
    return ad.AnnData(X=X, obs=pd.DataFrame(index=obs_index), var=var)


def _keep_gene_expression(
    feature_types: np.ndarray | None, *, sample: str | None, path: str | os.PathLike[str]
) -> np.ndarray | None:
    """Boolean mask of Gene Expression features (None: keep all); logs what is dropped."""
    if feature_types is None:
        return None
    ft = np.asarray(feature_types).astype(str)
    keep = ft == GENE_EXPRESSION
    if not keep.any():
        raise input_error(
            sample,
            path,
            f"no '{GENE_EXPRESSION}' features (types: {sorted(set(ft.tolist()))})",
            "Provide the gene-expression matrix of the library.",
        )
    if not keep.all():
        dropped = pd.Series(ft[~keep]).value_counts().to_dict()
        logger.info("dropped non-gene-expression features: %s", dropped)
    return keep


# --------------------------------------------------------------------------------------------
# integer check
# --------------------------------------------------------------------------------------------
def check_integer_counts(
    X: sp.spmatrix | np.ndarray, *, sample: str | None, path: str | os.PathLike[str]
) -> None:
    """Raise :class:`~tmeflow.core.InputError` unless ``X`` holds finite, non-negative integers.

    Works on the stored values of sparse matrices without densifying.

    Raises
    ------
    InputError
        For negative, non-finite or non-integer (e.g. log-normalised) values.
    """
    vals = X.data if sp.issparse(X) else np.asarray(X)
    if vals.size == 0:
        return
    if vals.dtype.kind in "iub":
        if vals.dtype.kind == "i" and vals.min() < 0:
            raise input_error(
                sample, path, "negative values", "Provide raw UMI counts (non-negative integers)."
            )
        return
    if vals.dtype.kind != "f":
        raise input_error(
            sample, path, f"non-numeric values ({vals.dtype})", "Provide raw UMI counts."
        )
    if not np.isfinite(vals).all():
        raise input_error(sample, path, "NaN or infinite values", "Provide raw UMI counts.")
    if vals.min() < 0:
        raise input_error(
            sample,
            path,
            "negative values (scaled or batch-corrected data?)",
            "Provide raw UMI counts (non-negative integers).",
        )
    if not np.array_equal(vals, np.round(vals)):
        raise input_error(
            sample,
            path,
            "the matrix holds normalised or non-integer values",
            "Provide raw UMI counts (e.g. Cell Ranger's filtered matrix), not log-normalised data.",
        )


def _is_count_matrix(X: Any) -> bool:
    if X is None:
        return False
    try:
        check_integer_counts(X, sample=None, path="")
    except InputError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------


def _unreadable(sample: str | None, path: Path, what: str, exc: Exception, hint: str) -> InputError:
    """The error for an input file that could not be parsed (``unreadable <what> (...)``)."""
    return input_error(sample, path, f"unreadable {what} ({type(exc).__name__}: {exc})", hint)

"""Read and write the h5ad files the workflow's stages pass on, atomically and selectively."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import scipy.sparse as sp

from tmeflow.core._atomic import atomic_path


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike[str]) -> None:
    """Write ``adata`` to ``path`` atomically (temp file in the same folder, then ``os.replace``).

    A failed write never leaves a partial file at ``path``. Parent folders are created.
    """
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)


#: Top-level h5ad elements :func:`read_h5ad` may leave unread.
SKIPPABLE = ("X", "layers", "obsm", "obsp", "varm", "varp", "uns", "raw")
#: Elements :func:`update_h5ad` replaces (the matrices ``X`` and ``layers`` stay as read).
UPDATABLE = ("obs", "obsm", "obsp", "uns", "varm", "varp")


def read_h5ad(
    path: str | os.PathLike[str],
    *,
    skip: Iterable[str] = (),
    layers: Iterable[str] | None = None,
) -> ad.AnnData:
    """Read an h5ad written by a previous stage.

    ``skip`` names top-level elements not to load (see :data:`SKIPPABLE`), e.g.
    ``skip=("X",)`` in a step that only needs ``layers["counts"]``: large matrices a step
    does not use are never held in memory. A skipped ``X`` leaves ``adata.X`` as ``None``.
    ``layers`` names the only layers to load (e.g. ``("counts",)`` where the file also holds
    ``counts_ambient_corrected``); ``None`` loads them all.

    Raises
    ------
    FileNotFoundError
        With the path and a hint, when it is missing.
    """
    p = Path(path)
    if not p.is_file():
        msg = f"{os.fspath(p)!r} not found; run the stage that writes it first."
        raise FileNotFoundError(msg)
    skip = set(skip)
    unknown = skip - set(SKIPPABLE)
    if unknown:
        raise ValueError(f"cannot skip {sorted(unknown)}; choose from {list(SKIPPABLE)}")
    if not skip and layers is None:
        return ad.read_h5ad(p)
    parts: dict[str, Any] = {}
    with h5py.File(p, "r") as f:
        for key in ("X", "obs", "var", "obsm", "varm", "obsp", "varp", "layers", "uns"):
            if key == "layers" and layers is not None and key in f and key not in skip:
                missing = [k for k in layers if k not in f[key]]
                if missing:
                    msg = f"{os.fspath(p)!r} has no layer(s) {missing} (layers: {list(f[key])})"
                    raise KeyError(msg)
                parts[key] = {k: ad.io.read_elem(f[key][k]) for k in layers}
            elif key in f and key not in skip:
                parts[key] = ad.io.read_elem(f[key])
        if "raw" in f and "raw" not in skip:
            raw = ad.io.read_elem(f["raw"])
            parts["raw"] = ad.AnnData(X=raw.get("X"), var=raw.get("var"), varm=raw.get("varm"))
    return ad.AnnData(**parts)


def update_h5ad(
    adata: ad.AnnData,
    source: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    elements: Iterable[str] = UPDATABLE,
) -> None:
    """Write ``adata`` to ``path`` as a copy of ``source`` with ``elements`` replaced.

    For steps that read ``source`` with :func:`read_h5ad` (``skip=...``) and add annotations:
    the matrices they never loaded are copied file to file instead of through memory. Cells
    and genes must be those of ``source`` (same names, same order). Atomic like
    :func:`write_h5ad`.
    """
    src = Path(source)
    elements = list(elements)
    bad = [e for e in elements if e not in UPDATABLE]
    if bad:
        raise ValueError(f"cannot replace {bad}; choose from {list(UPDATABLE)}")
    with h5py.File(src, "r") as f:
        obs_names = ad.io.read_elem(f["obs"]).index
        var_names = ad.io.read_elem(f["var"]).index
    if not (adata.obs_names.equals(obs_names) and adata.var_names.equals(var_names)):
        msg = (
            f"cannot update {os.fspath(src)!r}: the object's cells or genes differ from the "
            "file's; write it whole with write_h5ad instead"
        )
        raise ValueError(msg)
    adata.strings_to_categoricals()  # as AnnData.write_h5ad does (object columns with NaN)
    with atomic_path(path) as tmp:
        shutil.copyfile(src, tmp)
        with h5py.File(tmp, "a") as f:
            for key in elements:
                if key in f:
                    del f[key]
                value = getattr(adata, key)
                ad.io.write_elem(f, key, dict(value) if key != "obs" else value)


def read_layer(path: str | os.PathLike[str], name: str) -> Any | None:
    """One layer of an h5ad file (``layers[name]``), or ``None`` when the file has none.

    For a step that needs a large layer for one part of its work only: read it then, not
    with the rest of the object.
    """
    return read_matrix(path, f"layers/{name}")


def read_matrix(path: str | os.PathLike[str], key: str) -> Any | None:
    """One element of an h5ad file by its path in the file (``X``, ``layers/counts``).

    ``None`` when the file has none. For a matrix read later than the rest of the object (a
    skipped ``X``, a layer needed for one setting).
    """
    with h5py.File(path, "r") as f:
        if key not in f:
            return None
        return ad.io.read_elem(f[key])


#: File rows read at a time by :func:`read_rows` (bounds what it holds beyond its result).
ROW_BLOCK = 16384


def read_rows(
    path: str | os.PathLike[str],
    key: str,
    rows: np.ndarray,
    cols: np.ndarray | None = None,
    *,
    dtype: Any = None,
    block: int = ROW_BLOCK,
) -> sp.csr_matrix:
    """Rows (and columns) of one matrix of an h5ad file, without reading the whole matrix.

    For a step that needs a subset of a large matrix: a CSR matrix (how the workflow writes
    ``X`` and ``layers``) is read ``block`` file rows at a time, each block cut to the wanted
    rows and columns before the next is read, so beyond the result only one block is held.
    Another encoding (dense, CSC) is read whole and then subset.

    Parameters
    ----------
    path
        An h5ad file.
    key
        The matrix's path in the file: ``X`` or ``layers/<name>``.
    rows
        Row positions, in the order wanted (any order; repeats allowed).
    cols
        Column positions in the order wanted; ``None``: all.
    dtype
        The values' dtype in the result (e.g. ``numpy.float32``); ``None``: as stored.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``matrix[rows][:, cols]``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    with h5py.File(path, "r") as f:
        if key not in f:
            raise KeyError(f"{os.fspath(path)!r} has no {key!r}")
        elem = f[key]
        if elem.attrs.get("encoding-type") != "csr_matrix":
            whole = ad.io.read_elem(elem)
            whole = sp.csr_matrix(whole) if not sp.issparse(whole) else whole.tocsr()
            out = whole[rows] if cols is None else whole[rows][:, np.asarray(cols)]
            return out if dtype is None else out.astype(dtype)
        n_rows, n_cols = (int(n) for n in elem.attrs["shape"])
        if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
            raise IndexError(f"{key!r} has {n_rows} rows; asked for rows outside 0..{n_rows - 1}")
        indptr, data, indices = elem["indptr"][()], elem["data"], elem["indices"]
        stored = data.dtype
        order = np.argsort(rows, kind="stable")
        wanted = rows[order]
        parts = []
        for lo in range(0, n_rows, max(int(block), 1)):
            hi = min(lo + block, n_rows)
            first, last = np.searchsorted(wanted, [lo, hi])
            if first == last:
                continue
            a, b = int(indptr[lo]), int(indptr[hi])
            part = sp.csr_matrix(
                (data[a:b], indices[a:b], indptr[lo : hi + 1] - a), shape=(hi - lo, n_cols)
            )[wanted[first:last] - lo]
            if cols is not None:
                part = part[:, np.asarray(cols)]
            parts.append(part if dtype is None else part.astype(dtype))
    if not parts:
        width = n_cols if cols is None else len(cols)
        return sp.csr_matrix((0, width), dtype=dtype or stored)
    out = parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")
    del parts
    if not np.array_equal(order, np.arange(order.size)):
        out = out[np.argsort(order, kind="stable")]
    return out


def read_var_names(path: str | os.PathLike[str]) -> list[str]:
    """Read only the feature names of an h5ad file (no matrix, no other ``var`` column).

    Parameters
    ----------
    path
        An h5ad file written by anndata.

    Returns
    -------
    list of str
        ``var_names`` in file order.
    """
    with h5py.File(path, "r") as f:
        var = f["var"]
        index = var[var.attrs["_index"]]
        return [v.decode() if isinstance(v, bytes) else str(v) for v in index[()]]

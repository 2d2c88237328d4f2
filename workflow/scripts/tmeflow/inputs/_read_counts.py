"""Read single-cell count matrices in the formats found in the wild.

Formats (see :func:`tmeflow.inputs.detect_format`):

``10x_h5``
    Cell Ranger HDF5, both the Cell Ranger >= 3 layout (``matrix/features/...``) and the Cell
    Ranger 2 layout (one group per genome with ``genes``, ``gene_names``, ``barcodes``,
    ``data``, ``indices``, ``indptr``, ``shape``; a multi-genome file has several groups whose
    genes are concatenated).
``10x_mtx``
    A folder with ``matrix.mtx[.gz]``, ``features.tsv[.gz]`` (v3: id, name, type) or
    ``genes.tsv[.gz]`` (v2: id, name; or a single column of symbols or of Ensembl ids) and
    ``barcodes.tsv[.gz]``. GEO deposits name the three files with a common prefix
    (``GSM123_matrix.mtx.gz``, ``GSM123_genes.tsv.gz``, ``GSM123_barcodes.tsv.gz``), often
    several samples in one folder: point the sheet's ``path`` at the ``..._matrix.mtx[.gz]``
    file (or at the folder when it holds a single set).
``h5ad``
    AnnData; raw counts are taken from ``layers["counts"]``, else ``raw.X``, else ``X``: the
    first that holds non-negative integers.
``table``
    ``.csv``/``.tsv``/``.txt`` (optionally ``.gz``), genes x cells or cells x genes; the
    orientation is detected and logged.
``geo_tar``
    A GEO series' ``_RAW.tar`` (or any tar) of per-sample files of the formats above; the
    sample sheet's ``member`` names the sample's (:mod:`tmeflow.inputs._geo_tar`).

Every reader returns an AnnData with ``X`` a CSR float32 matrix holding integer counts
(cells x features), ``obs_names`` = barcodes as in the file, unique ``var_names`` = feature
symbols (species prefixes such as ``GRCh38_``/``mm10_`` intact), ``var["gene_ids"]``,
``var["gene_symbols"]`` (the symbol as in the file, before de-duplication) and
``var["feature_types"]``/``var["genome"]`` when the input has them.

The h5ad reader is :mod:`tmeflow.inputs._read_h5ad`; the AnnData every reader builds and the
check of integer counts are :mod:`tmeflow.inputs._count_matrix`.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from tmeflow.core._errors import InputError, input_error
from tmeflow.inputs._count_matrix import (
    _build,
    _decode,
    _keep_gene_expression,
    _unreadable,
)
from tmeflow.inputs._formats import FORMATS, detect_format, format_reader, mtx_triplet
from tmeflow.inputs._read_h5ad import _read_h5ad_split

logger = logging.getLogger(__name__)

_BARCODE_RE = re.compile(r"[ACGTN]{8,}")


def read_10x_h5(path: Path, *, sample: str | None) -> ad.AnnData:
    try:
        with h5py.File(path, "r") as f:
            if "matrix" in f:
                return _read_cr3(f["matrix"], path=path, sample=sample)
            groups = [k for k in f if isinstance(f[k], h5py.Group)]
            if not groups:
                raise input_error(
                    sample,
                    path,
                    "no 'matrix' group and no genome groups",
                    "Provide a Cell Ranger filtered_feature_bc_matrix.h5 / "
                    "filtered_gene_bc_matrices_h5.h5.",
                )
            return _read_cr2(f, groups, path=path, sample=sample)
    except InputError:
        raise
    except (OSError, KeyError, ValueError, IndexError, TypeError) as exc:
        raise _unreadable(
            sample,
            path,
            "or truncated 10x HDF5",
            exc,
            "Re-download or re-copy the file (check its size / checksum).",
        ) from exc


def _csr_from_10x(
    g: h5py.Group, n_cells: int, n_feat: int, *, path: Path, sample: str | None
) -> sp.csr_matrix:
    shape = tuple(int(x) for x in g["shape"][()])
    if shape != (n_feat, n_cells):
        raise input_error(
            sample,
            path,
            f"matrix shape {shape} does not match {n_feat} features x {n_cells} barcodes",
            "The file is inconsistent; re-export it from Cell Ranger.",
        )
    indptr = g["indptr"][()]
    if indptr.shape[0] != n_cells + 1:
        raise input_error(
            sample,
            path,
            f"indptr has {indptr.shape[0]} entries for {n_cells} barcodes",
            "The file is inconsistent; re-export it from Cell Ranger.",
        )
    # Cell Ranger stores features x barcodes in CSC, i.e. barcodes x features in CSR.
    return sp.csr_matrix((g["data"][()], g["indices"][()], indptr), shape=(n_cells, n_feat))


def _read_cr3(g: h5py.Group, *, path: Path, sample: str | None) -> ad.AnnData:
    feats = g["features"]
    ids = _decode(feats["id"][()])
    names = _decode(feats["name"][()])
    ftypes = _decode(feats["feature_type"][()]) if "feature_type" in feats else None
    genome = _decode(feats["genome"][()]) if "genome" in feats else None
    barcodes = _decode(g["barcodes"][()])
    X = _csr_from_10x(g, len(barcodes), len(ids), path=path, sample=sample)
    keep = _keep_gene_expression(ftypes, sample=sample, path=path)
    if keep is not None:
        X = X[:, np.flatnonzero(keep)]
        ids, names, ftypes = ids[keep], names[keep], ftypes[keep]  # type: ignore[index]
        genome = genome[keep] if genome is not None else None
    logger.info("read Cell Ranger 3 HDF5 %s: %d cells x %d features", path, *X.shape)
    return _build(
        X,
        barcodes,
        ids=ids,
        symbols=names,
        feature_types=ftypes,
        genome=genome,
        sample=sample,
        path=path,
    )


def _read_cr2(f: h5py.File, groups: list[str], *, path: Path, sample: str | None) -> ad.AnnData:
    blocks, all_bc, ids, names, genomes = [], [], [], [], []
    for gname in groups:
        g = f[gname]
        gids = _decode(g["genes"][()])
        gnames = _decode(g["gene_names"][()]) if "gene_names" in g else gids
        bcs = _decode(g["barcodes"][()])
        blocks.append((bcs, _csr_from_10x(g, len(bcs), len(gids), path=path, sample=sample)))
        all_bc.append(bcs)
        ids.append(gids)
        names.append(gnames)
        genomes.append(np.full(len(gids), gname))
    # Genome groups normally share barcodes; align on their union (first-seen order) if not.
    union = list(dict.fromkeys(b for bcs in all_bc for b in bcs))
    pos = {b: i for i, b in enumerate(union)}
    mats = []
    for bcs, X in blocks:
        if len(bcs) == len(union) and all(b == u for b, u in zip(bcs, union, strict=True)):
            mats.append(X)
            continue
        rows = np.fromiter((pos[b] for b in bcs), dtype=np.int64, count=len(bcs))
        P = sp.csr_matrix(
            (np.ones(len(bcs), dtype=np.float32), (rows, np.arange(len(bcs)))),
            shape=(len(union), len(bcs)),
        )
        mats.append(sp.csr_matrix(P @ X))
    X = sp.hstack(mats, format="csr")
    logger.info(
        "read Cell Ranger 2 HDF5 %s (genomes %s): %d cells x %d features", path, groups, *X.shape
    )
    return _build(
        X,
        union,
        ids=np.concatenate(ids),
        symbols=np.concatenate(names),
        genome=np.concatenate(genomes),
        sample=sample,
        path=path,
    )


def _read_lines_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(
            path, sep="\t", header=None, dtype=str, compression="infer", keep_default_na=False
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame({0: pd.Series([], dtype=str)})


def read_10x_mtx(path: Path, *, sample: str | None) -> ad.AnnData:
    folder = path if path.is_dir() else path.parent
    files = mtx_triplet(path, sample=sample)
    if files is None:
        raise input_error(
            sample,
            path,
            "incomplete 10x mtx input",
            "It needs matrix.mtx[.gz], features.tsv[.gz]/genes.tsv[.gz] and barcodes.tsv[.gz] "
            "(with a common prefix for GEO names, e.g. GSM1_matrix.mtx.gz).",
        )
    mtx, feats_path, bc_path = files
    try:
        M = scipy.io.mmread(str(mtx))
        feats = _read_lines_table(feats_path)
        bcs = _read_lines_table(bc_path).iloc[:, 0].to_numpy(dtype=str)
    except (OSError, EOFError, ValueError, pd.errors.ParserError) as exc:
        raise _unreadable(
            sample,
            folder,
            "10x mtx files",
            exc,
            "Re-download or re-copy the folder (a truncated .gz?).",
        ) from exc
    n_feat, n_bc = feats.shape[0], bcs.shape[0]
    if M.shape != (n_feat, n_bc):
        raise input_error(
            sample,
            mtx,
            f"matrix dimensions {M.shape} do not match {n_feat} features "
            f"({feats_path.name}) x {n_bc} barcodes ({bc_path.name})",
            "The three files must come from the same export; re-download the folder.",
        )
    X = sp.csr_matrix(M.T)
    ncol = feats.shape[1]
    ids = feats.iloc[:, 0].to_numpy(dtype=str)
    names = feats.iloc[:, 1].to_numpy(dtype=str) if ncol >= 2 else ids
    names = np.where(np.isin(names, ["", "NA", "nan"]), ids, names)  # no symbol: keep the id
    ftypes = feats.iloc[:, 2].to_numpy(dtype=str) if ncol >= 3 else None
    keep = _keep_gene_expression(ftypes, sample=sample, path=feats_path)
    if keep is not None:
        X = X[:, np.flatnonzero(keep)]
        ids, names, ftypes = ids[keep], names[keep], ftypes[keep]  # type: ignore[index]
    logger.info(
        "read 10x mtx %s (%s, %d feature column(s)): %d cells x %d features",
        folder,
        feats_path.name,
        ncol,
        *X.shape,
    )
    return _build(X, bcs, ids=ids, symbols=names, feature_types=ftypes, sample=sample, path=folder)


def _looks_like_barcodes(labels: pd.Index) -> float:
    s = pd.Series(labels.astype(str))
    if s.empty:
        return 0.0
    return float(s.str.contains(_BARCODE_RE).mean())


def read_table(path: Path, *, sample: str | None) -> ad.AnnData:
    name = path.name.lower()
    stem = name[:-3] if name.endswith(".gz") else name
    if stem.endswith(".csv"):
        sep: str | None = ","
    elif stem.endswith(".tsv"):
        sep = "\t"
    else:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt") as fh:
            first = fh.readline()
        sep = "\t" if "\t" in first else ("," if "," in first else r"\s+")
    try:
        df = pd.read_csv(path, sep=sep, index_col=0, compression="infer")
    except (OSError, EOFError, ValueError, pd.errors.ParserError) as exc:
        raise _unreadable(
            sample,
            path,
            "table",
            exc,
            "Provide a delimited table with labels in the first row and column.",
        ) from exc
    non_num = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if non_num:
        raise input_error(
            sample,
            path,
            f"non-numeric columns {non_num[:3]}",
            "The table must hold counts only, with labels in the first row and first column.",
        )
    row_bc = _looks_like_barcodes(df.index)
    col_bc = _looks_like_barcodes(df.columns)
    if col_bc > 0.5 and row_bc <= 0.5:
        genes_by_cells, why = True, "column labels look like barcodes"
    elif row_bc > 0.5 and col_bc <= 0.5:
        genes_by_cells, why = False, "row labels look like barcodes"
    else:
        genes_by_cells = df.shape[0] >= df.shape[1]
        why = "the larger axis is taken as genes"
    if genes_by_cells:
        df = df.T
    logger.info(
        "table %s read as %s (%s)",
        path,
        "genes x cells" if genes_by_cells else "cells x genes",
        why,
    )
    values = df.to_numpy()
    genes = df.columns.astype(str)
    out = _build(
        sp.csr_matrix(values),
        df.index.astype(str),
        ids=genes,
        symbols=genes,
        sample=sample,
        path=path,
    )
    out.uns["orientation"] = {
        "read_as": "genes x cells" if genes_by_cells else "cells x genes",
        "why": why,
    }
    return out


def read_counts(
    path: str | os.PathLike[str],
    *,
    sample: str,
    fmt: str | None = None,
    obs_column: str | None = None,
    obs_value: str | None = None,
    member: str | None = None,
) -> ad.AnnData:
    """Read a raw count matrix in any supported format (or the sample's cells of an h5ad).

    Parameters
    ----------
    path
        Input file or 10x mtx folder.
    sample
        Sample name (for messages).
    fmt
        One of :data:`~tmeflow.inputs.FORMATS`; detected with
        :func:`~tmeflow.inputs.detect_format` when ``None``, ``""`` or ``"auto"``.
    obs_column, obs_value
        Both or neither (the sample sheet's columns). Given, only the cells of an h5ad whose
        ``obs[obs_column]`` equals ``obs_value`` (string equality) are read: ``obs`` first, then
        only the selected rows of the count matrix. Cell names repeated within the selection
        (bare barcodes of several libraries) are made unique with ``-N`` suffixes.
    member
        For a GEO ``_RAW.tar`` bundle (format ``geo_tar``): the sample's input in it, a GSM
        prefix or a file name (the sample sheet's ``member`` column; see
        :func:`tmeflow.inputs.pick_input`). Empty: the bundle must hold one input.

    Returns
    -------
    AnnData
        ``X``: CSR float32 holding integer counts, cells x features; ``obs_names``: barcodes as
        in the file (an h5ad keeps its ``obs`` columns); ``var_names``: feature symbols made
        unique with ``-N`` suffixes (species prefixes intact); ``var``: ``gene_ids`` (the
        symbol when the input has no ids), ``gene_symbols`` (as in the file) and, when the
        input has them, ``feature_types`` and ``genome`` (the genome group for Cell Ranger 2).
        For Cell Ranger >= 3 inputs only ``Gene Expression`` features are kept.

    Raises
    ------
    InputError
        Missing, unreadable or truncated file; inconsistent dimensions; non-count values;
        ``obs_column`` on an input without cell metadata (not h5ad), a column the file lacks,
        or a value that selects no cell; a ``member`` for an input that is not a bundle, or one
        that names no input (or several) of the bundle.
    """
    p = Path(path)
    if not p.exists():
        raise input_error(
            sample, p, "file not found", "Check the path in the sample sheet (samples.tsv)."
        )
    fmt = detect_format(p, sample=sample) if fmt in (None, "", "auto") else fmt
    if fmt not in FORMATS:
        raise input_error(
            sample, p, f"unknown format {fmt!r}", f"Use one of {', '.join(FORMATS)} or leave unset."
        )
    if bool(obs_column) != bool(obs_value):
        raise input_error(
            sample,
            p,
            "only one of obs_column and obs_value is given",
            "Give both (the sample's cells are those with obs[obs_column] == obs_value) or "
            "neither.",
        )
    if obs_column:
        if fmt != "h5ad":
            raise input_error(
                sample,
                p,
                f"obs_column {obs_column!r} needs cell metadata, but the input is {fmt}",
                "Clear obs_column/obs_value, or point path at an h5ad whose obs holds the column.",
            )
        return _read_h5ad_split(p, sample=sample, column=obs_column, value=str(obs_value))
    if fmt == "geo_tar":
        return format_reader(fmt)(p, sample=sample, member=member)
    if member:
        raise input_error(
            sample,
            p,
            f"member {member!r} is given but the input is {fmt}, not a GEO _RAW.tar bundle",
            "Clear the sample sheet's 'member' cell, or point 'path' at the tar.",
        )
    return format_reader(fmt)(p, sample=sample)

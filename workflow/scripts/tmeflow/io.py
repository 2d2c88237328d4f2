"""Read single-cell count matrices in the formats found in the wild, and write h5ad atomically.

Formats (see :func:`detect_format`):

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

Every reader returns an AnnData with ``X`` a CSR float32 matrix holding integer counts
(cells x features), ``obs_names`` = barcodes as in the file, unique ``var_names`` = feature
symbols (species prefixes such as ``GRCh38_``/``mm10_`` intact), ``var["gene_ids"]``,
``var["gene_symbols"]`` (the symbol as in the file, before de-duplication) and
``var["feature_types"]``/``var["genome"]`` when the input has them.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from tmeflow.atomic import atomic_path

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("10x_h5", "10x_mtx", "h5ad", "table")
"""Input formats understood by :func:`read_counts`."""

GENE_EXPRESSION = "Gene Expression"
RESERVED_OBS: tuple[str, ...] = ("sample", "condition", "barcode")

_TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
_MTX_NAMES = ("matrix.mtx.gz", "matrix.mtx")
_FEATURE_NAMES = ("features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv")
_BARCODE_NAMES = ("barcodes.tsv.gz", "barcodes.tsv")
_BARCODE_RE = re.compile(r"[ACGTN]{8,}")


class InputError(ValueError):
    """An input count file that cannot be used; the message names sample, file and remedy."""


def _err(sample: str | None, path: str | os.PathLike[str], problem: str, fix: str) -> InputError:
    who = f"sample {sample!r}: " if sample is not None else ""
    return InputError(f"{who}{problem} in {os.fspath(path)!r}. {fix}")


# --------------------------------------------------------------------------------------------
# format detection
# --------------------------------------------------------------------------------------------
def _first_existing(folder: Path, names: Iterable[str]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def _mtx_files(folder: Path, prefix: str = "") -> tuple[Path, Path, Path] | None:
    mtx = _first_existing(folder, [prefix + n for n in _MTX_NAMES])
    feats = _first_existing(folder, [prefix + n for n in _FEATURE_NAMES])
    bcs = _first_existing(folder, [prefix + n for n in _BARCODE_NAMES])
    if mtx is None or feats is None or bcs is None:
        return None
    return mtx, feats, bcs


def _mtx_prefix(name: str) -> str | None:
    """``"GSM1_"`` for ``GSM1_matrix.mtx.gz``, ``""`` for ``matrix.mtx``; None otherwise."""
    low = name.lower()
    for n in _MTX_NAMES:
        if low.endswith(n):
            return name[: len(name) - len(n)]
    return None


def mtx_triplet(
    path: str | os.PathLike[str], *, sample: str | None = None
) -> tuple[Path, Path, Path] | None:
    """The (matrix, features/genes, barcodes) files of a 10x/GEO mtx input, or None.

    ``path`` is a folder holding one set (plain ``matrix.mtx[.gz]`` names, or a single set of
    GEO-prefixed ``<prefix>matrix.mtx[.gz]`` names), or one ``[<prefix>]matrix.mtx[.gz]`` file
    whose siblings carry the same prefix.

    Raises
    ------
    InputError
        A folder with several prefixed sets (the sheet must name one matrix file).
    """
    p = Path(path)
    if p.is_file():
        prefix = _mtx_prefix(p.name)
        return None if prefix is None else _mtx_files(p.parent, prefix)
    if not p.is_dir():
        return None
    plain = _mtx_files(p)
    if plain is not None:
        return plain
    sets = {}
    for f in sorted(p.iterdir()):
        prefix = _mtx_prefix(f.name)
        if prefix and f.is_file():
            found = _mtx_files(p, prefix)
            if found is not None:
                sets[prefix] = found
    if len(sets) > 1:
        names = sorted(t[0].name for t in sets.values())
        raise _err(
            sample,
            p,
            f"folder holds {len(sets)} matrix sets ({', '.join(names[:4])})",
            "Set the sheet's path to one of the *matrix.mtx[.gz] files.",
        )
    return next(iter(sets.values()), None)


def input_files(path: str | os.PathLike[str]) -> list[str]:
    """The files a count input consists of (for Snakemake's input functions).

    The three files of an mtx input, or ``[path]`` for anything else (including paths that
    do not exist yet). Never raises: problems are reported when the input is read.
    """
    try:
        trip = mtx_triplet(path)
    except InputError:
        trip = None
    return [os.fspath(f) for f in trip] if trip is not None else [os.fspath(path)]


def detect_format(path: str | os.PathLike[str], *, sample: str | None = None) -> str:
    """Tell the format of a count input from its name (and, for folders, its contents).

    Parameters
    ----------
    path
        A file (``.h5``, ``.h5ad``, ``.csv``/``.tsv``/``.txt`` with optional ``.gz``) or a 10x
        mtx folder. A path to a ``matrix.mtx[.gz]`` file is taken as its folder.
    sample
        Only used to name the sample in error messages.

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    InputError
        If the path does not exist or its format is not recognised.
    """
    p = Path(path)
    if not p.exists():
        raise _err(sample, p, "file not found", "Check the path in the sample sheet (samples.tsv).")
    if p.is_dir():
        if mtx_triplet(p, sample=sample) is not None:
            return "10x_mtx"
        present = sorted(x.name for x in p.iterdir())[:10]
        raise _err(
            sample,
            p,
            f"folder is not a 10x mtx folder (has {present})",
            "A 10x mtx folder needs matrix.mtx[.gz], features.tsv[.gz] or genes.tsv[.gz], "
            "and barcodes.tsv[.gz] (GEO names may share a prefix, e.g. GSM1_matrix.mtx.gz).",
        )
    name = p.name.lower()
    if _mtx_prefix(p.name) is not None:
        if mtx_triplet(p, sample=sample) is not None:
            return "10x_mtx"
        prefix = _mtx_prefix(p.name)
        raise _err(
            sample,
            p,
            "matrix file without its feature and barcode lists",
            f"Put {prefix}features.tsv[.gz] (or {prefix}genes.tsv[.gz]) and "
            f"{prefix}barcodes.tsv[.gz] beside it.",
        )
    if name.endswith(".h5") or name.endswith(".hdf5"):
        return "10x_h5"
    if name.endswith(".h5ad"):
        return "h5ad"
    stem = name[:-3] if name.endswith(".gz") else name
    if stem.endswith(_TABLE_SUFFIXES):
        return "table"
    raise _err(
        sample,
        p,
        "unrecognised count format",
        f"Provide one of {', '.join(FORMATS)} (.h5, a 10x mtx folder, .h5ad, "
        ".csv/.tsv/.txt[.gz]), or set the format explicitly.",
    )


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def make_unique(names: Iterable[str]) -> list[str]:
    """Make names unique deterministically, scanpy-style.

    The first occurrence keeps its name; later ones get ``-1``, ``-2``, ... (skipping
    suffixes that would clash with an existing name).
    """
    names = [str(n) for n in names]
    seen = set(names)
    counts: dict[str, int] = {}
    out: list[str] = []
    used: set[str] = set()
    for n in names:
        if n not in used:
            out.append(n)
            used.add(n)
            continue
        k = counts.get(n, 0)
        while True:
            k += 1
            cand = f"{n}-{k}"
            if cand not in seen and cand not in used:
                break
        counts[n] = k
        out.append(cand)
        used.add(cand)
    return out


_RIKEN_RE = re.compile(r"^(\d+[A-Z]\d+)RIK(\d*)$")
_ENSEMBL_RE = re.compile(r"^ENS[A-Z]*G\d{6,}")


def mouse_symbol(name: str) -> str:
    """The mouse (MGI) spelling of an upper-cased mouse gene symbol, by the nomenclature's rules.

    First letter upper, the rest lower (``LY6C2`` -> ``Ly6c2``, ``HBA-A1`` -> ``Hba-a1``);
    mitochondrial genes ``mt-`` (``MT-CO1`` -> ``mt-Co1``); RIKEN clones ``Rik``
    (``0610007P14RIK`` -> ``0610007P14Rik``). Ensembl ids are returned unchanged. Symbols whose
    rule has exceptions (``H2-AB1`` is ``H2-Ab1``) need a reference: see
    :func:`repair_mouse_symbol_case`.
    """
    if _ENSEMBL_RE.match(name):
        return name
    if name.startswith("MT-"):
        return "mt-" + name[3:].capitalize()
    m = _RIKEN_RE.match(name)
    if m:
        return f"{m.group(1)}Rik{m.group(2)}"
    return name[:1] + name[1:].lower()


def repair_mouse_symbol_case(adata: ad.AnnData, reference: Iterable[str] = ()) -> int:
    """Give mouse gene symbols that a deposit upper-cased (``GAS6``) their mouse spelling.

    Acts only when no feature name has a lower-case letter (every mouse symbol has some:
    ``Gas6``, ``mt-Co1``, ``0610007P14Rik``), so Title-case data and human data are left alone.
    Each symbol takes the spelling of the same symbol in ``reference`` (e.g. the symbols of the
    marker panels and gene sets, compared case-insensitively) or else :func:`mouse_symbol`'s.
    The input names are kept in ``var["symbol_input"]``; ``var_names`` stay unique. Returns the
    number of names changed (0 when nothing was done).
    """
    names = adata.var_names.astype(str).tolist()
    if not names or any(ch.islower() for n in names for ch in n):
        return 0
    canon: dict[str, str] = {}
    for symbol in reference:
        canon.setdefault(str(symbol).upper(), str(symbol))
    new = [canon.get(n, mouse_symbol(n)) for n in names]
    changed = sum(a != b for a, b in zip(names, new, strict=True))
    if changed:
        adata.var["symbol_input"] = names
        adata.var_names = make_unique(new)
    return changed


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
        raise _err(
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
        raise _err(
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
    """Raise :class:`InputError` unless ``X`` holds finite, non-negative integers.

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
            raise _err(
                sample, path, "negative values", "Provide raw UMI counts (non-negative integers)."
            )
        return
    if vals.dtype.kind != "f":
        raise _err(sample, path, f"non-numeric values ({vals.dtype})", "Provide raw UMI counts.")
    if not np.isfinite(vals).all():
        raise _err(sample, path, "NaN or infinite values", "Provide raw UMI counts.")
    if vals.min() < 0:
        raise _err(
            sample,
            path,
            "negative values (scaled or batch-corrected data?)",
            "Provide raw UMI counts (non-negative integers).",
        )
    if not np.array_equal(vals, np.round(vals)):
        raise _err(
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
def _read_10x_h5(path: Path, *, sample: str | None) -> ad.AnnData:
    try:
        with h5py.File(path, "r") as f:
            if "matrix" in f:
                return _read_cr3(f["matrix"], path=path, sample=sample)
            groups = [k for k in f if isinstance(f[k], h5py.Group)]
            if not groups:
                raise _err(
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
        raise _err(
            sample,
            path,
            f"unreadable or truncated 10x HDF5 ({type(exc).__name__}: {exc})",
            "Re-download or re-copy the file (check its size / checksum).",
        ) from exc


def _csr_from_10x(
    g: h5py.Group, n_cells: int, n_feat: int, *, path: Path, sample: str | None
) -> sp.csr_matrix:
    shape = tuple(int(x) for x in g["shape"][()])
    if shape != (n_feat, n_cells):
        raise _err(
            sample,
            path,
            f"matrix shape {shape} does not match {n_feat} features x {n_cells} barcodes",
            "The file is inconsistent; re-export it from Cell Ranger.",
        )
    indptr = g["indptr"][()]
    if indptr.shape[0] != n_cells + 1:
        raise _err(
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


def _read_10x_mtx(path: Path, *, sample: str | None) -> ad.AnnData:
    folder = path if path.is_dir() else path.parent
    files = mtx_triplet(path, sample=sample)
    if files is None:
        raise _err(
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
        raise _err(
            sample,
            folder,
            f"unreadable 10x mtx files ({type(exc).__name__}: {exc})",
            "Re-download or re-copy the folder (a truncated .gz?).",
        ) from exc
    n_feat, n_bc = feats.shape[0], bcs.shape[0]
    if M.shape != (n_feat, n_bc):
        raise _err(
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


def _read_h5ad_counts(path: Path, *, sample: str | None) -> ad.AnnData:
    try:
        src = ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as exc:
        raise _err(
            sample,
            path,
            f"unreadable h5ad ({type(exc).__name__}: {exc})",
            "Re-download or re-write the file.",
        ) from exc
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
        names = var.index.astype(str)
        ids = var["gene_ids"].astype(str) if "gene_ids" in var else names
        out = _build(
            X,
            src.obs_names,
            ids=ids,
            symbols=names,
            feature_types=var["feature_types"] if "feature_types" in var else None,
            genome=var["genome"] if "genome" in var else None,
            sample=sample,
            path=path,
        )
        obs = src.obs.copy()
        obs.index = out.obs_names
        out.obs = obs
        return out
    tried = ", ".join(w for w, _, _ in candidates)
    raise _err(
        sample,
        path,
        f"the h5ad holds normalised or non-integer values (tried {tried})",
        'Provide raw UMI counts (in X, layers["counts"] or raw.X).',
    )


def _looks_like_barcodes(labels: pd.Index) -> float:
    s = pd.Series(labels.astype(str))
    if s.empty:
        return 0.0
    return float(s.str.contains(_BARCODE_RE).mean())


def _read_table(path: Path, *, sample: str | None) -> ad.AnnData:
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
        raise _err(
            sample,
            path,
            f"unreadable table ({type(exc).__name__}: {exc})",
            "Provide a delimited table with labels in the first row and column.",
        ) from exc
    non_num = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if non_num:
        raise _err(
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


def read_counts(path: str | os.PathLike[str], *, sample: str, fmt: str | None = None) -> ad.AnnData:
    """Read a raw count matrix in any supported format.

    Parameters
    ----------
    path
        Input file or 10x mtx folder.
    sample
        Sample name (for messages).
    fmt
        One of :data:`FORMATS`; detected with :func:`detect_format` when ``None``, ``""`` or
        ``"auto"``.

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
        Missing, unreadable or truncated file; inconsistent dimensions; non-count values.
    """
    p = Path(path)
    if not p.exists():
        raise _err(sample, p, "file not found", "Check the path in the sample sheet (samples.tsv).")
    fmt = detect_format(p, sample=sample) if fmt in (None, "", "auto") else fmt
    readers = {
        "10x_h5": _read_10x_h5,
        "10x_mtx": _read_10x_mtx,
        "h5ad": _read_h5ad_counts,
        "table": _read_table,
    }
    if fmt not in readers:
        raise _err(
            sample, p, f"unknown format {fmt!r}", f"Use one of {', '.join(FORMATS)} or leave unset."
        )
    return readers[fmt](p, sample=sample)


def ingest_sample(
    path: str | os.PathLike[str],
    *,
    sample: str,
    condition: str,
    extra: Mapping[str, Any] | None = None,
    fmt: str | None = None,
    cell_calling: str = "auto",
    raw_min_barcodes: int = 20_000,
    min_umi: int = 100,
    species: str | None = None,
    symbol_case: str = "auto",
    symbol_reference: Iterable[str] = (),
) -> ad.AnnData:
    """Read one sample's raw counts, call cells in an unfiltered matrix, annotate its cells.

    Writes ``obs["sample"]``, ``obs["condition"]``, ``obs["barcode"]`` (the barcode as in the
    input) and one ``obs`` column per ``extra`` item (the sample sheet's other columns);
    ``obs_names`` become ``f"{sample}_{barcode}"``. Columns of an h5ad input's ``obs`` that
    clash with these names are kept with an ``_input`` suffix. ``uns["ingest"]`` records the
    input path, format, the orientation of a table, and ``cell_calling`` (see
    :func:`tmeflow.cellcalling.call_cells`: whether the matrix looked raw, the UMI cut-off,
    barcodes in and cells out).

    Parameters
    ----------
    cell_calling, raw_min_barcodes, min_umi
        Passed to :func:`tmeflow.cellcalling.call_cells` (config keys ``ingest.*``).
    species, symbol_case, symbol_reference
        With ``species="mouse"`` and ``symbol_case="auto"``, upper-cased mouse symbols get
        their mouse spelling (:func:`repair_mouse_symbol_case` with ``symbol_reference``);
        recorded in ``uns["ingest"]["symbols_recased"]``. ``"keep"`` leaves names as they are.

    Raises
    ------
    InputError
        Missing or unreadable input, non-count values, zero cells or zero features, a raw
        matrix with ``cell_calling="never"``, or an ``extra`` column that would overwrite
        ``barcode`` or disagree with sample/condition.
    """
    from tmeflow import cellcalling

    p = Path(path)
    fmt = detect_format(p, sample=sample) if fmt in (None, "", "auto") else fmt
    adata = read_counts(p, sample=sample, fmt=fmt)
    orientation = adata.uns.pop("orientation", None)
    if adata.n_obs:
        try:
            adata, calling = cellcalling.call_cells(
                adata,
                mode=cell_calling,
                raw_min_barcodes=raw_min_barcodes,
                min_umi=min_umi,
                sample=sample,
                path=os.fspath(p),
            )
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        adata.uns.pop("cell_calling", None)
    else:
        calling = {}
    if adata.n_obs == 0:
        raise _err(
            sample,
            p,
            "zero cells",
            "Check that this is the filtered (cell-called) matrix and not an empty export.",
        )
    if adata.n_vars == 0:
        raise _err(sample, p, "zero features", "Check the features file / reference.")
    extra = dict(extra or {})
    fixed = {"sample": sample, "condition": condition}
    for key in list(extra):
        if key in fixed:
            if str(extra[key]) != str(fixed[key]):
                raise _err(
                    sample,
                    p,
                    f"extra column {key!r}={extra[key]!r} disagrees with {fixed[key]!r}",
                    "Do not pass sample/condition in `extra`.",
                )
            del extra[key]
        elif key == "barcode":
            raise _err(
                sample,
                p,
                "sample-sheet column 'barcode' would overwrite the cell barcodes",
                "Rename that column in the sample sheet.",
            )
    obs = adata.obs.copy()
    for col in RESERVED_OBS:
        if col in obs.columns:
            logger.info("input obs column %r kept as %r", col, f"{col}_input")
            obs = obs.rename(columns={col: f"{col}_input"})
    barcodes = adata.obs_names.astype(str).to_numpy()
    obs.insert(0, "barcode", barcodes)
    obs.insert(0, "condition", str(condition))
    obs.insert(0, "sample", str(sample))
    for key, value in extra.items():
        obs[str(key)] = value
    obs.index = pd.Index([f"{sample}_{b}" for b in barcodes])
    adata.obs = obs
    recased = (
        repair_mouse_symbol_case(adata, symbol_reference)
        if species == "mouse" and symbol_case == "auto"
        else 0
    )
    if recased:
        logger.warning(
            "sample %s: every feature name was upper-case; %d mouse symbols were given their "
            "mouse spelling (GAS6 -> Gas6; input names in var['symbol_input']; "
            "ingest.symbol_case: keep turns this off)",
            sample,
            recased,
        )
    adata.uns["ingest"] = {
        "path": os.fspath(p),
        "format": fmt,
        "sample": str(sample),
        "symbols_recased": int(recased),
    }
    if orientation is not None:
        adata.uns["ingest"]["orientation"] = orientation
    adata.uns["ingest"]["cell_calling"] = calling
    logger.info(
        "sample %s: ingested %d cells x %d features from %s (%s)",
        sample,
        adata.n_obs,
        adata.n_vars,
        p,
        fmt,
    )
    return adata


def ingest_report(adata: ad.AnnData) -> dict[str, Any]:
    """One row describing an ingested sample (for ``results/ingest/{sample}.tsv``).

    Columns: ``sample``, ``format``, ``orientation`` (tables only, else empty),
    ``n_barcodes`` (in the input), ``looks_raw``, ``cells_called``, ``cell_calling_cutoff_umi``
    (NaN when no cell calling), ``n_cells``, ``n_features``, ``symbols_recased`` (upper-case
    mouse symbols given the mouse spelling; see :func:`repair_mouse_symbol_case`).
    """
    info = adata.uns.get("ingest", {})
    calling = info.get("cell_calling", {}) or {}
    orient = info.get("orientation", {}) or {}
    return {
        "sample": info.get("sample", ""),
        "format": info.get("format", ""),
        "orientation": orient.get("read_as", ""),
        "n_barcodes": int(calling.get("n_barcodes", adata.n_obs)),
        "looks_raw": bool(calling.get("looks_raw", False)),
        "cells_called": bool(calling.get("called", False)),
        "cell_calling_cutoff_umi": float(calling.get("cutoff_umi", float("nan"))),
        "n_cells": int(adata.n_obs),
        "n_features": int(adata.n_vars),
        "symbols_recased": int(info.get("symbols_recased", 0)),
    }


# --------------------------------------------------------------------------------------------
# remote inputs
# --------------------------------------------------------------------------------------------
def is_url(path: str | os.PathLike[str]) -> bool:
    """True for http(s) paths (downloaded by the workflow's ``download_sample`` rule)."""
    return str(path).startswith(("http://", "https://"))


def sha256sum(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_download(
    src: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    sha256: str | None,
    sample: str,
    url: str,
) -> str:
    """Check a downloaded file and copy it to ``dest`` atomically; return its SHA-256.

    Nothing is written to ``dest`` unless the file is non-empty and, when ``sha256`` is given,
    its checksum matches (case-insensitive).

    Raises
    ------
    InputError
        Empty download, or a checksum mismatch (names sample, URL, both digests and the fix).
    """
    src, dest = Path(src), Path(dest)
    if src.stat().st_size == 0:
        raise _err(sample, url, "the download is empty", "Check the URL (does it need a login?).")
    digest = sha256sum(src)
    if sha256 and digest.lower() != sha256.strip().lower():
        raise _err(
            sample,
            url,
            f"checksum mismatch: the downloaded file has sha256 {digest}, the sample sheet "
            f"expects {sha256.strip().lower()}",
            "The file changed upstream or the download is corrupt: check the URL and the "
            "sha256 column of the sample sheet, then re-run (nothing was kept).",
        )
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    return digest


# --------------------------------------------------------------------------------------------
# h5ad I/O
# --------------------------------------------------------------------------------------------
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


def read_h5ad(path: str | os.PathLike[str], *, skip: Iterable[str] = ()) -> ad.AnnData:
    """Read an h5ad written by a previous stage.

    ``skip`` names top-level elements not to load (see :data:`SKIPPABLE`), e.g.
    ``skip=("X",)`` in a step that only needs ``layers["counts"]``: large matrices a step
    does not use are never held in memory. A skipped ``X`` leaves ``adata.X`` as ``None``.

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
    if not skip:
        return ad.read_h5ad(p)
    parts: dict[str, Any] = {}
    with h5py.File(p, "r") as f:
        for key in ("X", "obs", "var", "obsm", "varm", "obsp", "varp", "layers", "uns"):
            if key in f and key not in skip:
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

"""Tell the format of a count input, and the files it consists of (no heavy imports).

Used at parse time by ``workflow/rules/common.smk`` (:func:`input_files`, :data:`FORMATS`)
and by :mod:`tmeflow.inputs._read_counts`; the formats themselves are described there.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from tmeflow.core._errors import InputError, input_error

#: The registry of input formats: name -> its reader (``module:function`` in this stage),
#: ``reader(path, *, sample) -> AnnData``. A new format is a reader module and one line here
#: (plus its name in the sample sheet schema's ``format`` enum, checked by a test). Readers are
#: named, not imported, so that parse time (``common.smk``) stays free of anndata and h5py.
FORMAT_READERS: dict[str, str] = {
    "10x_h5": "_read_counts:read_10x_h5",
    "10x_mtx": "_read_counts:read_10x_mtx",
    "h5ad": "_read_h5ad:read_h5ad_counts",
    "table": "_read_counts:read_table",
    "geo_tar": "_geo_tar:read_geo_tar",
}
FORMATS: tuple[str, ...] = tuple(FORMAT_READERS)
"""Input formats understood by :func:`tmeflow.inputs.read_counts`."""

_TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
_MTX_NAMES = ("matrix.mtx.gz", "matrix.mtx")
_FEATURE_NAMES = ("features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv")
_BARCODE_NAMES = ("barcodes.tsv.gz", "barcodes.tsv")


def format_reader(fmt: str) -> Callable:
    """The reader function of a registered format (:data:`FORMAT_READERS`).

    Raises
    ------
    KeyError
        If ``fmt`` is not registered.
    """
    module, function = FORMAT_READERS[fmt].split(":")
    return getattr(importlib.import_module(f"tmeflow.inputs.{module}"), function)


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
        raise input_error(
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
        A file (``.h5``, ``.h5ad``, ``.csv``/``.tsv``/``.txt`` with optional ``.gz``, a GEO
        ``_RAW.tar`` bundle: ``.tar``/``.tar.gz``/``.tgz``) or a 10x mtx folder. A path to a
        ``matrix.mtx[.gz]`` file is taken as its folder.
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
        raise input_error(
            sample, p, "file not found", "Check the path in the sample sheet (samples.tsv)."
        )
    if p.is_dir():
        if mtx_triplet(p, sample=sample) is not None:
            return "10x_mtx"
        present = sorted(x.name for x in p.iterdir())[:10]
        raise input_error(
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
        raise input_error(
            sample,
            p,
            "matrix file without its feature and barcode lists",
            f"Put {prefix}features.tsv[.gz] (or {prefix}genes.tsv[.gz]) and "
            f"{prefix}barcodes.tsv[.gz] beside it.",
        )
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        return "geo_tar"
    if name.endswith(".h5") or name.endswith(".hdf5"):
        return "10x_h5"
    if name.endswith(".h5ad"):
        return "h5ad"
    stem = name[:-3] if name.endswith(".gz") else name
    if stem.endswith(_TABLE_SUFFIXES):
        return "table"
    raise input_error(
        sample,
        p,
        "unrecognised count format",
        f"Provide one of {', '.join(FORMATS)} (.h5, a 10x mtx folder, .h5ad, "
        ".csv/.tsv/.txt[.gz], a GEO _RAW.tar), or set the format explicitly.",
    )

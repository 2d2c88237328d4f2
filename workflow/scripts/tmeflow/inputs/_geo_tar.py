"""GEO supplementary bundles (``GSE..._RAW.tar``): find a sample's files in the tar and read them.

A GEO series' ``_RAW.tar`` is a flat tar of per-sample files: Matrix Market triplets sharing a
prefix (``GSM123_a_matrix.mtx.gz``, ``GSM123_a_barcodes.tsv.gz``, ``GSM123_a_features.tsv.gz``
or ``..._genes.tsv.gz``), Cell Ranger HDF5 files (``GSM124_x_filtered_feature_bc_matrix.h5``),
h5ad files or count tables (``.csv``/``.tsv``/``.txt``, optionally ``.gz``). The sample sheet
names the tar in ``path`` and the sample's input in ``member`` (:func:`pick_input`); the
member's files are copied, by name and never by the paths stored in the tar, into a temporary
folder and read there by the registered reader of their format
(:data:`tmeflow.inputs.FORMAT_READERS`).

No heavy imports at module level: the sample sheet's parse-time checks list a local tar's inputs.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from tmeflow.core._errors import input_error

if TYPE_CHECKING:
    import anndata as ad

#: File name endings of a bundle (GEO writes plain ``.tar``; compressed tars are read too).
TAR_SUFFIXES: tuple[str, ...] = (".tar", ".tar.gz", ".tgz")

_MTX = ("matrix.mtx.gz", "matrix.mtx")
_FEATURES = ("features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv")
_BARCODES = ("barcodes.tsv.gz", "barcodes.tsv")
_SINGLE = {
    ".h5": "10x_h5",
    ".hdf5": "10x_h5",
    ".h5ad": "h5ad",
    ".csv": "table",
    ".tsv": "table",
    ".txt": "table",
}
_SEPARATORS = "_-."


@dataclass(frozen=True)
class BundleInput:
    """One sample's input inside a bundle.

    Attributes
    ----------
    key
        Its name: the shared prefix of an mtx triplet without the trailing separator
        (``GSM123_a``), or a single file's name (``GSM124_x_filtered_feature_bc_matrix.h5``).
    fmt
        The registered format that reads it (``10x_mtx``, ``10x_h5``, ``h5ad``, ``table``).
    members
        Its member names in the tar; for ``10x_mtx`` (matrix, features/genes, barcodes).
    """

    key: str
    fmt: str
    members: tuple[str, ...]

    @property
    def gsm(self) -> str | None:
        """The GEO sample accession the member names start with (``GSM123``), if any."""
        m = re.match(r"(GSM\d+)", PurePosixPath(self.key).name)
        return m.group(1) if m else None


def is_bundle(path: str | os.PathLike[str]) -> bool:
    """True when a path's (or URL's) name ends like a tar (:data:`TAR_SUFFIXES`)."""
    return str(path).split("?", 1)[0].lower().endswith(TAR_SUFFIXES)


def _ending(name: str, endings: tuple[str, ...]) -> tuple[str, str] | None:
    low = name.lower()
    for e in endings:
        if low.endswith(e):
            return name[: len(name) - len(e)], e
    return None


def _key(prefix: str) -> str:
    return prefix.rstrip(_SEPARATORS + "/") or "matrix"


def bundle_inputs(names: list[str]) -> dict[str, BundleInput]:
    """The inputs a list of member names holds, by key, in name order.

    Matrix Market files are grouped by their shared prefix (and folder): a matrix without its
    features/genes and barcodes lists is not an input, nor are lists without a matrix. Every
    other member whose name ends in ``.h5``/``.hdf5``/``.h5ad``/``.csv``/``.tsv``/``.txt``
    (optionally ``.gz``) is one input; anything else (``.bam``, ``.rds``, ``.pdf``...) is
    left out.

    Parameters
    ----------
    names
        Member names (``tarfile.TarInfo.name``) or file names, e.g. the lines of a GEO
        ``filelist.txt``.
    """
    prefixes: dict[str, dict[str, str]] = {}
    singles: list[str] = []
    for name in sorted(names):
        for role, endings in (("mtx", _MTX), ("features", _FEATURES), ("barcodes", _BARCODES)):
            hit = _ending(name, endings)
            if hit is not None:
                slot = prefixes.setdefault(hit[0], {})
                # features.tsv wins over genes.tsv, .gz over plain: the first ending listed
                if role not in slot or endings.index(hit[1]) < endings.index(
                    _ending(slot[role], endings)[1]  # type: ignore[index]
                ):
                    slot[role] = name
                break
        else:
            stem = name[:-3] if name.lower().endswith(".gz") else name
            if PurePosixPath(stem.lower()).suffix in _SINGLE:
                singles.append(name)
    out: dict[str, BundleInput] = {}
    for prefix, slot in prefixes.items():
        if {"mtx", "features", "barcodes"} <= set(slot):
            members = (slot["mtx"], slot["features"], slot["barcodes"])
            out[_key(prefix)] = BundleInput(_key(prefix), "10x_mtx", members)
        else:  # lists of a table-like name without a matrix are not inputs
            continue
    for name in singles:
        stem = name[:-3] if name.lower().endswith(".gz") else name
        fmt = _SINGLE[PurePosixPath(stem.lower()).suffix]
        if fmt != "table" and name.lower().endswith(".gz"):
            continue  # a gzipped h5/h5ad is not read as such
        out[name] = BundleInput(name, fmt, (name,))
    return dict(sorted(out.items()))


def pick_input(
    inputs: dict[str, BundleInput],
    member: str | None,
    *,
    sample: str | None,
    path: str | os.PathLike[str],
) -> BundleInput:
    """The bundle input the sample sheet's ``member`` cell names.

    ``member`` may be a member's file name (any of a triplet's three), an input's key
    (``GSM123_a``), or its start up to a separator (``GSM123`` for ``GSM123_a``). Empty, the
    bundle must hold exactly one input.

    Raises
    ------
    InputError
        No input, none matching, or several matching (the candidates are listed).
    """
    listed = ", ".join(list(inputs)[:8]) + (" ..." if len(inputs) > 8 else "")
    if not inputs:
        raise input_error(
            sample,
            path,
            "the tar holds no count input (no matrix.mtx triplet, .h5, .h5ad or table)",
            "Check that it is the series' _RAW.tar, or point 'path' at the files themselves.",
        )
    member = (member or "").strip()
    if not member:
        if len(inputs) == 1:
            return next(iter(inputs.values()))
        raise input_error(
            sample,
            path,
            f"the tar holds {len(inputs)} inputs ({listed})",
            "Name this sample's one in the sample sheet's 'member' column (a GSM prefix or a "
            "file name).",
        )
    exact = [
        i
        for i in inputs.values()
        if member == i.key or any(member in (m, PurePosixPath(m).name) for m in i.members)
    ]
    if not exact:
        exact = [
            i
            for i in inputs.values()
            if PurePosixPath(i.key).name.startswith(member)
            and PurePosixPath(i.key).name[len(member) : len(member) + 1] in tuple(_SEPARATORS)
        ]
    if len(exact) == 1:
        return exact[0]
    if not exact:
        raise input_error(
            sample,
            path,
            f"no input of the tar matches member {member!r} (it holds {listed})",
            "Set 'member' to one of these (or a GSM accession that starts exactly one).",
        )
    raise input_error(
        sample,
        path,
        f"member {member!r} matches {len(exact)} inputs ({', '.join(i.key for i in exact)})",
        "Set 'member' to the full name of one of them.",
    )


def _safe_name(info: tarfile.TarInfo) -> bool:
    p = PurePosixPath(info.name)
    return info.isreg() and not p.is_absolute() and ".." not in p.parts and p.name != ""


def list_bundle(
    path: str | os.PathLike[str], *, sample: str | None = None
) -> dict[str, BundleInput]:
    """The inputs of a tar on disk (:func:`bundle_inputs` of its regular, safely named files).

    Links, devices, folders and members whose names are absolute or climb out (``..``) are
    never inputs.

    Raises
    ------
    InputError
        The file is missing or not a readable tar.
    """
    try:
        with tarfile.open(path, "r:*") as tar:
            names = [m.name for m in tar.getmembers() if _safe_name(m)]
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise input_error(
            sample,
            path,
            f"not a readable tar ({type(exc).__name__}: {exc})",
            "Re-download the bundle (check its size / sha256), or point 'path' at its files.",
        ) from exc
    return bundle_inputs(names)


def extract_input(
    path: str | os.PathLike[str], chosen: BundleInput, dest: str | os.PathLike[str]
) -> Path:
    """Copy one input's members into ``dest`` by their base names; the path its reader takes.

    The tar's stored paths are never used as such: each member is streamed into
    ``dest/<base name>``, so nothing is written outside ``dest`` whatever the tar holds.
    Returns the matrix file of an mtx triplet, else the single file.
    """
    dest = Path(dest)
    out: list[Path] = []
    with tarfile.open(path, "r:*") as tar:
        for name in chosen.members:
            info = tar.getmember(name)
            if not _safe_name(info):
                raise input_error(
                    None, path, f"member {name!r} is not a plain file", "Use another bundle."
                )
            target = dest / PurePosixPath(name).name
            src = tar.extractfile(info)
            assert src is not None  # a regular file
            with src, target.open("wb") as fh:
                shutil.copyfileobj(src, fh, 1 << 20)
            out.append(target)
    return out[0]


def read_geo_tar(
    path: str | os.PathLike[str], *, sample: str | None, member: str | None = None
) -> ad.AnnData:
    """Read one sample's counts from a GEO ``_RAW.tar`` bundle (the ``geo_tar`` format).

    Parameters
    ----------
    path
        The tar.
    sample
        For messages.
    member
        The sample sheet's ``member`` cell (:func:`pick_input`).

    Returns
    -------
    AnnData
        What the member's format reader returns, held in memory (the extracted copy is
        deleted), with ``uns["bundle"]``: the ``member`` asked for, the input's ``key``,
        ``format`` and ``members``.
    """
    from tmeflow.inputs._formats import format_reader

    chosen = pick_input(list_bundle(path, sample=sample), member, sample=sample, path=path)
    with tempfile.TemporaryDirectory(prefix="tmeflow-bundle-") as tmp:
        local = extract_input(path, chosen, tmp)
        adata = format_reader(chosen.fmt)(local, sample=sample)
        adata = adata.to_memory() if getattr(adata, "isbacked", False) else adata
    adata.uns["bundle"] = {
        "member": member or "",
        "key": chosen.key,
        "format": chosen.fmt,
        "members": list(chosen.members),
    }
    return adata

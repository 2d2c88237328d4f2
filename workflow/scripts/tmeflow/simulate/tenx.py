"""Byte-deterministic writers of 10x Genomics count files (Cell Ranger 3 HDF5, v3 mtx folder).

Both take an AnnData of raw counts (cells x genes; ``var_names`` are the feature names, ``var``
holds ``gene_ids``, ``feature_types`` and, for HDF5, ``genome``). Gzip headers carry neither a
time stamp nor a file name and HDF5 objects no times, so equal input gives equal bytes.
"""

import gzip
import io
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

__all__ = ["GZIP_LEVEL", "write_10x_h5", "write_10x_mtx"]

GZIP_LEVEL = 4  # level 9 takes ~3 s per default-size matrix for ~10% smaller files


def _gzip_bytes(path: Path, payload: bytes) -> None:
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=GZIP_LEVEL) as gz,
    ):
        gz.write(payload)


def write_10x_mtx(folder: Path, adata: AnnData) -> None:
    """Write a 10x v3 matrix-market folder.

    Parameters
    ----------
    folder
        Output folder (created if needed); receives ``matrix.mtx.gz`` (genes x cells, integer
        coordinate format, cell by cell), ``features.tsv.gz`` (id, name, type) and
        ``barcodes.tsv.gz``.
    adata
        Raw counts, cells x genes.
    """
    folder.mkdir(parents=True, exist_ok=True)
    n_cells, n_genes = adata.shape
    # entries of the genes x cells matrix, cell by cell (column-major), genes ascending
    coo = sp.csr_matrix(adata.X).tocoo()
    order = np.lexsort((coo.col, coo.row))
    rows = coo.col[order] + 1  # gene (1-based)
    cols = coo.row[order] + 1  # cell (1-based)
    vals = coo.data[order]
    buf = io.StringIO()
    buf.write("%%MatrixMarket matrix coordinate integer general\n")
    buf.write(f"{n_genes} {n_cells} {vals.size}\n")
    pd.DataFrame({"r": rows, "c": cols, "v": vals}).to_csv(
        buf, sep=" ", header=False, index=False, lineterminator="\n"
    )
    _gzip_bytes(folder / "matrix.mtx.gz", buf.getvalue().encode("ascii"))
    features = "".join(
        f"{gid}\t{name}\t{ft}\n"
        for gid, name, ft in zip(
            adata.var["gene_ids"], adata.var_names, adata.var["feature_types"], strict=True
        )
    )
    _gzip_bytes(folder / "features.tsv.gz", features.encode("utf-8"))
    _gzip_bytes(folder / "barcodes.tsv.gz", "".join(f"{b}\n" for b in adata.obs_names).encode())


def _fixed_bytes(values: Sequence[str]) -> np.ndarray:
    encoded = [str(v).encode("utf-8") for v in values]
    width = max((len(v) for v in encoded), default=1)
    return np.array(encoded, dtype=f"S{max(width, 1)}")


def write_10x_h5(path: Path, adata: AnnData) -> None:
    """Write a Cell Ranger 3 feature-barcode HDF5 file.

    Parameters
    ----------
    path
        Output ``.h5`` file (overwritten).
    adata
        Raw counts, cells x genes; ``var`` needs ``gene_ids``, ``feature_types`` and
        ``genome``.
    """
    csr = sp.csr_matrix(adata.X)  # cells x genes CSR == genes x cells CSC
    csr.sort_indices()
    n_cells, n_genes = csr.shape
    with h5py.File(path, "w", libver="earliest", track_order=False) as f:
        grp = f.create_group("matrix", track_order=False)
        kw = {"track_times": False}
        grp.create_dataset("barcodes", data=_fixed_bytes(adata.obs_names), **kw)
        grp.create_dataset(
            "data", data=csr.data.astype(np.int32), compression="gzip", shuffle=True, **kw
        )
        grp.create_dataset(
            "indices", data=csr.indices.astype(np.int64), compression="gzip", shuffle=True, **kw
        )
        grp.create_dataset("indptr", data=csr.indptr.astype(np.int64), **kw)
        grp.create_dataset("shape", data=np.array([n_genes, n_cells], dtype=np.int32), **kw)
        feat = grp.create_group("features", track_order=False)
        feat.create_dataset("_all_tag_keys", data=np.array([b"genome"], dtype="S6"), **kw)
        feat.create_dataset("feature_type", data=_fixed_bytes(adata.var["feature_types"]), **kw)
        feat.create_dataset("genome", data=_fixed_bytes(adata.var["genome"]), **kw)
        feat.create_dataset("id", data=_fixed_bytes(adata.var["gene_ids"]), **kw)
        feat.create_dataset("name", data=_fixed_bytes(adata.var_names), **kw)

"""Export for R: one folder per species that SingleCellExperiment and Seurat load.

A folder of plain files, so that R needs no Python bridge (zellkonverter, reticulate):
``matrix.mtx.gz`` (raw integer UMI counts, genes x cells, Matrix Market as R's
``Matrix::readMM`` reads it), ``features.tsv.gz`` (feature id, symbol), ``barcodes.tsv.gz``
(cell names), ``obs.tsv.gz`` (every cell annotation, one row per cell in the matrix's column
order) and ``reduction_<name>.tsv.gz`` for each embedding (``X_umap``, ``X_scVI``). The R side
is ``workflow/scripts/R/read_tmeflow.R``: ``read_tmeflow(folder, as = "SingleCellExperiment")``
or ``as = "Seurat"``.
"""

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp
from anndata import AnnData

from tmeflow.core._atomic import atomic_path
from tmeflow.core._tables import write_tsv

#: Files of an R folder, besides one ``reduction_<name>.tsv.gz`` per embedding.
R_FILES: tuple[str, ...] = ("matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv.gz", "obs.tsv.gz")


def r_counts(adata: AnnData) -> sp.csr_matrix:
    """The raw counts of an export object: ``raw.X`` (CELLxGENE), else ``layers['counts']``.

    Raises
    ------
    ValueError
        If neither holds counts, or a value is not a non-negative integer.
    """
    if adata.raw is not None:
        counts = adata.raw.X
    elif "counts" in adata.layers:
        counts = adata.layers["counts"]
    else:
        msg = "the object has neither raw.X nor layers['counts']: no raw counts to export"
        raise ValueError(msg)
    counts = sp.csr_matrix(counts)
    data = counts.data
    if data.size and ((data < 0).any() or not np.array_equal(data, np.round(data))):
        msg = "the raw counts hold negative or non-integer values"
        raise ValueError(msg)
    return counts


def write_r_folder(adata: AnnData, folder: str | Path) -> list[Path]:
    """Write ``adata``'s counts, features, cells, annotations and embeddings for R.

    Parameters
    ----------
    adata
        One species' export object (:func:`tmeflow.export.to_cellxgene`, raw counts in
        ``raw.X``) or any object with ``layers['counts']``.
    folder
        Created if absent; the files of :data:`R_FILES` plus the reductions are written.

    Returns
    -------
    list of Path
        The files written.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    counts = r_counts(adata)
    written = []
    path = out / "matrix.mtx.gz"
    text = io.BytesIO()  # genes x cells, integers: the orientation R's single-cell classes hold
    scipy.io.mmwrite(text, counts.T.tocoo().astype(np.int64), field="integer")
    packed = io.BytesIO()  # no file name or time in the gzip header: the same bytes every run
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as fh:
        fh.write(text.getvalue())
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(packed.getvalue())
    written.append(path)
    var = adata.raw.var if adata.raw is not None else adata.var
    symbol = next((c for c in ("gene_symbol", "feature_name") if c in var.columns), None)
    features = pd.DataFrame(
        {
            "feature_id": var.index.astype(str),
            "symbol": (var[symbol] if symbol else var.index).astype(str).to_numpy(),
        }
    )
    for name, table in (
        ("features.tsv.gz", features),
        ("barcodes.tsv.gz", pd.DataFrame({"barcode": adata.obs_names.astype(str)})),
    ):
        write_tsv(table, out / name)
        written.append(out / name)
    obs = adata.obs.copy()
    for col in obs.columns:  # R reads TSV strings; categories keep their labels
        if isinstance(obs[col].dtype, pd.CategoricalDtype):
            obs[col] = obs[col].astype(str)
    write_tsv(obs, out / "obs.tsv.gz", index=True, index_label="barcode")
    written.append(out / "obs.tsv.gz")
    for key in sorted(adata.obsm):
        emb = np.asarray(adata.obsm[key], dtype=float)
        if emb.ndim != 2 or emb.shape[0] != adata.n_obs:
            continue
        name = key.removeprefix("X_")
        table = pd.DataFrame(
            emb, index=adata.obs_names, columns=[f"{name}_{i + 1}" for i in range(emb.shape[1])]
        )
        path = out / f"reduction_{name}.tsv.gz"
        write_tsv(table, path, index=True, index_label="barcode")
        written.append(path)
    return written

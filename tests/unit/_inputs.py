"""Input files written in tmp_path by the reader, ingest and bad-input tests."""

import gzip
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import scipy.sparse as sp

# cells x genes counts used throughout: 4 cells, 5 genes
COUNTS = np.array(
    [
        [0, 3, 0, 1, 7],
        [2, 0, 0, 0, 1],
        [0, 0, 5, 2, 0],
        [1, 1, 1, 1, 1],
    ],
    dtype=np.int64,
)
BARCODES = ["AAACCTGAGAAACCAT-1", "AAACCTGAGAAACCGC-1", "AAACCTGCAGCTTAAC-1", "TTTGTCATCTGCGGCA-1"]
IDS = ["ENSMUSG01", "ENSMUSG02", "ENSMUSG03", "ENSMUSG04", "ENSMUSG05"]
NAMES = ["Gas6", "Axl", "Gas6", "Mmp11", "mt-Co1"]  # a repeated symbol


def expected(X: np.ndarray) -> np.ndarray:
    return np.asarray(X, dtype=np.float32)


def write_cr3_h5(
    path: Path,
    X: np.ndarray,
    barcodes: list[str],
    ids: list[str],
    names: list[str],
    ftypes: list[str],
    genomes: list[str],
) -> None:
    csc = sp.csc_matrix(np.asarray(X).T)  # features x cells, CSC like Cell Ranger
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g["barcodes"] = np.array(barcodes, dtype="S")
        g["data"] = csc.data.astype(np.int32)
        g["indices"] = csc.indices.astype(np.int64)
        g["indptr"] = csc.indptr.astype(np.int64)
        g["shape"] = np.array(csc.shape, dtype=np.int32)
        fg = g.create_group("features")
        fg["id"] = np.array(ids, dtype="S")
        fg["name"] = np.array(names, dtype="S")
        fg["feature_type"] = np.array(ftypes, dtype="S")
        fg["genome"] = np.array(genomes, dtype="S")


def write_cr2_h5(path: Path, groups: dict[str, tuple[np.ndarray, list, list, list]]) -> None:
    """groups: genome -> (cells x genes counts, barcodes, gene ids, gene names)."""
    with h5py.File(path, "w") as f:
        for genome, (X, bcs, ids, names) in groups.items():
            csc = sp.csc_matrix(np.asarray(X).T)
            g = f.create_group(genome)
            g["barcodes"] = np.array(bcs, dtype="S")
            g["genes"] = np.array(ids, dtype="S")
            g["gene_names"] = np.array(names, dtype="S")
            g["data"] = csc.data.astype(np.int32)
            g["indices"] = csc.indices.astype(np.int64)
            g["indptr"] = csc.indptr.astype(np.int64)
            g["shape"] = np.array(csc.shape, dtype=np.int32)


def _write_text(path: Path, text: str, gz: bool) -> None:
    if gz:
        with gzip.open(str(path) + ".gz", "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)


def write_mtx(
    folder: Path,
    X: np.ndarray,
    barcodes: list[str],
    features: list[list[str]],
    *,
    gz: bool,
    features_name: str,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    m = folder / "matrix.mtx"
    scipy.io.mmwrite(str(m), sp.coo_matrix(np.asarray(X).T), field="integer")
    if gz:
        with open(m, "rb") as src, gzip.open(str(m) + ".gz", "wb") as dst:
            dst.write(src.read())
        m.unlink()
    _write_text(folder / features_name, "".join("\t".join(r) + "\n" for r in features), gz)
    _write_text(folder / "barcodes.tsv", "".join(b + "\n" for b in barcodes), gz)
    return folder


def v3_features() -> list[list[str]]:
    return [[i, n, "Gene Expression"] for i, n in zip(IDS, NAMES, strict=True)]


def lognorm(X: np.ndarray) -> sp.csr_matrix:
    X = np.asarray(X, dtype=np.float64)
    tot = X.sum(1, keepdims=True)
    return sp.csr_matrix(np.log1p(X / tot * 1e4))

"""Unit tests for tmeflow.io: every input format, written in tmp_path, and the error cases."""

import gzip
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from tmeflow import io

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


def _expected(X: np.ndarray) -> np.ndarray:
    return np.asarray(X, dtype=np.float32)


# ---------------------------------------------------------------------------- writers
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


# ---------------------------------------------------------------------------- detect_format
def test_detect_format_each_kind(tmp_path: Path) -> None:
    write_mtx(
        tmp_path / "v2",
        COUNTS,
        BARCODES,
        [[i, n] for i, n in zip(IDS, NAMES, strict=True)],
        gz=False,
        features_name="genes.tsv",
    )
    write_mtx(
        tmp_path / "v3", COUNTS, BARCODES, v3_features(), gz=True, features_name="features.tsv"
    )
    for name in ("a.h5", "a.h5ad", "a.csv", "a.tsv.gz", "a.txt", "a.loom"):
        (tmp_path / name).write_bytes(b"x")
    assert io.detect_format(tmp_path / "v2") == "10x_mtx"
    assert io.detect_format(tmp_path / "v3") == "10x_mtx"
    assert io.detect_format(tmp_path / "v3" / "matrix.mtx.gz") == "10x_mtx"
    assert io.detect_format(tmp_path / "a.h5") == "10x_h5"
    assert io.detect_format(tmp_path / "a.h5ad") == "h5ad"
    assert io.detect_format(tmp_path / "a.csv") == "table"
    assert io.detect_format(tmp_path / "a.tsv.gz") == "table"
    assert io.detect_format(tmp_path / "a.txt") == "table"
    with pytest.raises(io.InputError, match="unrecognised count format"):
        io.detect_format(tmp_path / "a.loom", sample="s1")
    with pytest.raises(io.InputError, match="not a 10x mtx folder"):
        io.detect_format(tmp_path, sample="s1")
    with pytest.raises(io.InputError, match=r"sample 's1': file not found"):
        io.detect_format(tmp_path / "nope.h5", sample="s1")


# ---------------------------------------------------------------------------- 10x HDF5
def test_read_cr3_h5_keeps_gene_expression_only(tmp_path: Path) -> None:
    X = np.hstack([COUNTS, np.array([[9], [8], [7], [6]])])  # + one antibody feature
    p = tmp_path / "cr3.h5"
    write_cr3_h5(
        p,
        X,
        BARCODES,
        [*IDS, "CD3"],
        [*NAMES, "CD3_TotalSeqB"],
        ["Gene Expression"] * 5 + ["Antibody Capture"],
        ["mm10"] * 6,
    )
    a = io.read_counts(p, sample="s1")
    assert isinstance(a.X, sp.csr_matrix)
    assert a.X.dtype == np.float32
    np.testing.assert_array_equal(a.X.toarray(), _expected(COUNTS))
    assert list(a.obs_names) == BARCODES
    assert list(a.var_names) == ["Gas6", "Axl", "Gas6-1", "Mmp11", "mt-Co1"]
    assert list(a.var["gene_ids"]) == IDS
    assert list(a.var["gene_symbols"]) == NAMES
    assert set(a.var["feature_types"]) == {"Gene Expression"}
    assert set(a.var["genome"]) == {"mm10"}


def test_read_cr2_h5_single_genome(tmp_path: Path) -> None:
    p = tmp_path / "cr2.h5"
    write_cr2_h5(p, {"mm10": (COUNTS, BARCODES, IDS, NAMES)})
    a = io.read_counts(p, sample="s1")
    assert a.shape == (4, 5)
    np.testing.assert_array_equal(a.X.toarray(), _expected(COUNTS))
    assert list(a.var["gene_ids"]) == IDS
    assert list(a.var["genome"]) == ["mm10"] * 5
    assert list(a.obs_names) == BARCODES


def test_read_cr2_h5_multi_genome_concatenates_genes(tmp_path: Path) -> None:
    hX = np.array([[10, 0], [0, 0], [3, 4], [1, 0]])
    mX = np.array([[0, 1, 0], [5, 6, 0], [0, 0, 1], [0, 2, 2]])
    # the mouse group lists the same barcodes in another order: rows must be aligned
    order = [2, 0, 3, 1]
    p = tmp_path / "hgmm.h5"
    write_cr2_h5(
        p,
        {
            "hg19": (hX, BARCODES, ["hg19_ENSG1", "hg19_ENSG2"], ["hg19_ACTB", "hg19_AXL"]),
            "mm10": (
                mX[order],
                [BARCODES[i] for i in order],
                ["mm10_ENSMUSG1", "mm10_ENSMUSG2", "mm10_ENSMUSG3"],
                ["mm10_Actb", "mm10_Axl", "mm10_Gas6"],
            ),
        },
    )
    a = io.read_counts(p, sample="x")
    assert a.shape == (4, 5)
    assert list(a.obs_names) == BARCODES
    assert list(a.var_names) == ["hg19_ACTB", "hg19_AXL", "mm10_Actb", "mm10_Axl", "mm10_Gas6"]
    assert list(a.var["genome"]) == ["hg19", "hg19", "mm10", "mm10", "mm10"]
    np.testing.assert_array_equal(a.X.toarray(), np.hstack([hX, mX]).astype(np.float32))


def test_truncated_h5_names_sample_and_file(tmp_path: Path) -> None:
    p = tmp_path / "cr3.h5"
    write_cr3_h5(p, COUNTS, BARCODES, IDS, NAMES, ["Gene Expression"] * 5, ["mm10"] * 5)
    data = p.read_bytes()
    bad = tmp_path / "truncated.h5"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(io.InputError) as exc:
        io.ingest_sample(bad, sample="tumour_1", condition="ctrl")
    msg = str(exc.value)
    assert "tumour_1" in msg and "truncated.h5" in msg and "Re-download" in msg


# ---------------------------------------------------------------------------- 10x mtx
def test_read_mtx_v2_plain(tmp_path: Path) -> None:
    feats = [[i, n] for i, n in zip(IDS, NAMES, strict=True)]
    d = write_mtx(tmp_path / "v2", COUNTS, BARCODES, feats, gz=False, features_name="genes.tsv")
    a = io.read_counts(d, sample="s1")
    np.testing.assert_array_equal(a.X.toarray(), _expected(COUNTS))
    assert list(a.var["gene_ids"]) == IDS
    assert list(a.var_names) == ["Gas6", "Axl", "Gas6-1", "Mmp11", "mt-Co1"]
    assert "feature_types" not in a.var
    assert list(a.obs_names) == BARCODES


def test_read_mtx_v3_gz_drops_non_gene_expression(tmp_path: Path) -> None:
    X = np.hstack([COUNTS, np.array([[4], [0], [2], [1]])])
    feats = [*v3_features(), ["CRISPR1", "sgRNA_Axl", "CRISPR Guide Capture"]]
    d = write_mtx(tmp_path / "v3", X, BARCODES, feats, gz=True, features_name="features.tsv")
    assert (d / "matrix.mtx.gz").is_file() and (d / "features.tsv.gz").is_file()
    a = io.read_counts(d, sample="s1")
    assert a.n_vars == 5
    np.testing.assert_array_equal(a.X.toarray(), _expected(COUNTS))
    assert "sgRNA_Axl" not in a.var_names
    assert set(a.var["feature_types"]) == {"Gene Expression"}


def test_read_mtx_symbol_only_features(tmp_path: Path) -> None:
    feats = [[n] for n in ["Xkr4", "Gas6", "Mmp11", "Axl", "Col1a1"]]
    d = write_mtx(tmp_path / "sym", COUNTS, BARCODES, feats, gz=True, features_name="genes.tsv")
    a = io.read_counts(d, sample="s1")
    assert list(a.var_names) == ["Xkr4", "Gas6", "Mmp11", "Axl", "Col1a1"]
    assert list(a.var["gene_ids"]) == list(a.var_names)
    assert a.X[:, 4].toarray().ravel().tolist() == [7, 1, 0, 1]


def test_mtx_dimension_mismatch(tmp_path: Path) -> None:
    d = write_mtx(
        tmp_path / "bad",
        COUNTS,
        BARCODES[:3],
        v3_features(),
        gz=False,
        features_name="features.tsv",
    )
    with pytest.raises(io.InputError) as exc:
        io.ingest_sample(d, sample="s7", condition="ctrl")
    msg = str(exc.value)
    assert "s7" in msg and "matrix.mtx" in msg and "(5, 4)" in msg and "3 barcodes" in msg


def test_zero_cells_rejected(tmp_path: Path) -> None:
    d = write_mtx(
        tmp_path / "empty",
        np.zeros((0, 5), dtype=int),
        [],
        v3_features(),
        gz=False,
        features_name="features.tsv",
    )
    (d / "barcodes.tsv").write_text("")
    with pytest.raises(io.InputError, match=r"sample 'e1': zero cells"):
        io.ingest_sample(d, sample="e1", condition="ctrl")


# ---------------------------------------------------------------------------- h5ad
def _lognorm(X: np.ndarray) -> sp.csr_matrix:
    X = np.asarray(X, dtype=np.float64)
    tot = X.sum(1, keepdims=True)
    return sp.csr_matrix(np.log1p(X / tot * 1e4))


def test_h5ad_counts_in_x(tmp_path: Path) -> None:
    p = tmp_path / "x.h5ad"
    ad.AnnData(
        sp.csr_matrix(COUNTS.astype(np.int32)),
        obs=pd.DataFrame({"library": ["L1"] * 4}, index=BARCODES),
        var=pd.DataFrame(index=["A", "B", "C", "D", "E"]),
    ).write_h5ad(p)
    a = io.read_counts(p, sample="s1")
    np.testing.assert_array_equal(a.X.toarray(), _expected(COUNTS))
    assert list(a.obs["library"]) == ["L1"] * 4
    assert list(a.var["gene_ids"]) == ["A", "B", "C", "D", "E"]


def test_h5ad_counts_in_layer(tmp_path: Path) -> None:
    p = tmp_path / "layer.h5ad"
    a0 = ad.AnnData(
        _lognorm(COUNTS),
        obs=pd.DataFrame(index=BARCODES),
        var=pd.DataFrame(index=["A", "B", "C", "D", "E"]),
    )
    a0.layers["counts"] = sp.csr_matrix(COUNTS.astype(np.float32))
    a0.write_h5ad(p)
    a = io.read_counts(p, sample="s1")
    np.testing.assert_array_equal(a.X.toarray(), _expected(COUNTS))


def test_h5ad_counts_in_raw(tmp_path: Path) -> None:
    p = tmp_path / "raw.h5ad"
    full = ad.AnnData(
        sp.csr_matrix(COUNTS.astype(np.float32)),
        obs=pd.DataFrame(index=BARCODES),
        var=pd.DataFrame(index=["A", "B", "C", "D", "E"]),
    )
    a0 = full.copy()
    a0.raw = full
    a0 = a0[:, ["B", "D"]].copy()  # processed object keeps 2 genes; raw keeps all 5
    a0.X = _lognorm(COUNTS)[:, [1, 3]]
    a0.write_h5ad(p)
    a = io.read_counts(p, sample="s1")
    assert list(a.var_names) == ["A", "B", "C", "D", "E"]
    np.testing.assert_array_equal(a.X.toarray(), _expected(COUNTS))


def test_h5ad_without_counts_rejected(tmp_path: Path) -> None:
    p = tmp_path / "norm.h5ad"
    ad.AnnData(_lognorm(COUNTS), obs=pd.DataFrame(index=BARCODES)).write_h5ad(p)
    with pytest.raises(io.InputError) as exc:
        io.ingest_sample(p, sample="s2", condition="ctrl")
    msg = str(exc.value)
    assert "normalised or non-integer" in msg and "raw UMI counts" in msg
    assert "s2" in msg and "norm.h5ad" in msg


# ---------------------------------------------------------------------------- tables
def test_table_csv_genes_by_cells(tmp_path: Path) -> None:
    p = tmp_path / "counts.csv"
    genes = ["Gas6", "Axl", "Pdgfra", "Mmp11", "Col1a1"]
    pd.DataFrame(COUNTS.T, index=genes, columns=BARCODES).to_csv(p)
    a = io.read_counts(p, sample="s1")
    assert list(a.obs_names) == BARCODES
    assert list(a.var_names) == genes
    np.testing.assert_array_equal(a.X.toarray(), _expected(COUNTS))


def test_table_tsv_gz_cells_by_genes(tmp_path: Path) -> None:
    p = tmp_path / "counts.tsv.gz"
    genes = ["Gas6", "Axl", "Pdgfra", "Mmp11", "Col1a1"]
    pd.DataFrame(COUNTS, index=BARCODES, columns=genes).to_csv(p, sep="\t")
    a = io.read_counts(p, sample="s1")
    assert list(a.obs_names) == BARCODES
    assert list(a.var_names) == genes
    np.testing.assert_array_equal(a.X.toarray(), _expected(COUNTS))


def test_table_orientation_by_size_without_barcodes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.poisson(2, size=(3, 12))  # 3 cells x 12 genes, cell labels not barcode-like
    genes = [f"g{i}" for i in range(12)]
    cells = ["cellA", "cellB", "cellC"]
    p = tmp_path / "t.txt"
    pd.DataFrame(X.T, index=genes, columns=cells).to_csv(p, sep="\t")
    a = io.read_counts(p, sample="s1")
    assert list(a.obs_names) == cells
    assert list(a.var_names) == genes
    np.testing.assert_array_equal(a.X.toarray(), X.astype(np.float32))
    p2 = tmp_path / "t2.csv"
    pd.DataFrame(X, index=cells, columns=genes).to_csv(p2)
    a2 = io.read_counts(p2, sample="s1")
    assert list(a2.obs_names) == cells
    np.testing.assert_array_equal(a2.X.toarray(), X.astype(np.float32))


def test_log_normalised_table_rejected(tmp_path: Path) -> None:
    p = tmp_path / "lognorm.csv"
    genes = ["Gas6", "Axl", "Pdgfra", "Mmp11", "Col1a1"]
    pd.DataFrame(_lognorm(COUNTS).toarray().T, index=genes, columns=BARCODES).to_csv(p)
    with pytest.raises(io.InputError, match=r"sample 'ln'.*non-integer.*lognorm\.csv"):
        io.ingest_sample(p, sample="ln", condition="ctrl")


# ---------------------------------------------------------------------------- integer check
def test_check_integer_counts_sparse_without_densifying() -> None:
    n = 10**7  # dense would be 10^14 entries: the check must look at .data only
    ok = sp.csr_matrix((np.array([1.0, 5.0, 2.0]), ([0, 5, 9], [1, 2, 3])), shape=(n, n))
    io.check_integer_counts(ok, sample="s", path="p")
    bad = ok.copy()
    bad.data = np.log1p(bad.data)
    with pytest.raises(io.InputError, match="normalised or non-integer"):
        io.check_integer_counts(bad, sample="s", path="p")
    neg = ok.copy()
    neg.data = np.array([1.0, -2.0, 3.0])
    with pytest.raises(io.InputError, match="negative"):
        io.check_integer_counts(neg, sample="s", path="p")
    with pytest.raises(io.InputError, match="NaN"):
        io.check_integer_counts(np.array([[1.0, np.nan]]), sample="s", path="p")
    io.check_integer_counts(np.array([[0, 3]], dtype=np.int32), sample="s", path="p")


# ---------------------------------------------------------------------------- ingest
def test_ingest_sample_obs(tmp_path: Path) -> None:
    p = tmp_path / "cr3.h5"
    write_cr3_h5(p, COUNTS, BARCODES, IDS, NAMES, ["Gene Expression"] * 5, ["mm10"] * 5)
    a = io.ingest_sample(
        p, sample="tum1", condition="treated", extra={"animal": "m3", "batch": 2, "sample": "tum1"}
    )
    assert list(a.obs_names) == [f"tum1_{b}" for b in BARCODES]
    assert list(a.obs["barcode"]) == BARCODES
    assert set(a.obs["sample"]) == {"tum1"}
    assert set(a.obs["condition"]) == {"treated"}
    assert set(a.obs["animal"]) == {"m3"} and set(a.obs["batch"]) == {2}
    assert a.uns["ingest"]["format"] == "10x_h5"
    with pytest.raises(io.InputError, match="barcode"):
        io.ingest_sample(p, sample="tum1", condition="treated", extra={"barcode": "x"})


def test_ingest_missing_file(tmp_path: Path) -> None:
    with pytest.raises(io.InputError) as exc:
        io.ingest_sample(tmp_path / "absent.h5", sample="s9", condition="ctrl")
    msg = str(exc.value)
    assert "s9" in msg and "absent.h5" in msg and "sample sheet" in msg


# ---------------------------------------------------------------------------- h5ad writing
def test_write_h5ad_roundtrip_and_atomic(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "out.h5ad"
    a = ad.AnnData(sp.csr_matrix(COUNTS.astype(np.float32)), obs=pd.DataFrame(index=BARCODES))
    a.uns["params"] = {"x": 1}
    io.write_h5ad(a, out)
    b = io.read_h5ad(out)
    np.testing.assert_array_equal(b.X.toarray(), _expected(COUNTS))
    assert b.uns["params"]["x"] == 1
    before = out.read_bytes()

    bad = a.copy()
    bad.uns["unwritable"] = object()  # anndata cannot serialise this: the write fails midway
    with pytest.raises(Exception):  # noqa: B017 - anndata's error type is not ours to pin
        io.write_h5ad(bad, out)
    assert out.read_bytes() == before  # the previous good file is untouched
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.h5ad"]  # no temp left
    bad_new = tmp_path / "never.h5ad"
    with pytest.raises(Exception):  # noqa: B017
        io.write_h5ad(bad, bad_new)
    assert not bad_new.exists()
    with pytest.raises(FileNotFoundError, match="run the stage"):
        io.read_h5ad(tmp_path / "missing.h5ad")


def _layered(tmp_path: Path) -> tuple[ad.AnnData, Path]:
    a = ad.AnnData(
        sp.csr_matrix(_lognorm(COUNTS).astype(np.float32)),
        obs=pd.DataFrame({"sample": "s1"}, index=BARCODES),
        var=pd.DataFrame(index=IDS),
        layers={"counts": sp.csr_matrix(COUNTS.astype(np.int32))},
    )
    a.obsm["X_emb"] = np.arange(2 * a.n_obs, dtype=np.float32).reshape(a.n_obs, 2)
    a.uns["params"] = {"x": 1}
    path = tmp_path / "in.h5ad"
    io.write_h5ad(a, path)
    return a, path


def test_read_h5ad_skips_elements(tmp_path: Path) -> None:
    a, path = _layered(tmp_path)
    no_x = io.read_h5ad(path, skip=("X",))
    assert no_x.X is None and no_x.shape == a.shape
    np.testing.assert_array_equal(no_x.layers["counts"].toarray(), COUNTS)
    np.testing.assert_array_equal(no_x.obsm["X_emb"], a.obsm["X_emb"])
    only_obs = io.read_h5ad(path, skip=("X", "layers", "obsm", "uns"))
    assert list(only_obs.layers) == [] and list(only_obs.obsm) == [] and not only_obs.uns
    assert only_obs.obs["sample"].tolist() == ["s1"] * a.n_obs
    with pytest.raises(ValueError, match="cannot skip"):
        io.read_h5ad(path, skip=("obs",))


def test_update_h5ad_replaces_annotations_and_keeps_matrices(tmp_path: Path) -> None:
    a, path = _layered(tmp_path)
    light = io.read_h5ad(path, skip=("X", "layers"))
    light.obs["label"] = "CAF"
    light.obs["partial"] = pd.Series(
        ["a", np.nan, "b", np.nan], index=light.obs_names, dtype=object
    )
    light.obsm["X_umap"] = np.ones((light.n_obs, 2), dtype=np.float32)
    light.uns["step"] = {"done": True}
    out = tmp_path / "out" / "updated.h5ad"
    io.update_h5ad(light, path, out)
    b = io.read_h5ad(out)
    np.testing.assert_array_equal(b.X.toarray(), a.X.toarray())
    np.testing.assert_array_equal(b.layers["counts"].toarray(), COUNTS)
    assert b.obs["label"].tolist() == ["CAF"] * a.n_obs
    assert b.obs["partial"].isna().tolist() == [False, True, False, True]
    assert sorted(b.obsm) == ["X_emb", "X_umap"] and b.uns["step"]["done"]
    assert b.uns["params"]["x"] == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["updated.h5ad"]  # no temp left
    # other cells: refused, nothing written
    with pytest.raises(ValueError, match="cells or genes differ"):
        io.update_h5ad(light[:2].copy(), path, tmp_path / "bad.h5ad")
    assert not (tmp_path / "bad.h5ad").exists()
    with pytest.raises(ValueError, match="cannot replace"):
        io.update_h5ad(light, path, out, elements=("X",))


def test_make_unique_is_deterministic() -> None:
    assert io.make_unique(["a", "b", "a", "a-1", "a"]) == ["a", "b", "a-2", "a-1", "a-3"]


# ---------------------------------------------------------------------------- GEO deposits
def _geo_set(folder: Path, prefix: str, X: np.ndarray, feats: list[list[str]]) -> Path:
    """Write a GEO-style prefixed triplet (``<prefix>matrix.mtx.gz`` ...) into ``folder``."""
    tmp = write_mtx(folder / f"_{prefix}", X, BARCODES, feats, gz=True, features_name="genes.tsv")
    for f in sorted(tmp.iterdir()):
        f.rename(folder / f"{prefix}{f.name}")
    tmp.rmdir()
    return folder / f"{prefix}matrix.mtx.gz"


def test_geo_prefixed_mtx_file_and_folder(tmp_path: Path) -> None:
    feats = [[i, n] for i, n in zip(IDS, NAMES, strict=True)]
    one = tmp_path / "one"
    one.mkdir()
    m = _geo_set(one, "GSM100_ctrl_", COUNTS, feats)
    assert io.detect_format(m) == "10x_mtx" and io.detect_format(one) == "10x_mtx"
    for path in (m, one):
        a = io.ingest_sample(path, sample="ctrl", condition="control")
        np.testing.assert_array_equal(a.X.toarray(), _expected(COUNTS))
        assert list(a.var_names) == ["Gas6", "Axl", "Gas6-1", "Mmp11", "mt-Co1"]
        assert list(a.obs["barcode"]) == BARCODES
    assert io.input_files(m) == [
        str(one / f"GSM100_ctrl_{n}") for n in ("matrix.mtx.gz", "genes.tsv.gz", "barcodes.tsv.gz")
    ]
    # two deposits in one folder: the file picks its own set, the folder is ambiguous
    m2 = _geo_set(one, "GSM101_trt_", 2 * COUNTS, feats)
    b = io.read_counts(m2, sample="trt")
    np.testing.assert_array_equal(b.X.toarray(), _expected(2 * COUNTS))
    pattern = r"sample 'trt': folder holds 2 matrix sets .*Set the sheet's path to one of"
    with pytest.raises(io.InputError, match=pattern):
        io.read_counts(one, sample="trt")
    assert io.input_files(one) == [str(one)]  # never raises in an input function


def test_geo_matrix_without_its_lists(tmp_path: Path) -> None:
    m = tmp_path / "GSM9_matrix.mtx"
    scipy.io.mmwrite(str(m), sp.coo_matrix(COUNTS.T), field="integer")
    with pytest.raises(io.InputError, match=r"sample 's9': matrix file without its feature.*"
                       r"Put GSM9_features.tsv"):  # fmt: skip
        io.read_counts(m, sample="s9")


def test_ensembl_only_features_keep_their_ids(tmp_path: Path) -> None:
    feats = [[i] for i in IDS]
    d = write_mtx(tmp_path / "ens", COUNTS, BARCODES, feats, gz=True, features_name="features.tsv")
    a = io.read_counts(d, sample="s1")
    assert list(a.var_names) == IDS and list(a.var["gene_ids"]) == IDS
    # a v2 file with an empty symbol column keeps the id for that feature
    feats2 = [[i, n if k != 1 else ""] for k, (i, n) in enumerate(zip(IDS, NAMES, strict=True))]
    d2 = write_mtx(tmp_path / "half", COUNTS, BARCODES, feats2, gz=False, features_name="genes.tsv")
    b = io.read_counts(d2, sample="s1")
    assert list(b.var_names) == ["Gas6", "ENSMUSG02", "Gas6-1", "Mmp11", "mt-Co1"]


def test_duplicate_symbols_unique_in_file_order() -> None:
    assert io.make_unique(["A", "B", "A", "A-1", "A"]) == ["A", "B", "A-2", "A-1", "A-3"]


def test_format_column_overrides_detection(tmp_path: Path) -> None:
    p = tmp_path / "counts.dat"  # an extension detection does not know
    pd.DataFrame(COUNTS.T, index=[*NAMES[:2], "Xkr4", "Mmp11", "Col1a1"], columns=BARCODES).to_csv(
        p, sep="\t"
    )
    with pytest.raises(io.InputError, match="unrecognised count format"):
        io.ingest_sample(p, sample="s1", condition="c")
    a = io.ingest_sample(p, sample="s1", condition="c", fmt="table")
    assert a.shape == (4, 5)
    assert a.uns["ingest"]["orientation"] == {
        "read_as": "genes x cells",
        "why": "column labels look like barcodes",
    }
    assert io.ingest_report(a)["orientation"] == "genes x cells"


def test_verify_download(tmp_path: Path) -> None:
    src = tmp_path / "src.h5"
    src.write_bytes(b"counts")
    good = io.sha256sum(src)
    dest = tmp_path / "resources" / "x" / "src.h5"
    assert io.verify_download(src, dest, sha256=good.upper(), sample="x", url="http://h/src.h5")
    assert dest.read_bytes() == b"counts"
    dest2 = tmp_path / "bad" / "src.h5"
    with pytest.raises(io.InputError) as exc:
        io.verify_download(src, dest2, sha256="0" * 64, sample="x", url="http://h/src.h5")
    msg = str(exc.value)
    assert msg.startswith("sample 'x': checksum mismatch") and good in msg
    assert "'http://h/src.h5'" in msg and "sha256 column" in msg
    assert not dest2.exists() and not any(dest2.parent.glob("*"))
    assert io.is_url("https://a/b.h5") and not io.is_url("data/b.h5")


def test_write_h5ad_output_has_umask_mode(tmp_path):
    import os
    import stat

    import anndata as ad
    import numpy as np

    from tmeflow import io as tio

    old = os.umask(0o022)
    try:
        tio.write_h5ad(ad.AnnData(np.zeros((2, 2), dtype=np.float32)), tmp_path / "a.h5ad")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.h5ad").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5ad"]


@pytest.mark.parametrize(
    ("upper", "mouse"),
    [("GAS6", "Gas6"), ("HBA-A1", "Hba-a1"), ("MT-CO1", "mt-Co1"), ("LY6C2", "Ly6c2"),
     ("0610007P14RIK", "0610007P14Rik"), ("4930401C15RIK2", "4930401C15Rik2"),
     ("ENSMUSG00000031451", "ENSMUSG00000031451")],
)  # fmt: skip
def test_mouse_symbol_spelling(upper, mouse):
    assert io.mouse_symbol(upper) == mouse


def test_repair_mouse_symbol_case_only_for_all_upper_names():
    adata = ad.AnnData(
        X=sp.csr_matrix(np.ones((2, 4), dtype=np.float32)),
        var=pd.DataFrame(index=["GAS6", "H2-AB1", "MT-ND1", "CD74"]),
    )
    assert io.repair_mouse_symbol_case(adata, ["H2-Ab1", "Cd74"]) == 4
    assert list(adata.var_names) == ["Gas6", "H2-Ab1", "mt-Nd1", "Cd74"]
    assert list(adata.var["symbol_input"]) == ["GAS6", "H2-AB1", "MT-ND1", "CD74"]
    # names with any lower-case letter (mouse-case data, a xenograft's mm10_ prefixes) stay
    mixed = ad.AnnData(var=pd.DataFrame(index=["GRCh38_GAS6", "mm10_Gas6", "GAPDH"]))
    assert io.repair_mouse_symbol_case(mixed) == 0
    assert list(mixed.var_names) == ["GRCh38_GAS6", "mm10_Gas6", "GAPDH"]

"""Unit tests for tmeflow.inputs._read_counts: every input format, written in tmp_path, and the
error cases."""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from tmeflow.core._errors import InputError
from tmeflow.inputs import _count_matrix as readers_base
from tmeflow.inputs import _formats as formats
from tmeflow.inputs import _ingest as ingest
from tmeflow.inputs import _read_counts as readers

from .._inputs import (
    BARCODES,
    COUNTS,
    IDS,
    NAMES,
    expected,
    lognorm,
    v3_features,
    write_cr2_h5,
    write_cr3_h5,
    write_mtx,
)


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
    a = readers.read_counts(p, sample="s1")
    assert isinstance(a.X, sp.csr_matrix)
    assert a.X.dtype == np.float32
    np.testing.assert_array_equal(a.X.toarray(), expected(COUNTS))
    assert list(a.obs_names) == BARCODES
    assert list(a.var_names) == ["Gas6", "Axl", "Gas6-1", "Mmp11", "mt-Co1"]
    assert list(a.var["gene_ids"]) == IDS
    assert list(a.var["gene_symbols"]) == NAMES
    assert set(a.var["feature_types"]) == {"Gene Expression"}
    assert set(a.var["genome"]) == {"mm10"}


def test_read_cr2_h5_single_genome(tmp_path: Path) -> None:
    p = tmp_path / "cr2.h5"
    write_cr2_h5(p, {"mm10": (COUNTS, BARCODES, IDS, NAMES)})
    a = readers.read_counts(p, sample="s1")
    assert a.shape == (4, 5)
    np.testing.assert_array_equal(a.X.toarray(), expected(COUNTS))
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
    a = readers.read_counts(p, sample="x")
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
    with pytest.raises(InputError) as exc:
        ingest.ingest_sample(bad, sample="tumour_1", condition="ctrl")
    msg = str(exc.value)
    assert "tumour_1" in msg and "truncated.h5" in msg and "Re-download" in msg


def test_read_mtx_v2_plain(tmp_path: Path) -> None:
    feats = [[i, n] for i, n in zip(IDS, NAMES, strict=True)]
    d = write_mtx(tmp_path / "v2", COUNTS, BARCODES, feats, gz=False, features_name="genes.tsv")
    a = readers.read_counts(d, sample="s1")
    np.testing.assert_array_equal(a.X.toarray(), expected(COUNTS))
    assert list(a.var["gene_ids"]) == IDS
    assert list(a.var_names) == ["Gas6", "Axl", "Gas6-1", "Mmp11", "mt-Co1"]
    assert "feature_types" not in a.var
    assert list(a.obs_names) == BARCODES


def test_read_mtx_v3_gz_drops_non_gene_expression(tmp_path: Path) -> None:
    X = np.hstack([COUNTS, np.array([[4], [0], [2], [1]])])
    feats = [*v3_features(), ["CRISPR1", "sgRNA_Axl", "CRISPR Guide Capture"]]
    d = write_mtx(tmp_path / "v3", X, BARCODES, feats, gz=True, features_name="features.tsv")
    assert (d / "matrix.mtx.gz").is_file() and (d / "features.tsv.gz").is_file()
    a = readers.read_counts(d, sample="s1")
    assert a.n_vars == 5
    np.testing.assert_array_equal(a.X.toarray(), expected(COUNTS))
    assert "sgRNA_Axl" not in a.var_names
    assert set(a.var["feature_types"]) == {"Gene Expression"}


def test_read_mtx_symbol_only_features(tmp_path: Path) -> None:
    feats = [[n] for n in ["Xkr4", "Gas6", "Mmp11", "Axl", "Col1a1"]]
    d = write_mtx(tmp_path / "sym", COUNTS, BARCODES, feats, gz=True, features_name="genes.tsv")
    a = readers.read_counts(d, sample="s1")
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
    with pytest.raises(InputError) as exc:
        ingest.ingest_sample(d, sample="s7", condition="ctrl")
    msg = str(exc.value)
    assert "s7" in msg and "matrix.mtx" in msg and "(5, 4)" in msg and "3 barcodes" in msg


def test_h5ad_counts_in_x(tmp_path: Path) -> None:
    p = tmp_path / "x.h5ad"
    ad.AnnData(
        sp.csr_matrix(COUNTS.astype(np.int32)),
        obs=pd.DataFrame({"library": ["L1"] * 4}, index=BARCODES),
        var=pd.DataFrame(index=["A", "B", "C", "D", "E"]),
    ).write_h5ad(p)
    a = readers.read_counts(p, sample="s1")
    np.testing.assert_array_equal(a.X.toarray(), expected(COUNTS))
    assert list(a.obs["library"]) == ["L1"] * 4
    assert list(a.var["gene_ids"]) == ["A", "B", "C", "D", "E"]


def test_h5ad_counts_in_layer(tmp_path: Path) -> None:
    p = tmp_path / "layer.h5ad"
    a0 = ad.AnnData(
        lognorm(COUNTS),
        obs=pd.DataFrame(index=BARCODES),
        var=pd.DataFrame(index=["A", "B", "C", "D", "E"]),
    )
    a0.layers["counts"] = sp.csr_matrix(COUNTS.astype(np.float32))
    a0.write_h5ad(p)
    a = readers.read_counts(p, sample="s1")
    np.testing.assert_array_equal(a.X.toarray(), expected(COUNTS))


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
    a0.X = lognorm(COUNTS)[:, [1, 3]]
    a0.write_h5ad(p)
    a = readers.read_counts(p, sample="s1")
    assert list(a.var_names) == ["A", "B", "C", "D", "E"]
    np.testing.assert_array_equal(a.X.toarray(), expected(COUNTS))


def test_h5ad_without_counts_rejected(tmp_path: Path) -> None:
    p = tmp_path / "norm.h5ad"
    ad.AnnData(lognorm(COUNTS), obs=pd.DataFrame(index=BARCODES)).write_h5ad(p)
    with pytest.raises(InputError) as exc:
        ingest.ingest_sample(p, sample="s2", condition="ctrl")
    msg = str(exc.value)
    assert "normalised or non-integer" in msg and "raw UMI counts" in msg
    assert "s2" in msg and "norm.h5ad" in msg


def test_table_csv_genes_by_cells(tmp_path: Path) -> None:
    p = tmp_path / "counts.csv"
    genes = ["Gas6", "Axl", "Pdgfra", "Mmp11", "Col1a1"]
    pd.DataFrame(COUNTS.T, index=genes, columns=BARCODES).to_csv(p)
    a = readers.read_counts(p, sample="s1")
    assert list(a.obs_names) == BARCODES
    assert list(a.var_names) == genes
    np.testing.assert_array_equal(a.X.toarray(), expected(COUNTS))


def test_table_tsv_gz_cells_by_genes(tmp_path: Path) -> None:
    p = tmp_path / "counts.tsv.gz"
    genes = ["Gas6", "Axl", "Pdgfra", "Mmp11", "Col1a1"]
    pd.DataFrame(COUNTS, index=BARCODES, columns=genes).to_csv(p, sep="\t")
    a = readers.read_counts(p, sample="s1")
    assert list(a.obs_names) == BARCODES
    assert list(a.var_names) == genes
    np.testing.assert_array_equal(a.X.toarray(), expected(COUNTS))


def test_table_orientation_by_size_without_barcodes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.poisson(2, size=(3, 12))  # 3 cells x 12 genes, cell labels not barcode-like
    genes = [f"g{i}" for i in range(12)]
    cells = ["cellA", "cellB", "cellC"]
    p = tmp_path / "t.txt"
    pd.DataFrame(X.T, index=genes, columns=cells).to_csv(p, sep="\t")
    a = readers.read_counts(p, sample="s1")
    assert list(a.obs_names) == cells
    assert list(a.var_names) == genes
    np.testing.assert_array_equal(a.X.toarray(), X.astype(np.float32))
    p2 = tmp_path / "t2.csv"
    pd.DataFrame(X, index=cells, columns=genes).to_csv(p2)
    a2 = readers.read_counts(p2, sample="s1")
    assert list(a2.obs_names) == cells
    np.testing.assert_array_equal(a2.X.toarray(), X.astype(np.float32))


def test_log_normalised_table_rejected(tmp_path: Path) -> None:
    p = tmp_path / "lognorm.csv"
    genes = ["Gas6", "Axl", "Pdgfra", "Mmp11", "Col1a1"]
    pd.DataFrame(lognorm(COUNTS).toarray().T, index=genes, columns=BARCODES).to_csv(p)
    with pytest.raises(InputError, match=r"sample 'ln'.*non-integer.*lognorm\.csv"):
        ingest.ingest_sample(p, sample="ln", condition="ctrl")


def test_check_integer_counts_sparse_without_densifying() -> None:
    n = 10**7  # dense would be 10^14 entries: the check must look at .data only
    ok = sp.csr_matrix((np.array([1.0, 5.0, 2.0]), ([0, 5, 9], [1, 2, 3])), shape=(n, n))
    readers_base.check_integer_counts(ok, sample="s", path="p")
    bad = ok.copy()
    bad.data = np.log1p(bad.data)
    with pytest.raises(InputError, match="normalised or non-integer"):
        readers_base.check_integer_counts(bad, sample="s", path="p")
    neg = ok.copy()
    neg.data = np.array([1.0, -2.0, 3.0])
    with pytest.raises(InputError, match="negative"):
        readers_base.check_integer_counts(neg, sample="s", path="p")
    with pytest.raises(InputError, match="NaN"):
        readers_base.check_integer_counts(np.array([[1.0, np.nan]]), sample="s", path="p")
    readers_base.check_integer_counts(np.array([[0, 3]], dtype=np.int32), sample="s", path="p")


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
    assert formats.detect_format(m) == "10x_mtx" and formats.detect_format(one) == "10x_mtx"
    for path in (m, one):
        a = ingest.ingest_sample(path, sample="ctrl", condition="control")
        np.testing.assert_array_equal(a.X.toarray(), expected(COUNTS))
        assert list(a.var_names) == ["Gas6", "Axl", "Gas6-1", "Mmp11", "mt-Co1"]
        assert list(a.obs["barcode"]) == BARCODES
    assert formats.input_files(m) == [
        str(one / f"GSM100_ctrl_{n}") for n in ("matrix.mtx.gz", "genes.tsv.gz", "barcodes.tsv.gz")
    ]
    # two deposits in one folder: the file picks its own set, the folder is ambiguous
    m2 = _geo_set(one, "GSM101_trt_", 2 * COUNTS, feats)
    b = readers.read_counts(m2, sample="trt")
    np.testing.assert_array_equal(b.X.toarray(), expected(2 * COUNTS))
    pattern = r"sample 'trt': folder holds 2 matrix sets .*Set the sheet's path to one of"
    with pytest.raises(InputError, match=pattern):
        readers.read_counts(one, sample="trt")
    assert formats.input_files(one) == [str(one)]  # never raises in an input function


def test_geo_matrix_without_its_lists(tmp_path: Path) -> None:
    m = tmp_path / "GSM9_matrix.mtx"
    scipy.io.mmwrite(str(m), sp.coo_matrix(COUNTS.T), field="integer")
    with pytest.raises(InputError, match=r"sample 's9': matrix file without its feature.*"
                       r"Put GSM9_features.tsv"):  # fmt: skip
        readers.read_counts(m, sample="s9")


def test_ensembl_only_features_keep_their_ids(tmp_path: Path) -> None:
    feats = [[i] for i in IDS]
    d = write_mtx(tmp_path / "ens", COUNTS, BARCODES, feats, gz=True, features_name="features.tsv")
    a = readers.read_counts(d, sample="s1")
    assert list(a.var_names) == IDS and list(a.var["gene_ids"]) == IDS
    # a v2 file with an empty symbol column keeps the id for that feature
    feats2 = [[i, n if k != 1 else ""] for k, (i, n) in enumerate(zip(IDS, NAMES, strict=True))]
    d2 = write_mtx(tmp_path / "half", COUNTS, BARCODES, feats2, gz=False, features_name="genes.tsv")
    b = readers.read_counts(d2, sample="s1")
    assert list(b.var_names) == ["Gas6", "ENSMUSG02", "Gas6-1", "Mmp11", "mt-Co1"]

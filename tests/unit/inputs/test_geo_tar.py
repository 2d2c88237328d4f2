"""GEO _RAW.tar bundles: members found by name, extracted safely, read by the registered readers."""

import gzip
import io
import tarfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from tests.paths import shared_data_dir
from tmeflow.core._config import ConfigError
from tmeflow.core._errors import InputError
from tmeflow.inputs import _geo_tar as geo
from tmeflow.inputs import _ingest as ingest
from tmeflow.inputs import _sample_sheet as tms
from tmeflow.inputs._formats import detect_format
from tmeflow.inputs._read_counts import read_counts
from tmeflow.simulate.tenx import write_10x_h5, write_10x_mtx

REPO = Path(__file__).resolve().parents[3]
SAMPLES_SCHEMA = REPO / "workflow/schemas/samples.schema.yaml"
CONTRAST = {"column": "condition", "reference": "control", "test": "treated"}


def counts(seed: int, n_cells: int, n_genes: int = 6) -> ad.AnnData:
    """A small AnnData of integer counts whose every cell and gene differs by seed."""
    rng = np.random.default_rng(seed)
    X = rng.poisson(3.0, size=(n_cells, n_genes)).astype(np.float32)
    X[:, 0] += seed + 1  # no empty cell; the first gene tells the samples apart
    a = ad.AnnData(sp.csr_matrix(X))
    a.obs_names = [f"{'ACGT'[seed % 4] * 8}{i:04d}-1" for i in range(n_cells)]
    a.var_names = [f"Gene{seed}_{j}" for j in range(n_genes)]
    a.var["gene_ids"] = [f"ENSG{seed:03d}{j:05d}" for j in range(n_genes)]
    a.var["feature_types"] = "Gene Expression"
    a.var["genome"] = "GRCh38"
    return a


def add_file(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def build_bundle(tmp_path: Path) -> tuple[Path, dict[str, ad.AnnData]]:
    """A GSE_RAW.tar like GEO's: an mtx triplet, an h5, a csv.gz table and unreadable extras."""
    truth = {"GSM1_ctrlA": counts(1, 7), "GSM2_trtB": counts(2, 5), "GSM3_trtC": counts(3, 4)}
    work = tmp_path / "work"
    write_10x_mtx(work / "mtx", truth["GSM1_ctrlA"])
    write_10x_h5(work / "b.h5", truth["GSM2_trtB"])
    c = truth["GSM3_trtC"]
    table = pd.DataFrame(c.X.toarray().T.astype(int), index=c.var_names, columns=c.obs_names)
    tar_path = tmp_path / "GSE999_RAW.tar"
    with tarfile.open(tar_path, "w") as tar:
        for part in ("matrix.mtx.gz", "barcodes.tsv.gz", "features.tsv.gz"):
            add_file(tar, f"GSM1_ctrlA_{part}", (work / "mtx" / part).read_bytes())
        add_file(tar, "GSM2_trtB_filtered_feature_bc_matrix.h5", (work / "b.h5").read_bytes())
        add_file(tar, "GSM3_trtC_counts.csv.gz", gzip.compress(table.to_csv().encode()))
        add_file(tar, "GSM3_trtC_possorted.bam", b"not counts")
        add_file(tar, "GSM4_lonely_barcodes.tsv.gz", gzip.compress(b"AAAC\n"))
    return tar_path, truth


def dense(a: ad.AnnData) -> np.ndarray:
    return np.asarray(a.X.toarray() if sp.issparse(a.X) else a.X)


def test_bundle_inputs_group_triplets_and_skip_the_rest() -> None:
    names = [
        "GSM1_a_matrix.mtx.gz",
        "GSM1_a_genes.tsv.gz",
        "GSM1_a_features.tsv.gz",
        "GSM1_a_barcodes.tsv.gz",
        "GSM2_b_matrix.mtx.gz",  # no lists: not an input
        "GSM3_c_filtered_feature_bc_matrix.h5",
        "GSM4_d.h5ad",
        "GSM5_e_counts.txt.gz",
        "GSM6_f.h5.gz",  # a gzipped h5 is not read as such
        "GSM7_g.bam",
        "sub/matrix.mtx.gz",
        "sub/genes.tsv",
        "sub/barcodes.tsv",
    ]
    got = geo.bundle_inputs(names)
    assert list(got) == [
        "GSM1_a",
        "GSM3_c_filtered_feature_bc_matrix.h5",
        "GSM4_d.h5ad",
        "GSM5_e_counts.txt.gz",
        "sub",
    ]
    assert got["GSM1_a"].members == (
        "GSM1_a_matrix.mtx.gz",
        "GSM1_a_features.tsv.gz",  # features win over genes
        "GSM1_a_barcodes.tsv.gz",
    )
    assert [got[k].fmt for k in got] == ["10x_mtx", "10x_h5", "h5ad", "table", "10x_mtx"]
    assert got["GSM1_a"].gsm == "GSM1" and got["sub"].gsm is None


@pytest.mark.parametrize(
    ("member", "key"),
    [
        ("GSM1", "GSM1_a"),
        ("GSM1_a", "GSM1_a"),
        ("GSM1_a_barcodes.tsv", "GSM1_a"),
        ("GSM3", "GSM3_c.h5"),
        ("GSM3_c.h5", "GSM3_c.h5"),
    ],
)
def test_pick_input_by_prefix_key_or_file(member: str, key: str) -> None:
    inputs = geo.bundle_inputs(
        ["GSM1_a_matrix.mtx", "GSM1_a_genes.tsv", "GSM1_a_barcodes.tsv", "GSM3_c.h5", "GSM12_z.h5"]
    )
    assert geo.pick_input(inputs, member, sample="s", path="x.tar").key == key


def test_pick_input_refusals_list_the_candidates() -> None:
    inputs = geo.bundle_inputs(["GSM1_a.h5", "GSM1_b.h5", "GSM2_c.h5"])
    with pytest.raises(InputError, match=r"matches 2 inputs \(GSM1_a.h5, GSM1_b.h5\)"):
        geo.pick_input(inputs, "GSM1", sample="s", path="x.tar")
    with pytest.raises(InputError, match=r"no input of the tar matches member 'GSM9'.*GSM2_c.h5"):
        geo.pick_input(inputs, "GSM9", sample="s", path="x.tar")
    with pytest.raises(InputError, match=r"holds 3 inputs.*'member' column"):
        geo.pick_input(inputs, "", sample="s", path="x.tar")
    with pytest.raises(InputError, match="no count input"):
        geo.pick_input({}, "GSM1", sample="s", path="x.tar")
    # "GSM1" must not pick GSM12 (a prefix only up to a separator)
    one = geo.bundle_inputs(["GSM12_z.h5"])
    with pytest.raises(InputError, match="no input"):
        geo.pick_input(one, "GSM1", sample="s", path="x.tar")


def test_ingest_reads_every_member_with_its_counts(tmp_path: Path) -> None:
    tar_path, truth = build_bundle(tmp_path)
    assert detect_format(tar_path) == "geo_tar"
    assert list(geo.list_bundle(tar_path)) == [
        "GSM1_ctrlA",
        "GSM2_trtB_filtered_feature_bc_matrix.h5",
        "GSM3_trtC_counts.csv.gz",
    ]
    for member, fmt in (("GSM1", "10x_mtx"), ("GSM2", "10x_h5"), ("GSM3_trtC", "table")):
        key = next(k for k in truth if k.startswith(member))
        a = ingest.ingest_sample(
            tar_path, sample=key, condition="c", member=member, cell_calling="never"
        )
        want = truth[key]
        assert a.shape == want.shape
        assert list(a.obs["barcode"]) == list(want.obs_names)
        assert list(a.var_names) == list(want.var_names)
        np.testing.assert_array_equal(dense(a), dense(want))
        assert a.uns["ingest"]["format"] == "geo_tar"
        assert a.uns["ingest"]["bundle"]["format"] == fmt
        report = ingest.ingest_report(a)
        assert report["bundle_members"].startswith(key)
    assert not list(tmp_path.glob("GSM*")) and not list(Path.cwd().glob("GSM*_trt*"))


def test_member_on_another_format_refused(tmp_path: Path) -> None:
    write_10x_h5(tmp_path / "a.h5", counts(1, 3))
    with pytest.raises(InputError, match=r"not a GEO _RAW\.tar"):
        read_counts(tmp_path / "a.h5", sample="s", member="GSM1")


def test_unsafe_members_are_never_inputs_nor_written(tmp_path: Path) -> None:
    a = counts(5, 3)
    write_10x_h5(tmp_path / "a.h5", a)
    payload = (tmp_path / "a.h5").read_bytes()
    tar_path = tmp_path / "evil.tar"
    with tarfile.open(tar_path, "w") as tar:
        add_file(tar, "../escape.h5", payload)
        add_file(tar, "/abs/escape2.h5", payload)
        add_file(tar, "sub/../../escape3.h5", payload)
        link = tarfile.TarInfo("GSM8_link.h5")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        add_file(tar, "deep/GSM9_ok.h5", payload)
    inputs = geo.list_bundle(tar_path)
    assert list(inputs) == ["deep/GSM9_ok.h5"]
    out = tmp_path / "out"
    out.mkdir()
    local = geo.extract_input(tar_path, inputs["deep/GSM9_ok.h5"], out)
    assert local == out / "GSM9_ok.h5" and [p.name for p in out.iterdir()] == ["GSM9_ok.h5"]
    forged = geo.BundleInput("x", "10x_h5", ("../escape.h5",))
    with pytest.raises(InputError, match="not a plain file"):
        geo.extract_input(tar_path, forged, out)
    assert not (tmp_path / "escape.h5").exists()
    b = read_counts(tar_path, sample="s", member="GSM9")
    np.testing.assert_array_equal(dense(b), dense(a))


def test_not_a_tar_is_an_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "GSE1_RAW.tar"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(InputError, match="not a readable tar"):
        read_counts(bad, sample="s", member="GSM1")


def sheet(rows: list[tuple[str, ...]], tmp_path: Path) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["sample", "condition", "path", "member"])
    return tms.validate_sample_sheet(
        df, SAMPLES_SCHEMA, contrast=CONTRAST, base_dir=tmp_path, sheet_path="s.tsv"
    )


def test_sheet_member_column(tmp_path: Path) -> None:
    build_bundle(tmp_path)
    tar = "GSE999_RAW.tar"
    ok = sheet(
        [
            ("a", "control", tar, "GSM1"),
            ("b", "treated", tar, "GSM2_trtB_filtered_feature_bc_matrix.h5"),
        ],
        tmp_path,
    )
    assert "member" not in tms.metadata_columns(ok)
    with pytest.raises(ConfigError, match="both take 'GSM1_ctrlA'"):
        sheet([("a", "control", tar, "GSM1"), ("b", "treated", tar, "GSM1_ctrlA")], tmp_path)
    with pytest.raises(ConfigError, match=r"matches no input|no input of the tar.*GSM1_ctrlA"):
        sheet([("a", "control", tar, "GSM7")], tmp_path)
    with pytest.raises(ConfigError, match="holds 3 inputs"):
        sheet([("a", "control", tar, "")], tmp_path)
    write_10x_h5(tmp_path / "x.h5", counts(1, 3))
    with pytest.raises(ConfigError, match=r"'member' is 'GSM1' but path 'x.h5' is not a tar"):
        sheet([("a", "control", "x.h5", "GSM1")], tmp_path)


def test_url_tar_accepted_and_checked_at_ingest() -> None:
    df = pd.DataFrame(
        {
            "sample": ["a"],
            "path": ["https://ftp.ncbi.nlm.nih.gov/geo/series/GSE1nnn/GSE1/suppl/GSE1_RAW.tar"],
            "member": ["GSM1"],
        }
    )
    tms.check_url_rows(df)
    tms.check_bundle_rows(df)


def test_shipped_10x_folder_round_trips_through_a_bundle(tmp_path: Path) -> None:
    folder = shared_data_dir() / "hgmm_100_filtered_mtx"
    tar_path = tmp_path / "GSE100_RAW.tar"
    with tarfile.open(tar_path, "w") as tar:
        for part in ("matrix.mtx.gz", "barcodes.tsv.gz", "features.tsv.gz"):
            tar.add(folder / part, arcname=f"GSM100_hgmm_{part}")
        write_10x_h5(tmp_path / "s.h5", counts(4, 9))
        tar.add(tmp_path / "s.h5", arcname="GSM101_small_filtered_feature_bc_matrix.h5")
    a = ingest.ingest_sample(tar_path, sample="hgmm", condition="mix", member="GSM100")
    M = sp.csr_matrix(scipy.io.mmread(str(folder / "matrix.mtx.gz"))).T.tocsr()
    assert a.shape == M.shape == (123, 60736)
    assert a.X.sum() == M.sum()
    np.testing.assert_array_equal(np.asarray(a.X.sum(axis=1)).ravel(), M.sum(axis=1).A1)
    b = ingest.ingest_sample(tar_path, sample="small", condition="mix", member="GSM101")
    np.testing.assert_array_equal(dense(b), dense(counts(4, 9)))

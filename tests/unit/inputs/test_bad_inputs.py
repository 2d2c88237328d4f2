"""The bad-input catalogue: one test per case, each asserting the message a user sees
(sample, file and what to do).

Cases checked at parse time from the sheet/config alone live in tests/unit/core/test_config.py
(missing file, duplicate sample ids, ids with spaces/slashes/shell metacharacters, unknown
config keys, misspelled required column, condition outside the contrast, and the URL rows of
tmeflow.inputs.check_url_rows); the URL rows also run through Snakemake in
tests/workflow/test_inputs_workflow.py. Workflow-level failures (wrong checksum, a
condition without cells) are also run through Snakemake there.
"""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from tmeflow.cells import _qc as qc
from tmeflow.core._errors import InputError
from tmeflow.inputs import _downloads as downloads
from tmeflow.inputs import _ingest as ingest
from tmeflow.stats import _expression_sources as sources

from .._inputs import BARCODES, COUNTS, IDS, NAMES, v3_features, write_cr3_h5, write_mtx


def test_truncated_hdf5(tmp_path: Path) -> None:
    p = tmp_path / "full.h5"
    write_cr3_h5(p, COUNTS, BARCODES, IDS, NAMES, ["Gene Expression"] * 5, ["mm10"] * 5)
    bad = tmp_path / "s1_filtered.h5"
    bad.write_bytes(p.read_bytes()[:600])
    with pytest.raises(InputError) as exc:
        ingest.ingest_sample(bad, sample="s1", condition="control")
    msg = str(exc.value)
    assert msg.startswith("sample 's1': unreadable or truncated 10x HDF5")
    assert f"in {str(bad)!r}" in msg and msg.endswith("(check its size / checksum).")


def test_not_hdf5_at_all(tmp_path: Path) -> None:
    bad = tmp_path / "s2.h5"
    bad.write_text("<html>404 Not Found</html>")
    with pytest.raises(InputError, match=r"sample 's2': unreadable or truncated 10x HDF5.*"
                       r"Re-download or re-copy the file"):  # fmt: skip
        ingest.ingest_sample(bad, sample="s2", condition="control")


def test_mtx_with_mismatched_dimensions(tmp_path: Path) -> None:
    d = write_mtx(tmp_path / "s3", COUNTS, BARCODES[:3], v3_features(), gz=True,
                  features_name="features.tsv")  # fmt: skip
    with pytest.raises(InputError) as exc:
        ingest.ingest_sample(d, sample="s3", condition="control")
    msg = str(exc.value)
    assert msg.startswith(
        "sample 's3': matrix dimensions (5, 4) do not match 5 features (features.tsv.gz) x 3 "
        "barcodes (barcodes.tsv.gz)"
    )
    assert "matrix.mtx.gz" in msg and "re-download the folder" in msg


def test_non_integer_counts(tmp_path: Path) -> None:
    p = tmp_path / "s4.csv"
    pd.DataFrame(COUNTS.T + 0.5, index=NAMES[:1] + IDS[1:], columns=BARCODES).to_csv(p)
    with pytest.raises(InputError) as exc:
        ingest.ingest_sample(p, sample="s4", condition="control")
    assert str(exc.value) == (
        f"sample 's4': the matrix holds normalised or non-integer values in {str(p)!r}. "
        "Provide raw UMI counts (e.g. Cell Ranger's filtered matrix), not log-normalised data."
    )


def test_log_normalised_h5ad(tmp_path: Path) -> None:
    X = np.log1p(COUNTS / COUNTS.sum(1, keepdims=True) * 1e4).astype(np.float32)
    p = tmp_path / "s5.h5ad"
    ad.AnnData(sp.csr_matrix(X), obs=pd.DataFrame(index=BARCODES),
               var=pd.DataFrame(index=IDS)).write_h5ad(p)  # fmt: skip
    with pytest.raises(InputError) as exc:
        ingest.ingest_sample(p, sample="s5", condition="control")
    msg = str(exc.value)
    assert msg.startswith("sample 's5': the h5ad holds normalised or non-integer values (tried X)")
    assert 'Provide raw UMI counts (in X, layers["counts"] or raw.X).' in msg


def test_unfiltered_matrix_refused_when_cell_calling_is_off(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tot = np.r_[np.full(50, 3000), rng.integers(1, 20, 2000)]
    X = sp.csr_matrix(np.c_[tot, tot // 2].astype(np.float32))
    p = tmp_path / "s6_raw.h5ad"
    ad.AnnData(X, obs=pd.DataFrame(index=[f"bc{i}" for i in range(tot.size)]),
               var=pd.DataFrame(index=["Gas6", "Axl"])).write_h5ad(p)  # fmt: skip
    with pytest.raises(InputError) as exc:
        ingest.ingest_sample(p, sample="s6", condition="control", cell_calling="never")
    msg = str(exc.value)
    assert msg.startswith(f"sample 's6': {str(p)!r} looks like an unfiltered (raw) droplet matrix")
    assert "Provide the filtered (cell-called) matrix" in msg
    assert "ingest.cell_calling: auto" in msg
    a = ingest.ingest_sample(p, sample="s6", condition="control")  # auto: cells are called
    assert a.n_obs == 50 and a.uns["ingest"]["cell_calling"]["cutoff_umi"] == 4500  # 3000 + 1500


def test_sample_with_zero_cells_after_qc() -> None:
    rng = np.random.default_rng(3)
    X = sp.csr_matrix(rng.poisson(0.5, size=(40, 50)).astype(np.float32))  # ~25 UMIs per cell
    a = ad.AnnData(X, obs=pd.DataFrame({"sample": "s7"}, index=[f"c{i}" for i in range(40)]))
    a.uns["ingest"] = {"path": "data/s7.h5"}
    with pytest.raises(ValueError) as exc:
        qc.filter_cells(a, remove_doublets=False)
    msg = str(exc.value)
    assert msg.startswith("sample 's7' (input 'data/s7.h5'): QC removed all 40 cells; most were ")
    assert "Relax qc.min_counts / qc.nmads_counts in the config, or check the input" in msg


def test_all_samples_of_one_condition_empty() -> None:
    note = "sample 't1' (input 't1.h5'): QC removed all 90 cells"
    summary = pd.DataFrame({"sample": ["c1", "t1"], "n_kept": [120, 0], "note": ["", note]})
    with pytest.raises(ValueError) as exc:
        qc.check_conditions(summary, {"c1": "control", "t1": "alectinib"})
    assert str(exc.value).startswith(
        "condition 'alectinib' has no cells after QC in any of its samples (t1); integration "
        "and the comparison need both conditions."
    )


def test_gene_of_interest_absent_is_reported_not_a_crash() -> None:
    from tmeflow.stats import _genes_of_interest as goi

    rng = np.random.default_rng(4)
    X = sp.csr_matrix(rng.poisson(2, size=(24, 3)).astype(np.float32))
    obs = pd.DataFrame(
        {"sample": np.repeat(["c1", "c2", "t1", "t2"], 6),
         "condition": np.repeat(["control", "control", "alectinib", "alectinib"], 6),
         "cell_type": np.tile(["CAF", "TAM"], 12)},
        index=[f"c{i}" for i in range(24)],
    )  # fmt: skip
    a = ad.AnnData(X, obs=obs, var=pd.DataFrame(index=["Gas6", "Axl", "Col1a1"]))
    a.layers["counts"] = a.X.copy()
    report, _ = goi.genes_of_interest(a, {}, genes=["Gas6", "Mmp11"], reference="control",
                                      test="alectinib")  # fmt: skip
    mmp11 = report[report["gene"] == "Mmp11"]
    assert len(mmp11) and not mmp11["present"].any()
    assert (mmp11["note"] == "gene absent from the data").all()
    # sources: the error the adapter turns into a one-row table with this note
    with pytest.raises(ValueError, match="gene 'Mmp11' is not in the data"):
        sources.expression_sources(a, "Mmp11", group_key="cell_type", condition_key="condition")


def test_url_with_wrong_checksum(tmp_path: Path) -> None:
    src = tmp_path / "download"
    src.write_bytes(b"not what was published")
    dest = tmp_path / "resources" / "download" / "s8" / "s8.h5"
    with pytest.raises(InputError) as exc:
        downloads.verify_download(src, dest, sha256="ab" * 32, sample="s8",
                           url="https://example.org/s8.h5")  # fmt: skip
    msg = str(exc.value)
    assert msg.startswith("sample 's8': checksum mismatch: the downloaded file has sha256 ")
    assert f"the sample sheet expects {'ab' * 32} in 'https://example.org/s8.h5'" in msg
    assert msg.endswith("then re-run (nothing was kept).")
    assert not dest.exists()


def test_matrix_market_of_floats(tmp_path: Path) -> None:
    d = tmp_path / "s9"
    d.mkdir()
    scipy.io.mmwrite(str(d / "matrix.mtx"), sp.coo_matrix(COUNTS.T * 0.37))
    (d / "genes.tsv").write_text("".join(f"{i}\t{n}\n" for i, n in zip(IDS, NAMES, strict=True)))
    (d / "barcodes.tsv").write_text("".join(b + "\n" for b in BARCODES))
    with pytest.raises(InputError, match=r"sample 's9': the matrix holds normalised or "
                       r"non-integer values in '.*s9'\. Provide raw UMI counts"):  # fmt: skip
        ingest.ingest_sample(d, sample="s9", condition="control")

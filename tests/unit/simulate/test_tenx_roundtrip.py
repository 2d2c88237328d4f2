"""Round trips: the simulator's 10x writers (tmeflow.simulate.tenx) -> the workflow's readers.

The workflow's readers are imported on one line (below) so that the module split of io.py
(into readers/ingest/...) only has to repoint that line.
"""

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
import yaml
from anndata import AnnData

from tmeflow import simulate as sim
from tmeflow.inputs._formats import detect_format  # the workflow's count readers
from tmeflow.inputs._read_counts import read_counts

SMALL = {"n_genes_mouse": 400, "n_genes_human": 200}


@pytest.fixture(scope="module")
def exp_tiny() -> sim.SimulatedExperiment:
    return sim.simulate_experiment(n_replicates=1, cells_per_sample=120, seed=3, **SMALL)


def _same_counts(got: AnnData, expected: AnnData) -> None:
    diff = sp.csr_matrix(got.X) - sp.csr_matrix(expected.X, dtype=np.float64)
    assert abs(diff).sum() == 0


def _small_adata() -> AnnData:
    """Five cells x four features: an empty cell, an empty gene, one antibody feature."""
    x = np.array(
        [[0, 3, 0, 1], [0, 0, 0, 0], [7, 0, 0, 2], [1, 1, 0, 0], [0, 250, 0, 9]], dtype=np.int32
    )
    var = pd.DataFrame(
        {
            "gene_ids": ["mm10_ENSMUSG1", "mm10_ENSMUSG2", "GRCh38_ENSG3", "CD4_TotalSeqB"],
            "feature_types": ["Gene Expression"] * 3 + ["Antibody Capture"],
            "genome": ["mm10", "mm10", "GRCh38", ""],
        },
        index=pd.Index(["mm10_Gas6", "mm10_Axl", "GRCh38_AXL", "CD4"]),
    )
    obs = pd.DataFrame(
        index=pd.Index([f"{bc}-1" for bc in ("AAAC", "AAAG", "ACGT", "CCCC", "TTTT")])
    )
    return AnnData(X=sp.csr_matrix(x), obs=obs, var=var)


@pytest.mark.parametrize("fmt", ["10x_h5", "10x_mtx"])
def test_writer_round_trip_through_read_counts(tmp_path: Path, fmt: str) -> None:
    adata = _small_adata()
    if fmt == "10x_h5":
        path = tmp_path / "s.h5"
        sim.write_10x_h5(path, adata)
    else:
        path = tmp_path / "s"
        sim.write_10x_mtx(path, adata)
    assert detect_format(path) == fmt
    got = read_counts(path, sample="s")
    gex = adata[:, adata.var["feature_types"] == "Gene Expression"]
    assert list(got.obs_names) == list(adata.obs_names)  # the empty cell is kept
    assert list(got.var_names) == list(gex.var_names)  # only Gene Expression features
    assert list(got.var["gene_ids"]) == list(gex.var["gene_ids"])
    assert list(got.var["gene_symbols"]) == list(gex.var_names)
    assert (got.var["feature_types"] == "Gene Expression").all()
    if fmt == "10x_h5":
        assert list(got.var["genome"]) == list(gex.var["genome"])
    assert got.X.dtype == np.float32 and sp.issparse(got.X)
    _same_counts(got, gex)


def test_demo_round_trip_through_read_counts(
    tmp_path: Path, exp_tiny: sim.SimulatedExperiment
) -> None:
    sim.write_demo(tmp_path, exp_tiny)
    layout = sim.demo_layout(n_replicates=1)
    assert list(layout["format"]) == ["10x_h5", "10x_mtx"]
    for sample, path, fmt in zip(layout["sample"], layout["path"], layout["format"], strict=True):
        expected = exp_tiny.samples[sample]
        assert detect_format(tmp_path / path, sample=sample) == fmt
        got = read_counts(tmp_path / path, sample=sample)
        assert list(got.obs_names) == list(expected.obs_names)
        assert list(got.var_names) == list(expected.var_names)
        assert list(got.var["gene_ids"]) == list(expected.var["gene_ids"])
        if fmt == "10x_h5":
            assert list(got.var["genome"]) == list(expected.var["genome"])
        _same_counts(got, expected)


def test_round_trip_through_scanpy_readers(
    tmp_path: Path, exp_tiny: sim.SimulatedExperiment
) -> None:
    sim.write_demo(tmp_path, exp_tiny)
    layout = sim.demo_layout(n_replicates=1)
    for sample, path, fmt in zip(layout["sample"], layout["path"], layout["format"], strict=True):
        expected = exp_tiny.samples[sample]
        if fmt == "10x_h5":
            got = sc.read_10x_h5(tmp_path / path, gex_only=False)
            assert list(got.var_names) == list(expected.var_names)
            assert list(got.var["gene_ids"]) == list(expected.var["gene_ids"])
            assert list(got.var["genome"]) == list(expected.var["genome"])
        else:
            got = sc.read_10x_mtx(tmp_path / path, var_names="gene_ids")
            assert list(got.var_names) == list(expected.var["gene_ids"])
            assert list(got.var["gene_symbols"]) == list(expected.var_names)
            with gzip.open(tmp_path / path / "matrix.mtx.gz", "rt") as handle:
                assert handle.readline().startswith("%%MatrixMarket matrix coordinate integer")
        assert list(got.obs_names) == list(expected.obs_names)
        _same_counts(got, expected)
    truth = pd.read_csv(tmp_path / "truth.tsv", sep="\t")
    pd.testing.assert_frame_equal(truth, exp_tiny.truth, check_dtype=False)
    planted = yaml.safe_load((tmp_path / "planted.yaml").read_text())
    assert planted == exp_tiny.planted

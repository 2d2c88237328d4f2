"""Tests of tmeflow.stats._pseudobulk: sums per (animal, group) and the raw-count check."""

import numpy as np
import pytest
from anndata import AnnData

from tmeflow.stats import _pseudobulk as pseudobulk

from .._de_data import make_adata


@pytest.fixture(scope="module")
def adata() -> AnnData:
    return make_adata()


@pytest.mark.parametrize("block", [None, 37])
def test_pseudobulk_sums_equal_manual_sums(adata: AnnData, block, monkeypatch) -> None:
    if block is not None:  # sums over runs of a few cells (the large-data path) are the same
        monkeypatch.setattr(pseudobulk, "ROW_SUM_BLOCK", block)
    counts, meta = pseudobulk.pseudobulk(adata, group_key="cell_type", min_cells=40)
    dense = adata.layers["counts"].toarray()
    obs = adata.obs
    assert list(counts.index) == list(meta.index)
    assert len(counts) == 6 * 3
    for row, rec in meta.iterrows():
        mask = ((obs["sample"] == rec["sample"]) & (obs["cell_type"] == rec["group"])).to_numpy()
        assert row == f"{rec['sample']}|{rec['group']}"
        np.testing.assert_array_equal(counts.loc[row].to_numpy(), dense[mask].sum(axis=0))
        assert rec["n_cells"] == mask.sum()
        assert rec["kept"] == (mask.sum() >= 40)
        assert rec["condition"] == rec["sample"].split("_")[0]
    assert counts.to_numpy().dtype == np.int64
    assert counts.to_numpy().sum() == dense.sum()
    # sample-level columns are carried over; cell-level ones are not
    assert {"condition", "batch"} <= set(meta.columns)
    assert "total_counts" not in meta.columns and "cell_subtype" not in meta.columns
    assert list(meta.columns[:2]) == ["sample", "group"]


def test_pseudobulk_rejects_normalised_values(adata: AnnData) -> None:
    bad = adata.copy()
    bad.layers["counts"] = bad.layers["counts"].astype(np.float32) * 0.5
    with pytest.raises(ValueError, match="non-integer"):
        pseudobulk.pseudobulk(bad)

"""Unit tests for tmeflow.inputs._cell_calling: raw-matrix detection and barcode-rank cell
calling."""

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from tmeflow.inputs import _cell_calling as cc


def _droplets(n_cells: int, n_empty: int, *, seed: int = 0) -> ad.AnnData:
    """n_cells barcodes with ~3,000 UMIs, then n_empty ambient droplets with ~1-60 UMIs."""
    rng = np.random.default_rng(seed)
    cell_tot = rng.lognormal(np.log(3000), 0.4, n_cells)
    empty_tot = rng.lognormal(np.log(8), 0.8, n_empty).clip(1, 60)
    tot = np.round(np.concatenate([cell_tot, empty_tot])).astype(int)
    X = sp.csr_matrix(tot[:, None].astype(np.float32))
    a = ad.AnnData(X=X)
    a.obs_names = [f"bc{i}" for i in range(tot.size)]
    a.var_names = ["total"]
    a.obs["is_cell"] = np.arange(tot.size) < n_cells
    return a


def test_looks_raw_by_count_and_by_empty_share() -> None:
    assert cc.looks_raw(np.full(20_000, 500.0))[0]
    raw, why = cc.looks_raw(np.r_[np.full(300, 2000.0), np.full(2000, 5.0)])
    assert raw and "< 100 UMIs" in why
    assert not cc.looks_raw(np.full(900, 5.0))[0]  # too few barcodes to judge by share
    assert not cc.looks_raw(np.r_[np.full(1500, 2000.0), np.full(100, 50.0)])[0]


def test_inflection_separates_cells_from_empty_droplets() -> None:
    a = _droplets(400, 30_000)
    out, info = cc.call_cells(a, mode="auto")
    assert info["looks_raw"] and info["called"]
    assert info["n_barcodes"] == 30_400
    called = out.obs["is_cell"].to_numpy()
    assert called.all()  # no empty droplet called
    assert 380 <= out.n_obs <= 400  # >= 95%: the inflection loses a few of the smallest cells
    assert 60 < info["cutoff_umi"] < 1500
    assert out.uns["cell_calling"]["cutoff_umi"] == info["cutoff_umi"]


def test_filtered_matrix_left_alone_in_auto_and_refused_raw_in_never() -> None:
    filt = _droplets(500, 0)
    out, info = cc.call_cells(filt, mode="auto")
    assert out is filt and not info["called"] and np.isnan(info["cutoff_umi"])
    with pytest.raises(ValueError, match=r"sample 'S1': 'x.h5' looks like an unfiltered"):
        cc.call_cells(_droplets(100, 25_000), mode="never", sample="S1", path="x.h5")
    with pytest.raises(ValueError, match=r"97% of 3100 barcodes have < 100 UMIs"):
        cc.call_cells(_droplets(100, 3_000), mode="never")  # raw by the share of empty ones
    with pytest.raises(ValueError, match="use one of auto, always, never"):
        cc.call_cells(filt, mode="sometimes")


def test_no_curve_to_call_on() -> None:
    a = _droplets(0, 25_000)
    with pytest.raises(ValueError, match="Provide the filtered"):
        cc.call_cells(a, mode="auto", sample="S2", path="raw.h5")

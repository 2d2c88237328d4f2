"""Unit tests for tmeflow.core._h5ad: atomic writes, selective reads, in-place updates."""

import os
import stat
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tmeflow.core import _h5ad as h5ad

from .._inputs import BARCODES, COUNTS, IDS, expected, lognorm


def test_write_h5ad_roundtrip_and_atomic(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "out.h5ad"
    a = ad.AnnData(sp.csr_matrix(COUNTS.astype(np.float32)), obs=pd.DataFrame(index=BARCODES))
    a.uns["params"] = {"x": 1}
    h5ad.write_h5ad(a, out)
    b = h5ad.read_h5ad(out)
    np.testing.assert_array_equal(b.X.toarray(), expected(COUNTS))
    assert b.uns["params"]["x"] == 1
    before = out.read_bytes()

    bad = a.copy()
    bad.uns["unwritable"] = object()  # anndata cannot serialise this: the write fails midway
    with pytest.raises(Exception):  # noqa: B017 - anndata's error type is not ours to pin
        h5ad.write_h5ad(bad, out)
    assert out.read_bytes() == before  # the previous good file is untouched
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.h5ad"]  # no temp left
    bad_new = tmp_path / "never.h5ad"
    with pytest.raises(Exception):  # noqa: B017
        h5ad.write_h5ad(bad, bad_new)
    assert not bad_new.exists()
    with pytest.raises(FileNotFoundError, match="run the stage"):
        h5ad.read_h5ad(tmp_path / "missing.h5ad")


def _layered(tmp_path: Path) -> tuple[ad.AnnData, Path]:
    a = ad.AnnData(
        sp.csr_matrix(lognorm(COUNTS).astype(np.float32)),
        obs=pd.DataFrame({"sample": "s1"}, index=BARCODES),
        var=pd.DataFrame(index=IDS),
        layers={"counts": sp.csr_matrix(COUNTS.astype(np.int32))},
    )
    a.obsm["X_emb"] = np.arange(2 * a.n_obs, dtype=np.float32).reshape(a.n_obs, 2)
    a.uns["params"] = {"x": 1}
    path = tmp_path / "in.h5ad"
    h5ad.write_h5ad(a, path)
    return a, path


def test_read_h5ad_skips_elements(tmp_path: Path) -> None:
    a, path = _layered(tmp_path)
    no_x = h5ad.read_h5ad(path, skip=("X",))
    assert no_x.X is None and no_x.shape == a.shape
    np.testing.assert_array_equal(no_x.layers["counts"].toarray(), COUNTS)
    np.testing.assert_array_equal(no_x.obsm["X_emb"], a.obsm["X_emb"])
    only_obs = h5ad.read_h5ad(path, skip=("X", "layers", "obsm", "uns"))
    assert list(only_obs.layers) == [] and list(only_obs.obsm) == [] and not only_obs.uns
    assert only_obs.obs["sample"].tolist() == ["s1"] * a.n_obs
    with pytest.raises(ValueError, match="cannot skip"):
        h5ad.read_h5ad(path, skip=("obs",))


def test_read_h5ad_loads_only_the_named_layers(tmp_path: Path) -> None:
    a, path = _layered(tmp_path)
    a.layers["counts_ambient_corrected"] = a.layers["counts"].copy()
    h5ad.write_h5ad(a, path)
    one = h5ad.read_h5ad(path, skip=("X",), layers=("counts",))
    assert list(one.layers) == ["counts"]
    np.testing.assert_array_equal(one.layers["counts"].toarray(), COUNTS)
    with_x = h5ad.read_h5ad(path, layers=("counts_ambient_corrected",))
    assert list(with_x.layers) == ["counts_ambient_corrected"] and with_x.X is not None
    with pytest.raises(KeyError, match="no layer"):
        h5ad.read_h5ad(path, layers=("nope",))


def test_update_h5ad_replaces_annotations_and_keeps_matrices(tmp_path: Path) -> None:
    a, path = _layered(tmp_path)
    light = h5ad.read_h5ad(path, skip=("X", "layers"))
    light.obs["label"] = "CAF"
    light.obs["partial"] = pd.Series(
        ["a", np.nan, "b", np.nan], index=light.obs_names, dtype=object
    )
    light.obsm["X_umap"] = np.ones((light.n_obs, 2), dtype=np.float32)
    light.uns["step"] = {"done": True}
    out = tmp_path / "out" / "updated.h5ad"
    h5ad.update_h5ad(light, path, out)
    b = h5ad.read_h5ad(out)
    np.testing.assert_array_equal(b.X.toarray(), a.X.toarray())
    np.testing.assert_array_equal(b.layers["counts"].toarray(), COUNTS)
    assert b.obs["label"].tolist() == ["CAF"] * a.n_obs
    assert b.obs["partial"].isna().tolist() == [False, True, False, True]
    assert sorted(b.obsm) == ["X_emb", "X_umap"] and b.uns["step"]["done"]
    assert b.uns["params"]["x"] == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["updated.h5ad"]  # no temp left
    # other cells: refused, nothing written
    with pytest.raises(ValueError, match="cells or genes differ"):
        h5ad.update_h5ad(light[:2].copy(), path, tmp_path / "bad.h5ad")
    assert not (tmp_path / "bad.h5ad").exists()
    with pytest.raises(ValueError, match="cannot replace"):
        h5ad.update_h5ad(light, path, out, elements=("X",))


def test_write_h5ad_output_has_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        h5ad.write_h5ad(ad.AnnData(np.zeros((2, 2), dtype=np.float32)), tmp_path / "a.h5ad")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.h5ad").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5ad"]


@pytest.mark.parametrize("block", [1, 3, 1000])
def test_read_rows_matches_the_subset_in_memory(tmp_path: Path, block: int) -> None:
    rng = np.random.default_rng(1)
    dense = rng.poisson(0.7, (23, 9)).astype(np.float64)
    a = ad.AnnData(sp.csr_matrix(dense), layers={"counts": sp.csr_matrix(dense.astype(np.int32))})
    a.layers["dense"] = dense
    path = tmp_path / "rows.h5ad"
    h5ad.write_h5ad(a, path)
    rows = np.array([22, 0, 5, 5, 13, 1])  # unsorted, a repeat, both ends
    cols = np.array([8, 2, 3])
    for key, source in (("X", dense), ("layers/counts", dense), ("layers/dense", dense)):
        got = h5ad.read_rows(path, key, rows, cols, dtype=np.float32, block=block)
        assert sp.isspmatrix_csr(got) and got.dtype == np.float32
        np.testing.assert_array_equal(got.toarray(), source[rows][:, cols])
    whole = h5ad.read_rows(path, "layers/counts", np.arange(23), block=block)
    assert whole.dtype == np.int32
    np.testing.assert_array_equal(whole.toarray(), dense)
    none = h5ad.read_rows(path, "X", np.array([], dtype=int), cols, block=block)
    assert none.shape == (0, 3)
    with pytest.raises(IndexError, match="23 rows"):
        h5ad.read_rows(path, "X", np.array([23]))
    with pytest.raises(KeyError, match="layers/nope"):
        h5ad.read_rows(path, "layers/nope", rows)

"""Shared helpers: row sums without a whole-matrix copy, CP10k, p-value adjustment."""

import numpy as np
import pytest
import scipy.sparse as sp

from tmeflow._utils import row_sums


@pytest.mark.parametrize("block", [1, 3, 50, 1 << 20])
def test_row_sums_equal_scipys(block):
    rng = np.random.default_rng(0)
    dense = rng.poisson(0.4, (41, 13)).astype(np.int32)
    dense[[0, 7, 8, 40]] = 0  # empty rows at both ends and in a run
    mat = sp.csr_matrix(dense)
    got = row_sums(mat, block=block)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, dense.sum(axis=1))
    np.testing.assert_array_equal(row_sums(dense), dense.sum(axis=1))  # dense input
    assert row_sums(sp.csr_matrix((0, 5), dtype=np.int32), block=block).shape == (0,)


def test_row_sums_do_not_copy_the_matrix():
    import tracemalloc

    rng = np.random.default_rng(1)
    mat = sp.random(20000, 400, density=0.1, format="csr", random_state=rng, dtype=np.float32)
    mat.data = np.ceil(mat.data * 10)
    mat = mat.astype(np.int32)  # 800k values: 3.2 MB of int32, 6.4 MB as int64
    tracemalloc.start()
    try:
        row_sums(mat, block=20000)  # about 500 rows a run
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < mat.data.nbytes / 2


def _counts(seed=2, *, empty=True):
    rng = np.random.default_rng(seed)
    dense = rng.poisson(0.7, (60, 25)).astype(np.int32) + (0 if empty else 1)
    if empty:
        dense[[3, 30]] = 0  # empty cells get a zero row, not NaN
    return sp.csr_matrix(dense), dense


def test_cp10k_equals_the_per_row_formula_in_float64_and_float32():
    from tmeflow._utils import TARGET_SUM, cp10k

    mat, dense = _counts()
    totals = dense.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        want64 = np.log1p(dense * np.where(totals > 0, TARGET_SUM / totals, 0.0)[:, None])
    np.testing.assert_array_equal(cp10k(mat, totals).toarray(), want64)
    # float32 (the object's X): the factor itself is computed in float32
    t32 = totals.astype(np.float32)
    scale32 = np.divide(np.float32(TARGET_SUM), t32, out=np.zeros_like(t32), where=t32 > 0)
    want32 = np.log1p(dense.astype(np.float32) * scale32[:, None])
    got32 = cp10k(mat, t32, dtype=np.float32)
    assert got32.dtype == np.float32
    np.testing.assert_array_equal(got32.toarray(), want32)
    # without the log: counts per 10,000, each non-empty row summing to TARGET_SUM
    plain = cp10k(mat, totals, log1p=False).toarray()
    np.testing.assert_allclose(plain.sum(axis=1)[totals > 0], TARGET_SUM)
    assert not plain[totals == 0].any()


def test_cp10k_agrees_with_scanpy_within_rounding():
    import anndata as ad
    import scanpy as sc

    from tmeflow._utils import cp10k

    mat, dense = _counts(3, empty=False)
    a = ad.AnnData(mat.astype(np.float64))
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    np.testing.assert_allclose(cp10k(mat, dense.sum(axis=1)).toarray(), a.X.toarray(), rtol=1e-12)


def test_adjust_pvalues_matches_statsmodels_and_keeps_the_family_size():
    from statsmodels.stats.multitest import multipletests

    from tmeflow._utils import adjust_pvalues

    p = np.array([0.01, np.nan, 0.04, 0.03, 0.2])
    fin = np.isfinite(p)
    for method in ("holm", "fdr_bh"):
        got = adjust_pvalues(p, method)
        assert np.isnan(got[1])
        np.testing.assert_array_equal(got[fin], multipletests(p[fin], method=method)[1])
    # a pre-specified family of 6 with two untestable members: Holm multiplies by 6, 5, ...
    holm6 = adjust_pvalues(p, "holm", m=6)
    np.testing.assert_allclose(holm6[0], 0.06)
    np.testing.assert_allclose(holm6[fin], [0.06, 0.16, 0.15, 0.6])  # 0.01, 0.04, 0.03, 0.2
    assert np.isnan(adjust_pvalues([np.nan], "holm")).all()
    # Holm is computed here (statsmodels' runs gc.collect() each call): the same numbers,
    # ties and p-values near 1 included
    rng = np.random.default_rng(0)
    for size in (1, 2, 7, 50):
        q = np.round(rng.uniform(0, 1, size) ** 3, 2)
        np.testing.assert_array_equal(adjust_pvalues(q, "holm"), multipletests(q, method="holm")[1])

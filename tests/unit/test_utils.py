"""Shared helpers: row sums without a whole-matrix copy."""

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

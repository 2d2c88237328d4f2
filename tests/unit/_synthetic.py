"""Small synthetic count data with known groups, shared by unit tests."""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData


def clustered_counts(
    *,
    n_per_group: int = 60,
    n_genes: int = 120,
    groups=("A", "B", "C"),
    n_batches: int = 2,
    seed: int = 0,
    markers_per_group: int = 10,
) -> AnnData:
    """Counts with ``markers_per_group`` strongly specific genes per group (genes g0..)."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 0.5, n_genes)
    rows, labels, batches = [], [], []
    for gi, group in enumerate(groups):
        mu = base.copy()
        mu[gi * markers_per_group : (gi + 1) * markers_per_group] *= 30
        for b in range(n_batches):
            shift = rng.lognormal(0, 0.2, n_genes)
            n = n_per_group // n_batches
            lib = rng.lognormal(np.log(2000), 0.2, n)
            p = mu * shift / (mu * shift).sum()
            rows.append(rng.poisson(np.outer(lib, p)))
            labels += [group] * n
            batches += [f"s{b}"] * n
    x = np.vstack(rows).astype(np.float32)
    genes = [f"g{i}" for i in range(n_genes)]
    obs = pd.DataFrame(
        {"sample": batches, "group": labels},
        index=[f"c{i}" for i in range(x.shape[0])],
    )
    return AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=genes))

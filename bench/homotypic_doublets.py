"""Within-species (CAF + macrophage) doublets: Scrublet alone against the doublet consensus.

Real mouse lung cells (Tabula Muris Lung-10X_P7_8 in ``../shared/data``): fibroblasts
(Col1a1/Col1a2/Dcn/Pdgfra log-CP10k mean > 1, macrophage markers < 0.3) and macrophages
(C1qa/C1qb/Cd68/Mrc1/Fcgr1 mean > 0.5, fibroblast markers < 0.3) are paired at random and
their raw counts summed; ``--rate`` of the sample's cells are added as such doublets. Per
seed, Scrublet (as the workflow runs it: :func:`tmeflow.cells.detect_doublets`) and the
cluster-aware caller (:func:`tmeflow.cells.cluster_doublets`) score the sample; every
consensus rule is then applied. Printed per rule: planted doublets called (detection rate)
and real cells called (singlets lost, an upper bound: the real data hold real doublets too;
``lib_ratio`` is the median library of the real cells called over that of the real cells
kept, about 2 for doublets).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/homotypic_doublets.py --seeds 5
"""

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))
from tmeflow.cells import _doublets as doublets
from tmeflow.cells import _qc as qc

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tabula_muris_lung_P7_8"
FIBROBLAST = ("Col1a1", "Col1a2", "Dcn", "Pdgfra")
MACROPHAGE = ("C1qa", "C1qb", "Cd68", "Mrc1", "Fcgr1")


def _marker_mean(counts: sp.csr_matrix, names: pd.Index, genes: tuple[str, ...]) -> np.ndarray:
    lib = np.asarray(counts.sum(axis=1)).ravel()
    cols = [names.get_loc(g) for g in genes if g in names]
    sub = counts[:, cols].toarray() / lib[:, None] * 1e4
    return np.log1p(sub).mean(axis=1)


def load(folder: Path = DATA) -> tuple[AnnData, np.ndarray, np.ndarray]:
    """The lung cells (raw counts) and the indices of its fibroblasts and macrophages."""
    import scanpy as sc

    a = sc.read_10x_mtx(folder)
    counts = sp.csr_matrix(a.X, dtype=np.float32)
    f = _marker_mean(counts, a.var_names, FIBROBLAST)
    m = _marker_mean(counts, a.var_names, MACROPHAGE)
    fib = np.flatnonzero((f > 1.0) & (m < 0.3))
    mac = np.flatnonzero((m > 0.5) & (f < 0.3))
    a.X = counts
    return a, fib, mac


def with_doublets(
    a: AnnData, fib: np.ndarray, mac: np.ndarray, *, rate: float, seed: int
) -> tuple[AnnData, np.ndarray]:
    """``a`` plus ``rate`` x its cells of fibroblast + macrophage doublets (last rows)."""
    rng = np.random.default_rng(seed)
    n_dbl = round(rate * a.n_obs)
    pairs = a.X[rng.choice(fib, n_dbl)] + a.X[rng.choice(mac, n_dbl)]
    X = sp.vstack([a.X, pairs]).tocsr()
    names = [*a.obs_names.astype(str), *(f"dbl{i}" for i in range(n_dbl))]
    obs = pd.DataFrame({"sample": "lung", "species": "mouse"}, index=names)
    out = AnnData(X=X, obs=obs, var=pd.DataFrame(index=a.var_names.copy()))
    truth = np.r_[np.zeros(a.n_obs, dtype=bool), np.ones(n_dbl, dtype=bool)]
    return out, truth


def run(seeds: int, rate: float) -> pd.DataFrame:
    a, fib, mac = load()
    print(f"lung: {a.n_obs} cells, {fib.size} fibroblasts, {mac.size} macrophages")
    rows = []
    for seed in range(seeds):
        b, truth = with_doublets(a, fib, mac, rate=rate, seed=seed)
        qc.qc_metrics(b)
        doublets.detect_doublets(b, seed=seed)
        b.obs["predicted_doublet_scrublet"] = b.obs["predicted_doublet"]
        doublets.cluster_doublets(b, seed=seed, eligible=qc.passes_floors(b.obs))
        lib = b.obs["total_counts"].to_numpy()
        for rule in doublets.CONSENSUS_RULES:
            doublets.consensus(b, rule=rule)
            pred = b.obs["predicted_doublet"].to_numpy(dtype=bool)
            real_called = pred & ~truth
            rows.append(
                {
                    "seed": seed,
                    "rule": rule,
                    "planted": int(truth.sum()),
                    "caught": int(pred[truth].sum()),
                    "real_cells": int((~truth).sum()),
                    "real_called": int(real_called.sum()),
                    # a real cell called with twice the others' library: likely a real doublet
                    "lib_ratio": float(np.median(lib[real_called]) / np.median(lib[~truth & ~pred]))
                    if real_called.any()
                    else np.nan,
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=0.04, help="doublets per real cell")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    res = run(args.seeds, args.rate)
    tot = res.groupby("rule", sort=False)[["planted", "caught", "real_cells", "real_called"]].sum()
    tot["detection_rate"] = tot["caught"] / tot["planted"]
    tot["singlets_lost"] = tot["real_called"] / tot["real_cells"]
    tot["lib_ratio"] = res.groupby("rule", sort=False)["lib_ratio"].median()
    pd.set_option("display.width", 120)
    print(res.to_string(index=False))
    print(tot.round(3).to_string())


if __name__ == "__main__":
    main()

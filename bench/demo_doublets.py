"""Planted doublets of the simulated demo: QC's doublet removal before (Scrublet) and now.

One demo sample (:func:`tmeflow.simulate.model.simulate_experiment`, 3 animals per arm,
1,500 cells by default as the workflow's demo) goes through the library functions of
``species_assign`` and ``qc_filter`` (not the workflow): species calls with the
cross-species test, QC metrics, the doublet callers and :func:`tmeflow.cells.filter_cells`.
Per ``qc.doublet_method`` / ``qc.doublet_consensus``, printed: planted doublets removed by QC
(any reason: a cross-species one is usually ``mixed``), within-species doublets called
doublets, and true singlets removed as doublets. ``--ambient F`` first adds to every
droplet F x its UMIs drawn from the sample's pooled profile (a soup dominated by the
tumour's human UMIs, as in a xenograft).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/demo_doublets.py --ambient 0.1
"""

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))
from tmeflow.cells import _doublets as doublets
from tmeflow.cells import _qc as qc
from tmeflow.cells import _species as species
from tmeflow.simulate.model import simulate_experiment

SETTINGS = (
    ("scrublet", "scrublet"),  # before: Scrublet alone
    ("both", "both_or_confident"),  # the default
    ("both", "either"),
    ("both", "both"),
    ("cluster", "cluster"),
)


def sample(seed: int, ambient: float, *, cells: int = 1500, which: int = 0):
    """Demo sample ``which`` (species called) and its truth, with ``ambient`` soup added."""
    exp = simulate_experiment(n_replicates=3, cells_per_sample=cells, seed=seed)
    name, a = list(exp.samples.items())[which]
    if ambient > 0:
        rng = np.random.default_rng(seed)
        X = sp.csr_matrix(a.X)
        lib = np.asarray(X.sum(axis=1)).ravel()
        soup = np.asarray(X.sum(axis=0)).ravel() / X.sum()
        a.X = sp.csr_matrix(X + rng.poisson(np.outer(ambient * lib, soup)).astype(X.dtype))
    a.obs["sample"] = name
    species.assign_species(a, mode="xenograft", min_fraction=0.8, crossspecies_fdr=0.01)
    truth = exp.truth[exp.truth["sample"] == name].set_index("barcode")
    return a, truth.loc[a.obs_names.astype(str)]


def run(seed: int, ambient: float, *, cells: int = 1500, which: int = 0) -> pd.DataFrame:
    rows = []
    for method, rule in SETTINGS:
        a, truth = sample(seed, ambient, cells=cells, which=which)
        dbl = truth["is_doublet"].to_numpy()
        within = dbl & (truth["species"] != "mixed").to_numpy()
        qc.qc_metrics(a)
        doublets.call_doublets(a, seed=0, method=method, consensus_rule=rule)
        _, metrics = qc.filter_cells(a, allow_empty=True)
        removed = ~a.obs["qc_pass"].to_numpy()
        called = a.obs["predicted_doublet"].to_numpy(dtype=bool)
        mouse_singlet = ~dbl & (truth["species"] == "mouse").to_numpy()
        rows.append(
            {
                "method": method,
                "rule": rule,
                "doublets": int(dbl.sum()),
                "removed": int(removed[dbl].sum()),
                "within_species": int(within.sum()),
                "within_called": int(called[within].sum()),
                "singlets": int((~dbl).sum()),
                "singlets_called": int(called[~dbl].sum()),
                "mouse_singlets_called": f"{int(called[mouse_singlet].sum())}/"
                f"{int(mouse_singlet.sum())}",
                "n_kept": metrics["n_kept"],
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ambient", type=float, default=0.0)
    parser.add_argument("--cells", type=int, default=1500, help="cells per sample")
    parser.add_argument("--sample", type=int, default=0, help="which of the 6 samples")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    pd.set_option("display.width", 160)
    print(run(args.seed, args.ambient, cells=args.cells, which=args.sample).to_string(index=False))


if __name__ == "__main__":
    main()

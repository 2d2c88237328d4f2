"""Calibration of the confirmatory table: family-wise error on simulated null experiments.

Draws ``--n`` experiments of 3 + 3 animals in which nothing differs between the arms
(``tests/unit/_confirm_data.stromal_counts`` with ``fold=1``), tests a family of four true
null hypotheses (a gene up in CAFs, TAMs up among the stroma, NK changed among immune cells,
CAFs changed among all cells) with :func:`tmeflow.stats.confirm` and prints the share
of experiments with any Holm-adjusted p below alpha (the family-wise error), with its exact
binomial 95% interval, and each hypothesis' rate of raw p < alpha. The leave-one-animal-out
refits and the apeGLM shrinkage are off for speed: p-values do not depend on them, and a
``supported`` verdict also needs ``p_holm < alpha``, so the printed rate bounds the verdicts'
family-wise error from above. Not a test (minutes); run it niced::

    nice -n 10 .venv/bin/python bench/confirmatory_calibration.py --n 200
"""

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "workflow/scripts"), str(REPO)]

from tests.unit._confirm_data import REF, TEST, stromal_counts  # noqa: E402
from tmeflow.stats import _confirmatory as confirmatory  # noqa: E402

FAMILY = [
    {"gene": "G0000", "cell_type": "CAF", "direction": "up"},
    {"proportion": "stroma", "cell_type": "TAM", "direction": "up"},
    {"proportion": "immune", "cell_type": "NK"},
    {"proportion": "all", "cell_type": "CAF"},
]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="simulated null experiments")
    ap.add_argument("--genes", type=int, default=150, help="genes per experiment")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0, help="first seed (experiment k: seed + k)")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    hyps = confirmatory.parse_hypotheses(FAMILY)
    any_holm, raw = [], []
    start = time.time()
    for k in range(args.n):
        adata = stromal_counts(
            n_genes=args.genes, cells_per_animal=200, fold=1.0, seed=args.seed + k
        )
        table, _ = confirmatory.confirm(
            adata, hyps, reference=REF, test=TEST, alpha=args.alpha, loo=False, shrink=False
        )
        any_holm.append(bool((table["p_holm"] < args.alpha).any()))
        raw.append((table["pvalue"] < args.alpha).to_numpy())
        if (k + 1) % 20 == 0:
            print(f"{k + 1}/{args.n} experiments, {time.time() - start:.0f} s", flush=True)
    n_fw = int(np.sum(any_holm))
    ci = stats.binomtest(n_fw, args.n).proportion_ci(0.95, method="exact")
    print(
        f"family-wise error (any Holm p < {args.alpha:g}) over {args.n} null experiments: "
        f"{n_fw}/{args.n} = {n_fw / args.n:.3f} (95% CI {ci.low:.3f}-{ci.high:.3f})"
    )
    rates = np.mean(np.vstack(raw), axis=0)
    for hyp, rate in zip(hyps, rates, strict=True):
        print(f"  raw p < {args.alpha:g}: {rate:.3f}  {hyp.label}")


if __name__ == "__main__":
    main()

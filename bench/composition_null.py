"""Null type-I error of per-type composition tests: propeller as shipped vs quasi-binomial GLMs.

The confirmatory calibration (``bench/confirmatory_calibration.py``) found propeller's
proportion tests anti-conservative for rare types (pericyte, 2% of the stroma: 0.10-0.20 at
2v2-6v6). This bench isolates the composition step: each null experiment is
:func:`tests.unit._confirm_data.tumour_experiment` (labels only: 8 stromal types from 35% to
2%, TAM subtypes 55/35/10%, Dirichlet-multinomial per animal, nothing differs between arms) at
one design, and every type is tested two-sided among the stroma and every TAM subtype within
the TAMs by

- ``propeller``: :func:`tmeflow.stats._composition._moderated` on propeller's logit
  proportions, as the workflow runs it (abundance trend, not robust);
- ``quasi_type``: a binomial GLM per type (counts of the type out of the denominator's cells,
  intercept + arm) with its own Pearson dispersion (at least 1) and a t test on its residual
  df;
- ``quasi_pooled``: the same GLMs with one dispersion pooled over the types of the
  denominator (the sum of Pearson chi-squares over the sum of residual df) and a t test on
  the pooled df.

Writes ``bench/composition_null.tsv`` (rate of p < 0.05 per design, denominator, type and
method, with its Clopper-Pearson 95% interval). Not a test (under a minute for 300 per design):

    .venv/bin/python bench/composition_null.py --experiments 300 --designs 2 3 4
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "workflow/scripts"), str(REPO)]

from tests.unit._confirm_data import TEST, tumour_experiment  # noqa: E402
from tmeflow.stats import _composition as comp  # noqa: E402

METHODS = ("propeller", "quasi_type", "quasi_pooled")


def quasi_binomial(wide: pd.DataFrame, is_test: np.ndarray, *, pooled: bool) -> dict[str, float]:
    """Two-sided p of the arm coefficient of a binomial GLM per type, quasi-likelihood t."""
    import statsmodels.api as sm

    total = wide.sum(axis=1).to_numpy(float)
    x = np.column_stack([np.ones(len(is_test)), is_test.astype(float)])
    fits = {}
    for t in wide.columns:
        y = wide[t].to_numpy(float)
        fits[t] = sm.GLM(np.column_stack([y, total - y]), x, family=sm.families.Binomial()).fit()
    chi2 = sum(f.pearson_chi2 for f in fits.values())
    df_pooled = sum(f.df_resid for f in fits.values())
    out = {}
    for t, f in fits.items():
        phi = max(chi2 / df_pooled if pooled else f.pearson_chi2 / f.df_resid, 1.0)
        df = df_pooled if pooled else f.df_resid
        out[t] = float(2 * stats.t.sf(abs(f.params[1] / (f.bse[1] * np.sqrt(phi))), df))
    return out


def experiment(n: int, seed: int, stroma_cells: int) -> list[tuple]:
    adata = tumour_experiment(
        animals_per_arm=n, stroma_cells=stroma_cells, tumor_cells=150, counts=False, seed=seed
    )
    obs = adata.obs
    rows = []
    for denom, keep, key in (
        ("stroma", obs["species"] == "mouse", "cell_type"),
        ("within_TAM", obs["cell_type"] == "TAM", "cell_subtype"),
    ):
        o = obs[keep]
        wide = pd.crosstab(o["sample"], o[key].astype(str))
        is_test = (o.groupby("sample")["condition"].first().reindex(wide.index) == TEST).to_numpy()
        out = pd.DataFrame({"cell_type": list(wide.columns)})
        comp._moderated(
            out, comp._propeller_logit(wide), is_test,
            robust=comp.PROPELLER_ROBUST, trend=comp.PROPELLER_TREND,
        )  # fmt: skip
        p = {
            "propeller": dict(zip(out["cell_type"], out["pvalue"], strict=True)),
            "quasi_type": quasi_binomial(wide, is_test, pooled=False),
            "quasi_pooled": quasi_binomial(wide, is_test, pooled=True),
        }
        rows += [(n, seed, denom, t, m, p[m][t]) for t in wide.columns for m in METHODS]
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=300)
    parser.add_argument("--designs", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--stroma-cells", type=int, default=600)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "composition_null.tsv")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    rows = [
        r for n in args.designs for seed in range(args.experiments)
        for r in experiment(n, seed, args.stroma_cells)
    ]  # fmt: skip
    runs = pd.DataFrame(rows, columns=["n_per_arm", "seed", "denominator", "cell_type",
                                       "method", "pvalue"])  # fmt: skip
    summary = (
        runs.assign(hit=runs["pvalue"] < 0.05)
        .groupby(["n_per_arm", "denominator", "cell_type", "method"], sort=False)["hit"]
        .agg(["size", "sum"])
        .reset_index()
        .rename(columns={"size": "n_experiments", "sum": "events"})
    )
    k, n = summary["events"].to_numpy(), summary["n_experiments"].to_numpy()
    summary["rate"] = (k / n).round(4)
    summary["ci_low"] = np.where(k > 0, stats.beta.ppf(0.025, k, n - k + 1), 0.0).round(4)
    summary["ci_high"] = np.where(k < n, stats.beta.ppf(0.975, k + 1, n - k), 1.0).round(4)
    summary.to_csv(args.out, sep="\t", index=False)
    wide = summary.pivot_table(
        index=["n_per_arm", "denominator", "cell_type"], columns="method", values="rate",
        sort=False,
    )[list(METHODS)]  # fmt: skip
    print(wide.to_string())


if __name__ == "__main__":
    main()

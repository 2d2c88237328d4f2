"""Per-type composition tests under the null and with planted effects: propeller vs quasi-binomial.

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
- ``quasi_x2``: ``quasi_type`` without the floor (the dispersion is Pearson's X2 / df as in
  R's ``quasibinomial``, even below 1);
- ``quasi_pooled``: the same GLMs with one dispersion pooled over the types of the
  denominator (the sum of Pearson chi-squares over the sum of residual df) and a t test on
  the pooled df.

``quasi_type`` is :func:`tmeflow.stats.quasi_binomial_test`, which the confirmatory
``proportion`` hypotheses use.

Writes ``bench/composition_null.tsv`` (rate of p < 0.05 per design, denominator, type and
method, with its Clopper-Pearson 95% interval). With ``--power N``, also ``N`` experiments per
design and planted scenario (``tam1.5``: TAM x1.5 among the stroma and TAM_Mrc1's share of
the TAMs x1.5; ``tam2``: TAM x2 among the stroma), each planted hypothesis tested one-sided
("up") by propeller (its moderated t, one-sided) and the quasi-binomial GLMs, and writes
``bench/composition_power.tsv`` (rate of p < 0.05 and of p < 0.01, the first step of Holm's
ladder in a family of 5); scenario ``null`` (``--power-null`` experiments, nothing planted)
is the one-sided type-I error of the same two hypotheses at both levels. Not a test (~6 CPU
minutes for all below):

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/composition_null.py \
        --experiments 300 --power 100 --power-null 1000 --designs 2 3 4 6
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

METHODS = ("propeller", "quasi_type", "quasi_x2", "quasi_pooled")
#: Planted scenarios: (tumour_experiment's tam_fold, within_fold) and the hypotheses tested
#: one-sided ("up"): (denominator, type).
SCENARIOS = {
    "null": ((1.0, 1.0), (("stroma", "TAM"), ("within_TAM", "TAM_Mrc1"))),
    "tam1.5": ((1.5, 1.5), (("stroma", "TAM"), ("within_TAM", "TAM_Mrc1"))),
    "tam2": ((2.0, 1.0), (("stroma", "TAM"),)),
}


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


def _tests(wide: pd.DataFrame, is_test: np.ndarray, direction: str | None) -> dict[str, dict]:
    """p per method and type (two-sided, or one-sided in ``direction``)."""
    out = pd.DataFrame({"cell_type": list(wide.columns)})
    comp._moderated(
        out, comp._propeller_logit(wide), is_test,
        robust=comp.PROPELLER_ROBUST, trend=comp.PROPELLER_TREND,
    )  # fmt: skip
    if direction == "up":
        out["pvalue"] = stats.t.sf(out["stat"], out["df"])
    total = wide.sum(axis=1).to_numpy(float)

    def quasi(floor: float) -> dict[str, float]:
        return {
            t: comp.quasi_binomial_test(
                wide[t].to_numpy(float), total, is_test, direction=direction, min_dispersion=floor
            )["pvalue"]
            for t in wide.columns
        }

    pooled = quasi_binomial(wide, is_test, pooled=True)
    if direction == "up":  # from the two-sided p and the sign of the estimate
        share = wide.div(total, axis=0)
        up = share[is_test].sum() / is_test.sum() > share[~is_test].sum() / (~is_test).sum()
        pooled = {t: p / 2 if up[t] else 1 - p / 2 for t, p in pooled.items()}
    return {
        "propeller": dict(zip(out["cell_type"], out["pvalue"], strict=True)),
        "quasi_type": quasi(comp.MIN_DISPERSION),
        "quasi_x2": quasi(0.0),
        "quasi_pooled": pooled,
    }


def _tables(adata) -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    obs = adata.obs
    out = {}
    for denom, keep, key in (
        ("stroma", obs["species"] == "mouse", "cell_type"),
        ("within_TAM", obs["cell_type"] == "TAM", "cell_subtype"),
    ):
        o = obs[keep]
        wide = pd.crosstab(o["sample"], o[key].astype(str))
        is_test = (o.groupby("sample")["condition"].first().reindex(wide.index) == TEST).to_numpy()
        out[denom] = (wide, is_test)
    return out


def experiment(n: int, seed: int, stroma_cells: int) -> list[tuple]:
    adata = tumour_experiment(
        animals_per_arm=n, stroma_cells=stroma_cells, tumor_cells=150, counts=False, seed=seed
    )
    rows = []
    for denom, (wide, is_test) in _tables(adata).items():
        p = _tests(wide, is_test, None)
        rows += [(n, seed, denom, t, m, p[m][t]) for t in wide.columns for m in METHODS]
    return rows


def planted(n: int, seed: int, stroma_cells: int, scenario: str) -> list[tuple]:
    (tam_fold, within_fold), hyps = SCENARIOS[scenario]
    adata = tumour_experiment(
        animals_per_arm=n, stroma_cells=stroma_cells, tumor_cells=150, counts=False,
        tam_fold=tam_fold, within_fold=within_fold, seed=100_000 + seed,
    )  # fmt: skip
    tables = _tables(adata)
    rows = []
    for denom, t in hyps:
        wide, is_test = tables[denom]
        p = _tests(wide, is_test, "up")
        rows += [(n, scenario, seed, denom, t, m, p[m][t]) for m in METHODS]
    return rows


def _rates(runs: pd.DataFrame, keys: list[str], levels: tuple[float, ...]) -> pd.DataFrame:
    """Rate of p below each level per group, with Clopper-Pearson 95% intervals."""
    parts = []
    for level in levels:
        s = (
            runs.assign(hit=runs["pvalue"] < level)
            .groupby(keys, sort=False)["hit"]
            .agg(["size", "sum"])
            .reset_index()
            .rename(columns={"size": "n_experiments", "sum": "events"})
        )
        k, n = s["events"].to_numpy(), s["n_experiments"].to_numpy()
        s["rate"] = (k / n).round(4)
        s["ci_low"] = np.where(k > 0, stats.beta.ppf(0.025, k, n - k + 1), 0.0).round(4)
        s["ci_high"] = np.where(k < n, stats.beta.ppf(0.975, k + 1, n - k), 1.0).round(4)
        parts.append(s.assign(level=level) if len(levels) > 1 else s)
    return pd.concat(parts, ignore_index=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=300)
    parser.add_argument("--designs", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--stroma-cells", type=int, default=600)
    parser.add_argument("--power", type=int, default=0, help="planted experiments per design")
    parser.add_argument(
        "--power-null", type=int, default=1000, help="one-sided null experiments (with --power)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "composition_null.tsv")
    parser.add_argument("--power-out", type=Path, default=REPO / "bench" / "composition_power.tsv")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    rows = [
        r for n in args.designs for seed in range(args.experiments)
        for r in experiment(n, seed, args.stroma_cells)
    ]  # fmt: skip
    runs = pd.DataFrame(rows, columns=["n_per_arm", "seed", "denominator", "cell_type",
                                       "method", "pvalue"])  # fmt: skip
    summary = _rates(runs, ["n_per_arm", "denominator", "cell_type", "method"], (0.05,))
    summary.to_csv(args.out, sep="\t", index=False)
    wide = summary.pivot_table(
        index=["n_per_arm", "denominator", "cell_type"], columns="method", values="rate",
        sort=False,
    )[list(METHODS)]  # fmt: skip
    print(wide.to_string())
    if args.power <= 0:
        return
    rows = [
        r for n in args.designs for scenario in SCENARIOS
        for seed in range(args.power_null if scenario == "null" else args.power)
        for r in planted(n, seed, args.stroma_cells, scenario)
    ]  # fmt: skip
    runs = pd.DataFrame(rows, columns=["n_per_arm", "scenario", "seed", "denominator",
                                       "cell_type", "method", "pvalue"])  # fmt: skip
    power = _rates(
        runs, ["n_per_arm", "scenario", "denominator", "cell_type", "method"], (0.05, 0.01)
    )
    power.to_csv(args.power_out, sep="\t", index=False)
    print(
        power.pivot_table(
            index=["level", "scenario", "denominator", "cell_type", "n_per_arm"],
            columns="method", values="rate", sort=False,
        )[list(METHODS)].to_string()
    )  # fmt: skip


if __name__ == "__main__":
    main()

"""Calibration and power of the confirmatory family on simulated xenograft experiments.

Each experiment is :func:`tests.unit._confirm_data.tumour_experiment` (8 stromal types from
35% down to a rare 2%, TAM subtypes, human tumour cells; ``--genes`` genes) at one design
(``--designs``: animals per arm) and one scenario: ``null`` (nothing differs between the arms,
the source and main_sources genes sit at the boundary of their nulls) or a planted one
(``low``: Mmp11 x2 in CAF, TAM x1.5 among the stroma, Postn made x2 per UMI by CAFs, a true
source; ``high``: Mmp11 x4, TAM x2, the same source). It tests :data:`FAMILY` (the default
family's kinds: change, source, main_sources, proportion among the stroma, within-parent
proportion) together with :data:`EXTRA` (rare types: pericyte 2% of the stroma, TAM_Arg1 10%
of the TAMs, Postn source in pericytes; ``--rare-change`` adds Mmp11 in pericytes, a second
PyDESeq2 fit) with :func:`tmeflow.stats.confirm` (``shrink=False``; ``--no-loo`` drops the
leave-one-animal-out refits, which change verdicts, not p-values). Holm is over FAMILY only
(m = 5); the extras' raw p-values give their type-I error.

The verdicts are read at :data:`ALPHA`, the config's default ``hypotheses_alpha`` (0.04); the
table also gives the family-wise error of plain Holm at 0.05 (``fwer_holm_nominal``).
``--recheck null low high`` re-runs with leave-one-animal-out the experiments run without it
(``--no-loo``) whose change row passed Holm, so every verdict is final.

Every experiment appends one line per hypothesis to ``--runs`` (resumable: experiments
already there are skipped), designs interleaved, so a run cut short by ``--budget-s`` is
balanced; ``--summarise`` turns the runs into ``bench/confirmatory_calibration.tsv``
(family-wise error with its Clopper-Pearson 95% interval, type-I per hypothesis, power) and
the figure ``bench/confirmatory_calibration.png``. Not a test; run it niced on one core::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/confirmatory_calibration.py \\
        --null 2000 --power 200 --budget-s 0 && \\
        .venv/bin/python bench/confirmatory_calibration.py --summarise
"""

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "workflow/scripts"), str(REPO)]

from tests.unit._confirm_data import REF, TEST, tumour_experiment  # noqa: E402
from tmeflow.stats import _confirmatory as confirmatory  # noqa: E402

#: The default family's kinds, each a true null in ``null`` experiments.
FAMILY = [
    {"gene": "Mmp11", "cell_type": "CAF", "direction": "up"},
    {"gene": "Postn", "cell_type": "CAF", "test": "source"},
    {"gene": "Gas6", "test": "main_sources", "groups": ["CAF", "TAM_Mrc1"]},
    {"proportion": "stroma", "cell_type": "TAM", "direction": "up"},
    {"proportion": "within_TAM", "cell_type": "TAM_Mrc1", "direction": "up"},
]
#: Rare types, outside the family (their raw p-values: type-I error only).
EXTRA = [
    {"proportion": "stroma", "cell_type": "pericyte"},
    {"proportion": "within_TAM", "cell_type": "TAM_Arg1"},
    {"gene": "Postn", "cell_type": "pericyte", "test": "source"},
]
RARE_CHANGE = {"gene": "Mmp11", "cell_type": "pericyte"}
#: Planted effects per scenario (arguments of tumour_experiment).
SCENARIOS = {
    "null": {},
    "low": {"change_fold": 2.0, "tam_fold": 1.5, "source_fold": 2.0},
    "high": {"change_fold": 4.0, "tam_fold": 2.0, "source_fold": 2.0},
}
#: Which family members a scenario plants (power is read on them).
PLANTED = {"low": (0, 1, 3), "high": (0, 1, 3)}
RUNS = REPO / "bench" / "confirmatory_calibration_runs.tsv"
TABLE = REPO / "bench" / "confirmatory_calibration.tsv"
FIGURE = REPO / "bench" / "confirmatory_calibration.png"
#: The family's level: the config's default ``hypotheses_alpha`` (0.04); NOMINAL is plain 0.05,
#: reported beside it. Verdicts of runs made at 0.05 are re-read at ALPHA: only the Holm
#: threshold depends on the level, so supported at ALPHA = supported at 0.05 and Holm p < ALPHA.
_SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["properties"]
ALPHA = _SCHEMA["hypotheses_alpha"]["default"]
NOMINAL = 0.05
#: The change rows' test: the config's default ``hypotheses_de_method`` (``--de-method``).
DE_METHOD = _SCHEMA["hypotheses_de_method"]["default"]
#: What identifies an experiment in the runs file (one seed may run under both DE methods).
KEY = ["de_method", "design", "scenario", "seed"]


def experiment_seed(design: int, scenario: str, k: int) -> int:
    """The seed of a design's ``k``-th experiment of a scenario (other benches re-make them)."""
    return 1_000_000 * design + 10_000 * list(SCENARIOS).index(scenario) + k


def run_one(
    design: int,
    scenario: str,
    seed: int,
    *,
    genes: int,
    loo: bool,
    rare_change: bool,
    de_method: str = DE_METHOD,
):
    """One experiment's rows: hypothesis, kind, in_family, pvalue, p_holm, verdict."""
    extra = EXTRA + ([RARE_CHANGE] if rare_change else [])
    hyps = confirmatory.parse_hypotheses(FAMILY + extra)
    adata = tumour_experiment(
        animals_per_arm=design, n_genes=genes, seed=seed, **SCENARIOS[scenario]
    )
    m = len(FAMILY)
    kw = {"reference": REF, "test": TEST, "alpha": ALPHA, "loo": loo, "shrink": False,
          "de_method": de_method}  # fmt: skip
    family, _ = confirmatory.confirm(adata, hyps[:m], **kw)  # Holm over the family, m = 5
    others, _ = confirmatory.confirm(adata, hyps[m:], **kw)  # raw p-values only
    p = np.concatenate([family["pvalue"].to_numpy(float), others["pvalue"].to_numpy(float)])
    p_holm = np.concatenate([family["p_holm"].to_numpy(float), np.full(len(others), np.nan)])
    supported = np.concatenate([family["verdict"].eq("supported"), np.zeros(len(others), bool)])
    return pd.DataFrame(
        {
            "design": design,
            "scenario": scenario,
            "seed": seed,
            "hypothesis": [h.label for h in hyps],
            "kind": [h.kind for h in hyps],
            "in_family": np.arange(len(hyps)) < m,
            "pvalue": p,
            "p_holm": p_holm,
            "supported": supported,
            "loo": loo,
            "de_method": de_method,
        }
    )


def simulate(args: argparse.Namespace) -> None:
    done = set()
    if args.runs.exists():
        old = _read(args.runs)[KEY]
        done = set(map(tuple, old.drop_duplicates().itertuples(index=False)))
    start, n_run, n_printed = time.time(), 0, 0
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    for k in range(max(args.null, args.power)):
        for design in args.designs:
            for scenario in SCENARIOS:
                if k >= (args.null if scenario == "null" else args.power):
                    continue
                if scenario == "null" and k < args.from_k:  # fresh null seeds from K
                    continue
                seed = experiment_seed(design, scenario, k)
                if (args.de_method, design, scenario, seed) in done:
                    continue
                if args.budget_s and time.time() - start > args.budget_s:
                    print(
                        f"budget spent: {n_run} experiments in {time.time() - start:.0f} s, "
                        f"{time.process_time():.0f} CPU s"
                    )
                    return
                rows = run_one(
                    design,
                    scenario,
                    seed,
                    genes=args.genes,
                    loo=not args.no_loo,
                    rare_change=args.rare_change,
                    de_method=args.de_method,
                )
                rows.to_csv(
                    args.runs, sep="\t", index=False, mode="a", header=not args.runs.exists()
                )
                n_run += 1
        if (k + 1) % 10 == 0 and n_run > n_printed:
            n_printed = n_run
            print(
                f"round {k + 1}: {n_run} experiments, {time.time() - start:.0f} s, "
                f"{time.process_time():.0f} CPU s",
                flush=True,
            )
    print(
        f"done: {n_run} experiments in {time.time() - start:.0f} s, {time.process_time():.0f} CPU s"
    )


def _read(path: Path) -> pd.DataFrame:
    runs = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""], low_memory=False)
    if "loo" not in runs:  # rows written before the column: all of them ran with --no-loo
        runs["loo"] = False
    runs["loo"], runs["supported"] = flag(runs["loo"]), flag(runs["supported"])
    return _with_method(runs)


def flag(col: pd.Series) -> pd.Series:
    """A True/False column as read back from a runs file (blank, NA: False)."""
    return col.astype(str).eq("True")


def _with_method(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows written before the ``de_method`` column ran PyDESeq2's change rows."""
    if "de_method" not in runs:
        runs = runs.assign(de_method="pydeseq2")
    return runs.assign(de_method=runs["de_method"].fillna("pydeseq2"))


def unjudged(runs: pd.DataFrame) -> pd.DataFrame:
    """Experiments whose verdicts leave-one-animal-out could still change.

    A family ``change`` row that passed Holm in a run without leave-one-animal-out reads
    inconclusive; with it, it may read supported. Any other row's verdict is final: supported
    needs Holm p < alpha, and the other kinds' left-out estimates are always computed.
    """
    runs = _with_method(runs)
    fam = runs[runs["in_family"] & runs["kind"].eq("change") & ~runs["loo"]]
    hit = fam[fam["p_holm"] < max(ALPHA, NOMINAL)]
    return hit[KEY].drop_duplicates()


def recheck_loo(args: argparse.Namespace) -> None:
    """Re-run with leave-one-animal-out the experiments :func:`unjudged` names; replace their rows.

    The seed makes the experiment again, so p-values must come back equal (checked).
    """
    runs = _read(args.runs)
    todo = unjudged(runs[runs["scenario"].isin(args.recheck)])
    print(f"re-running {len(todo)} experiments with leave-one-animal-out", flush=True)
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    new = []
    for method, design, scenario, seed in todo.itertuples(index=False):
        rows = run_one(int(design), scenario, int(seed), genes=args.genes, loo=True,
                       rare_change=args.rare_change, de_method=method)  # fmt: skip
        old = runs[(runs["design"] == design) & (runs["scenario"] == scenario)
                   & (runs["seed"] == seed) & (runs["de_method"] == method)]  # fmt: skip
        if not np.allclose(old["pvalue"], rows["pvalue"], rtol=1e-6, equal_nan=True):
            raise RuntimeError(f"{design}v{design} {scenario} seed {seed}: p-values differ")
        new.append(rows)
    if not new:
        return
    key = KEY
    redone = pd.concat(new, ignore_index=True)
    keep = ~runs.set_index(key).index.isin(redone.set_index(key).index)
    out = pd.concat([runs[keep], redone], ignore_index=True)
    out.to_csv(args.runs, sep="\t", index=False)
    print(f"replaced {len(new)} experiments' rows in {args.runs}")


def _cp(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return np.nan, np.nan
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    return float(ci.low), float(ci.high)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """The table: family-wise error, type-I per hypothesis (null), power (planted), per method.

    ``de_method`` (first column) is the change rows' test; the other kinds do not depend on it.
    """
    parts = [
        _summarise(grp).assign(de_method=method)
        for method, grp in _with_method(runs).groupby("de_method", sort=True)
    ]
    table = pd.concat(parts, ignore_index=True)
    return table[["de_method", *table.columns.drop("de_method")]]


def _summarise(runs: pd.DataFrame) -> pd.DataFrame:
    out = []

    def add(design, scenario, measure, hyp, kind, k, n, tested):
        lo, hi = _cp(k, n)
        out.append(
            {
                "design": f"{design}v{design}",
                "scenario": scenario,
                "measure": measure,
                "hypothesis": hyp,
                "kind": kind,
                "n_experiments": n,
                "n_tested": tested,
                "events": k,
                "rate": k / n if n else np.nan,
                "ci_low": lo,
                "ci_high": hi,
            }
        )

    runs = runs.assign(supported=runs["supported"] & (runs["p_holm"] < ALPHA))  # see ALPHA
    for (design, scenario), grp in runs.groupby(["design", "scenario"], sort=True):
        n = grp["seed"].nunique()
        fam = grp[grp["in_family"]]
        if scenario == "null":
            for measure, level in (("fwer_holm", ALPHA), ("fwer_holm_nominal", NOMINAL)):
                any_holm = (fam["p_holm"] < level).groupby(fam["seed"]).any()
                add(
                    design,
                    scenario,
                    measure,
                    f"family (any Holm p < {level:g})",
                    "",
                    int(any_holm.sum()),
                    n,
                    n,
                )
            any_sup = fam.groupby("seed")["supported"].any()
            open_ = len(unjudged(grp))  # verdicts leave-one-animal-out could still change
            add(
                design,
                scenario,
                "fwer_supported",
                f"family (any 'supported' at {ALPHA:g})"
                + (f" [{open_} experiments unjudged: run --recheck null]" if open_ else ""),
                "",
                int(any_sup.sum()),
                n,
                n,
            )
        labels = list(dict.fromkeys(grp["hypothesis"]))
        for hyp, h in grp.groupby("hypothesis", sort=False):
            kind = h["kind"].iat[0]
            planted = labels.index(hyp) in PLANTED.get(scenario, ())
            tested = int(h["pvalue"].notna().sum())
            if scenario == "null":
                k = int((h["pvalue"] < NOMINAL).sum())
                add(design, scenario, "type1_raw", hyp, kind, k, n, tested)
            elif planted:
                k = int((h["p_holm"] < ALPHA).sum())
                add(design, scenario, "power_holm", hyp, kind, k, n, tested)
                # a supported verdict also needs the direction and leave-one-animal-out
                if kind != "change" or not len(unjudged(h)):
                    k = int(h["supported"].sum())
                    add(design, scenario, "power_supported", hyp, kind, k, n, tested)
    return pd.DataFrame(out)


def figure(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full = table
    if table["de_method"].eq(DE_METHOD).any():  # the configured change test's runs
        table = table[table["de_method"] == DE_METHOD]
    method = table["de_method"].iat[0]
    designs = list(dict.fromkeys(table["design"]))
    x = {d: i for i, d in enumerate(designs)}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    fig.suptitle(f"change rows by {method}", fontsize=9)
    ax = axes[0]
    for j, measure in enumerate(("fwer_holm_nominal", "fwer_holm", "fwer_supported")):
        t = table[table["measure"] == measure]
        xs = [x[d] + 0.1 * (j - 1) for d in t["design"]]
        label = t["hypothesis"].iat[0].split(" [")[0] if len(t) else measure
        ax.errorbar(xs, t["rate"], yerr=[t["rate"] - t["ci_low"], t["ci_high"] - t["rate"]],
                    fmt="o", capsize=3, label=label)  # fmt: skip
        for xi, (_, r) in zip(xs, t.iterrows(), strict=True) if j == 0 else ():
            ax.annotate(f"n={r['n_experiments']}", (xi, r["ci_high"]), fontsize=7, ha="center",
                        va="bottom")  # fmt: skip
    ax.axhline(NOMINAL, color="grey", ls="--", lw=1)
    ax.set(title="family-wise error (null), 95% Clopper-Pearson", ylabel="rate")
    ax.legend(fontsize=8)
    ax = axes[1]
    t = table[table["measure"] == "type1_raw"]
    hyps = list(dict.fromkeys(t["hypothesis"]))
    for j, hyp in enumerate(hyps):
        h = t[t["hypothesis"] == hyp]
        xs = [x[d] + 0.08 * (j - len(hyps) / 2) for d in h["design"]]
        ax.errorbar(xs, h["rate"], yerr=[h["rate"] - h["ci_low"], h["ci_high"] - h["rate"]],
                    fmt="o", ms=4, capsize=2, label=hyp)  # fmt: skip
    ax.axhline(NOMINAL, color="grey", ls="--", lw=1)
    ax.set(title="type-I error per hypothesis (raw p < 0.05)", ylabel="rate")
    ax.legend(fontsize=6)
    ax = axes[2]
    t = full[full["measure"] == "power_holm"]  # the planted runs: whichever method ran them
    for (method, scenario, hyp), h in t.groupby(["de_method", "scenario", "hypothesis"],
                                                sort=False):  # fmt: skip
        ax.plot([x[d] for d in h["design"]], h["rate"], marker="o",
                ls="-" if scenario == "high" else ":",
                label=f"{scenario}: {hyp} ({method})")  # fmt: skip
    ax.set(title=f"power, Holm p < {ALPHA:g} (m = 5)\n"
           "low: Mmp11 x2, TAM x1.5; high: x4, x2; source x2",
           ylabel="power", ylim=(0, 1.02))  # fmt: skip
    ax.legend(fontsize=6)
    for ax in axes:
        ax.set_xticks(range(len(designs)), designs)
        ax.set_xlabel("animals per arm")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", type=int, nargs="+", default=[2, 3, 4, 6])
    ap.add_argument("--null", type=int, default=2000, help="null experiments per design")
    ap.add_argument("--power", type=int, default=200, help="experiments per planted scenario")
    ap.add_argument("--budget-s", type=float, default=0, help="stop after this (0: no limit)")
    ap.add_argument("--genes", type=int, default=150)
    ap.add_argument("--no-loo", action="store_true")
    ap.add_argument(
        "--de-method",
        default=DE_METHOD,
        choices=["limma_voom", "pydeseq2"],
        help="the change rows' test (default: the config's hypotheses_de_method)",
    )
    ap.add_argument("--rare-change", action="store_true", help="add Mmp11 in pericytes")
    ap.add_argument("--runs", type=Path, default=RUNS)
    ap.add_argument(
        "--recheck",
        nargs="+",
        choices=list(SCENARIOS),
        default=None,
        help="re-run with leave-one-animal-out the experiments of these scenarios whose change "
        "row passed Holm without it (their verdicts were left inconclusive)",
    )
    ap.add_argument("--summarise", action="store_true", help="write the table and the figure")
    ap.add_argument(
        "--from-k",
        type=int,
        default=0,
        help="simulating: start the null experiments at k = K (fresh seeds); with --summarise: "
        "print (not write) the summary of experiments k >= K only",
    )
    args = ap.parse_args(argv)
    if args.recheck:
        recheck_loo(args)
        return
    if not args.summarise:
        simulate(args)
        return
    runs = _read(args.runs)
    if args.from_k:  # experiments k >= K only (seed = 1e6 design + 1e4 scenario + k)
        runs = runs[runs["seed"] % 10_000 >= args.from_k]
        with pd.option_context("display.width", 200, "display.max_rows", 200):
            print(summarise(runs).drop(columns=["kind"]).to_string(index=False))
        return
    table = summarise(runs)
    table.to_csv(TABLE, sep="\t", index=False, float_format="%.4g")
    figure(table, FIGURE)
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(table.drop(columns=["kind"]).to_string(index=False))


if __name__ == "__main__":
    main()

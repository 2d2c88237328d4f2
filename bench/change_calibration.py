"""The ``change`` kind alone under each pseudobulk test: type-I error and power, same experiments.

The confirmatory calibration (``bench/confirmatory_calibration.py``) found PyDESeq2's Wald test
mildly liberal at 4-6 animals per arm. This bench re-makes the very same simulated experiments
(same seeds, :func:`bench.confirmatory_calibration.experiment_seed`) and tests only the family's
change hypothesis (Mmp11 up in CAF) with each ``--methods`` entry
(:func:`tmeflow.stats.confirm`'s ``de_method``: ``pydeseq2``, ``limma_voom``), one-sided,
``shrink=False``, without leave-one-animal-out (p-values only). Rows go to ``--runs``
(resumable). ``--summarise`` writes ``bench/change_calibration.tsv``: per design and method the
raw type-I error at 0.05 (null) and the power at raw 0.05 and within the family (Holm at the
default ``hypotheses_alpha`` over m = 5, the other four kinds' p-values read from the
confirmatory runs of the same seeds), and the family-wise error with that method's change row.
Not a test; run it niced on one core::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/change_calibration.py --methods limma_voom
    .venv/bin/python bench/change_calibration.py --summarise
"""

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "workflow/scripts"), str(REPO)]

from bench import confirmatory_calibration as cal  # noqa: E402
from tests.unit._confirm_data import REF, TEST, tumour_experiment  # noqa: E402
from tmeflow.stats import _confirmatory as confirmatory  # noqa: E402

RUNS = REPO / "bench" / "change_calibration_runs.tsv"
TABLE = REPO / "bench" / "change_calibration.tsv"
GENOME_WIDE = REPO / "bench" / "change_calibration_genomewide.tsv"
#: The family's change hypothesis (its label names it in the confirmatory runs).
CHANGE = cal.FAMILY[0]


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])  # "null": a scenario


def _unstable(stable: object) -> bool:
    """A ``loo_sign_stable`` value read as a verdict: only False counts against (NA: none)."""
    return stable is not pd.NA and stable is not None and not bool(stable)


def run_one(
    design: int, scenario: str, seed: int, methods: list[str], genes: int, loo: bool = False
) -> pd.DataFrame:
    """One experiment's change row under each method: p, effect, leave-one-out stability."""
    hyps = confirmatory.parse_hypotheses([CHANGE])
    adata = tumour_experiment(
        animals_per_arm=design, n_genes=genes, seed=seed, **cal.SCENARIOS[scenario]
    )
    kw = {"reference": REF, "test": TEST, "alpha": cal.ALPHA, "loo": loo, "shrink": False}
    rows = []
    for method in methods:
        t0 = time.process_time()
        res, _ = confirmatory.confirm(adata, hyps, de_method=method, **kw)
        rows.append(
            {
                "design": design,
                "scenario": scenario,
                "seed": seed,
                "method": method,
                "pvalue": float(res["pvalue"].iat[0]),
                "effect": float(res["effect_unshrunk"].iat[0]),
                "loo": loo,
                # False: a computable left-out estimate flips the sign (NA: none computable)
                "loo_unstable": _unstable(res["loo_sign_stable"].iat[0]) if loo else pd.NA,
                "cpu_s": round(time.process_time() - t0, 3),
            }
        )
    return pd.DataFrame(rows)


def simulate(args: argparse.Namespace) -> None:
    done = set()
    if args.runs.exists():
        old = _read(args.runs)[["design", "scenario", "seed", "method"]]
        done = set(map(tuple, old.itertuples(index=False)))
    start, n_run = time.time(), 0
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    for k in range(max(args.null, args.power)):
        for design in args.designs:
            for scenario in cal.SCENARIOS:
                if k >= (args.null if scenario == "null" else args.power):
                    continue
                seed = cal.experiment_seed(design, scenario, k)
                todo = [m for m in args.methods if (design, scenario, seed, m) not in done]
                if not todo:
                    continue
                rows = run_one(design, scenario, seed, todo, args.genes)
                rows.to_csv(
                    args.runs, sep="\t", index=False, mode="a", header=not args.runs.exists()
                )
                n_run += 1
        if (k + 1) % 100 == 0:
            print(f"round {k + 1}: {n_run} experiments, {time.time() - start:.0f} s", flush=True)
    print(f"done: {n_run} experiments in {time.time() - start:.0f} s")


def recheck(args: argparse.Namespace) -> None:
    """Re-run with leave-one-animal-out the rows run without it whose raw p < 0.05.

    Only they can be supported (Holm p >= raw p). The seed makes the experiment again, so the
    p-value must come back equal (checked); the rows are replaced.
    """
    runs = _read(args.runs)
    done = cal.flag(runs["loo"]) if "loo" in runs else pd.Series(False, index=runs.index)
    todo = runs[~done & (runs["pvalue"] < cal.NOMINAL)]
    print(f"re-running {len(todo)} rows with leave-one-animal-out", flush=True)
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    new = []
    for r in todo.itertuples(index=False):
        row = run_one(int(r.design), r.scenario, int(r.seed), [r.method], args.genes, loo=True)
        if not np.isclose(row["pvalue"].iat[0], r.pvalue, rtol=1e-6):
            raise RuntimeError(f"{r.design}v{r.design} {r.scenario} {r.seed}: p-values differ")
        new.append(row)
    if new:
        runs = pd.concat([runs.drop(index=todo.index), *new], ignore_index=True)
        runs.to_csv(args.runs, sep="\t", index=False)


def genome_wide(designs: list[int], n: int, methods: list[str], genes: int) -> pd.DataFrame:
    """Every null gene of the CAF pseudobulk at once: two-sided type-I at 0.05 and 0.01.

    The first ``n`` null experiments of each design; Mmp11, Postn and Gas6 (planted structure)
    are left out, ~147 genes an experiment. The genes of one experiment share its size
    factors and dispersion trend, so they are not independent: a check of the test's null
    distribution beside the one-gene table, not a replacement for it.
    """
    from tmeflow.stats._de import DESettings

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    rows = []
    for design in designs:
        for k in range(n):
            seed = cal.experiment_seed(design, "null", k)
            adata = tumour_experiment(animals_per_arm=design, n_genes=genes, seed=seed)
            caf = adata[adata.obs["cell_type"] == "CAF"].copy()
            for method in methods:
                de = DESettings(condition_key="condition", reference=REF, test=TEST,
                                threads=1, method=method)  # fmt: skip
                t = de.run(caf, group_key="cell_type", groups=["CAF"], shrink=False)["CAF"]
                t = t[t["gene"].astype(str).str.match(r"G\d")]
                rows.append(pd.DataFrame({"design": design, "method": method, "seed": seed,
                                          "pvalue": t["pvalue"].to_numpy(float),
                                          "stat": t["stat"].to_numpy(float)}))  # fmt: skip
    runs = pd.concat(rows, ignore_index=True)
    out = []
    for (design, method), g in runs.groupby(["design", "method"]):
        p = g["pvalue"].dropna()
        rec = {"design": f"{design}v{design}", "method": method,
               "n_experiments": g["seed"].nunique(), "n_tests": len(p),
               "stat_var": float(g["stat"].var())}  # fmt: skip
        for level in (0.05, 0.01):
            rec[f"type1_{level:g}"] = float((p < level).mean())
        out.append(rec)
    return pd.DataFrame(out)


def summarise(runs: pd.DataFrame, family: pd.DataFrame) -> pd.DataFrame:
    """Per design, scenario and method: raw type-I or power; Holm power and FWER in the family.

    ``family``: the confirmatory runs as :func:`bench.confirmatory_calibration._read` gives
    them (a ``de_method`` column).
    """
    label = confirmatory.parse_hypotheses([CHANGE])[0].label
    fam = family[family["in_family"]]
    others = fam[fam["hypothesis"] != label]
    # the confirmatory runs' own change rows, under the method they ran with
    theirs = fam[fam["hypothesis"] == label].rename(columns={"de_method": "method"})
    key = ["design", "scenario", "seed"]
    # this bench's rows take precedence (they carry the leave-one-out check)
    runs = pd.concat([runs, theirs[[*key, "method", "pvalue"]]], ignore_index=True)
    runs = runs.drop_duplicates([*key, "method"], keep="first")
    runs = runs.assign(loo=cal.flag(runs["loo"]), loo_unstable=cal.flag(runs["loo_unstable"]))
    out = []

    def add(base: dict, measure: str, k: int, n: int, n_experiments: int | None = None) -> None:
        lo, hi = cal._cp(k, n)
        out.append({**base, "n_experiments": n if n_experiments is None else n_experiments,
                    "n_tested": n, "measure": measure, "events": k,
                    "rate": k / n if n else np.nan, "ci_low": lo, "ci_high": hi})  # fmt: skip

    for (design, scenario, method), grp in runs.groupby(["design", "scenario", "method"]):
        base = {"design": f"{design}v{design}", "scenario": scenario, "method": method}
        mine = grp.set_index("seed")
        p = mine["pvalue"]
        n = int(p.notna().sum())
        raw = "type1_raw" if scenario == "null" else "power_raw"
        add(base, raw, int((p < cal.NOMINAL).sum()), n, len(p))
        if scenario == "null":  # near the first step of Holm's ladder (alpha / m = 0.008)
            add(base, "type1_raw_0.01", int((p < 0.01).sum()), n, len(p))
        # the four other kinds' p-values of the same experiments (m = 5 with this change row)
        rest = others[(others["design"] == design) & (others["scenario"] == scenario)]
        rest = rest[rest["seed"].isin(p.index)]
        holm_change, any_holm, supported = [], [], []
        for seed, r in rest.groupby("seed"):
            adj = confirmatory.holm(
                np.concatenate([[p[seed]], r["pvalue"].to_numpy(float)]), m=len(cal.FAMILY)
            )
            holm_change.append(adj[0] < cal.ALPHA)
            any_holm.append(bool(np.nanmin(adj) < cal.ALPHA))
            # supported: Holm, the stated direction (up) and no left-out estimate flipping the
            # sign; None where leave-one-animal-out was not run on a row that passed Holm
            rec = mine.loc[seed]
            if holm_change[-1] and not rec["loo"]:
                supported.append(None)
            else:
                supported.append(
                    bool(holm_change[-1] and rec["effect"] > 0 and not rec["loo_unstable"])
                )
        if not holm_change:
            continue
        if scenario == "null":
            add(base, "fwer_holm", int(np.sum(any_holm)), len(any_holm))
            continue
        add(base, "power_holm", int(np.sum(holm_change)), len(holm_change))
        if None not in supported:  # every verdict judged
            add(base, "power_supported", int(np.sum(supported)), len(supported))
    return pd.DataFrame(out).sort_values(["measure", "scenario", "design", "method"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", type=int, nargs="+", default=[2, 3, 4, 6])
    ap.add_argument("--null", type=int, default=2000, help="null experiments per design")
    ap.add_argument("--power", type=int, default=200, help="experiments per planted scenario")
    ap.add_argument("--methods", nargs="+", default=[confirmatory.METHOD_PYDESEQ2, "limma_voom"])
    ap.add_argument("--genes", type=int, default=150)
    ap.add_argument("--runs", type=Path, default=RUNS)
    ap.add_argument("--summarise", action="store_true")
    ap.add_argument("--genome-wide", type=int, default=0, metavar="N",
                    help="write the genome-wide null check of N experiments a design")  # fmt: skip
    ap.add_argument("--recheck", action="store_true",
                    help="re-run with leave-one-animal-out the rows with raw p < 0.05")  # fmt: skip
    args = ap.parse_args(argv)
    if args.recheck:
        recheck(args)
        return
    if args.genome_wide:
        table = genome_wide(args.designs, args.genome_wide, args.methods, args.genes)
        table.to_csv(GENOME_WIDE, sep="\t", index=False, float_format="%.4g")
        print(table.to_string(index=False))
        return
    if args.summarise:
        table = summarise(_read(args.runs), cal._read(cal.RUNS))
        table.to_csv(TABLE, sep="\t", index=False, float_format="%.4g")
        print(table.to_string(index=False))
        return
    simulate(args)


if __name__ == "__main__":
    main()

"""Cell-type composition per animal and a replicate-aware test of its change under treatment.

The unit is the animal: each sample contributes one proportion per cell type, and the test
compares those proportions between arms. Cells are never treated as replicates.

Method (``method="logit_lm"``, the default): per cell type, the empirical logit of each
sample's proportion, ``log((k + 0.5) / (n - k + 0.5))`` for ``k`` cells of the type among
``n``, is regressed on the condition (ordinary least squares with one binary factor, which is
Student's pooled-variance two-sample t-test). ``effect`` is the test-minus-reference
difference in mean logit, with a 95% t interval on ``n_reference + n_test - 2`` degrees of
freedom; p-values are adjusted across cell types with Benjamini-Hochberg.
``method="arcsine_lm"`` does the same on ``arcsin(sqrt(k / n))``. Proportions are
compositional (one type's rise lowers the others), so a single strongly changed type can make
the others look changed; read the effects together with ``fraction_reference/test``.

Calibration and closure. With animals as replicates the per-type test is calibrated: in a
Monte Carlo of the demo's design (3 + 3 animals, Dirichlet(300 x expected fractions) per
animal, ~1300 cells each, TAM and tumour changed, 7 types unchanged) the unchanged types had
p < 0.05 in 4.9% of tests and padj < 0.05 in 1.5%, but 9% of experiments called at least one
unchanged type (``tests/unit/stats/test_composition.py`` repeats this). Benjamini-Hochberg bounds
the expected share of false calls, not each call, so every significant row carries a note
saying so. On the default demo (seed 0) neutrophils come out lower under treatment
(padj ~0.02) although the planted expected fraction is 0.06 in both arms: the simulated
animals themselves differ (pre-QC truth 0.073 vs 0.039, a draw of the per-animal Dirichlet),
so this is a genuine type I error of a per-type test on six animals, not a QC or closure
artefact (closure cannot explain it: the simulator sets every fraction directly).
"""

import logging
from collections.abc import Callable
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats

from tmeflow._utils import adjust_pvalues, observed_levels
from tmeflow.stats._ebayes import squeeze_var

logger = logging.getLogger(__name__)

PROPORTION_COLUMNS: list[str] = ["sample", "condition", "cell_type", "n_cells", "fraction"]

COMPOSITION_COLUMNS: list[str] = [
    "cell_type",
    "effect",
    "ci_low",
    "ci_high",
    "pvalue",
    "padj",
    "fraction_reference",
    "fraction_test",
    "log2_ratio",
    "method",
    "n_samples_reference",
    "n_samples_test",
    "note",
]

METHODS = ("logit_lm", "arcsine_lm")
DESCRIPTIVE = "descriptive_only"


def proportions(
    adata: AnnData,
    *,
    group_key: str = "cell_type",
    sample_key: str = "sample",
    condition_key: str = "condition",
) -> pd.DataFrame:
    """Count cells of each type in each sample.

    Parameters
    ----------
    adata
        Annotated object; only ``obs`` is read.
    group_key, sample_key, condition_key
        ``obs`` columns; the condition must be constant within a sample.

    Returns
    -------
    pandas.DataFrame
        Columns ``sample``, ``condition``, ``cell_type`` (whatever ``group_key``), ``n_cells``,
        ``fraction``; one row for every sample x observed type, zeros included, ordered by
        sample then type (categorical order where categorical, else sorted). Fractions sum
        to 1 within each sample.
    """
    obs = adata.obs
    missing = [k for k in (group_key, sample_key, condition_key) if k not in obs.columns]
    if missing:
        msg = f"obs lacks column(s) {missing}; available: {list(obs.columns)}"
        raise KeyError(msg)
    samples = observed_levels(obs[sample_key])
    types = observed_levels(obs[group_key])
    s = obs[sample_key].astype(str)
    per_sample_cond = obs[condition_key].astype(str).groupby(s, observed=True).nunique()
    bad = per_sample_cond[per_sample_cond > 1]
    if len(bad):
        msg = (
            f"samples {list(bad.index)} have more than one {condition_key!r}; "
            "the condition must be a sample-level (per-animal) column"
        )
        raise ValueError(msg)
    cond = obs[condition_key].astype(str).groupby(s, observed=True).first()
    table = pd.crosstab(
        pd.Categorical(s, categories=samples),
        pd.Categorical(obs[group_key].astype(str), categories=types),
        dropna=False,
    )
    table = table.reindex(index=samples, columns=types, fill_value=0)
    table.index.name, table.columns.name = "sample", None
    long = table.reset_index().melt(id_vars="sample", var_name="cell_type", value_name="n_cells")
    long = long.sort_values(["sample", "cell_type"], key=_sorter(samples, types), kind="mergesort")
    long["n_cells"] = long["n_cells"].astype(np.int64)
    totals = long.groupby("sample", sort=False)["n_cells"].transform("sum")
    long["fraction"] = long["n_cells"] / totals
    long["condition"] = cond.reindex(long["sample"]).to_numpy()
    long["sample"] = long["sample"].astype(str)
    long["cell_type"] = long["cell_type"].astype(str)
    return long[PROPORTION_COLUMNS].reset_index(drop=True)


def _sorter(samples: list[str], types: list[str]) -> Callable[[pd.Series], pd.Series]:
    """Sort key putting samples and types in their level order."""
    rank = {
        "sample": {v: i for i, v in enumerate(samples)},
        "cell_type": {v: i for i, v in enumerate(types)},
    }
    return lambda s: s.map(rank[s.name])


def _transform(k: np.ndarray, n: np.ndarray, method: str) -> np.ndarray:
    if method == "logit_lm":
        return np.log((k + 0.5) / (n - k + 0.5))
    return np.arcsin(np.sqrt(k / n))


def compare_proportions(
    props: pd.DataFrame,
    *,
    reference: str,
    test: str,
    method: Literal["logit_lm", "arcsine_lm"] = "logit_lm",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Test each cell type's per-sample proportion between two conditions.

    See the module docstring for the model. With fewer than 2 samples in an arm, the rows
    are descriptive (means and log2 ratio only): NaN statistics, ``method="descriptive_only"``
    and a note. An arm without any sample (a one-condition design) is allowed: its mean
    fraction and the log2 ratio are NaN and the note says there is nothing to compare; only
    props with neither level raise.

    Parameters
    ----------
    props
        Output of :func:`proportions`.
    reference, test
        Levels of ``props["condition"]``; positive effects mean more of the type in ``test``.
    method
        ``"logit_lm"`` (empirical logit) or ``"arcsine_lm"`` (arcsine square root).
    alpha
        Rows with ``padj < alpha`` get a note on closure and on what the FDR controls.

    Returns
    -------
    pandas.DataFrame
        One row per cell type (order of ``props``), columns :data:`COMPOSITION_COLUMNS`:
        ``effect`` (test - reference on the transformed scale) with its 95% ``ci_low`` /
        ``ci_high``, ``pvalue``, ``padj`` (BH over the tested types), ``fraction_reference``
        / ``fraction_test`` (mean per-sample fractions), ``log2_ratio`` of those means (NaN
        when either is 0), ``method``, sample counts and ``note``. Every NaN statistic has
        its reason in ``note``: too few samples (descriptive rows), no variation between
        samples (not tested) or a type with no cells in an arm (log2 ratio undefined).
    """
    _check_props(props, reference=reference, test=test, method=method)
    df, n_ref, n_test, absent = _arms(props, reference=reference, test=test)
    descriptive = n_ref < 2 or n_test < 2
    rows = []
    for cell_type in dict.fromkeys(df["cell_type"].astype(str)):
        sub = df[df["cell_type"].astype(str) == cell_type]
        row = _describe_type(sub, cell_type, test=test, method=method)
        if descriptive:
            row["method"] = DESCRIPTIVE
            row["note"] = _descriptive_note(absent, reference, test, n_ref, n_test)
        else:
            _test_type(row, sub, reference=reference, test=test, method=method)
        _note_absence(row, reference, test)
        rows.append(row)
    out = pd.DataFrame(rows, columns=[c for c in COMPOSITION_COLUMNS if c != "padj"])
    return _adjust(out, alpha=alpha)[COMPOSITION_COLUMNS].reset_index(drop=True)


def _check_props(props: pd.DataFrame, *, reference: str, test: str, method: str) -> None:
    """Refuse an unknown method, missing columns, or props holding neither contrast level."""
    if method not in METHODS:
        msg = f"method={method!r} is not one of {METHODS}"
        raise ValueError(msg)
    missing = [c for c in PROPORTION_COLUMNS if c not in props.columns]
    if missing:
        msg = f"props lacks column(s) {missing}; pass the output of composition.proportions"
        raise KeyError(msg)
    conds = set(props["condition"].astype(str))
    if reference not in conds and test not in conds:
        msg = (
            f"neither contrast level ({reference!r}, {test!r}) is in props['condition'] "
            f"(levels: {sorted(conds)}); check the contrast in the config"
        )
        raise ValueError(msg)


def _arms(
    props: pd.DataFrame, *, reference: str, test: str
) -> tuple[pd.DataFrame, int, int, list[str]]:
    """Rows of the two arms (samples with cells), samples per arm, and the arms with none.

    Logs why the comparison is descriptive only, when it is.
    """
    conds = set(props["condition"].astype(str))
    absent = [level for level in (reference, test) if level not in conds]
    df = props[props["condition"].astype(str).isin([reference, test])].copy()
    df["_total"] = df.groupby("sample", sort=False)["n_cells"].transform("sum")
    df = df[df["_total"] > 0]
    samples_by_arm = df.groupby("condition", sort=False)["sample"].nunique()
    n_ref = int(samples_by_arm.get(reference, 0))
    n_test = int(samples_by_arm.get(test, 0))
    if absent:
        logger.warning(
            "composition %s vs %s: no sample of %s: nothing to compare, reporting the "
            "fractions of the other arm only",
            test,
            reference,
            " or ".join(repr(level) for level in absent),
        )
    elif n_ref < 2 or n_test < 2:
        logger.warning(
            "composition %s vs %s: %d and %d samples; at least 2 per arm are needed for a "
            "test, reporting descriptive fractions only",
            test,
            reference,
            n_ref,
            n_test,
        )
    return df, n_ref, n_test, absent


def _describe_type(
    sub: pd.DataFrame, cell_type: str, *, test: str, method: str
) -> dict[str, object]:
    """One type's row before testing: mean fractions per arm and their log2 ratio."""
    is_test = (sub["condition"].astype(str) == test).to_numpy()
    frac = sub["fraction"].to_numpy(float)
    # an arm without samples (one-condition design) has no mean fraction
    f_ref = float(frac[~is_test].mean()) if (~is_test).any() else np.nan
    f_test = float(frac[is_test].mean()) if is_test.any() else np.nan
    return {
        "cell_type": cell_type,
        "effect": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "pvalue": np.nan,
        "fraction_reference": f_ref,
        "fraction_test": f_test,
        "log2_ratio": float(np.log2(f_test / f_ref)) if f_ref > 0 and f_test > 0 else np.nan,
        "method": method,
        "n_samples_reference": int((~is_test).sum()),
        "n_samples_test": int(is_test.sum()),
        "note": "",
    }


def _descriptive_note(absent: list[str], reference: str, test: str, n_ref: int, n_test: int) -> str:
    """Why a row is descriptive only: an arm without samples, or too few samples."""
    if absent:
        return "descriptive only: " + "; ".join(
            f"condition {lv!r} has no samples: nothing to compare" for lv in absent
        )
    return (
        f"descriptive only: {n_ref} {reference!r} and {n_test} {test!r} samples "
        "(at least 2 per arm needed for a test)"
    )


def _test_type(
    row: dict[str, object], sub: pd.DataFrame, *, reference: str, test: str, method: str
) -> None:
    """Fill ``row`` with the pooled-variance t-test of the transformed proportions."""
    is_test = (sub["condition"].astype(str) == test).to_numpy()
    y = _transform(sub["n_cells"].to_numpy(float), sub["_total"].to_numpy(float), method)
    y_ref, y_test = y[~is_test], y[is_test]
    n1, n2 = y_ref.size, y_test.size
    dof = n1 + n2 - 2
    effect = float(y_test.mean() - y_ref.mean())
    pooled = (((y_ref - y_ref.mean()) ** 2).sum() + ((y_test - y_test.mean()) ** 2).sum()) / dof
    se = float(np.sqrt(pooled * (1 / n1 + 1 / n2)))
    row["effect"] = effect
    if se > 0:
        t_crit = float(stats.t.ppf(0.975, dof))
        row["ci_low"] = effect - t_crit * se
        row["ci_high"] = effect + t_crit * se
        row["pvalue"] = float(2 * stats.t.sf(abs(effect / se), dof))
        return
    row["note"] = "no variation between samples; not tested"
    logger.warning(
        "composition %s vs %s: cell type %r has the same transformed proportion in "
        "every sample of each arm; not tested",
        test,
        reference,
        row["cell_type"],
    )


def _adjust(out: pd.DataFrame, *, alpha: float) -> pd.DataFrame:
    """Add BH ``padj`` over the tested types and the closure note on significant rows."""
    out["padj"] = np.nan
    tested = out["pvalue"].notna()
    if tested.any():
        out.loc[tested, "padj"] = adjust_pvalues(out.loc[tested, "pvalue"], "fdr_bh")
    sig = out["padj"] < alpha
    if sig.any():
        sig_note = (
            f"padj < {alpha:g}: per-type test of closed proportions; a change of another type "
            "shifts this one, and BH bounds the expected share of false calls among the "
            f"{int(sig.sum())} significant type(s), not each call"
        )
        # keep a note already there (a type absent from an arm) in front of this one
        out.loc[sig, "note"] = [f"{n}; {sig_note}" if n else sig_note for n in out.loc[sig, "note"]]
    return out


def _note_absence(row: dict[str, object], reference: str, test: str) -> None:
    """Say why ``log2_ratio`` is NaN when the type has no cells in an arm (and warn).

    Only rows with a mean fraction of exactly 0 in an arm are touched; the note is appended
    to any note already there.
    """
    absent = [
        level
        for level, key in ((reference, "fraction_reference"), (test, "fraction_test"))
        if row[key] == 0
    ]
    if not absent:
        return
    where = " or ".join(repr(level) for level in absent)
    note = f"no cells of this type in any {where} sample: log2 ratio undefined"
    logger.warning(
        "composition %s vs %s: cell type %r has no cells in any %s sample; log2_ratio is NaN "
        "(the logit test, if run, still compares the arms with its +0.5 correction)",
        test,
        reference,
        row["cell_type"],
        where,
    )
    row["note"] = f"{row['note']}; {note}" if row["note"] else note


# --- propeller: proportions among a denominator, variance shared across types ----------------

#: Columns of :func:`propeller` and :func:`compare_denominators` (the latter adds
#: ``denominator`` first).
PROPELLER_COLUMNS: list[str] = [
    *COMPOSITION_COLUMNS,
    "stat",
    "df",
    "loo_min",
    "loo_max",
    "loo_sign_stable",
]
PROPELLER = "propeller_logit"
#: propeller's default empirical Bayes: an abundance trend, not robust (speckle's defaults are
#: the reverse). Measured in bench/propeller_calibration.tsv (500 null experiments per design,
#: demo-like Dirichlet animals): without the trend, rare types (expected share <= 4%) have
#: p < 0.05 in 8.3% (3v3) to 10.8% (2v2) of null tests, with it 5.0% and 5.6%, all types
#: 5-6.5% either way; robust is the plain fit below 10 types, and with 12 types robust +
#: trend called at least one type (padj < 0.05) in 21% of null 3v3 experiments (6% without).
PROPELLER_ROBUST = False
PROPELLER_TREND = True

#: Immune cell-type labels of the shipped panel (the denominator ``immune``).
IMMUNE_TYPES: tuple[str, ...] = ("TAM", "monocyte", "neutrophil", "NK", "B", "T", "DC")


def _propeller_logit(wide: pd.DataFrame) -> pd.DataFrame:
    """Propeller's logit transform: ``(k + 0.5) / sum(k + 0.5)`` per sample, then logit."""
    pseudo = wide + 0.5
    p = pseudo.div(pseudo.sum(axis=1), axis=0)
    return np.log(p / (1 - p))


def propeller(
    props: pd.DataFrame,
    *,
    reference: str,
    test: str,
    alpha: float = 0.05,
    robust: bool = PROPELLER_ROBUST,
    trend: bool = PROPELLER_TREND,
) -> pd.DataFrame:
    """Test each type's proportion between arms, sharing variance across types (propeller).

    The method of speckle's ``propeller`` with ``transform="logit"`` (Phipson et al. 2022,
    Bioinformatics 38:4720, doi:10.1093/bioinformatics/btac582): per sample, counts + 0.5
    are turned into proportions and logit-transformed; per type, a linear model on the
    condition gives the difference in mean logit (``effect``) and a residual variance; the
    variances are squeezed towards a common prior (:func:`squeeze_var`, limma's empirical
    Bayes, as speckle's ``eBayes(robust=, trend=)`` call), and the moderated t (``stat``, on
    ``df = n - 2 + d0`` degrees of freedom, at most the pooled ``n_types * (n - 2)`` as in
    limma's ``eBayes``) gives ``pvalue`` and the 95% interval; ``padj`` is BH over types.
    Few animals make single types' variances unreliable; borrowing across types is what
    makes 3 vs 3 usable.
    ``loo_min`` / ``loo_max`` are the effect with each animal left out in turn and
    ``loo_sign_stable`` says whether every one keeps the full effect's sign.

    Parameters
    ----------
    props
        Output of :func:`proportions` (any denominator).
    reference, test
        Levels of ``props["condition"]``.
    alpha
        Threshold of the note on significant rows.
    robust
        Robust empirical Bayes (limma's ``robust=TRUE``, speckle's default; off by default
        here, see :data:`PROPELLER_ROBUST`): a type whose
        variance is an outlier gets a smaller prior df instead of inflating everyone's
        prior. With fewer than 10 types it is the plain fit (limma's Winsorized tails hold
        no type), so it changes nothing for most denominators.
    trend
        Let the prior variance follow each type's mean logit (limma's ``trend=TRUE``; on by
        default here, speckle's default is ``False``): rare types' logits vary more, and
        without the trend their tests are anti-conservative. See :data:`PROPELLER_ROBUST`
        for the measurements behind both defaults.

    Returns
    -------
    pandas.DataFrame
        One row per type, columns :data:`PROPELLER_COLUMNS`; with fewer than 2 animals per
        arm the rows are descriptive (``method="descriptive_only"``, a note, NaN tests).
    """
    _check_props(props, reference=reference, test=test, method="logit_lm")
    df, n_ref, n_test, absent = _arms(props, reference=reference, test=test)
    types = list(dict.fromkeys(df["cell_type"].astype(str)))
    rows = [
        _describe_type(df[df["cell_type"].astype(str) == t], t, test=test, method=PROPELLER)
        for t in types
    ]
    out = pd.DataFrame(rows)
    for col in ("stat", "df", "loo_min", "loo_max"):
        out[col] = np.nan
    out["loo_sign_stable"] = pd.array([pd.NA] * len(out), dtype="boolean")
    if n_ref < 2 or n_test < 2:
        out["method"] = DESCRIPTIVE
        out["note"] = _descriptive_note(absent, reference, test, n_ref, n_test)
    else:
        wide = df.pivot_table(index="sample", columns="cell_type", values="n_cells", aggfunc="sum")
        wide = wide.reindex(columns=types).fillna(0.0)
        cond = df.groupby("sample")["condition"].first().astype(str).reindex(wide.index)
        _moderated(
            out, _propeller_logit(wide), (cond == test).to_numpy(), robust=robust, trend=trend
        )
    for row in range(len(out)):
        rec = out.iloc[row].to_dict()
        _note_absence(rec, reference, test)
        out.loc[out.index[row], "note"] = rec["note"]
    out = _adjust(out, alpha=alpha)
    return out[PROPELLER_COLUMNS].reset_index(drop=True)


def _moderated(
    out: pd.DataFrame, y: pd.DataFrame, is_test: np.ndarray, *, robust: bool, trend: bool
) -> None:
    """Fill effect, moderated t, p, interval and leave-one-out columns of ``out`` in place."""
    n = len(is_test)
    dof = n - 2
    y_ref, y_test = y[~is_test], y[is_test]
    effect = (y_test.mean() - y_ref.mean()).to_numpy(float)
    rss = ((y_ref - y_ref.mean()) ** 2).sum() + ((y_test - y_test.mean()) ** 2).sum()
    s2 = (rss / dof).to_numpy(float)
    covariate = y.mean().to_numpy(float) if trend else None  # limma's Amean
    post, d0, _ = squeeze_var(s2, dof, covariate=covariate, robust=robust)
    # limma's eBayes: residual + prior df, at most the df pooled over the types
    df_total = np.minimum(dof + np.asarray(d0, float), dof * len(s2)) * np.ones_like(s2)
    se = np.sqrt(post * (1 / (~is_test).sum() + 1 / is_test.sum()))
    with np.errstate(divide="ignore", invalid="ignore"):
        t_stat = effect / se
    t_crit = stats.t.ppf(0.975, df_total)
    out["effect"] = effect
    out["stat"] = t_stat
    out["df"] = df_total
    out["pvalue"] = 2 * stats.t.sf(np.abs(t_stat), df_total)
    out["ci_low"] = effect - t_crit * se
    out["ci_high"] = effect + t_crit * se
    loo = []
    for drop in range(n):
        keep = np.arange(n) != drop
        yk, tk = y[keep], is_test[keep]
        loo.append((yk[tk].mean() - yk[~tk].mean()).to_numpy(float))
    loo_arr = np.vstack(loo)
    out["loo_min"] = loo_arr.min(axis=0)
    out["loo_max"] = loo_arr.max(axis=0)
    out["loo_sign_stable"] = pd.array(
        (np.sign(loo_arr) == np.sign(effect)[None, :]).all(axis=0) & (effect != 0),
        dtype="boolean",
    )


def denominator_proportions(
    adata: AnnData,
    *,
    condition_key: str = "condition",
    sample_key: str = "sample",
    immune_types: tuple[str, ...] | list[str] = IMMUNE_TYPES,
) -> dict[str, pd.DataFrame]:
    """Per-animal proportions among several denominators, as :func:`proportions` tables.

    ``all`` (every cell), ``stroma`` (``obs["species"] == "mouse"``: the host cells of a
    xenograft; absent without ``obs["species"]``), ``immune`` (cell types in
    ``immune_types``) and, for every cell type split into subtypes (``cell_subtype`` differs
    from ``cell_type``), ``within_<type>``: its subtypes among its own cells. A drug that
    kills tumour cells raises every stromal type's share of all cells; among the stroma only
    a real change of that type moves its share. A denominator without cells is left out and
    logged.
    """
    obs = adata.obs
    masks: dict[str, tuple[np.ndarray, str]] = {"all": (np.ones(adata.n_obs, bool), "cell_type")}
    if "species" in obs.columns:
        masks["stroma"] = ((obs["species"].astype(str) == "mouse").to_numpy(), "cell_type")
    masks["immune"] = (
        obs["cell_type"].astype(str).isin(list(immune_types)).to_numpy(),
        "cell_type",
    )
    if "cell_subtype" in obs.columns:
        ct, sub = obs["cell_type"].astype(str), obs["cell_subtype"].astype(str)
        for parent in observed_levels(obs["cell_type"]):
            in_type = (ct == parent).to_numpy()
            if (sub[in_type] != parent).any():
                masks[f"within_{parent}"] = (in_type, "cell_subtype")
    out = {}
    for name, (mask, key) in masks.items():
        if not mask.any():
            logger.warning("composition: no cells in denominator %r; left out", name)
            continue
        sub_obs = obs.loc[mask, [sample_key, condition_key, key]].copy()
        sub_obs[key] = sub_obs[key].astype(str)
        out[name] = proportions(
            AnnData(obs=sub_obs), group_key=key, sample_key=sample_key, condition_key=condition_key
        )
    return out


def compare_denominators(
    tables: dict[str, pd.DataFrame],
    *,
    reference: str,
    test: str,
    alpha: float = 0.05,
    robust: bool = PROPELLER_ROBUST,
    trend: bool = PROPELLER_TREND,
) -> pd.DataFrame:
    """:func:`propeller` within each denominator of :func:`denominator_proportions`.

    Returns one table: ``denominator``, then :data:`PROPELLER_COLUMNS`; BH ``padj`` is within
    each denominator (each is its own family of types).
    """
    parts = [
        propeller(
            props, reference=reference, test=test, alpha=alpha, robust=robust, trend=trend
        ).assign(denominator=name)
        for name, props in tables.items()
    ]
    if not parts:
        return pd.DataFrame(columns=["denominator", *PROPELLER_COLUMNS])
    return pd.concat(parts, ignore_index=True)[["denominator", *PROPELLER_COLUMNS]]


# --- quasi-binomial GLM: one type's share among a denominator, for a pre-specified test -------

#: ``method`` of :func:`quasi_binomial_test` rows.
QUASI_BINOMIAL = "quasi_binomial_glm"
#: Floor of the quasi-binomial dispersion: animals are not less variable than binomial
#: sampling of their cells, so an estimate below 1 (little spread by chance) is taken as 1.
MIN_DISPERSION = 1.0


def quasi_binomial_test(
    k: np.ndarray,
    n: np.ndarray,
    is_test: np.ndarray,
    *,
    direction: str | None = None,
    min_dispersion: float = MIN_DISPERSION,
) -> dict[str, object]:
    """One type's share of a denominator between two arms: a quasi-binomial GLM over animals.

    ``k`` cells of the type among ``n`` cells of the denominator per animal (``is_test``
    marks the test arm's animals): ``glm(cbind(k, n - k) ~ arm, family = quasibinomial)``
    (R), i.e. a binomial GLM with the arm as the only factor and the variance inflated by the
    Pearson dispersion ``phi = X2 / (n_animals - 2)`` (statsmodels' ``scale="X2"``), here at
    least ``min_dispersion``; the arm coefficient over its standard error is referred to a t
    distribution on ``n_animals - 2`` degrees of freedom. With one factor the fit has a closed
    form: the fitted share of each arm is its pooled share ``sum(k) / sum(n)``.
    Measured in ``bench/composition_null.py`` against :func:`propeller` (which the
    exploratory tables keep): type-I error at most ~0.06 at 2 to 6 animals per arm where
    propeller reached 0.13, for most of propeller's power.

    Animals with ``n == 0`` (no cell of the denominator) are dropped.

    Returns
    -------
    dict
        ``effect``: log odds ratio of the pooled shares, test vs reference (the GLM's arm
        coefficient); ``se`` (dispersion included), ``ci_low`` / ``ci_high`` (95%, t),
        ``stat`` (t), ``df``, ``pvalue`` (one-sided in ``direction`` ``"up"``/``"down"``,
        two-sided when None), ``dispersion`` (before the floor), ``share_reference`` /
        ``share_test`` (pooled), ``n_reference`` / ``n_test`` (animals), ``loo``: the effect
        refitted without each animal in input order (NaN for a dropped animal or where an
        arm would be left empty; +-inf where the type would vanish from an arm) and
        ``note``: empty when tested, else why not (the statistics are then NaN).
    """
    k, n = np.asarray(k, float), np.asarray(n, float)
    is_test = np.asarray(is_test, bool)
    if not (k.shape == n.shape == is_test.shape) or k.ndim != 1:
        msg = "k, n and is_test must be 1-d arrays of one length (one entry per animal)"
        raise ValueError(msg)
    if ((k < 0) | (k > n)).any():
        msg = "counts must satisfy 0 <= k <= n"
        raise ValueError(msg)
    if direction not in (None, "up", "down"):
        msg = f"direction={direction!r} is not 'up', 'down' or None"
        raise ValueError(msg)
    keep = n > 0
    kk, nn, tt = k[keep], n[keep], is_test[keep]
    n_ref, n_test = int((~tt).sum()), int(tt.sum())
    out: dict[str, object] = dict.fromkeys(
        ("effect", "se", "ci_low", "ci_high", "stat", "df", "pvalue", "dispersion"), np.nan
    )
    share = [kk[arm].sum() / nn[arm].sum() if arm.any() else np.nan for arm in (~tt, tt)]
    out.update(
        share_reference=float(share[0]),
        share_test=float(share[1]),
        n_reference=n_ref,
        n_test=n_test,
        loo=_quasi_loo(k, n, is_test),
        note="",
    )
    if min(n_ref, n_test) < 2:
        out["note"] = (
            f"{n_ref} vs {n_test} animals with cells of the denominator (2 per arm needed)"
        )
        return out
    if kk.sum() == 0 or kk.sum() == nn.sum():
        out["note"] = (
            "the type is "
            + ("absent from" if kk.sum() == 0 else "all of")
            + (" the denominator in every animal")
        )
        return out
    for name, p in (("reference", share[0]), ("test", share[1])):
        if p in (0.0, 1.0):
            out["note"] = (
                f"the type is {'absent from' if p == 0 else 'all of'} the denominator in every "
                f"{name} animal: the log odds ratio is infinite (no Wald test)"
            )
            return out
    fitted = np.where(tt, share[1], share[0])
    var1 = nn * fitted * (1 - fitted)
    x2 = float((((kk - nn * fitted) ** 2) / var1).sum())
    df = kk.size - 2
    if x2 <= 1e-12 * kk.size:
        out["note"] = "the same share in every animal of each arm: no spread to estimate"
        return out
    phi = x2 / df
    effect = float(np.log(share[1] / (1 - share[1])) - np.log(share[0] / (1 - share[0])))
    se = float(np.sqrt(max(phi, min_dispersion) * (1 / var1[tt].sum() + 1 / var1[~tt].sum())))
    dist = stats.t(df)
    stat = effect / se
    if direction is None:
        p = float(2 * dist.sf(abs(stat)))
    else:
        p = float(dist.sf(stat) if direction == "up" else dist.cdf(stat))
    half = float(dist.ppf(0.975)) * se
    out.update(
        effect=effect,
        se=se,
        ci_low=effect - half,
        ci_high=effect + half,
        stat=float(stat),
        df=float(df),
        pvalue=p,
        dispersion=float(phi),
    )
    return out


def _quasi_loo(k: np.ndarray, n: np.ndarray, is_test: np.ndarray) -> np.ndarray:
    """The log odds ratio of the pooled shares without each animal (see the caller)."""
    loo = np.full(k.size, np.nan)
    for i in range(k.size):
        if n[i] <= 0:
            continue
        keep = (np.arange(k.size) != i) & (n > 0)
        arms = [keep & ~is_test, keep & is_test]
        if not all(a.any() for a in arms):
            continue
        p = [k[a].sum() / n[a].sum() for a in arms]
        with np.errstate(divide="ignore"):
            logit = [np.log(q) - np.log1p(-q) for q in p]
        if np.isfinite(logit).all() or logit[0] != logit[1]:
            loo[i] = logit[1] - logit[0]
    return loo

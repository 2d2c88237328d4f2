"""Tests of tmeflow.stats._composition: per-sample proportions and the replicate-aware test."""

import logging

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from scipy import stats

from tmeflow.stats import _composition as composition

REF, TEST = "ctrl", "alectinib"

# cells per sample: TAMs double under alectinib (12% -> 24%); NK absent from ctrl_1
COUNTS = {
    ("ctrl_0", REF): {"tumor": 150, "CAF": 60, "TAM": 30, "NK": 10},
    ("ctrl_1", REF): {"tumor": 170, "CAF": 50, "TAM": 36, "NK": 0},
    ("ctrl_2", REF): {"tumor": 140, "CAF": 70, "TAM": 27, "NK": 8},
    ("alec_0", TEST): {"tumor": 125, "CAF": 55, "TAM": 60, "NK": 10},
    ("alec_1", TEST): {"tumor": 134, "CAF": 50, "TAM": 64, "NK": 12},
    ("alec_2", TEST): {"tumor": 119, "CAF": 60, "TAM": 62, "NK": 9},
}


def make_adata(counts: dict = COUNTS) -> AnnData:
    rows = [
        {"sample": s, "condition": c, "cell_type": t}
        for (s, c), per in counts.items()
        for t, n in per.items()
        for _ in range(n)
    ]
    obs = pd.DataFrame(rows, index=[f"cell{i}" for i in range(len(rows))])
    return AnnData(obs=obs)


@pytest.fixture(scope="module")
def props() -> pd.DataFrame:
    return composition.proportions(make_adata())


def test_proportions_every_sample_by_type(props: pd.DataFrame) -> None:
    assert list(props.columns) == ["sample", "condition", "cell_type", "n_cells", "fraction"]
    assert len(props) == 6 * 4  # zeros included
    zero = props[(props["sample"] == "ctrl_1") & (props["cell_type"] == "NK")]
    assert zero["n_cells"].item() == 0 and zero["fraction"].item() == 0.0
    np.testing.assert_allclose(props.groupby("sample")["fraction"].sum(), 1.0)
    row = props[(props["sample"] == "alec_0") & (props["cell_type"] == "TAM")]
    assert row["n_cells"].item() == 60
    assert row["fraction"].item() == pytest.approx(60 / 250)
    assert row["condition"].item() == TEST
    # deterministic order: sample, then type (sorted)
    assert list(props["sample"].unique()) == sorted(s for s, _ in COUNTS)
    assert list(props["cell_type"].iloc[:4]) == ["CAF", "NK", "TAM", "tumor"]


def test_proportions_rejects_condition_varying_within_sample() -> None:
    adata = make_adata()
    adata.obs.loc[adata.obs_names[0], "condition"] = TEST
    with pytest.raises(ValueError, match="sample-level"):
        composition.proportions(adata)


def test_doubled_fraction_detected_with_right_sign(props: pd.DataFrame) -> None:
    res = composition.compare_proportions(props, reference=REF, test=TEST)
    assert list(res.columns) == composition.COMPOSITION_COLUMNS
    tam = res.set_index("cell_type").loc["TAM"]
    assert tam["effect"] > 0 and tam["ci_low"] > 0
    assert tam["pvalue"] < 0.01 and tam["padj"] < 0.05
    assert tam["log2_ratio"] == pytest.approx(1.0, abs=0.15)
    assert tam["method"] == "logit_lm"
    assert (tam["n_samples_reference"], tam["n_samples_test"]) == (3, 3)
    tumor = res.set_index("cell_type").loc["tumor"]
    assert tumor["effect"] < 0  # compositional: tumour share falls


def test_logit_effect_matches_pooled_t_test(props: pd.DataFrame) -> None:
    res = composition.compare_proportions(props, reference=REF, test=TEST).set_index("cell_type")
    tam = props[props["cell_type"] == "TAM"]
    n = props.groupby("sample")["n_cells"].sum().reindex(tam["sample"]).to_numpy()
    k = tam["n_cells"].to_numpy()
    y = np.log((k + 0.5) / (n - k + 0.5))
    is_test = (tam["condition"] == TEST).to_numpy()
    expected = stats.ttest_ind(y[is_test], y[~is_test], equal_var=True)
    assert res.loc["TAM", "effect"] == pytest.approx(y[is_test].mean() - y[~is_test].mean())
    assert res.loc["TAM", "pvalue"] == pytest.approx(expected.pvalue)
    ci = expected.confidence_interval(0.95)
    assert (res.loc["TAM", "ci_low"], res.loc["TAM", "ci_high"]) == pytest.approx((ci.low, ci.high))
    # BH over the four types
    np.testing.assert_allclose(
        res["padj"], stats.false_discovery_control(res["pvalue"].to_numpy(), method="bh")
    )
    assert res.loc["TAM", "fraction_reference"] == pytest.approx(
        np.mean([30 / 250, 36 / 256, 27 / 245])
    )


def test_arcsine_method(props: pd.DataFrame) -> None:
    res = composition.compare_proportions(props, reference=REF, test=TEST, method="arcsine_lm")
    tam = res.set_index("cell_type").loc["TAM"]
    assert tam["method"] == "arcsine_lm" and tam["effect"] > 0 and tam["pvalue"] < 0.01
    with pytest.raises(ValueError, match="not one of"):
        composition.compare_proportions(props, reference=REF, test=TEST, method="sccoda")


def test_one_sample_per_arm_is_descriptive(
    props: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    one = props[props["sample"].isin(["ctrl_0", "alec_0"])]
    with caplog.at_level(logging.WARNING, logger="tmeflow.stats._composition"):
        res = composition.compare_proportions(one, reference=REF, test=TEST)
    assert (res["method"] == "descriptive_only").all()
    assert res["pvalue"].isna().all() and res["padj"].isna().all()
    assert res["note"].str.contains("at least 2 per arm").all()
    tam = res.set_index("cell_type").loc["TAM"]
    assert tam["fraction_test"] == pytest.approx(60 / 250)
    assert tam["fraction_reference"] == pytest.approx(30 / 250)
    assert "descriptive" in caplog.text


def test_unknown_levels_raise(props: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="neither contrast level"):
        composition.compare_proportions(props, reference="placebo", test="other")


@pytest.mark.parametrize("samples", [["ctrl_0"], ["ctrl_0", "ctrl_1", "ctrl_2"]])
def test_missing_arm_is_descriptive_not_an_error(props: pd.DataFrame, samples: list) -> None:
    # a one-condition design (issue 4: one mouse lung): fractions of the arm that exists
    one_arm = composition.proportions(
        make_adata({k: v for k, v in COUNTS.items() if k[0] in samples})
    )
    res = composition.compare_proportions(one_arm, reference=REF, test=TEST)
    assert list(res.columns) == composition.COMPOSITION_COLUMNS
    assert (res["method"] == "descriptive_only").all()
    assert res[["effect", "pvalue", "padj", "fraction_test", "log2_ratio"]].isna().all().all()
    assert res["note"].str.contains("'alectinib' has no samples: nothing to compare").all()
    assert (res["n_samples_test"] == 0).all()
    assert (res["n_samples_reference"] == len(samples)).all()
    tam = res.set_index("cell_type").loc["TAM"]
    expected = np.mean([COUNTS[(s, REF)]["TAM"] / sum(COUNTS[(s, REF)].values()) for s in samples])
    assert tam["fraction_reference"] == pytest.approx(expected)


def test_significant_rows_carry_closure_note(props: pd.DataFrame) -> None:
    res = composition.compare_proportions(props, reference=REF, test=TEST)
    sig = res["padj"] < 0.05
    assert sig.any()
    assert res.loc[sig, "note"].str.contains("closed proportions").all()
    assert (res.loc[~sig & res["pvalue"].notna(), "note"] == "").all()


def test_per_type_test_is_calibrated_under_the_demo_design() -> None:
    """Monte Carlo of the demo's design: unchanged types are called at about the nominal rate.

    Per animal: fractions ~ Dirichlet(300 x expected), 1300 cells multinomial; TAM and tumour
    change, 7 types do not. This is why the default demo's neutrophil call (seed 0) is a type I
    error of a calibrated test and not a bias of the method.
    """
    from tmeflow.simulate import COMPOSITION_REFERENCE, COMPOSITION_TEST

    rng = np.random.default_rng(7)
    types = list(COMPOSITION_REFERENCE)
    null = [t for t in types if COMPOSITION_REFERENCE[t] == COMPOSITION_TEST[t]]
    p_null = []
    for _ in range(150):
        rows = []
        for arm, comp in (("control", COMPOSITION_REFERENCE), ("alectinib", COMPOSITION_TEST)):
            expected = np.array([comp[t] for t in types])
            for i in range(3):
                k = rng.multinomial(1300, rng.dirichlet(300 * expected))
                rows += [
                    {"sample": f"{arm}{i}", "condition": arm, "cell_type": t, "n_cells": int(n),
                     "fraction": n / 1300}
                    for t, n in zip(types, k, strict=True)
                ]  # fmt: skip
        res = composition.compare_proportions(
            pd.DataFrame(rows), reference="control", test="alectinib"
        ).set_index("cell_type")
        p_null.append(res.loc[null, "pvalue"].to_numpy())
        assert res.loc["TAM", "effect"] > 0
    p_null = np.concatenate(p_null)
    rate = float((p_null < 0.05).mean())
    assert 0.02 <= rate <= 0.08, rate


def test_propeller_default_prior_follows_the_abundance_trend(props: pd.DataFrame) -> None:
    """The default squeezes towards a trend on each type's mean logit (limma's Amean)."""
    assert composition.PROPELLER_TREND and not composition.PROPELLER_ROBUST
    res = composition.propeller(props, reference=REF, test=TEST).set_index("cell_type")
    wide = props.pivot(index="sample", columns="cell_type", values="n_cells") + 0.5
    p = wide.div(wide.sum(axis=1), axis=0)
    y = np.log(p / (1 - p))
    is_test = (props.groupby("sample")["condition"].first().reindex(y.index) == TEST).to_numpy()
    rss = ((y[~is_test] - y[~is_test].mean()) ** 2).sum() + (
        (y[is_test] - y[is_test].mean()) ** 2
    ).sum()
    post, d0, _ = composition.squeeze_var((rss / 4).to_numpy(), 4, covariate=y.mean().to_numpy())
    eff = y[is_test].mean() - y[~is_test].mean()
    t = eff.to_numpy() / np.sqrt(post * (1 / 3 + 1 / 3))
    df = np.minimum(4 + np.asarray(d0, float), 4 * y.shape[1])
    np.testing.assert_allclose(res.loc[y.columns, "pvalue"], 2 * stats.t.sf(np.abs(t), df))


# --- quasi-binomial GLM (the confirmatory proportion test) -----------------------------------

# TAM cells among each animal's stroma, overdispersed (Pearson dispersion ~4): 3 vs 3 animals
QB_K = np.array([30.0, 45.0, 22.0, 80.0, 95.0, 60.0])
QB_N = np.array([300.0, 310.0, 280.0, 290.0, 305.0, 300.0])
QB_TEST = np.array([False, False, False, True, True, True])


def _statsmodels_quasi(k: np.ndarray, n: np.ndarray, is_test: np.ndarray):
    """statsmodels' GLM on the shares with the animals' cells as variance weights, scale X2.

    (With a two-column endog, ``fit(scale="X2")`` computes the scale on the shares without
    the weights: the variance-weights form is the one that matches R's quasibinomial.)
    """
    import statsmodels.api as sm

    x = np.column_stack([np.ones(k.size), is_test.astype(float)])
    fam = sm.families.Binomial()
    return sm.GLM(k / n, x, family=fam, var_weights=n).fit(scale="X2")


def test_quasi_binomial_matches_statsmodels_glm() -> None:
    fit = _statsmodels_quasi(QB_K, QB_N, QB_TEST)
    res = composition.quasi_binomial_test(QB_K, QB_N, QB_TEST)
    assert res["note"] == "" and res["df"] == 4
    assert res["effect"] == pytest.approx(fit.params[1], rel=1e-6)
    assert res["se"] == pytest.approx(fit.bse[1], rel=1e-6)
    assert res["dispersion"] == pytest.approx(fit.scale, rel=1e-6) and res["dispersion"] > 2
    t = fit.params[1] / fit.bse[1]
    assert res["stat"] == pytest.approx(t, rel=1e-6)
    assert res["pvalue"] == pytest.approx(2 * stats.t.sf(abs(t), 4), rel=1e-6)
    up = composition.quasi_binomial_test(QB_K, QB_N, QB_TEST, direction="up")
    down = composition.quasi_binomial_test(QB_K, QB_N, QB_TEST, direction="down")
    assert up["pvalue"] == pytest.approx(stats.t.sf(t, 4), rel=1e-6)
    assert up["pvalue"] + down["pvalue"] == pytest.approx(1.0)
    half = stats.t.ppf(0.975, 4) * fit.bse[1]
    assert (res["ci_low"], res["ci_high"]) == pytest.approx(
        (t * fit.bse[1] - half, t * fit.bse[1] + half)
    )
    # the effect is the log odds ratio of the arms' pooled shares
    p_ref, p_test = QB_K[:3].sum() / QB_N[:3].sum(), QB_K[3:].sum() / QB_N[3:].sum()
    assert res["effect"] == pytest.approx(np.log(p_test / (1 - p_test) / (p_ref / (1 - p_ref))))
    # leaving each animal out: the GLM refitted on the other five
    for i, value in enumerate(res["loo"]):
        keep = np.arange(6) != i
        ref = _statsmodels_quasi(QB_K[keep], QB_N[keep], QB_TEST[keep])
        assert value == pytest.approx(ref.params[1], rel=1e-6)


def test_quasi_binomial_uses_the_dispersion() -> None:
    """Overdispersed animals give a larger p than the plain binomial GLM (the dispersion is
    used), and binomial-like animals are floored at dispersion 1, never below the binomial."""
    import statsmodels.api as sm

    x = np.column_stack([np.ones(6), QB_TEST.astype(float)])
    plain = sm.GLM(np.column_stack([QB_K, QB_N - QB_K]), x, family=sm.families.Binomial()).fit()
    res = composition.quasi_binomial_test(QB_K, QB_N, QB_TEST)
    assert res["se"] > 2 * plain.bse[1]
    assert res["pvalue"] > 2 * stats.norm.sf(abs(plain.tvalues[1]))
    # nearly identical shares within each arm: dispersion < 1, floored to the binomial SE
    k = np.array([30.0, 31.0, 29.0, 45.0, 44.0, 46.0])
    n = np.full(6, 300.0)
    low = composition.quasi_binomial_test(k, n, QB_TEST)
    raw = composition.quasi_binomial_test(k, n, QB_TEST, min_dispersion=0.0)
    plain = sm.GLM(np.column_stack([k, n - k]), x, family=sm.families.Binomial()).fit()
    assert low["dispersion"] < 1
    assert low["se"] == pytest.approx(plain.bse[1], rel=1e-6)
    assert raw["se"] == pytest.approx(plain.bse[1] * np.sqrt(raw["dispersion"]), rel=1e-6)


def test_quasi_binomial_says_when_it_cannot_test() -> None:
    t = QB_TEST
    one = composition.quasi_binomial_test(
        np.array([30.0, 0, 0, 80, 95, 60]), np.array([300.0, 0, 0, 290, 305, 300]), t
    )
    assert np.isnan(one["pvalue"]) and "1 vs 3 animals" in one["note"]
    assert np.isnan(one["loo"][1]) and np.isnan(one["loo"][0])  # dropped; would empty an arm
    zero = composition.quasi_binomial_test(np.zeros(6), QB_N, t)
    assert (
        np.isnan(zero["pvalue"]) and "absent from the denominator in every animal" in zero["note"]
    )
    arm = composition.quasi_binomial_test(np.array([0.0, 0, 0, 5, 6, 4]), QB_N, t)
    assert np.isnan(arm["pvalue"]) and "every reference animal" in arm["note"]
    same = composition.quasi_binomial_test(
        np.array([30.0, 30, 30, 60, 60, 60]), np.full(6, 300.0), t
    )
    assert np.isnan(same["pvalue"]) and "the same share in every animal" in same["note"]
    with pytest.raises(ValueError, match="0 <= k <= n"):
        composition.quasi_binomial_test(QB_N + 1, QB_N, t)
    with pytest.raises(ValueError, match="direction"):
        composition.quasi_binomial_test(QB_K, QB_N, t, direction="greater")
    # an animal without cells of the denominator is dropped, the rest tested
    k = np.append(QB_K, 0.0)
    n = np.append(QB_N, 0.0)
    res = composition.quasi_binomial_test(k, n, np.append(t, True))
    assert res["pvalue"] == pytest.approx(composition.quasi_binomial_test(QB_K, QB_N, t)["pvalue"])
    assert (res["n_reference"], res["n_test"]) == (3, 3) and np.isnan(res["loo"][-1])

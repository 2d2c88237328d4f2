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

"""The confirmatory table: pre-specified hypotheses, Holm within the family, verdicts."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tmeflow.stats import _composition as composition
from tmeflow.stats import _confirmatory as cf

from .._confirm_data import (
    REF,
    STROMA,
    TEST,
    drug_composition,
    stromal_counts,
    tumour_experiment,
)

# --- Holm and parsing ----------------------------------------------------------------------


def test_holm_matches_the_step_down_definition():
    p = [0.01, 0.04, np.nan, 0.03, 0.2]
    # sorted 0.01, 0.03, 0.04, 0.2 with m = 4: 0.04, 0.09, max(0.09, 0.08), max(.., 0.2)
    expected = [0.04, 0.09, np.nan, 0.09, 0.2]
    np.testing.assert_allclose(cf.holm(p), expected)
    assert np.isnan(cf.holm([np.nan])).all()


def test_parse_hypotheses_kinds_and_refusals():
    hyps = cf.parse_hypotheses(
        [
            {"gene": "Mmp11", "cell_type": "CAF", "direction": "up"},
            {"gene": "Gas6", "cell_type": "TAM", "test": "source"},
            {"proportion": "stroma", "cell_type": "TAM", "direction": "up"},
        ]
    )
    assert [h.kind for h in hyps] == ["change", "source", "proportion"]
    assert [h.label for h in hyps] == [
        "Mmp11 up in CAF",
        "Gas6 source: TAM",
        "TAM among stroma up",
    ]
    with pytest.raises(ValueError, match="exactly one"):
        cf.parse_hypotheses([{"gene": "A", "proportion": "all", "cell_type": "B"}])
    with pytest.raises(ValueError, match="no direction"):
        cf.parse_hypotheses([{"gene": "A", "cell_type": "B", "test": "source", "direction": "up"}])


# --- composition among the stroma ------------------------------------------------------------


def test_squeeze_var_shrinks_towards_a_common_prior():
    rng = np.random.default_rng(1)
    s2 = rng.chisquare(4, size=200) / 4 * rng.lognormal(0, 0.5, size=200)
    post, d0, s0sq = composition.squeeze_var(s2, 4)
    assert 0 < d0 < np.inf and s0sq > 0
    # each posterior lies between its own variance and the prior
    assert np.all((post - s2) * (s0sq - s2) >= -1e-12)
    # no more spread than chi-square sampling: every variance becomes the prior
    same = np.full(10, 2.0)
    post, d0, s0sq = composition.squeeze_var(same, 4)
    assert d0 == np.inf and np.allclose(post, s0sq)


def test_drug_halving_tumour_cells_is_no_stromal_change():
    """Tumour cells halved, stroma unchanged: every stromal type looks increased among all
    cells (the naive view), none changes among the stroma."""
    tables = composition.denominator_proportions(drug_composition(seed=3))
    res = composition.compare_denominators(tables, reference=REF, test=TEST)
    all_cells = res[(res["denominator"] == "all") & res["cell_type"].isin(list(STROMA))]
    stroma = res[res["denominator"] == "stroma"].set_index("cell_type")
    assert (all_cells["effect"] > 0).all()
    assert (all_cells["padj"] < 0.05).all(), all_cells.to_string()
    assert set(stroma.index) == set(STROMA)
    assert (stroma["padj"] >= 0.05).all(), stroma.to_string()
    tumour = res[(res["denominator"] == "all") & (res["cell_type"] == "tumor")].iloc[0]
    assert tumour["effect"] < 0 and tumour["padj"] < 0.05
    # the confirmatory TAM row uses the stromal denominator
    hyps = cf.parse_hypotheses(
        [
            {"proportion": "stroma", "cell_type": "TAM", "direction": "up"},
            {"proportion": "all", "cell_type": "TAM", "direction": "up"},
        ]
    )
    table, values = cf.confirm(drug_composition(seed=3), hyps, reference=REF, test=TEST)
    assert list(table["verdict"]) == ["not supported", "supported"]
    assert values.groupby("hypothesis")["sample"].nunique().tolist() == [8, 8]


def test_propeller_moderated_t_by_hand():
    props = composition.proportions(drug_composition(seed=0))
    res = composition.propeller(
        props, reference=REF, test=TEST, robust=False, trend=False
    ).set_index("cell_type")
    wide = props.pivot(index="sample", columns="cell_type", values="n_cells") + 0.5
    p = wide.div(wide.sum(axis=1), axis=0)
    y = np.log(p / (1 - p))
    is_test = y.index.str.startswith(TEST)
    eff = y[is_test].mean() - y[~is_test].mean()
    np.testing.assert_allclose(res.loc[eff.index, "effect"], eff)
    rss = ((y[~is_test] - y[~is_test].mean()) ** 2).sum() + (
        (y[is_test] - y[is_test].mean()) ** 2
    ).sum()
    post, d0, _ = composition.squeeze_var((rss / 6).to_numpy(), 6)
    t = eff.to_numpy() / np.sqrt(post * (1 / 4 + 1 / 4))
    df = 6 + d0 if np.isfinite(d0) else np.inf
    np.testing.assert_allclose(res.loc[eff.index, "pvalue"], 2 * stats.t.sf(np.abs(t), df))


def test_subtypes_within_their_parent():
    adata = drug_composition(seed=0)
    sub = adata.obs["cell_type"].astype(str).to_numpy().copy()
    caf = np.flatnonzero(sub == "CAF")
    sub[caf[::3]] = "iCAF"
    sub[np.setdiff1d(caf, caf[::3])] = "myCAF"
    adata.obs["cell_subtype"] = sub
    tables = composition.denominator_proportions(adata)
    assert set(tables) == {"all", "stroma", "immune", "within_CAF"}
    within = tables["within_CAF"]
    assert set(within["cell_type"]) == {"iCAF", "myCAF"}
    assert np.allclose(within.groupby("sample")["fraction"].sum(), 1.0)
    assert set(tables["immune"]["cell_type"]) == {"TAM", "NK", "B"}


# --- gene hypotheses -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def few_animals():
    """3 vs 3 animals, ~100 CAFs each, a planted 3x change of G0000 in CAFs (300 genes).

    Seed 5 is a borderline draw, as in a real 3 vs 3 study: Wald p ~4e-4 for G0000, genome-wide
    BH padj ~0.13 (seeds 0-5 give p from 2e-5 to 1e-2).
    """
    return stromal_counts(n_genes=300, cells_per_animal=280, fold=3.0, gene_mean=0.2, seed=5)


def test_prespecified_gene_supported_where_genome_wide_padj_is_not(few_animals):
    hyps = cf.parse_hypotheses(
        [
            {"gene": "G0000", "cell_type": "CAF", "direction": "up"},
            {"gene": "G0001", "cell_type": "B", "test": "source"},
            {"proportion": "stroma", "cell_type": "TAM", "direction": "up"},
        ]
    )
    table, values = cf.confirm(few_animals, hyps, reference=REF, test=TEST)
    row = table.iloc[0]
    assert row["padj_exploratory"] >= 0.05, row.to_dict()  # genome-wide BH: not significant
    assert row["p_holm"] < 0.05 and row["verdict"] == "supported", row.to_dict()
    assert 0.5 < row["effect"] < 2 and row["ci_low"] > 0  # shrunk log2 fold change (log2 3)
    assert abs(row["effect"]) <= abs(row["effect_unshrunk"])  # shrinkage pulls towards 0
    assert row["loo_sign_stable"] and row["loo_min"] > 0
    assert (row["n_animals_reference"], row["n_animals_test"]) == (3, 3)
    assert table.loc[1:, "verdict"].eq("not supported").all(), table.to_string()
    per = values[values["hypothesis"] == row["hypothesis"]]
    assert len(per) == 6 and per["condition"].tolist() == [REF] * 3 + [TEST] * 3
    assert (
        per.loc[per["condition"] == TEST, "value"].mean()
        > 2 * per.loc[per["condition"] == REF, "value"].mean()
    )


def test_source_and_not_testable_rows(few_animals):
    totals = np.asarray(few_animals.layers["counts"].sum(axis=0)).ravel()
    top = str(few_animals.var_names[1 + np.argmax(totals[1:])])  # best-detected null gene
    weak = str(few_animals.var_names[np.argmin(np.where(totals >= 12, totals, np.inf))])
    hyps = cf.parse_hypotheses(
        [
            {"gene": top, "cell_type": "CAF", "test": "source"},
            {"gene": top, "cell_type": "B", "test": "source"},
            {"gene": weak, "cell_type": "B", "test": "source"},
            {"gene": "Nope", "cell_type": "CAF"},
            {"gene": top, "cell_type": "pericyte"},
            {"proportion": "stroma", "cell_type": "pericyte"},
        ]
    )
    table, _ = cf.confirm(few_animals, hyps, reference=REF, test=TEST, min_share=0.1, loo=True)
    v = table.set_index(table["hypothesis"].str.split(": ", n=1).str[1])
    # CAFs make ~23% of a null gene's UMIs, as of all UMIs: abundant, not enriched
    assert v.loc[f"{top} source: CAF", "verdict"] == "not supported", table.to_string()
    assert abs(v.loc[f"{top} source: CAF", "effect"]) < 0.3
    assert v.loc[f"{top} source: B", "verdict"] == "not supported"
    assert v.loc[f"{weak} source: B", "verdict"] == "not supported"
    assert abs(v.loc[f"{weak} source: B", "effect"]) < 0.5  # ~2 UMIs an animal: near 0
    for label in (
        "Nope changed in CAF",
        f"{top} changed in pericyte",
        "pericyte among stroma changed",
    ):
        assert v.loc[label, "verdict"] == "not testable"
        assert v.loc[label, "reason"].startswith("not testable: ")
    # the family is the six pre-specified rows: not-testable ones still count in Holm's m
    assert v["p_holm"].notna().sum() == 3 and (v["holm_m"] == 6).all()
    tested = v[v["p_holm"].notna()]
    assert (tested["p_holm"] >= np.minimum(1, 4 * tested["pvalue"]) - 1e-12).all()


def test_one_condition_design_gives_reasons_not_errors():
    """A single-arm, single-animal data set (as in the one-replicate workflow test): every
    default hypothesis is not testable, each with its reason."""
    adata = drug_composition(animals_per_arm=1, seed=0)
    adata = adata[adata.obs["condition"] == REF].copy()
    n = adata.n_obs
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, size=(n, 3)).astype(np.float32)
    adata = type(adata)(X=counts, obs=adata.obs, var=pd.DataFrame(index=["Gas6", "Mmp11", "AXL"]))
    adata.layers["counts"] = counts
    hyps = cf.parse_hypotheses(
        [
            {"gene": "Mmp11", "cell_type": "CAF", "direction": "up"},
            {"gene": "Gas6", "cell_type": "TAM", "test": "source"},
            {"proportion": "stroma", "cell_type": "TAM", "direction": "up"},
            {"gene": "AXL", "cell_type": "tumor"},
        ]
    )
    table, _ = cf.confirm(adata, hyps, reference=REF, test=TEST)
    assert (table["verdict"] == "not testable").all(), table.to_string()
    assert table["reason"].str.startswith("not testable: ").all()
    assert table["p_holm"].isna().all()


# --- leave one animal out --------------------------------------------------------------------


def test_leave_one_out_glm_follows_whole_pydeseq2_refits(few_animals):
    """The one-GLM-per-animal refit (dispersion of the full fit held) gives the left-out
    estimates that refitting PyDESeq2 without each animal gives (measured: within 0.0036 log2 on
    18 left-out fits of seeds 1, 2, 5)."""
    from tmeflow.stats._de import run_de

    hyps = cf.parse_hypotheses([{"gene": "G0000", "cell_type": "CAF", "direction": "up"}])
    table, _ = cf.confirm(few_animals, hyps, reference=REF, test=TEST, shrink=False)
    row = table.iloc[0]
    cafs = few_animals[few_animals.obs["cell_type"] == "CAF"]
    exact = []
    for animal in sorted(set(cafs.obs["sample"].astype(str))):
        rest = cafs[cafs.obs["sample"].astype(str) != animal]
        t = run_de(rest, group_key="cell_type", reference=REF, test=TEST, groups=["CAF"])["CAF"]
        exact.append(float(t.set_index("gene").loc["G0000", "log2FoldChange"]))
    assert len(exact) == 6
    assert row["loo_min"] == pytest.approx(min(exact), abs=0.1)
    assert row["loo_max"] == pytest.approx(max(exact), abs=0.1)
    assert row["loo_sign_stable"] and row["verdict"] == "supported"


def _one_animal_carries_g0000(adata, multiplier=12):
    """G0000 in CAFs: the first treated animal x ``multiplier``, the other two thinned 8x."""
    adata = adata.copy()
    counts = adata.layers["counts"].tolil()
    col = adata.var_names.get_loc("G0000")
    rng = np.random.default_rng(0)
    treated = sorted(set(adata.obs.loc[adata.obs["condition"] == TEST, "sample"].astype(str)))
    caf = (adata.obs["cell_type"] == "CAF").to_numpy()
    for k, animal in enumerate(treated):
        rows = np.flatnonzero(caf & (adata.obs["sample"].astype(str) == animal).to_numpy())
        values = np.asarray(counts[rows, col].todense()).ravel()
        scaled = values * multiplier if k == 0 else rng.binomial(values.astype(int), 1 / 8)
        for r, v in zip(rows, scaled, strict=True):
            counts[r, col] = v
    adata.layers["counts"] = counts.tocsr()
    return adata


@pytest.mark.parametrize("direction", ["up", None])
def test_cooks_outlier_is_not_testable_and_stays_in_the_family(few_animals, direction):
    """One treated animal makes the whole increase: PyDESeq2 flags a Cook's distance outlier
    and sets the gene's p to NaN. The row is not testable and says so (the old code took a
    one-sided p from the Wald statistic, and a two-sided row left the family with an empty
    reason); it still counts in Holm's m."""
    adata = _one_animal_carries_g0000(few_animals)
    entry = {"gene": "G0000", "cell_type": "CAF"} | ({"direction": direction} if direction else {})
    hyps = cf.parse_hypotheses([entry, {"proportion": "stroma", "cell_type": "TAM"}])
    table, _ = cf.confirm(adata, hyps, reference=REF, test=TEST, shrink=False)
    row, other = table.iloc[0], table.iloc[1]
    assert row["effect_unshrunk"] > 0, row.to_dict()
    assert np.isnan(row["pvalue"]) and np.isnan(row["p_holm"]), row.to_dict()
    assert row["verdict"] == "not testable"
    assert row["reason"].startswith("not testable: ") and "Cook's distance outlier" in row["reason"]
    assert (table["holm_m"] == 2).all()
    assert other["p_holm"] == pytest.approx(min(1.0, 2 * other["pvalue"]))


def test_leave_one_out_flip_is_not_supported_and_not_applicable_is_not_instability():
    """The verdict logic on rows: a computable left-out estimate of the other sign is negative
    evidence (not supported); left-out estimates that cannot be computed are not applicable:
    they neither count against the row nor for it, and the reason says how many could be."""
    base = {c: np.nan for c in cf.CONFIRMATORY_COLUMNS}
    base.update(direction="up", pvalue=1e-4, p_holm=3e-4, holm_m=3, effect_unshrunk=1.5)
    flip = dict(base)
    cf._fill_loo(flip, np.array([1.2, -0.3, 1.8, np.nan]), 1.5)
    assert (flip["loo_n_computable"], flip["loo_n_animals"]) == (3, 4)
    verdict, reason = cf._judge(flip, 0.05)
    assert verdict == "not supported" and "sign not stable leaving one animal out" in reason
    assert "3 of 4 animals could be left out" in reason
    partial = dict(base)
    cf._fill_loo(partial, np.array([1.2, np.nan, 1.8, np.nan]), 1.5)
    assert partial["loo_sign_stable"] is True
    verdict, reason = cf._judge(partial, 0.05)
    assert verdict == "supported" and "2 of 4 animals that could be left out" in reason
    none = dict(base)
    cf._fill_loo(none, np.full(4, np.nan), 1.5)
    assert none["loo_sign_stable"] is pd.NA and none["loo_n_computable"] == 0
    verdict, reason = cf._judge(none, 0.05)
    assert verdict == "supported" and "no animal could be left out" in reason
    skipped = dict(base)  # loo=False: stability not looked at, by choice
    assert cf._judge(skipped, 0.05)[0] == "inconclusive"
    weak = dict(none, p_holm=0.2)
    assert cf._judge(weak, 0.05) == ("not supported", "Holm p = 0.2 >= 0.05 (family m = 3)")


def _short_of_cafs(adata, sample, keep=5):
    """``adata`` without all but ``keep`` CAFs of ``sample`` (below min_cells = 10)."""
    caf = ((adata.obs["cell_type"] == "CAF") & (adata.obs["sample"] == sample)).to_numpy()
    drop = adata.obs_names[caf][keep:]
    return adata[~adata.obs_names.isin(drop)].copy()


@pytest.mark.parametrize("method", ["pydeseq2", "limma_voom"])
def test_three_vs_three_with_an_animal_short_of_cells_supports_a_real_effect(method):
    """3 vs 3, a planted x4 change, one control animal short of CAFs: the test runs on 2 vs 3,
    no control animal can be left out (1 would remain, below min_replicates), every
    computable left-out estimate is positive. Supported, and the reason says 3 of 5 animals
    could be left out (the old code counted the NaN left-out estimates as instability).
    The same under both change tests (limma-voom: the workflow's default)."""
    adata = stromal_counts(n_genes=300, cells_per_animal=280, fold=4.0, gene_mean=0.2, seed=0)
    adata = _short_of_cafs(adata, f"{REF}_0")
    hyps = cf.parse_hypotheses([{"gene": "G0000", "cell_type": "CAF", "direction": "up"}])
    table, _ = cf.confirm(adata, hyps, reference=REF, test=TEST, shrink=False, de_method=method)
    row = table.iloc[0]
    assert row["method"] == method
    assert (row["n_animals_reference"], row["n_animals_test"]) == (2, 3), row.to_dict()
    assert row["p_holm"] < 1e-3 and row["loo_min"] > 0, row.to_dict()
    assert (row["loo_n_computable"], row["loo_n_animals"]) == (3, 5)
    assert row["loo_sign_stable"] and row["verdict"] == "supported", row.to_dict()
    assert "3 of 5 animals that could be left out" in row["reason"]
    assert "min_replicates" in row["reason"]


@pytest.mark.parametrize("method", ["pydeseq2", "limma_voom"])
def test_two_vs_two_rests_on_the_test_and_says_no_animal_could_be_left_out(method):
    """2 vs 2 with a planted x4 change: no animal can be left out, which is a limit of the
    design, not evidence against the hypothesis: supported on the test and the direction
    (under both change tests)."""
    adata = stromal_counts(
        n_genes=300, cells_per_animal=280, fold=4.0, gene_mean=0.2, seed=0, animals_per_arm=2
    )
    hyps = cf.parse_hypotheses(
        [
            {"gene": "G0000", "cell_type": "CAF", "direction": "up"},
            {"gene": "G0000", "cell_type": "CAF"},
        ]
    )
    table, _ = cf.confirm(adata, hyps, reference=REF, test=TEST, shrink=False, de_method=method)
    for _, row in table.iterrows():
        assert row["method"] == method
        assert row["p_holm"] < 0.05, row.to_dict()
        assert row["loo_n_computable"] == 0 and row["loo_n_animals"] == 4
        assert pd.isna(row["loo_sign_stable"]) and np.isnan(row["loo_min"])
        assert row["verdict"] == "supported", row.to_dict()
        assert "not applicable: no animal could be left out" in row["reason"]


def test_source_is_enrichment_not_abundance_and_soup_is_inconclusive():
    """A source makes more of the gene's UMIs than of all UMIs: a uniformly expressed gene is
    not a source of the abundant CAFs (the old share > 10% test supported it), a gene planted
    in CAFs is; a gene whose CAF UMIs the soup model calls ambient is
    inconclusive though its raw counts look enriched."""
    adata = stromal_counts(n_genes=300, cells_per_animal=280, fold=1.0, gene_mean=2.0, seed=5)
    totals = np.asarray(adata.layers["counts"].sum(axis=0)).ravel()
    order = np.argsort(-totals[1:]) + 1
    uniform, soup = str(adata.var_names[order[0]]), str(adata.var_names[order[1]])
    counts = adata.layers["counts"].tolil()
    j = adata.var_names.get_loc(soup)
    caf = np.flatnonzero((adata.obs["cell_type"] == "CAF").to_numpy())
    counts[caf, j] = np.asarray(counts[caf, j].todense()) * 4  # raw: looks enriched in CAFs
    adata.layers["counts"] = counts.tocsr()
    real = cf.ambient.gene_ambient

    def soup_in_cafs(data, col, gene, **kwargs):  # the soup model calls every CAF UMI ambient
        other, expected = real(data, col, gene, **kwargs)
        if gene == soup:
            is_caf = (data.obs["cell_type"] == "CAF").to_numpy()
            expected = np.where(is_caf, col, expected)
        return other, expected

    hyps = cf.parse_hypotheses(
        [{"gene": g, "cell_type": "CAF", "test": "source"} for g in (uniform, "G0000", soup)]
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cf.ambient, "gene_ambient", soup_in_cafs)
        table, values = cf.confirm(adata, hyps, reference=REF, test=TEST)
    v = table.set_index("gene")
    assert v.loc[uniform, "verdict"] == "not supported", table.to_string()
    assert v.loc["G0000", "verdict"] == "supported" and v.loc["G0000", "effect"] > 0.5
    assert v.loc[soup, "verdict"] == "inconclusive" and v.loc[soup, "ambient_explained"] == 1
    assert "mostly soup" in v.loc[soup, "reason"]
    assert (v["holm_m"] == 3).all()
    ratio = values[values["hypothesis"] == v.loc["G0000", "hypothesis"]]["value"]
    assert len(ratio) == 6 and (ratio > 1).all()


def test_main_sources_is_the_groups_share_of_the_stromal_umis():
    """CAFs making most of a gene planted in them are its main source; NK cells (15% of the
    stroma) are not the main source of a uniformly expressed gene; a stricter share fails the
    same CAFs; a group absent from the data is not testable, the gene absent too."""
    adata = stromal_counts(n_genes=300, cells_per_animal=280, fold=1.0, gene_mean=8.0, seed=5)
    totals = np.asarray(adata.layers["counts"].sum(axis=0)).ravel()
    uniform = str(adata.var_names[np.argsort(-totals[1:])[0] + 1])
    hyps = cf.parse_hypotheses(
        [
            {"gene": "G0000", "test": "main_sources", "groups": ["CAF"]},
            {"gene": uniform, "test": "main_sources", "groups": ["NK"]},
            {"gene": "G0000", "test": "main_sources", "groups": ["CAF"], "share": 0.97},
            {"gene": "G0000", "test": "main_sources", "groups": ["pericyte"]},
            {"gene": "Nope", "test": "main_sources", "groups": ["CAF", "TAM"]},
        ]
    )
    assert hyps[0].label == "G0000 main sources: CAF (> 50% of stroma)"
    assert hyps[4].cell_type == "CAF + TAM" and hyps[4].groups == ("CAF", "TAM")
    table, values = cf.confirm(adata, hyps, reference=REF, test=TEST)
    t = table.set_index(table["hypothesis"].str.split(":").str[0])
    assert t.loc["H1", "verdict"] == "supported", t.loc["H1"].to_string()
    shares = values[values["hypothesis"] == t.loc["H1", "hypothesis"]]["value"]
    assert len(shares) == 6 and (shares > 0.5).all() and (shares < 1).all()
    assert t.loc["H2", "verdict"] == "not supported" and t.loc["H2", "effect"] < 0
    assert t.loc["H3", "verdict"] == "not supported"
    assert t.loc["H4", "verdict"] == "not testable" and "pericyte" in t.loc["H4", "reason"]
    assert t.loc["H5", "verdict"] == "not testable" and "Nope" in t.loc["H5", "reason"]
    assert (table["holm_m"] == 5).all()
    # the tumour (human) cells never enter the stroma's UMIs
    caf_share = shares.to_numpy()
    manual = []
    for s in sorted(set(adata.obs["sample"])):
        m = (adata.obs["sample"] == s).to_numpy() & (adata.obs["cell_type"] != "tumor").to_numpy()
        col = adata[m, "G0000"].layers["counts"].toarray().ravel()
        manual.append(col[(adata.obs.loc[m, "cell_type"] == "CAF").to_numpy()].sum() / col.sum())
    np.testing.assert_allclose(np.sort(caf_share), np.sort(manual), rtol=0.05)


def test_main_sources_refuses_a_cell_type_or_a_direction():
    for bad in (
        {"gene": "Gas6", "test": "main_sources", "groups": ["CAF"], "cell_type": "CAF"},
        {"gene": "Gas6", "test": "main_sources", "groups": ["CAF"], "direction": "up"},
        {"gene": "Gas6", "test": "main_sources"},
    ):
        with pytest.raises(ValueError, match="main_sources"):
            cf.parse_hypotheses([bad])


def test_minimum_detectable_effect_shrinks_with_animals_and_is_in_the_reason():
    """mde_80 = (q(1 - alpha/m) + q(0.8)) * se: finite for tested rows, larger with fewer
    animals, and quoted in a 'not supported' reason."""
    hyps = cf.parse_hypotheses(
        [
            {"gene": "G0000", "cell_type": "CAF", "direction": "up"},
            {"gene": "G0001", "cell_type": "CAF", "test": "source"},
            {"proportion": "stroma", "cell_type": "TAM", "direction": "up"},
        ]
    )
    mde = {}
    for n in (3, 6):
        adata = stromal_counts(
            n_genes=200, animals_per_arm=n, cells_per_animal=200, fold=1.0, gene_mean=0.5, seed=3
        )
        table, _ = cf.confirm(adata, hyps, reference=REF, test=TEST, loo=False, shrink=False)
        assert table["mde_80"].notna().all(), table.to_string()
        assert (table["mde_80"] > 0).all()
        mde[n] = table["mde_80"].to_numpy()
        for _, row in table[table["verdict"] == "not supported"].iterrows():
            assert "80% power needs an effect of at least" in row["reason"]
    assert (mde[6] < mde[3]).all(), mde
    # by hand for the source row (a one-sided t over 12 animals): se from its 95% interval
    src = table.iloc[1]
    dist = stats.t(11)
    se = (src["ci_high"] - src["ci_low"]) / (2 * dist.ppf(0.975))
    want = (dist.ppf(1 - 0.05 / 3) + dist.ppf(0.8)) * se
    assert src["mde_80"] == pytest.approx(want, rel=1e-9)


def test_proportion_rows_are_the_quasi_binomial_glm_on_the_animals_counts():
    """A proportion row is :func:`quasi_binomial_test` on each animal's cells of the type and
    of the denominator (not propeller, anti-conservative at few animals): its effect (log odds
    ratio), one-sided p, interval, leave-one-out refits and mde_80 (t on n - 2 df);
    padj_exploratory is still the exploratory propeller table's."""
    adata = tumour_experiment(animals_per_arm=3, tam_fold=2.0, counts=False, seed=1)
    hyps = cf.parse_hypotheses([{"proportion": "stroma", "cell_type": "TAM", "direction": "up"}])
    table, values = cf.confirm(adata, hyps, reference=REF, test=TEST)
    row = table.iloc[0]
    assert row["method"] == composition.QUASI_BINOMIAL
    assert row["effect_scale"] == "log odds ratio of the pooled proportion"
    stroma = adata.obs[adata.obs["species"] == "mouse"]
    k = stroma["cell_type"].eq("TAM").groupby(stroma["sample"]).sum()
    n = stroma.groupby("sample").size()
    arm = stroma.groupby("sample")["condition"].first()
    samples = values["sample"].tolist()  # the table's order: reference animals first
    fit = composition.quasi_binomial_test(
        k[samples].to_numpy(float), n[samples].to_numpy(float),
        (arm[samples] == TEST).to_numpy(), direction="up",
    )  # fmt: skip
    for col in ("effect", "effect_unshrunk", "ci_low", "ci_high", "pvalue"):
        key = "effect" if col == "effect_unshrunk" else col
        assert row[col] == pytest.approx(fit[key], rel=1e-12), col
    assert row["effect"] > 0 and row["verdict"] == "supported", row.to_dict()
    assert (row["loo_min"], row["loo_max"]) == pytest.approx((fit["loo"].min(), fit["loo"].max()))
    assert row["loo_n_computable"] == row["loo_n_animals"] == 6
    dist = stats.t(4)
    assert row["mde_80"] == pytest.approx((dist.ppf(1 - 0.05) + dist.ppf(0.8)) * fit["se"])
    props = composition.denominator_proportions(adata)["stroma"]
    res = composition.propeller(props, reference=REF, test=TEST).set_index("cell_type")
    assert row["padj_exploratory"] == pytest.approx(res.loc["TAM", "padj"])


def test_proportion_rows_leave_no_animal_out_at_two_per_arm():
    """At 2 vs 2 no animal can be left out of a proportion row (its arm would keep one, below
    min_replicates), as for every other kind: no computable refit, the sign check NA, and a
    significant rise in the stated direction is supported saying why none was left out."""
    adata = tumour_experiment(animals_per_arm=2, tam_fold=3.0, counts=False, seed=2)
    hyps = cf.parse_hypotheses([{"proportion": "stroma", "cell_type": "TAM", "direction": "up"}])
    row = cf.confirm(adata, hyps, reference=REF, test=TEST)[0].iloc[0]
    assert row["loo_n_animals"] == 4 and row["loo_n_computable"] == 0, row.to_dict()
    assert pd.isna(row["loo_sign_stable"]) and np.isnan(row["loo_min"])
    assert "min_replicates = 2" in row["reason"], row["reason"]
    assert row["p_holm"] < 0.05 and row["verdict"] == "supported", row.to_dict()
    assert "no animal could be left out" in row["reason"]
    # at 3 vs 3 every animal can be left out
    adata = tumour_experiment(animals_per_arm=3, tam_fold=3.0, counts=False, seed=2)
    row = cf.confirm(adata, hyps, reference=REF, test=TEST)[0].iloc[0]
    assert row["loo_n_computable"] == row["loo_n_animals"] == 6


# --- proportions within a parent type --------------------------------------------------------


def test_within_parent_is_the_subtypes_share_of_its_parent():
    """TAM_Mrc1 planted 1.6x among the TAMs (4 vs 4 animals, labels only): supported within
    TAM, the per-animal values are its share of each animal's TAMs; the rare TAM_Arg1 (not
    planted) is not; the label names the parent."""
    adata = tumour_experiment(
        animals_per_arm=4, within_fold=1.6, within_concentration=200, counts=False, seed=2
    )
    hyps = cf.parse_hypotheses(
        [
            {"proportion": "within_TAM", "cell_type": "TAM_Mrc1", "direction": "up"},
            {"proportion": "within_TAM", "cell_type": "TAM_Arg1", "direction": "up"},
            {"proportion": "stroma", "cell_type": "TAM", "direction": "up"},
        ]
    )
    assert hyps[0].label == "TAM_Mrc1 among TAM up"
    table, values = cf.confirm(adata, hyps, reference=REF, test=TEST)
    row = table.iloc[0]
    assert row["verdict"] == "supported", row.to_dict()
    assert row["level"] == "cell_subtype" and row["denominator"] == "within_TAM"
    assert row["effect"] > 0 and (row["n_animals_reference"], row["n_animals_test"]) == (4, 4)
    assert table.iloc[1]["verdict"] == "not supported" and table.iloc[1]["effect"] < 0
    obs = adata.obs[adata.obs["cell_type"] == "TAM"]
    share = obs["cell_subtype"].eq("TAM_Mrc1").groupby(obs["sample"]).mean()
    per = values[values["hypothesis"] == row["hypothesis"]].set_index("sample")["value"]
    np.testing.assert_allclose(per.sort_index(), share.sort_index())
    assert (
        "of TAM cells"
        in values.loc[values["hypothesis"] == row["hypothesis"], "value_label"].iat[0]
    )
    # the same data among the stroma: TAM is not changed there
    assert table.iloc[2]["verdict"] == "not supported"


def test_within_parent_leaves_out_an_animal_without_parent_cells_and_says_so():
    adata = tumour_experiment(animals_per_arm=4, counts=False, seed=3)
    gone = (adata.obs["sample"] == f"{TEST}_1") & (adata.obs["cell_type"] == "TAM")
    adata = adata[~gone.to_numpy()].copy()
    hyps = cf.parse_hypotheses(
        [{"proportion": "within_TAM", "cell_type": "TAM_Mrc1", "direction": "up"}]
    )
    table, values = cf.confirm(adata, hyps, reference=REF, test=TEST)
    row = table.iloc[0]
    assert np.isfinite(row["pvalue"]), row.to_dict()
    assert (row["n_animals_reference"], row["n_animals_test"]) == (4, 3)
    assert f"1 animal(s) without any TAM cell not counted ({TEST}_1)" in row["reason"]
    assert f"{TEST}_1" not in set(values["sample"]) and len(values) == 7
    # with a second arm short of TAMs, the arm keeps one animal: not testable, still said
    for a in (0, 2, 3):
        gone = (adata.obs["sample"] == f"{TEST}_{a}") & (adata.obs["cell_type"] == "TAM")
        adata = adata[~gone.to_numpy() | (a == 0)].copy()
    table, _ = cf.confirm(adata, hyps, reference=REF, test=TEST)
    row = table.iloc[0]
    assert row["verdict"] == "not testable", row.to_dict()
    assert "3 animal(s) without any TAM cell not counted" in row["reason"]


def test_within_parent_not_testable_reasons():
    adata = tumour_experiment(animals_per_arm=3, counts=False, seed=4)
    hyps = cf.parse_hypotheses(
        [
            {"proportion": "within_CAF", "cell_type": "CAF"},
            {"proportion": "within_pDC", "cell_type": "pDC_x"},
            {"proportion": "within_TAM", "cell_type": "CAF"},
        ]
    )
    table, _ = cf.confirm(adata, hyps, reference=REF, test=TEST)
    assert table["verdict"].eq("not testable").all(), table.to_string()
    assert "'CAF' is not split into subtypes" in table.iloc[0]["reason"]
    assert "no cell of type 'pDC'" in table.iloc[1]["reason"]
    assert "no cell labelled 'CAF' among within_TAM" in table.iloc[2]["reason"]
    assert (table["holm_m"] == 3).all()
    no_sub = adata.copy()
    del no_sub.obs["cell_subtype"]
    table, _ = cf.confirm(no_sub, hyps[2:], reference=REF, test=TEST)
    assert "lacks 'cell_subtype'" in table.iloc[0]["reason"]


@pytest.mark.parametrize(
    ("denominator", "ok"),
    [("within_TAM", True), ("within_T.reg+", True), ("stroma", True), ("within_", False),
     ("tam", False), ("within TAM", False)],
)  # fmt: skip
def test_schema_accepts_within_parent_denominators(denominator, ok):
    from pathlib import Path

    import yaml

    from tmeflow.core import _config as tmc

    repo = Path(__file__).resolve().parents[3]
    config = yaml.safe_load((repo / "config/config.yaml").read_text())
    config["hypotheses"] = [{"proportion": denominator, "cell_type": "TAM_Mrc1"}]
    if ok:
        tmc.validate_config(config, repo / "workflow/schemas/config.schema.yaml")
    else:
        with pytest.raises(tmc.ConfigError, match="proportion"):
            tmc.validate_config(config, repo / "workflow/schemas/config.schema.yaml")


def test_the_shipped_family_parses_after_the_schema_fills_its_defaults():
    """The config validator writes schema defaults into every hypothesis entry: none may land
    in an entry whose kind refuses it (a `share` default broke every interaction entry)."""
    from pathlib import Path

    import yaml

    from tmeflow import core

    repo = Path(__file__).resolve().parents[3]
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    core.validate_config(config, repo / "workflow" / "schemas" / "config.schema.yaml")
    hyps = cf.parse_hypotheses(config["hypotheses"])
    assert len(hyps) == len(config["hypotheses"])
    assert {h.kind for h in hyps} >= {"change", "source", "main_sources", "proportion"}


# --- the second DE method --------------------------------------------------------------------


def test_limma_voom_supports_the_planted_change_and_not_the_nulls(few_animals):
    """The same family under limma-voom: the planted x3 change supported with its own
    interval and leave-one-out (refits without each animal), a null gene not; the rows say
    which method ran."""
    hyps = cf.parse_hypotheses(
        [
            {"gene": "G0000", "cell_type": "CAF", "direction": "up"},
            {"gene": "G0002", "cell_type": "CAF", "direction": "up"},
            {"gene": "G0003", "cell_type": "TAM"},
        ]
    )
    table, _ = cf.confirm(few_animals, hyps, reference=REF, test=TEST, de_method="limma_voom")
    assert table["method"].tolist() == ["limma_voom"] * 3, table.to_string()
    planted = table.iloc[0]
    assert planted["verdict"] == "supported", planted.to_dict()
    assert 1 < planted["effect"] < 2.5 and planted["ci_low"] > 0  # log2 3 = 1.58
    assert planted["effect"] == planted["effect_unshrunk"]  # no shrinkage under voom
    assert (planted["loo_n_computable"], planted["loo_n_animals"]) == (6, 6)
    assert planted["loo_min"] > 0 and planted["loo_sign_stable"]
    assert "limma-voom" in planted["effect_scale"]
    assert table.loc[1:, "verdict"].eq("not supported").all(), table.to_string()
    # PyDESeq2 on the same cells agrees on the direction
    pydeseq2, _ = cf.confirm(few_animals, hyps[:1], reference=REF, test=TEST, shrink=False)
    assert np.sign(pydeseq2.loc[0, "effect"]) == np.sign(planted["effect"])


def test_limma_voom_reasons_for_a_filtered_gene_and_an_unknown_method(few_animals):
    """A gene edgeR's filterByExpr drops is not testable, with that reason; a method name
    that does not exist is refused."""
    adata = few_animals.copy()
    caf = (adata.obs["cell_type"] == "CAF").to_numpy()
    j = adata.var_names.get_loc("G0005")
    counts = adata.layers["counts"].tolil()
    rows = np.flatnonzero(caf)
    counts[rows, j] = 0
    counts[rows[0], j] = 3  # three UMIs in one CAF: counted, but far below filterByExpr
    adata.layers["counts"] = counts.tocsr()
    hyps = cf.parse_hypotheses([{"gene": "G0005", "cell_type": "CAF"}])
    table, _ = cf.confirm(adata, hyps, reference=REF, test=TEST, de_method="limma_voom")
    assert "filterByExpr" in table.loc[0, "reason"], table.loc[0, "reason"]
    assert table.loc[0, "verdict"] == "not testable"
    with pytest.raises(ValueError, match="unknown DE method 'edger'"):
        cf.confirm(adata, hyps, reference=REF, test=TEST, de_method="edger")


def test_source_counts_cached_per_gene_and_cell_set(monkeypatch):
    """With a fits cache, a gene's ambient accounting runs once per cell set (several source
    rows on one gene, relabelling settings), again for another cell set, and the tables equal
    the uncached ones."""
    adata = tumour_experiment(animals_per_arm=2, n_genes=20, seed=3)
    hyps = cf.parse_hypotheses(
        [
            {"gene": "Postn", "cell_type": "CAF", "test": "source"},
            {"gene": "Postn", "cell_type": "TAM", "test": "source"},
            {"gene": "Gas6", "test": "main_sources", "groups": ["CAF", "TAM_Mrc1"]},
        ]
    )
    relabelled = adata.copy()
    relabelled.obs["cell_type"] = relabelled.obs["cell_type"].astype(str)
    move = (relabelled.obs["cell_type"] == "CAF").to_numpy() & (
        np.arange(relabelled.n_obs) % 4 == 0
    )
    relabelled.obs.loc[move, "cell_type"] = "TAM"
    fewer = adata[adata.obs_names[25:]].copy()
    kw = {"reference": REF, "test": TEST, "shrink": False}
    plain = [cf.confirm(a, hyps, **kw)[0] for a in (adata, relabelled, fewer)]
    calls = []
    real = cf.ambient.gene_ambient

    def counting(data, col, gene, **kwargs):
        calls.append((data.n_obs, gene))
        return real(data, col, gene, **kwargs)

    monkeypatch.setattr(cf.ambient, "gene_ambient", counting)
    fits: dict = {}
    cached = [cf.confirm(a, hyps, fits=fits, **kw)[0] for a in (adata, relabelled, fewer)]
    n, m = adata.n_obs, fewer.n_obs
    assert calls == [(n, "Postn"), (n, "Gas6"), (m, "Postn"), (m, "Gas6")], calls
    for a, b in zip(plain, cached, strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert not plain[0]["effect"].equals(plain[1]["effect"])  # the relabelling mattered

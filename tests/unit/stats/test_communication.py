"""Ligand-receptor communication: the ortholog mapping, per-animal scores, the arm comparison
and the ``interaction`` hypotheses of the confirmatory family, on synthetic xenografts."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData
from scipy import stats

from tmeflow.stats import _communication as cc
from tmeflow.stats import _confirmatory as cf

REF, TEST = "control", "drug"
ORTHOLOGS = (
    Path(__file__).resolve().parents[3] / "config/genesets/orthologs_human_mouse_HCOP.tsv.gz"
)
#: mouse stroma (type, subtype) and the human tumour; Gas6 in CAF, Dcn in CAF, Axl in TAM
MOUSE_GENES = ["Gas6", "Dcn", "Axl", "Tgfb1"] + [f"Mg{i}" for i in range(40)]
HUMAN_GENES = ["AXL", "EGFR", "TGFBR1", "TGFBR2", "GAS6"] + [f"HG{i}" for i in range(30)]
O2O = {"GAS6": "Gas6", "DCN": "Dcn", "AXL": "Axl", "TGFB1": "Tgfb1", "TGFBR1": "Tgfbr1"}


def xenograft(
    *,
    animals: int = 3,
    gas6_fold: float = 1.0,
    gas6_caf: float = 3.0,
    animal_cv: float = 0.1,
    seed: int = 0,
) -> AnnData:
    """Per animal 120 CAFs (myCAF/iCAF), 120 TAMs (TAM_Mrc1/TAM_Spp1) and 200 human tumour
    cells; ``Gas6`` in CAFs (``gas6_caf`` per cell, ``gas6_fold`` times that treated), ``Dcn``
    in CAFs (unchanged), ``AXL``/``EGFR`` in the tumour; Poisson noise, a gamma animal effect."""
    rng = np.random.default_rng(seed)
    genes = MOUSE_GENES + HUMAN_GENES
    g = {n: i for i, n in enumerate(genes)}
    blocks, obs = [], []
    for arm in (REF, TEST):
        for a in range(animals):
            sample = f"{arm}_{a}"
            animal = rng.gamma(1 / animal_cv**2, animal_cv**2, size=len(genes))
            for label, sub, species, n in (
                ("CAF", "myCAF", "mouse", 60),
                ("CAF", "iCAF", "mouse", 60),
                ("TAM", "TAM_Mrc1", "mouse", 60),
                ("TAM", "TAM_Spp1", "mouse", 60),
                ("tumor", "tumor", "human", 200),
            ):
                mu = np.zeros(len(genes))
                if species == "mouse":
                    mu[: len(MOUSE_GENES)] = 1.0
                    mu[g["Gas6"]] = 0.05
                    mu[g["Axl"]] = 2.0 if label == "TAM" else 0.05
                    if label == "CAF":
                        mu[g["Gas6"]] = gas6_caf * (gas6_fold if arm == TEST else 1.0)
                        mu[g["Dcn"]] = 4.0
                else:
                    mu[len(MOUSE_GENES) :] = 1.0
                    mu[g["AXL"]], mu[g["EGFR"]] = 3.0, 2.0
                blocks.append(rng.poisson(mu * animal, size=(n, len(genes))))
                obs += [(sample, arm, label, sub, species)] * n
    counts = sp.csr_matrix(np.vstack(blocks).astype(np.float32))
    obs_df = pd.DataFrame(
        obs, columns=["sample", "condition", "cell_type", "cell_subtype", "species"]
    )
    obs_df.index = [f"c{i}" for i in range(len(obs_df))]
    var = pd.DataFrame(
        {"species": ["mouse"] * len(MOUSE_GENES) + ["human"] * len(HUMAN_GENES)}, index=genes
    )
    adata = AnnData(X=counts.copy(), obs=obs_df, var=var)
    adata.layers["counts"] = counts
    return adata


RESOURCE = pd.DataFrame(
    {
        "ligand": ["GAS6", "DCN", "TGFB1", "GAS6", "GAS6"],
        "receptor": ["AXL", "EGFR", "TGFBR1_TGFBR2", "MERTK", "AXL"],
    }
)


def test_one_to_one_leaves_out_symbols_with_two_partners():
    o = pd.DataFrame(
        {
            "human_symbol": ["A2M", "A2M", "AXL", "GAS6", "X1", "X2"],
            "mouse_symbol": ["A2m", "Gm7298", "Axl", "Gas6", "Xx", "Xx"],
        }
    )
    assert cc.one_to_one(o) == {"AXL": "Axl", "GAS6": "Gas6"}


def test_mapping_keeps_one_to_one_and_whole_complexes_only():
    """Mouse ligands to human receptors: a complex with an unmapped subunit (TGFBR2) is dropped
    on the mouse side only; MERTK lacks a mouse partner here; duplicates count once."""
    pairs, report = cc.map_resource(
        RESOURCE, O2O, [("mouse", "human"), ("human", "mouse")], MOUSE_GENES + HUMAN_GENES
    )
    mh = pairs[pairs["sender_species"] == "mouse"]
    assert list(mh["interaction"]) == ["Gas6-AXL", "Dcn-EGFR", "Tgfb1-TGFBR1_TGFBR2", "Gas6-MERTK"]
    hm = pairs[pairs["sender_species"] == "human"]
    assert list(hm["interaction"]) == ["GAS6-Axl"]
    rep = report.set_index("sender_species")
    assert rep.loc["mouse", "n_resource"] == 4 and rep.loc["mouse", "n_kept"] == 4
    assert rep.loc["human", "n_kept"] == 1 and rep.loc["human", "dropped_receptor"] == 3
    assert rep.loc["human", "n_dropped"] == 3 and rep.loc["human", "share_kept"] == 0.25
    # in the data: Gas6-AXL, Dcn-EGFR, Tgfb1-TGFBR1_TGFBR2 (MERTK absent); GAS6-Axl
    assert rep.loc["mouse", "n_in_data"] == 3 and rep.loc["human", "n_in_data"] == 1


@pytest.mark.skipif(not ORTHOLOGS.exists(), reason="shipped ortholog table absent")
def test_shipped_orthologs_map_gas6_axl_and_most_of_the_consensus_resource():
    o2o = cc.read_orthologs(ORTHOLOGS)
    assert o2o["GAS6"] == "Gas6" and o2o["AXL"] == "Axl" and "A2M" not in o2o
    pytest.importorskip("liana")
    pairs, report = cc.map_resource(cc.consensus_resource(), o2o, [("mouse", "human")])
    assert "Gas6-AXL" in set(pairs["interaction"])
    share = float(report["share_kept"].iat[0])
    assert 0.6 < share < 1.0, share


def test_scores_are_the_geometric_mean_of_mean_log1p_cp10k():
    adata = xenograft(seed=1)
    pairs, _ = cc.map_resource(RESOURCE, O2O, cc.directions("xenograft"))
    scores = cc.interaction_scores(adata, pairs, species="xenograft", expr_prop=0.1)
    row = scores[
        (scores["sender"] == "CAF")
        & (scores["receiver"] == "tumor")
        & (scores["interaction"] == "Gas6-AXL")
        & (scores["sample"] == "control_0")
    ].iloc[0]
    counts = adata.layers["counts"].toarray()
    norm = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)
    s = (adata.obs["sample"] == "control_0").to_numpy()
    lig = norm[s & (adata.obs["cell_type"] == "CAF").to_numpy(), 0].mean()
    rec = norm[s & (adata.obs["cell_type"] == "tumor").to_numpy(), len(MOUSE_GENES)].mean()
    assert row["ligand_expr"] == pytest.approx(lig) and row["receptor_expr"] == pytest.approx(rec)
    assert row["score"] == pytest.approx(np.sqrt(lig * rec))
    # only across species; subtypes are senders too; TAMs barely express Gas6: filtered out
    assert set(scores["sender"]) >= {"CAF", "myCAF", "iCAF"}
    assert not ((scores["sender"] == "TAM") & (scores["interaction"] == "Gas6-AXL")).any()
    assert set(scores.loc[scores["sender"] == "tumor", "interaction"]) == {"GAS6-Axl"} or (
        "GAS6-Axl" not in set(scores["interaction"])
    )
    assert not (scores["sender"].isin(["CAF"]) & scores["receiver"].isin(["TAM"])).any()


def test_comparison_finds_the_planted_rise_and_not_the_null_pair():
    """Gas6 tripled in treated CAFs: Gas6-AXL CAF -> tumour up, rank 1, BH-significant;
    Dcn-EGFR (unchanged) not; Welch's t equals scipy's."""
    adata = xenograft(gas6_fold=3.0, seed=2)
    pairs, _ = cc.map_resource(RESOURCE, O2O, cc.directions("xenograft"))
    scores = cc.interaction_scores(adata, pairs, species="xenograft")
    comp = cc.compare_arms(scores, reference=REF, test=TEST).set_index(
        ["sender", "receiver", "interaction"]
    )
    up = comp.loc[("CAF", "tumor", "Gas6-AXL")]
    null = comp.loc[("CAF", "tumor", "Dcn-EGFR")]
    assert up["effect"] > 0 and up["padj"] < 0.05 and up["rank"] == 1, up.to_string()
    assert null["pvalue"] > 0.05, null.to_string()
    sub = scores[
        (scores["sender"] == "CAF") & (scores["receiver"] == "tumor")
        & (scores["interaction"] == "Gas6-AXL")
    ]  # fmt: skip
    ref = sub.loc[sub["condition"] == REF, "score"]
    tst = sub.loc[sub["condition"] == TEST, "score"]
    assert up["pvalue"] == pytest.approx(stats.ttest_ind(tst, ref, equal_var=False).pvalue)
    # no effect planted: nothing BH-significant
    flat = cc.compare_arms(
        cc.interaction_scores(xenograft(seed=3), pairs, species="xenograft"),
        reference=REF,
        test=TEST,
    )
    assert (flat["padj"] >= 0.05).all(), flat.to_string()


def test_soup_ligand_is_flagged(monkeypatch):
    """A ligand 80% of whose sender UMIs the soup model calls ambient is flagged mostly soup."""
    adata = xenograft(seed=4)
    real = cc.ambient.gene_ambient

    def soup(data, col, gene, **kwargs):
        other, expected = real(data, col, gene, **kwargs)
        return (other, 0.8 * col) if gene == "Dcn" else (other, expected)

    monkeypatch.setattr(cc.ambient, "gene_ambient", soup)
    pairs, _ = cc.map_resource(RESOURCE, O2O, cc.directions("xenograft"))
    scores = cc.interaction_scores(adata, pairs, species="xenograft")
    comp = cc.compare_arms(
        scores, reference=REF, test=TEST, ambient_explained=cc.soup_flags(adata, scores)
    ).set_index(["sender", "receiver", "interaction"])
    assert bool(comp.loc[("CAF", "tumor", "Dcn-EGFR"), "ligand_mostly_soup"])
    assert not bool(comp.loc[("CAF", "tumor", "Gas6-AXL"), "ligand_mostly_soup"])


def test_split_interaction_uses_the_data_symbols():
    names = ["H2-K1", "Cd8a", "Gas6", "AXL", "TGFBR1", "TGFBR2"]
    assert cc.split_interaction("Gas6-AXL", names) == ("Gas6", "AXL")
    assert cc.split_interaction("H2-K1-Cd8a", names) == ("H2-K1", "Cd8a")
    assert cc.split_interaction("Gas6-TGFBR1_TGFBR2", names) == ("Gas6", "TGFBR1_TGFBR2")
    assert cc.split_interaction("Nope-AXL", names) is None


# --- the confirmatory kind -------------------------------------------------------------------


def test_interaction_hypotheses_verdicts_holm_loo_and_mde():
    """Gas6-AXL planted up in CAFs: supported from CAF and myCAF, Holm over the fixed family
    of 4; Dcn-EGFR (unchanged) not supported with mde_80 in its reason; an absent group is not
    testable and still counts; the per-animal values are the scores."""
    adata = xenograft(gas6_fold=3.0, seed=5)
    hyps = cf.parse_hypotheses(
        [
            {"interaction": "Gas6-AXL", "sender": "CAF", "receiver": "tumor", "direction": "up"},
            {"interaction": "Gas6-AXL", "sender": "myCAF", "receiver": "tumor", "direction": "up"},
            {"interaction": "Dcn-EGFR", "sender": "CAF", "receiver": "tumor", "direction": "up"},
            {"interaction": "Gas6-AXL", "sender": "pericyte", "receiver": "tumor"},
        ]
    )
    assert hyps[0].label == "Gas6-AXL up from CAF to tumor" and hyps[0].receiver == "tumor"
    table, values = cf.confirm(adata, hyps, reference=REF, test=TEST)
    t = table.set_index(table["hypothesis"].str.split(":").str[0])
    assert (table["holm_m"] == 4).all() and (table["kind"] == "interaction").all()
    for h in ("H1", "H2"):
        assert t.loc[h, "verdict"] == "supported", t.loc[h].to_string()
        assert t.loc[h, "loo_sign_stable"] and t.loc[h, "loo_n_computable"] == 6
    assert t.loc["H3", "verdict"] == "not supported"
    assert "80% power needs an effect of at least" in t.loc["H3", "reason"]
    assert np.isfinite(t.loc["H3", "mde_80"]) and t.loc["H3", "mde_80"] > 0
    assert t.loc["H4", "verdict"] == "not testable" and "pericyte" in t.loc["H4", "reason"]
    p = t.loc[["H1", "H2", "H3"], "pvalue"].to_numpy(float)
    np.testing.assert_allclose(t.loc[["H1", "H2", "H3"], "p_holm"], cf.holm([*p, np.nan], m=4)[:3])
    h1 = values[values["hypothesis"] == t.loc["H1", "hypothesis"]]
    assert len(h1) == 6
    assert (
        h1.groupby("condition")["value"].mean()[TEST] > h1.groupby("condition")["value"].mean()[REF]
    )


def test_interaction_one_animal_flip_is_not_supported():
    """A rise carried by one treated animal (its CAFs make 6x the Gas6) is not supported:
    leaving that animal out reverses the sign."""
    adata = xenograft(gas6_fold=1.0, seed=6, animal_cv=0.02)
    counts = adata.layers["counts"].tolil()
    j = adata.var_names.get_loc("Gas6")
    rows = np.flatnonzero(
        ((adata.obs["sample"] == "drug_0") & (adata.obs["cell_type"] == "CAF")).to_numpy()
    )
    counts[rows, j] = np.asarray(counts[rows, j].todense()) * 6
    adata.layers["counts"] = counts.tocsr()
    hyps = cf.parse_hypotheses(
        [{"interaction": "Gas6-AXL", "sender": "CAF", "receiver": "tumor", "direction": "up"}]
    )
    table, _ = cf.confirm(adata, hyps, reference=REF, test=TEST)
    row = table.iloc[0]
    assert row["verdict"] == "not supported", row.to_string()
    assert not row["loo_sign_stable"] and "sign not stable" in row["reason"]
    assert row["loo_min"] < 0 < row["loo_max"]


def test_interaction_parse_refusals():
    for bad in (
        {"interaction": "Gas6-AXL", "sender": "CAF"},
        {"interaction": "Gas6AXL", "sender": "CAF", "receiver": "tumor"},
        {"interaction": "Gas6-AXL", "sender": "CAF", "receiver": "tumor", "gene": "Gas6"},
    ):
        with pytest.raises(ValueError, match="interaction hypothesis"):
            cf.parse_hypotheses([bad])


def test_compare_arms_equals_scipy_welch_per_pair():
    """The comparison's array arithmetic gives scipy's Welch t for every pair (2-6 animals an
    arm, NaN scores left out), and the notes where an arm has one animal or no spread."""
    rng = np.random.default_rng(3)
    rows = []
    for k in range(40):
        n_r, n_t = rng.integers(1, 7, size=2)
        flat = k == 7
        for arm, n in ((REF, n_r), (TEST, n_t)):
            for i in range(n):
                score = 1.0 if flat else rng.gamma(2.0, 0.5)
                rows.append(
                    (f"{arm}{i}", arm, "CAF", "tumor", f"L{k}-R{k}", f"L{k}", f"R{k}", score)
                )
        rows.append(("x", REF, "CAF", "tumor", f"L{k}-R{k}", f"L{k}", f"R{k}", np.nan))
    cols = ["sample", "condition", "sender", "receiver", "interaction", "ligand", "receptor"]
    scores = pd.DataFrame(rows, columns=[*cols, "score"])
    comp = cc.compare_arms(scores, reference=REF, test=TEST).set_index("interaction")
    assert len(comp) == 40
    for name, sub in scores.dropna().groupby("interaction"):
        ref = sub.loc[sub["condition"] == REF, "score"].to_numpy()
        tst = sub.loc[sub["condition"] == TEST, "score"].to_numpy()
        row = comp.loc[name]
        assert row["n_animals_reference"] == ref.size and row["n_animals_test"] == tst.size
        assert row["effect"] == pytest.approx(tst.mean() - ref.mean(), rel=1e-12)
        if min(ref.size, tst.size) < 2:
            assert row["note"].startswith("fewer than 2 animals") and np.isnan(row["pvalue"])
        elif name == "L7-R7":
            assert row["note"] == "the same score in every animal" and np.isnan(row["pvalue"])
        else:
            ref_t = stats.ttest_ind(tst, ref, equal_var=False)
            assert row["stat"] == pytest.approx(ref_t.statistic, rel=1e-10)
            assert row["pvalue"] == pytest.approx(ref_t.pvalue, rel=1e-8)
            assert row["note"] == ""
        # the one-pair function agrees with the table
        one = cc.welch(ref, tst)
        assert one["effect"] == pytest.approx(row["effect"], rel=1e-12, nan_ok=True)
        assert one["pvalue"] == pytest.approx(row["pvalue"], rel=1e-12, nan_ok=True)


def test_interaction_counts_cached_per_cell_set_with_the_same_verdicts(monkeypatch):
    """With a fits cache (the sensitivity's), the ligand's and receptor's corrected counts are
    computed once per cell set: a relabelled object with the same cells reads them back, a
    smaller cell set computes its own, and every table equals the uncached one."""
    adata = xenograft(gas6_fold=3.0, seed=5)
    hyps = cf.parse_hypotheses(
        [
            {"interaction": "Gas6-AXL", "sender": "CAF", "receiver": "tumor", "direction": "up"},
            {"interaction": "Gas6-AXL", "sender": "myCAF", "receiver": "tumor", "direction": "up"},
        ]
    )
    relabelled = adata.copy()
    relabelled.obs["cell_subtype"] = relabelled.obs["cell_subtype"].astype(str)
    swap = relabelled.obs["cell_subtype"].isin(["myCAF", "iCAF"]).to_numpy() & (
        np.arange(relabelled.n_obs) % 3 == 0
    )
    relabelled.obs.loc[swap, "cell_subtype"] = "iCAF"
    fewer = adata[adata.obs_names[40:]].copy()
    plain = [cf.confirm(a, hyps, reference=REF, test=TEST)[0] for a in (adata, relabelled, fewer)]
    calls = []
    real = cc._corrected_columns

    def counting(data, genes, cache):
        calls.append(data.n_obs)
        return real(data, genes, cache)

    monkeypatch.setattr(cc, "_corrected_columns", counting)
    fits: dict = {}
    cached = [
        cf.confirm(a, hyps, reference=REF, test=TEST, fits=fits)[0]
        for a in (adata, relabelled, fewer)
    ]
    assert calls == [adata.n_obs, fewer.n_obs], calls
    for a, b in zip(plain, cached, strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert not plain[0]["effect"].equals(plain[1]["effect"])  # the relabelling mattered

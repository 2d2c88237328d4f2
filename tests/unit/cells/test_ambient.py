"""Tests of tmeflow.cells._ambient and the ambient accounting of tmeflow.stats._expression_sources
on a simulated soup.

Per sample: 300 human tumour cells, 60 mouse CAFs (the only cells that express mouse Gas6) and
120 mouse TAMs (no Gas6). Each droplet then receives ``SOUP`` of its UMIs drawn from the
sample's pooled profile (the soup), as ambient RNA does.
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from tmeflow.cells import _ambient as ambient
from tmeflow.stats import _expression_sources as sources

SOUP = 0.05
N_H, N_M = 40, 40  # human genes, mouse genes; mouse gene 0 is Gas6


def _soup_adata(seed: int = 0, soup: float = SOUP) -> AnnData:
    rng = np.random.default_rng(seed)
    genes = [f"HG{i}" for i in range(N_H)] + ["Gas6"] + [f"Mg{i}" for i in range(1, N_M)]
    var_sp = ["human"] * N_H + ["mouse"] * N_M
    prof = {
        "tumor": np.r_[rng.gamma(1, 1, N_H), np.zeros(N_M)],
        "CAF": np.r_[np.zeros(N_H), 1.0, rng.gamma(1, 1, N_M - 1)],
        "TAM": np.r_[np.zeros(N_H), 0.0, rng.gamma(1, 1, N_M - 1)],
    }
    mats, obs = [], []
    for s, cond in (("c1", "ctrl"), ("c2", "ctrl"), ("t1", "drug"), ("t2", "drug")):
        rows, types = [], []
        for t, n in (("tumor", 300), ("CAF", 60), ("TAM", 120)):
            p = prof[t] / prof[t].sum()
            lib = rng.lognormal(np.log(5000), 0.3, n).astype(int)
            rows.append(np.vstack([rng.multinomial(m, p) for m in lib]))
            types += [t] * n
        true = np.vstack(rows)
        pooled = true.sum(axis=0) / true.sum()
        amb = np.vstack([rng.multinomial(int(soup * m), pooled) for m in true.sum(axis=1)])
        mats.append(true + amb)
        sp_cell = ["human" if t == "tumor" else "mouse" for t in types]
        obs += [
            {"sample": s, "condition": cond, "cell_type": t, "species": c}
            for t, c in zip(types, sp_cell, strict=True)
        ]
    counts = sp.csr_matrix(np.vstack(mats))
    adata = AnnData(
        X=counts.astype(np.float32),
        obs=pd.DataFrame(obs, index=[f"cell{i}" for i in range(len(obs))]),
        var=pd.DataFrame({"species": var_sp}, index=genes),
    )
    adata.layers["counts"] = counts
    return adata


def test_contamination_rho_recovers_the_soup_fraction() -> None:
    cont = ambient.sample_contamination(_soup_adata())
    assert list(cont.index) == ["c1", "c2", "t1", "t2"]
    # each droplet: (1 - soup) own + soup ambient out of (1 + soup) x true UMIs
    np.testing.assert_allclose(cont["rho"], SOUP / (1 + SOUP), rtol=0.1)
    assert (cont["soup_mouse_fraction"].between(0.3, 0.5)).all()


def test_no_cross_species_signal_corrects_nothing(caplog) -> None:
    a = _soup_adata()
    a = a[a.obs["species"] == "mouse"].copy()
    cont = ambient.sample_contamination(a)
    assert cont["rho"].isna().all()
    assert "no cross-species signal" in caplog.text
    t = sources.expression_sources(a, "Gas6", group_key="cell_type")
    assert (t["umis_ambient"] == 0).all() and (t["umis_corrected"] == t["umis"]).all()


def test_corrected_sources_remove_the_soup_share_of_mouse_gas6() -> None:
    t = sources.expression_sources(_soup_adata(), "Gas6").set_index(["condition", "cell_type"])
    for cond in ("ctrl", "drug"):
        tum, tam = t.loc[(cond, "tumor")], t.loc[(cond, "TAM")]
        # uncorrected: the soup's share shows up in tumour cells and TAMs
        assert tum["share"] > 0.02 and tam["share"] > 0.01
        # every mouse Gas6 UMI in a human cell is ambient/doublet, and the model expects it
        assert tum["umis_other_species"] == tum["umis"]
        assert tum["umis_ambient"] == 0 and tum["ambient_explained"] == 1.0
        # corrected: <= 2% of mouse Gas6 in tumour cells (and in the TAMs, which make none)
        assert tum["share_corrected"] <= 0.02
        assert tam["share_corrected"] <= 0.02
        assert tam["ambient_explained"] > 0.8
        assert t.loc[(cond, "CAF"), "share_corrected"] >= 0.96
    np.testing.assert_allclose(t.groupby(level="condition")["share_corrected"].sum(), 1.0)


def test_primary_sources_never_name_a_group_ambient_explains() -> None:
    t = sources.expression_sources(_soup_adata(), "Gas6")
    raw = sources.primary_sources(t, min_share=0.02)
    corr = sources.primary_sources(t, min_share=0.02, corrected=True)
    assert "tumor" in set(raw["cell_type"])
    assert set(corr["cell_type"]) == {"CAF"}
    assert corr["primary_reason"].str.startswith("share_corrected").all()
    summary = sources.primary_summary({"cell_type": t}, min_share=0.02, corrected=True)
    assert set(summary["cell_type"]) == {"CAF"}
    assert list(summary.columns) == sources.PRIMARY_COLUMNS
    pooled = summary[summary["condition"] == sources.POOLED]
    assert pooled["share_corrected"].iat[0] >= 0.96


# --- the soup profile and the ambient-corrected counts layer ---------------------------------


def _corrected(a: AnnData, **kw) -> AnnData:
    ambient.add_corrected_layer(a, **kw)
    return a


def test_corrected_layer_is_integer_below_raw_and_removes_rho() -> None:
    a = _corrected(_soup_adata())
    raw, corr = a.layers["counts"], a.layers[ambient.CORRECTED_LAYER]
    assert corr.shape == raw.shape and corr.dtype == raw.dtype
    assert raw is not corr and corr.nnz <= raw.nnz
    assert np.all(np.mod(corr.data, 1) == 0) and corr.data.min() > 0
    diff = (raw - corr).toarray()
    assert diff.min() >= 0  # never above the raw count, never below 0
    cont = ambient.sample_contamination(a)
    samples = a.obs["sample"].to_numpy()
    for s, rho in cont["rho"].items():
        sel = samples == s
        removed = diff[sel].sum() / raw[sel].sum()
        np.testing.assert_allclose(removed, rho, rtol=0.02)
        np.testing.assert_allclose(rho, SOUP / (1 + SOUP), rtol=0.1)
    # every mouse UMI of a human cell is gone; the human cells keep their human genes
    human = (a.obs["species"] == "human").to_numpy()
    mouse_genes = (a.var["species"] == "mouse").to_numpy()
    assert corr[human][:, mouse_genes].sum() == 0
    assert corr[human][:, ~mouse_genes].sum() > 0.95 * raw[human][:, ~mouse_genes].sum()
    rec = a.uns["ambient"]["samples"]["c1"]
    assert rec["soup_source_mouse"] == "other_species_cells"
    assert a.varm["soup_profile"].shape == (a.n_vars, 4)


def test_corrected_layer_is_deterministic_and_raw_is_untouched() -> None:
    a = _soup_adata()
    raw = a.layers["counts"].copy()
    one = _corrected(a).layers[ambient.CORRECTED_LAYER]
    assert (a.layers["counts"] != raw).nnz == 0
    two, _ = ambient.corrected_counts(a, chunk_entries=997)  # chunks do not change a count
    assert (one != two).nnz == 0
    two, _ = ambient.corrected_counts(a, chunk_entries=1)  # one cell at a time
    assert (one != two).nnz == 0


def test_zero_contamination_is_the_identity() -> None:
    a = _soup_adata(soup=0.0)
    human = (a.obs["species"] == "human").to_numpy()
    mouse_genes = (a.var["species"] == "mouse").to_numpy()
    assert a.layers["counts"][human][:, mouse_genes].sum() == 0
    corr = _corrected(a).layers[ambient.CORRECTED_LAYER]
    assert (corr != a.layers["counts"]).nnz == 0
    # and without any cross-species signal (one species) nothing is corrected
    b = _soup_adata()
    b = b[b.obs["species"] == "mouse"].copy()
    assert (_corrected(b).layers[ambient.CORRECTED_LAYER] != b.layers["counts"]).nnz == 0
    assert np.isnan(b.uns["ambient"]["samples"]["c1"]["rho"])


def test_soup_profile_prefers_empty_droplets_then_other_species_then_pooled() -> None:
    a = _soup_adata()
    # an empty-droplet soup of HG0 and Mg1 only (c1), too few UMIs (c2), none (t1, t2)
    empty = pd.DataFrame(0.0, index=a.var_names, columns=["c1", "c2"])
    empty.loc["HG0", "c1"] = 4000.0
    empty.loc["Mg1", "c1"] = 1000.0
    empty.loc["HG1", "c2"] = 10.0
    a.varm["ambient_umis"] = empty
    profile, table = ambient.soup_profiles(a)
    assert table.loc["c1", "soup_source_human"] == "empty_droplets"
    assert profile.loc["HG0", "c1"] == 0.8 and table.loc["c1", "soup_mouse_fraction"] == 0.2
    assert table.loc["c2", "soup_source_human"] == "other_species_cells"
    np.testing.assert_allclose(profile.sum(axis=0), 1.0)
    # the corrected layer takes its soup from the empty droplets: c1's human cells lose HG0
    corr = _corrected(a).layers[ambient.CORRECTED_LAYER]
    c1_h = ((a.obs["sample"] == "c1") & (a.obs["species"] == "human")).to_numpy()
    lost = (a.layers["counts"][c1_h] - corr[c1_h]).toarray().sum(axis=0)
    assert lost[0] > 0 and lost[1:N_H].sum() == 0
    # with a high threshold the pooled cells are the fallback
    _, pooled = ambient.soup_profiles(a, min_soup_umis=10**9)
    assert set(pooled["soup_source_mouse"]) == {"pooled_cells"}


def test_sources_on_the_corrected_layer_put_no_mouse_gas6_in_tumour_cells() -> None:
    a = _corrected(_soup_adata())
    raw = sources.expression_sources(a, "Gas6").set_index(["condition", "cell_type"])
    corr = sources.expression_sources(a, "Gas6", layer=ambient.CORRECTED_LAYER).set_index(
        ["condition", "cell_type"]
    )
    for cond in ("ctrl", "drug"):
        assert raw.loc[(cond, "tumor"), "share"] > 0.02  # the soup's share, uncorrected
        assert corr.loc[(cond, "tumor"), "share"] <= 0.02
        assert corr.loc[(cond, "TAM"), "share"] <= 0.02
        assert corr.loc[(cond, "CAF"), "share"] >= 0.96
    prim = sources.primary_sources(corr.reset_index(), min_share=0.02)
    assert set(prim["cell_type"]) == {"CAF"}


def test_subtraction_follows_the_soup_capped_at_counts_by_hand() -> None:
    counts = sp.csr_matrix(np.array([[10, 0, 5], [1, 0, 1], [1, 0, 1]], dtype=np.int32))
    a = AnnData(
        X=counts.astype(np.float32),
        obs=pd.DataFrame({"sample": ["s", "s", "t"], "species": ""}, index=["a", "b", "c"]),
        var=pd.DataFrame({"species": "unknown"}, index=["g0", "g1", "g2"]),
    )
    a.layers["counts"] = counts
    profile = pd.DataFrame({"s": [0.5, 0.25, 0.25], "t": [0.5, 0.25, 0.25]}, index=a.var_names)
    cont = pd.DataFrame({"rho": [0.2, 0.9]}, index=["s", "t"])
    out, table = ambient.corrected_counts(a, profile=profile, contamination=cont)
    # a: 3 UMIs in proportion 0.5 : 0.25 over the genes with counts (g1 has none) -> 2 + 1;
    # b: 0.4 UMIs round to none; c: 1.8 -> g0 capped at its 1, g2 takes 0.8 -> 2 in all
    np.testing.assert_array_equal(out.toarray(), [[8, 0, 4], [1, 0, 1], [0, 0, 0]])
    assert out.dtype == np.int32
    assert table.loc["s", "n_umis_removed"] == 3 and table.loc["t", "n_umis_removed"] == 2

"""Tests of tmeflow.ambient and the ambient accounting of tmeflow.sources on a simulated soup.

Per sample: 300 human tumour cells, 60 mouse CAFs (the only cells that express mouse Gas6) and
120 mouse TAMs (no Gas6). Each droplet then receives ``SOUP`` of its UMIs drawn from the
sample's pooled profile (the soup), as ambient RNA does.
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from tmeflow import ambient, sources

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

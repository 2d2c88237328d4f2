"""Unit tests for tmeflow.cells._cross_species: the ambient model, the count test, species
integration.

The real-data test builds heterotypic doublets from real cells (human HEK293T from hgmm_100,
mouse lung cells from Tabula Muris) and skips when ../shared/data is absent.
"""

import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tmeflow.cells import _cross_species as crossspecies
from tmeflow.cells import _species as species
from tmeflow.inputs import _read_counts as readers

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _pure_and_doublets(rng: np.random.Generator, rate: float = 0.01):
    """Singlets with ``rate`` other-species ambient, and doublets with a 5-50% minor cell."""
    n = 300
    tot = rng.lognormal(np.log(8000), 0.5, n).astype(int)
    own_h = rng.random(n) < 0.5
    rates = rng.beta(rate * 500, (1 - rate) * 500, n)
    other = rng.binomial(tot, rates)
    n_h = np.where(own_h, tot - other, other)
    n_m = tot - n_h
    n_d = 60
    dtot = rng.lognormal(np.log(8000), 0.5, n_d).astype(int)
    minor = rng.uniform(0.05, 0.5, n_d)
    minor_umis = rng.binomial(dtot, minor)
    d_own_h = rng.random(n_d) < 0.5
    d_h = np.where(d_own_h, dtot - minor_umis, minor_umis)
    d_m = dtot - d_h
    truth = np.r_[np.zeros(n, bool), np.ones(n_d, bool)]
    return np.r_[n_h, d_h], np.r_[n_m, d_m], truth


def test_bh_qvalues_match_hand_computation() -> None:
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5])
    q = crossspecies.bh_qvalues(p)
    # sorted 0.01, 0.03, 0.04, 0.5 (m = 4): p * 4 / rank = 0.04, 0.06, 0.0533, 0.5,
    # then the running minimum from the largest
    np.testing.assert_allclose(q[[0, 2, 1, 4]], [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert np.isnan(q[3])


def test_ambient_rate_and_dominated_doublets_on_simulated_counts() -> None:
    rng = np.random.default_rng(1)
    n_h, n_m, truth = _pure_and_doublets(rng, rate=0.01)
    table, model = crossspecies.call_crossspecies(n_h, n_m, fdr=0.01)
    # the rate is estimated from the bulk, not inflated by the doublets
    for s in ("human", "mouse"):
        assert model.rate[s] == pytest.approx(0.01, rel=0.15)
        assert model.source[s] == "cells"
        assert np.isfinite(model.concentration[s])
    called = table["crossspecies_doublet"].to_numpy()
    assert called[truth].mean() >= 0.95
    assert called[~truth].mean() <= 0.01
    # the fraction rule alone misses the dominated ones
    frac = n_h / (n_h + n_m)
    old = (frac < 0.8) & (frac > 0.2)
    assert old[truth].mean() < 0.8
    dom = table["dominant_species"].to_numpy()
    exp = np.where(dom == "human", model.rate["human"], model.rate["mouse"]) * (n_h + n_m)
    np.testing.assert_allclose(table["ambient_expected"], exp)
    assert (table["n_counts_other"] == np.minimum(n_h, n_m)).all()


def test_binomial_p_value_is_the_upper_tail() -> None:
    model = crossspecies.AmbientModel(
        rate={"human": 0.01, "mouse": 0.01},
        concentration={"human": float("inf"), "mouse": float("inf")},
    )
    # 1000 UMIs at 1%: P(K >= 10) ~ 0.54, P(K >= 30) tiny; P(K >= 0) = 1
    t = crossspecies.score_droplets(np.array([990, 970, 1000]), np.array([10, 30, 0]), model)
    p = t["crossspecies_p"].to_numpy()
    assert 0.4 < p[0] < 0.7 and p[1] < 1e-6 and p[2] == 1.0
    assert t["ambient_expected"].tolist() == [10.0, 10.0, 10.0]


def test_soup_fallback_for_a_species_with_too_few_cells() -> None:
    rng = np.random.default_rng(2)
    tot = rng.integers(5000, 10000, 100)
    other = rng.binomial(tot, 0.02)
    # 100 human cells, 3 mouse cells: the mouse rate comes from the soup
    n_h = np.r_[tot - other, [10, 12, 8]]
    n_m = np.r_[other, [5000, 6000, 7000]]
    soup = {"human": 600.0, "mouse": 400.0}
    model = crossspecies.estimate_ambient(n_h, n_m, soup=soup)
    assert model.source == {"human": "cells", "mouse": "empty_droplets"}
    rho = model.rate["human"] / 0.4
    assert model.rate["mouse"] == pytest.approx(rho * 0.6)
    assert model.soup_fraction == {"human": 0.6, "mouse": 0.4}
    no_soup = crossspecies.estimate_ambient(n_h, n_m)
    assert no_soup.source["mouse"] == "floor"


def test_small_sample_is_estimated_and_fewer_than_five_is_not_tested(caplog) -> None:
    """~20 cells per species: both rates are estimated (median-based) and no singlet is called.

    Before, a bulk of 10 from the lowest quartile needed ~40 pure cells per species; below
    that only min_fraction called them (a floor rate called 40 of 41 real hgmm_100 droplets
    doublets in samples of ~40 cells). With 3 cells of a species and no soup, nothing
    estimates its rate: those droplets are not tested, with a warning naming the species.
    """
    rng = np.random.default_rng(3)
    tot = rng.integers(3000, 20000, 40)
    other = rng.binomial(tot, 0.01)
    own = tot - other
    n_h = np.r_[own[:20], other[20:]]
    n_m = np.r_[other[:20], own[20:]]
    table, model = crossspecies.call_crossspecies(n_h, n_m, fdr=0.01)
    assert model.source == {"human": "cells", "mouse": "cells"}
    for s in ("human", "mouse"):
        assert model.rate[s] == pytest.approx(0.01, rel=0.3)
    assert not table["crossspecies_doublet"].any()
    assert table["crossspecies_p"].notna().all()
    n_h, n_m = np.r_[own[:3], other[20:23]], np.r_[other[:3], own[20:23]]
    with caplog.at_level(logging.WARNING, logger="tmeflow.cells._cross_species"):
        table, model = crossspecies.call_crossspecies(n_h, n_m, fdr=0.01)
    assert model.source == {"human": "floor", "mouse": "floor"}
    assert not table["crossspecies_doublet"].any()
    assert table["crossspecies_p"].isna().all() and table["ambient_expected"].isna().all()
    assert "3 human-dominated droplets not tested" in caplog.text
    assert "3 mouse-dominated droplets not tested" in caplog.text


def test_fdr_out_of_range() -> None:
    with pytest.raises(ValueError, match="crossspecies_fdr"):
        crossspecies.call_crossspecies(np.array([1]), np.array([1]), fdr=1.5)


def _xeno_adata(n_h: np.ndarray, n_m: np.ndarray, soup: bool = False) -> ad.AnnData:
    X = np.c_[n_h, n_m].astype(np.float32)
    var = pd.DataFrame(index=["GRCh38_GAS6", "mm10_Gas6"])
    if soup:
        var["ambient_umis"] = [300, 700]
    obs = pd.DataFrame({"sample": "s1"}, index=[f"c{i}" for i in range(len(n_h))])
    return ad.AnnData(sp.csr_matrix(X), obs=obs, var=var)


def test_assign_species_marks_dominated_doublets_mixed_and_reports_them() -> None:
    rng = np.random.default_rng(3)
    n_h, n_m, truth = _pure_and_doublets(rng)
    a = species.assign_species(
        _xeno_adata(n_h, n_m, soup=True), mode="xenograft", crossspecies_fdr=0.01
    )
    calls = a.obs["species"].astype(str).to_numpy()
    reason = a.obs["species_reason"].to_numpy()
    assert (calls[truth] == "mixed").mean() >= 0.95
    assert (calls[~truth] == "mixed").mean() <= 0.01
    assert set(reason[calls == "mixed"]) <= {"fraction", "ambient_test"}
    assert (reason[calls != "mixed"] == "").all()
    amb = a.uns["species"]["ambient"]
    assert amb["n_mixed_fraction"] == (reason == "fraction").sum() > 0
    assert amb["n_mixed_ambient_test"] == (reason == "ambient_test").sum() > 0
    assert amb["soup_fraction"] == {"human": 0.3, "mouse": 0.7}
    for c in crossspecies.TEST_COLUMNS:
        assert c in a.obs
    row = species.species_report(a, mode="xenograft")
    assert row["n_mixed"] == row["n_mixed_fraction"] + row["n_mixed_ambient_test"]
    assert row["soup_mouse_fraction"] == pytest.approx(0.7)
    # without the test: the fraction rule only, and no new columns
    b = species.assign_species(_xeno_adata(n_h, n_m), mode="xenograft")
    assert "crossspecies_q" not in b.obs and "ambient" not in b.uns["species"]
    assert (b.obs["species"] == "mixed").sum() == amb["n_mixed_fraction"]


# --- real cells ---------------------------------------------------------------------------


def _real_cells():
    h = readers.read_counts(DATA / "hgmm_100_filtered_mtx", sample="hgmm")
    t = readers.read_counts(DATA / "tabula_muris_lung_P7_8", sample="tm")
    ids = np.array(h.var_names.tolist(), dtype=str)
    hum, mou = np.char.startswith(ids, "hg19_"), np.char.startswith(ids, "mm10_")
    X = sp.csr_matrix(h.X).astype(np.int64)
    nh = np.asarray(X[:, hum].sum(1)).ravel()
    nm = np.asarray(X[:, mou].sum(1)).ravel()
    frac = nh / (nh + nm)
    # Tabula Muris symbols onto hgmm's mm10_ features (genes absent there are dropped)
    pos = {s[5:]: j for j, s in enumerate(ids) if s.startswith("mm10_")}
    cols = np.array([pos.get(s, -1) for s in t.var_names.astype(str)])
    keep = np.flatnonzero(cols >= 0)
    P = sp.csr_matrix(
        (np.ones(keep.size), (np.arange(keep.size), cols[keep])), shape=(keep.size, len(ids))
    )
    T = (sp.csr_matrix(t.X).astype(np.int64)[:, keep] @ P).tocsr().astype(np.int64)
    return X[frac > 0.9], X[frac < 0.1], T, hum, mou


def _heterotypic(rng, A, B, n):
    """``n`` doublets of a random cell of A and one of B; the minor cell gives 5-50% of UMIs."""
    rows = []
    for _ in range(n):
        a = A[rng.integers(A.shape[0])].toarray().ravel()
        b = B[rng.integers(B.shape[0])].toarray().ravel()
        if rng.random() < 0.5:
            a, b = b, a  # a is the major cell
        f = rng.uniform(0.05, 0.5)
        need = f / (1 - f) * a.sum()
        if need <= b.sum():
            b = rng.multivariate_hypergeometric(b, int(need))
        else:
            a = rng.multivariate_hypergeometric(a, int(b.sum() * (1 - f) / f))
        rows.append(a + b)
    return sp.csr_matrix(np.array(rows))


@pytest.mark.realdata
@pytest.mark.skipif(not DATA.is_dir(), reason=f"real data not found at {DATA}")
@pytest.mark.parametrize("mouse_source", ["tabula_muris", "hgmm"])
def test_real_heterotypic_doublets_called_mixed(mouse_source: str) -> None:
    human, mouse_hg, mouse_tm, hum, mou = _real_cells()
    mouse = mouse_tm if mouse_source == "tabula_muris" else mouse_hg
    rng = np.random.default_rng(0)
    dbl = _heterotypic(rng, human, mouse, 200)
    Y = sp.vstack([human, mouse, dbl]).tocsr()
    truth = np.r_[np.zeros(human.shape[0] + mouse.shape[0], bool), np.ones(dbl.shape[0], bool)]
    n_h = np.asarray(Y[:, hum].sum(1)).ravel()
    n_m = np.asarray(Y[:, mou].sum(1)).ravel()
    table, _ = crossspecies.call_crossspecies(n_h, n_m, fdr=0.01)
    frac = n_h / (n_h + n_m)
    mixed = table["crossspecies_doublet"].to_numpy() | ((frac < 0.8) & (frac > 0.2))
    assert mixed[truth].mean() >= 0.90
    assert mixed[~truth].mean() <= 0.01
    # the fraction rule alone lets the dominated doublets through
    assert ((frac < 0.8) & (frac > 0.2))[truth].mean() < 0.8


def test_rate_estimate_survives_a_doublet_majority() -> None:
    """More dominated doublets than singlets: the fit starts from the lowest quartile."""
    rng = np.random.default_rng(4)
    n_s, n_d = 100, 150
    tot = rng.integers(4000, 12000, n_s + n_d)
    rate = np.r_[rng.beta(10, 990, n_s), rng.uniform(0.05, 0.15, n_d)]
    other = rng.binomial(tot, rate)
    model = crossspecies.estimate_ambient(tot - other, other)
    assert model.rate["human"] == pytest.approx(0.01, rel=0.15)
    assert model.n_bulk["human"] <= n_s
    table = crossspecies.score_droplets(tot - other, other, model)
    called = (table["crossspecies_q"] < 0.01).to_numpy()
    assert called[n_s:].mean() >= 0.95 and called[:n_s].mean() <= 0.01


@pytest.mark.realdata
@pytest.mark.skipif(not DATA.is_dir(), reason=f"real data not found at {DATA}")
def test_real_raw_library_soup_agrees_with_the_cells() -> None:
    """hgmm_100 unfiltered: the empty droplets' soup and the cells give one ambient level."""
    from tmeflow.inputs import _ingest as ingest

    a = ingest.ingest_sample(DATA / "hgmm_100_raw_nonzero.h5ad", sample="hgmm", condition="mix")
    assert a.uns["ingest"]["cell_calling"]["n_empty_droplets"] > 100_000
    assert a.var["ambient_umis"].sum() > 100_000
    species.assign_species(a, mode="xenograft", crossspecies_fdr=0.01)
    amb = a.uns["species"]["ambient"]
    soup = amb["soup_fraction"]
    assert 0.25 < soup["mouse"] < 0.5
    # a_S = rho * soup share of the other species: both species imply the same rho
    rho_h = amb["rate"]["human"] / soup["mouse"]
    rho_m = amb["rate"]["mouse"] / soup["human"]
    assert rho_h == pytest.approx(rho_m, rel=0.25)
    # a clean 1:1 mixture: no called cell is a dominated doublet
    assert amb["n_mixed_ambient_test"] == 0

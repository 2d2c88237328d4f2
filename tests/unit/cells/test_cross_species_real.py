"""tmeflow.cells._cross_species on the shapes that broke the first count test (issue 27).

- the real PDX library pdx_12G (a graft-rich soup: mouse stroma carries a median 3.3% human
  counts, and small droplets carry a larger share: the ambient count grows slower than the
  droplet); skipped when ../shared/data is absent;
- property tests over graft share, graft cells per sample (5-5,000), doublet share, minor
  part and soup level with either species dominating the soup;
- few graft cells per sample (6 x ~110 droplets, ~10 human cells and 3 doublets whose mouse
  cell gives 5-17% of the UMIs), synthetic and from real cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.paths import shared_data_dir
from tmeflow.cells import _cross_species as crossspecies

FDR = 0.01

# --- the real PDX library ------------------------------------------------------------------


def _pdx_expected_multiplets(n_cells: int, p_human: float) -> float:
    """Heterotypic multiplets the loading implies: 10x rate 0.8% per 1,000 cells recovered."""
    return 0.008 * n_cells / 1000 * n_cells * 2 * p_human * (1 - p_human)


@pytest.mark.realdata
def test_pdx_12g_keeps_the_soup_body_and_calls_the_loading_rate() -> None:
    """Mouse-majority barcodes in the soup body (human share <= 2x the median among them) are
    kept (>= 99%), and the number called is within 0.5-2x of the heterotypic multiplets
    the loading implies (~470); Cell Ranger's fixed rule calls 439."""
    table = pd.read_csv(shared_data_dir() / "pdx_12G" / "gem_classification.csv")
    n_h = table["GRCh38"].to_numpy()
    n_m = table["GRCm39"].to_numpy()
    frac = n_h / (n_h + n_m)
    out, model = crossspecies.call_crossspecies(n_h, n_m, fdr=FDR)
    called = out["crossspecies_doublet"].to_numpy()
    mouse = frac < 0.5
    body = mouse & (frac <= 2 * np.median(frac[mouse]))
    kept = 1.0 - called[body].mean()
    expected = _pdx_expected_multiplets(len(table), float((~mouse).mean()))
    n_cr = int((table["call"] == "Multiplet").sum())
    msg = (
        f"called {int(called.sum())} (human-majority {int(called[~mouse].sum())}, "
        f"mouse-majority {int(called[mouse].sum())}), expected ~{expected:.0f} from the "
        f"loading, Cell Ranger {n_cr}; soup body kept {kept:.4f} of {int(body.sum())}; "
        f"model {model.as_dict()}"
    )
    print(msg)
    assert kept >= 0.99, msg
    assert 0.5 * expected <= called.sum() <= 2 * expected, msg
    # the asymmetric soup is seen: human in mouse cells is the larger rate
    assert model.rate["mouse"] > 2 * model.rate["human"], msg


# --- synthetic samples -----------------------------------------------------------------------


def _sample(
    rng: np.random.Generator,
    *,
    n_graft: int,
    graft_share: float,
    doublet_share: float,
    minor: tuple[float, float],
    soup: float,
    soup_human_dominant: bool,
    asymmetry: float = 0.3,
    cv: float = 0.3,
    max_host: int = 20_000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One sample's human (graft) and mouse (host) UMIs per droplet, the doublet truth and,
    per droplet, the minor cell's share over the major species' soup rate (``inf`` without
    soup, NaN for singlets).

    ``n_graft`` human singlets and ``n_graft * (1 - graft_share) / graft_share`` mouse ones
    (at most ``max_host``); library sizes log-normal (median 8,000, sd 0.6 on the log
    scale). The soup gives the cells of the species it does *not* come from mostly a rate
    ``soup`` of other-species UMIs (per droplet Beta with coefficient of variation ``cv``),
    the others ``asymmetry * soup``; ``soup_human_dominant`` says which direction is the
    larger (human counts in mouse cells, as in a PDX). Doublets: ``doublet_share`` of the
    minority species' droplets, at least one, a human and a mouse cell; the minor cell
    (either species) gives a uniform ``minor`` share of the UMIs, and the major cell's part
    gets its soup.
    """
    n_host = int(min(max(round(n_graft * (1 - graft_share) / graft_share), 5), max_host))
    n_min = min(n_graft, n_host)
    n_dbl = max(1, round(doublet_share / (1 - doublet_share) * n_min))
    hi, lo = soup, asymmetry * soup
    rate_in = {"mouse": hi, "human": lo} if soup_human_dominant else {"mouse": lo, "human": hi}

    def draw_rate(mean: float, n: int) -> np.ndarray:
        if mean < 1e-6:
            return np.zeros(n)
        conc = (1 - mean) / (cv**2 * mean) - 1
        return rng.beta(mean * conc, (1 - mean) * conc, n)

    n_h, n_m = [], []
    for s, n in (("human", n_graft), ("mouse", n_host)):
        tot = rng.lognormal(np.log(8000), 0.6, n).astype(np.int64) + 50
        other = rng.binomial(tot, draw_rate(rate_in[s], n))
        own = tot - other
        n_h.append(own if s == "human" else other)
        n_m.append(other if s == "human" else own)
    tot = rng.lognormal(np.log(12000), 0.6, n_dbl).astype(np.int64) + 50
    major_human = rng.random(n_dbl) < 0.5
    part = rng.uniform(*minor, n_dbl)
    amb = np.where(
        major_human, draw_rate(rate_in["human"], n_dbl), draw_rate(rate_in["mouse"], n_dbl)
    )
    k = rng.binomial(tot, part + (1 - part) * amb)
    n_h.append(np.where(major_human, tot - k, k))
    n_m.append(np.where(major_human, k, tot - k))
    truth = np.r_[np.zeros(n_graft + n_host, bool), np.ones(n_dbl, bool)]
    major_rate = np.where(major_human, rate_in["human"], rate_in["mouse"])
    ratio = np.divide(part, major_rate, out=np.full(n_dbl, np.inf), where=major_rate > 0)
    margin = np.r_[np.full(n_graft + n_host, np.nan), ratio]
    return np.concatenate(n_h), np.concatenate(n_m), truth, margin


#: A planted doublet counts as identifiable when its minor cell's share of the UMIs is at
#: least this many times the soup rate of the major cell's species. Below it the minor cell
#: hides inside the droplet-to-droplet spread of the soup (a 5% minor cell in a 15% soup is
#: physically indistinguishable from a singlet), and the beta-binomial's floor on that
#: spread (``min_cv=0.5``) keeps singlets uncalled at the price of these: at 2x, about 89%
#: of the planted doublets pooled over a grid were called; at 3x, 98%.
IDENTIFIABLE = 3.0


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    n_graft=st.integers(5, 5000),
    graft_share=st.floats(0.01, 0.99),
    doublet_share=st.floats(0.0, 0.3),
    minor_lo=st.floats(0.05, 0.5),
    soup=st.floats(0.0, 0.15),
    soup_human_dominant=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_doublets_called_singlets_kept(
    n_graft: int,
    graft_share: float,
    doublet_share: float,
    minor_lo: float,
    soup: float,
    soup_human_dominant: bool,
    seed: int,
) -> None:
    """Over graft share 1-99%, 5-5,000 graft cells, doublets up to 30% of the minority's
    droplets, minor part 5-50% of the UMIs and soup 0-15% dominated by either species:
    >= 90% of the identifiable planted doublets (minor share >= ``IDENTIFIABLE`` x the soup
    rate of the major cell's species) are called, <= 1% of singlets; and the doublets do not
    inflate the rate of the direction the soup dominates."""
    rng = np.random.default_rng(seed)
    minor = (minor_lo, min(minor_lo + 0.15, 0.5))
    n_h, n_m, truth, margin = _sample(
        rng,
        n_graft=n_graft,
        graft_share=graft_share,
        doublet_share=doublet_share,
        minor=minor,
        soup=soup,
        soup_human_dominant=soup_human_dominant,
    )
    table, model = crossspecies.call_crossspecies(n_h, n_m, fdr=FDR)
    called = table["crossspecies_doublet"].to_numpy()
    ident = truth & (margin >= IDENTIFIABLE)
    msg = (
        f"{int(ident.sum())} identifiable of {int(truth.sum())} doublets, "
        f"{int(called[ident].sum())} called; {int(called[~truth].sum())} of "
        f"{int((~truth).sum())} singlets called; model {model.as_dict()}"
    )
    if ident.any():
        assert called[ident].mean() >= 0.90, msg
    assert called[~truth].mean() <= 0.01, msg
    if soup >= 0.01:
        s = "mouse" if soup_human_dominant else "human"  # the cells the soup contaminates most
        assert 0.5 * soup <= model.rate[s] <= 2.0 * soup, msg


def _few_graft_samples(rng: np.random.Generator):
    """6 samples of ~110 droplets: ~97 mouse cells, ~10 human cells and 3 human-major
    doublets whose mouse cell gives 5-17% of the UMIs; a mouse-rich soup (1% mouse in human
    cells, 0.3% human in mouse cells, coefficient of variation 0.3)."""
    out = []
    for _ in range(6):
        n_hum = int(rng.integers(8, 13))
        n_mou = 110 - n_hum - 3
        tot = rng.lognormal(np.log(8000), 0.6, n_hum + n_mou).astype(np.int64) + 50
        rate = np.r_[rng.beta(10, 990, n_hum) * 1.1, rng.beta(10, 3300, n_mou)]
        other = rng.binomial(tot, rate)
        n_h = np.r_[tot[:n_hum] - other[:n_hum], other[n_hum:]]
        n_m = np.r_[other[:n_hum], tot[n_hum:] - other[n_hum:]]
        dtot = rng.lognormal(np.log(12000), 0.6, 3).astype(np.int64) + 50
        k = rng.binomial(dtot, rng.uniform(0.05, 0.17, 3) + rng.beta(10, 990, 3))
        out.append(
            (np.r_[n_h, dtot - k], np.r_[n_m, k], np.r_[np.zeros(n_hum + n_mou, bool), [True] * 3])
        )
    return out


def _few_graft_calls(samples) -> tuple[np.ndarray, np.ndarray]:
    called, truth = [], []
    for n_h, n_m, t in samples:
        table, _ = crossspecies.call_crossspecies(n_h, n_m, fdr=FDR)
        called.append(table["crossspecies_doublet"].to_numpy())
        truth.append(t)
    return np.concatenate(called), np.concatenate(truth)


def test_few_graft_cells_per_sample_synthetic() -> None:
    """~10 graft cells per sample and 3 doublets (a fifth of the human-majority droplets):
    >= 90% of the 18 doublets called, <= 1% of singlets (before: the human droplets were
    too few to estimate a rate and were not tested)."""
    called, truth = _few_graft_calls(_few_graft_samples(np.random.default_rng(27)))
    msg = f"{int(called[truth].sum())} of {int(truth.sum())} doublets, "
    msg += f"{int(called[~truth].sum())} of {int((~truth).sum())} singlets called"
    assert called[truth].mean() >= 0.90, msg
    assert called[~truth].mean() <= 0.01, msg


def _real_totals() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Human and mouse UMIs of the real hgmm_100 human cells, and mouse UMIs of the Tabula
    Muris lung cells (a pure mouse reference: no human counts)."""
    from tmeflow.inputs import _read_counts as readers

    data = shared_data_dir()
    h = readers.read_counts(data / "hgmm_100_filtered_mtx", sample="hgmm")
    ids = np.array(h.var_names.tolist(), dtype=str)
    X = sp.csr_matrix(h.X)
    nh = np.asarray(X[:, np.char.startswith(ids, "hg19_")].sum(1)).ravel()
    nm = np.asarray(X[:, np.char.startswith(ids, "mm10_")].sum(1)).ravel()
    human = nh / (nh + nm) > 0.9
    t = readers.read_counts(data / "tabula_muris_lung_P7_8", sample="tm")
    tm = np.asarray(sp.csr_matrix(t.X).sum(1)).ravel()
    return nh[human].astype(np.int64), nm[human].astype(np.int64), tm.astype(np.int64)


@pytest.mark.realdata
def test_few_graft_cells_per_sample_real_cells() -> None:
    """The few-graft shape from real cells: 6 samples of 10 real HEK293T cells (hgmm_100,
    with their real ambient mouse UMIs), 97 real mouse lung cells (Tabula Muris) and 3
    doublets, each the sum of a real human cell and a real mouse cell thinned so that it
    gives 5-17% of the UMIs; >= 90% of the 18 doublets called, <= 1% of singlets."""
    hh, hm, mm = _real_totals()
    rng = np.random.default_rng(27)
    samples = []
    order = rng.permutation(hh.size)
    for i in range(6):
        hum = order[np.arange(i * 10, i * 10 + 13) % hh.size]
        sing, dbl = hum[:10], hum[10:]
        mou = rng.choice(mm.size, 100, replace=False)
        f = rng.uniform(0.05, 0.17, 3)
        d_tot_h = hh[dbl] + hm[dbl]
        need = np.rint(f / (1 - f) * d_tot_h).astype(np.int64)
        # a mouse cell smaller than needed: thin the human cell instead
        keep_h = np.minimum(1.0, mm[mou[97:]] * (1 - f) / f / d_tot_h)
        d_h = rng.binomial(hh[dbl], keep_h)
        d_m = rng.binomial(hm[dbl], keep_h) + np.minimum(need, mm[mou[97:]])
        n_h = np.r_[hh[sing], np.zeros(97, np.int64), d_h]
        n_m = np.r_[hm[sing], mm[mou[:97]], d_m]
        samples.append((n_h, n_m, np.r_[np.zeros(107, bool), np.ones(3, bool)]))
    called, truth = _few_graft_calls(samples)
    msg = f"{int(called[truth].sum())} of {int(truth.sum())} doublets, "
    msg += f"{int(called[~truth].sum())} of {int((~truth).sum())} singlets called"
    print(msg)
    assert called[truth].mean() >= 0.90, msg
    assert called[~truth].mean() <= 0.01, msg

"""Cross-species doublets in a xenograft, called from absolute UMI counts.

A fixed species fraction (``species_calling.min_fraction``) cannot see a doublet in which one
cell dominates: a 20,000-UMI tumour cell with a 3,000-UMI macrophage is 87% human. What gives
it away is the *number* of mouse UMIs: far more than ambient RNA puts into a pure human
droplet of that size.

The model, per sample and per dominant species ``S`` (the species with most of a droplet's
UMIs; ``O`` the other one):

- a pure ``S`` droplet with ``n`` UMIs (human + mouse) receives ``k`` UMIs of species ``O``
  from ambient RNA, ``k ~ BetaBinomial(n, a_S * c_S, (1 - a_S) * c_S)``: each droplet draws
  its own contamination rate from a Beta with mean ``a_S`` (the *ambient fraction of the
  other species* in ``S`` droplets) and concentration ``c_S`` (droplet-to-droplet spread;
  ``c_S = inf`` is the plain binomial). The expected ambient count is ``n * a_S``.
- ``a_S`` is the pooled ``O`` fraction of the bulk of ``S`` cells: among those with own
  fraction ``>= min_fraction``, start from the lowest quartile of the ``O`` fractions, refit
  on the droplets the current fit does not reject (one-sided p >= 0.001) until the bulk is
  stable, so dominated doublets do not inflate it. ``c_S`` comes from the robust (MAD)
  variance of the bulk's fractions minus the binomial sampling variance, the rates' standard
  deviation floored at ``0.5 * a_S`` (real droplets vary more than a trimmed fit sees). When
  ``S`` has fewer than ``min_cells`` bulk cells and an empty-droplet soup is known,
  ``a_S = rho * soup_O``, with ``rho`` the total ambient fraction estimated from the other
  species (``a_O / soup_S``); otherwise nothing estimates ``a_S`` (source ``floor``) and the
  droplets dominated by ``S`` are not tested: only ``min_fraction`` calls them. (A floor rate
  would call almost every droplet of a small sample a doublet: 40 of 41 in ``hgmm_100`` cut
  into samples of ~40 cells.)
- the one-sided p-value is ``P(K >= k)``; q-values are Benjamini-Hochberg across all droplets
  of the sample. A droplet with ``q < fdr`` is a cross-species doublet (``mixed``).

The empty droplets (barcodes below ``ingest.min_umi`` in a raw matrix, summed per feature at
ingest into ``var["ambient_umis"]``) give the soup's species composition, recorded beside the
cell-based estimate and used as the fallback above.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

logger = logging.getLogger(__name__)

SPECIES: tuple[str, str] = ("human", "mouse")
TEST_COLUMNS: list[str] = [
    "dominant_species",
    "n_counts_other",
    "ambient_expected",
    "crossspecies_p",
    "crossspecies_q",
]
"""Columns of :func:`score_droplets` (written into ``obs`` by :func:`tmeflow.cells._species`)."""

_MAD_K = 1.4826
#: Fewest bulk droplets (the lowest quarter of other-species fractions, then the droplets the
#: fit does not reject) an ambient rate is estimated from.
MIN_BULK_CELLS = 10


@dataclass
class AmbientModel:
    """Per dominant species: ambient fraction of the other species and its spread.

    Attributes
    ----------
    rate
        ``a_S``: expected fraction of other-species UMIs in a pure ``S`` droplet.
    concentration
        ``c_S`` of the beta-binomial (``inf``: binomial).
    n_bulk
        Cells the estimate rests on.
    source
        ``cells``, ``empty_droplets`` or ``floor``.
    soup_fraction
        Share of each species among the empty droplets' UMIs (empty without a raw matrix).
    """

    rate: dict[str, float] = field(default_factory=dict)
    concentration: dict[str, float] = field(default_factory=dict)
    n_bulk: dict[str, int] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    soup_fraction: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain-typed copy (for ``uns``; ``inf`` concentration becomes -1)."""
        out = asdict(self)
        out["concentration"] = {
            k: (-1.0 if not np.isfinite(v) else float(v)) for k, v in self.concentration.items()
        }
        return out


def _other(species: str) -> str:
    return "mouse" if species == "human" else "human"


def estimate_ambient(
    n_human: np.ndarray,
    n_mouse: np.ndarray,
    *,
    soup: dict[str, float] | None = None,
    min_fraction: float = 0.8,
    min_cells: int = MIN_BULK_CELLS,
    min_rate: float = 1e-4,
    trim_p: float = 1e-3,
    max_iter: int = 20,
    min_cv: float = 0.5,
    start_quantile: float = 0.25,
) -> AmbientModel:
    """Estimate the ambient other-species fraction per dominant species.

    Parameters
    ----------
    n_human, n_mouse
        UMIs per droplet on human and mouse features.
    soup
        UMIs of each species in the empty droplets (``{"human": ..., "mouse": ...}``), or
        ``None`` without a raw matrix.
    min_fraction
        Own-species fraction of the cells the estimate rests on.
    min_cells
        Fewer bulk cells than this: fall back to the soup, else to ``min_rate``.
    min_rate
        Floor of ``a_S`` (a sample without any other-species UMI would otherwise call one
        stray UMI a doublet).
    trim_p, max_iter, start_quantile
        The bulk starts as the droplets at or below the ``start_quantile`` of the
        other-species fractions (so up to ~75% of them may be doublets) and is refitted on
        the droplets whose one-sided p-value under the current fit is at least ``trim_p``,
        until it no longer changes (at most ``max_iter`` fits).
    min_cv
        Floor of the coefficient of variation of the droplets' contamination rates (the
        beta-binomial spread): at 0.5, a droplet is called only when its other-species
        fraction is several times ``a_S``.

    Returns
    -------
    AmbientModel
    """
    n_h = np.asarray(n_human, dtype=np.float64)
    n_m = np.asarray(n_mouse, dtype=np.float64)
    tot = n_h + n_m
    model = AmbientModel()
    if soup is not None and sum(soup.values()) > 0:
        s_tot = float(sum(soup.get(s, 0.0) for s in SPECIES))
        model.soup_fraction = {s: float(soup.get(s, 0.0)) / s_tot for s in SPECIES}
    for s in SPECIES:
        own = n_h if s == "human" else n_m
        other = tot - own
        ok = tot > 0
        frac_own = np.divide(own, tot, out=np.zeros_like(tot), where=ok)
        pure = ok & (frac_own >= min_fraction)
        f = 1.0 - frac_own[pure]
        model.n_bulk[s] = 0
        model.rate[s] = float(min_rate)
        model.concentration[s] = float("inf")
        model.source[s] = "floor"
        if f.size == 0:
            continue
        # start from the lowest quartile of the fractions (doublets sit in the upper tail), then
        # refit on the droplets the current model does not reject (one-sided p >= trim_p)
        bulk = f <= float(np.quantile(f, start_quantile))
        t_p, k_p = tot[pure], other[pure]
        a, c = float(min_rate), float("inf")
        for _ in range(max_iter):
            if int(bulk.sum()) < min_cells:
                break
            a, c = _fit_rate(f[bulk], t_p[bulk], k_p[bulk], min_rate, min_cv)
            p = _upper_tail(np.rint(k_p).astype(np.int64), np.rint(t_p).astype(np.int64), a, c)
            new = p >= trim_p
            if np.array_equal(new, bulk):
                break
            bulk = new
        n_b = int(bulk.sum())
        model.n_bulk[s] = n_b
        if n_b < min_cells:
            continue
        model.rate[s], model.concentration[s] = a, c
        model.source[s] = "cells"
    # a species with too few cells borrows the total ambient fraction of the other one
    for s in SPECIES:
        o = _other(s)
        if model.source[s] == "cells" or model.source[o] != "cells" or not model.soup_fraction:
            continue
        if model.soup_fraction[s] <= 0:
            continue
        rho = model.rate[o] / model.soup_fraction[s]
        model.rate[s] = max(min(rho, 1.0) * model.soup_fraction[o], min_rate)
        model.source[s] = "empty_droplets"
    return model


def _fit_rate(
    f: np.ndarray, t: np.ndarray, k: np.ndarray, min_rate: float, min_cv: float
) -> tuple[float, float]:
    """Pooled rate and beta-binomial concentration of the bulk droplets."""
    a = max(float(k.sum() / t.sum()), min_rate)
    # robust spread of the droplets' rates, floored at min_cv * a: per-droplet contamination
    # varies (lysis, cell size) and a fit that trims its own tail would otherwise shrink it
    spread = max(float(stats.median_abs_deviation(f)) * _MAD_K, min_cv * a)
    var_rate = spread**2 - float(np.mean(a * (1 - a) / t))
    c = max(a * (1 - a) / var_rate - 1.0, 1.0) if var_rate > 0 else float("inf")
    return a, c


def _upper_tail(k: np.ndarray, n: np.ndarray, a: float, c: float) -> np.ndarray:
    """One-sided ``P(K >= k)`` of the beta-binomial (binomial when ``c`` is infinite)."""
    if np.isfinite(c):
        p = stats.betabinom.sf(k - 1, n, a * c, (1 - a) * c)
    else:
        p = stats.binom.sf(k - 1, n, a)
    return np.clip(p, 0.0, 1.0)


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return q
    order = ok[np.argsort(p[ok], kind="stable")]
    m = ok.size
    ranked = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    return q


def score_droplets(n_human: np.ndarray, n_mouse: np.ndarray, model: AmbientModel) -> pd.DataFrame:
    """Test each droplet's other-species UMIs against the ambient expectation.

    Returns
    -------
    pandas.DataFrame
        One row per droplet, columns :data:`TEST_COLUMNS`: ``dominant_species`` (the species
        with most UMIs, ``human`` on a tie; ``none`` without UMIs), ``n_counts_other`` (UMIs
        of the other species), ``ambient_expected`` (``(human + mouse) * a_S``),
        ``crossspecies_p`` (one-sided ``P(K >= n_counts_other)``; NaN without UMIs or when
        the dominant species' ambient rate has no estimate, source ``floor``) and
        ``crossspecies_q`` (BH across the droplets).
    """
    n_h = np.asarray(n_human, dtype=np.float64)
    n_m = np.asarray(n_mouse, dtype=np.float64)
    tot = n_h + n_m
    dom = np.where(n_h >= n_m, "human", "mouse").astype(object)
    dom[tot <= 0] = "none"
    other = np.where(dom == "human", n_m, n_h)
    expected = np.zeros_like(tot)
    p = np.full(tot.shape, np.nan)
    for s in SPECIES:
        sel = dom == s
        if not sel.any():
            continue
        if model.source.get(s) == "floor":  # nothing estimated the ambient rate: not tested
            expected[sel] = np.nan
            continue
        a, c = model.rate[s], model.concentration[s]
        n = np.rint(tot[sel]).astype(np.int64)
        k = np.rint(other[sel]).astype(np.int64)
        expected[sel] = tot[sel] * a
        p[sel] = _upper_tail(k, n, a, c)
    return pd.DataFrame(
        {
            "dominant_species": dom.astype(str),
            "n_counts_other": other,
            "ambient_expected": expected,
            "crossspecies_p": p,
            "crossspecies_q": bh_qvalues(p),
        }
    )


def call_crossspecies(
    n_human: np.ndarray,
    n_mouse: np.ndarray,
    *,
    fdr: float,
    soup: dict[str, float] | None = None,
    min_fraction: float = 0.8,
) -> tuple[pd.DataFrame, AmbientModel]:
    """Estimate the ambient model and test every droplet; adds ``crossspecies_doublet``.

    ``crossspecies_doublet`` is ``crossspecies_q < fdr``. See the module docstring for the
    model.
    """
    if not 0.0 < fdr < 1.0:
        msg = f"crossspecies_fdr={fdr} must be in (0, 1); 0.01 is a common choice."
        raise ValueError(msg)
    model = estimate_ambient(n_human, n_mouse, soup=soup, min_fraction=min_fraction)
    table = score_droplets(n_human, n_mouse, model)
    table["crossspecies_doublet"] = (table["crossspecies_q"] < fdr).to_numpy()
    for s in SPECIES:
        n_dom = int((table["dominant_species"] == s).sum())
        if model.source.get(s) == "floor" and n_dom:
            logger.warning(
                "%d %s-dominated droplets not tested for cross-species doublets: too few "
                "pure %s cells to estimate the ambient rate (a bulk of >= %d is needed, about "
                "4x as many pure cells) and no empty-droplet soup; only "
                "species_calling.min_fraction calls them",
                n_dom,
                s,
                s,
                MIN_BULK_CELLS,
            )
    logger.info(
        "ambient model %s; %d of %d droplets exceed the ambient expectation at FDR %.3g",
        model.as_dict(),
        int(table["crossspecies_doublet"].sum()),
        len(table),
        fdr,
    )
    return table, model

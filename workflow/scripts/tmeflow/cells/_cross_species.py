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
- ``a_S`` is fitted on the droplets ``S`` dominates (at least ``MIN_BULK_CELLS`` = 5):
  start, per size bin, from the lowest quartile of the ``O`` fractions among those with own
  fraction ``>= min_fraction``, refit on the droplets the current fit does not reject
  (one-sided p >= 0.001) until the bulk is stable, so doublets (even a majority of the
  start's pool, or a fifth of 13 droplets) do not inflate it. The expected ambient count
  is ``A * n ** b_S`` (a Poisson GLM on the bulk): ``b_S = 1`` (a constant fraction, the
  pooled ``sum k / sum n``) unless the bulk clearly says otherwise (>= 50 droplets, ``b_S``
  3 standard errors and 0.1 from 1). In a real PDX library the ambient count grows about as
  ``n ** 0.25``: a constant fraction would call the small droplets doublets.
  ``rate`` is the fraction at the bulk's median size. ``c_S`` comes from the robust (MAD)
  spread of ``k / mu`` less its Poisson part, the rates' coefficient of variation floored at
  0.5 (real droplets vary more than a trimmed fit sees). The two directions are estimated
  separately, so an asymmetric soup (a human-rich PDX soup: ~3% human in mouse stroma, ~1%
  mouse in tumour cells) gets two rates. When ``S`` dominates fewer than 5 droplets and an
  empty-droplet soup is known, ``a_S = rho * soup_O``, with ``rho`` the total ambient
  fraction estimated from the other species (``a_O / soup_S``); otherwise nothing estimates
  ``a_S`` (source ``floor``) and the droplets dominated by ``S`` are not tested: only
  ``min_fraction`` calls them. (A floor rate would call almost every droplet of a tiny
  sample a doublet.)
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

from tmeflow._utils import adjust_pvalues

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
#: Fewest droplets dominated by a species its ambient rate is estimated from (a median-based
#: fit: up to about a third of them may be doublets).
MIN_BULK_CELLS = 5
#: Fewest bulk droplets, and least spread of their log sizes, the size exponent is fitted on.
MIN_SLOPE_CELLS = 50
_MIN_LOG_SIZE_SD = 0.2


@dataclass
class AmbientModel:
    """Per dominant species: ambient fraction of the other species and its spread.

    Attributes
    ----------
    rate
        ``a_S``: expected fraction of other-species UMIs in a pure ``S`` droplet of
        ``ref_size`` UMIs (of any size when ``exponent`` is 1).
    concentration
        ``c_S`` of the beta-binomial at ``ref_size`` (``inf``: binomial).
    n_bulk
        Droplets the estimate rests on.
    source
        ``cells``, ``empty_droplets`` or ``floor``.
    soup_fraction
        Share of each species among the empty droplets' UMIs (empty without a raw matrix).
    exponent
        ``b_S``: the expected ambient count grows as ``n ** b_S`` with the droplet's UMIs ``n``
        (1: proportional, a constant fraction; 0: the same count in every droplet). Missing
        means 1.
    ref_size
        The droplet size ``rate`` and ``concentration`` refer to (NaN: any size).
    """

    rate: dict[str, float] = field(default_factory=dict)
    concentration: dict[str, float] = field(default_factory=dict)
    n_bulk: dict[str, int] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    soup_fraction: dict[str, float] = field(default_factory=dict)
    exponent: dict[str, float] = field(default_factory=dict)
    ref_size: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AmbientModel:
        """The model back from :meth:`as_dict` (``uns["species"]["ambient"]``; -1 = ``inf``)."""
        names = {f for f in cls.__dataclass_fields__}
        model = cls(**{k: v for k, v in d.items() if k in names})
        model.concentration = {
            k: (np.inf if float(v) < 0 else float(v)) for k, v in model.concentration.items()
        }
        return model

    def as_dict(self) -> dict[str, Any]:
        """Plain-typed copy (for ``uns``; ``inf`` concentration becomes -1)."""
        out = asdict(self)
        out["concentration"] = {
            k: (-1.0 if not np.isfinite(v) else float(v)) for k, v in self.concentration.items()
        }
        return out

    def rate_at(self, species: str, n: np.ndarray) -> np.ndarray:
        """Expected other-species fraction of a pure ``species`` droplet with ``n`` UMIs."""
        n = np.asarray(n, dtype=np.float64)
        a = float(self.rate[species])
        b = float(self.exponent.get(species, 1.0))
        ref = float(self.ref_size.get(species, np.nan))
        if b == 1.0 or not np.isfinite(ref):
            return np.full(n.shape, a)
        scaled = a * np.power(np.maximum(n, 1.0) / ref, b - 1.0)
        return np.clip(scaled, min(a, 1e-6), 0.5)

    def concentration_at(self, species: str, n: np.ndarray) -> np.ndarray:
        """Beta-binomial concentration per droplet.

        The rates' coefficient of variation at ``ref_size`` holds at every size (``inf``
        stays ``inf``).
        """
        n = np.asarray(n, dtype=np.float64)
        c = float(self.concentration[species])
        if not np.isfinite(c) or float(self.exponent.get(species, 1.0)) == 1.0:
            return np.full(n.shape, c)
        a0 = float(self.rate[species])
        cv2 = (1.0 - a0) / ((c + 1.0) * a0)
        a = self.rate_at(species, n)
        return np.maximum((1.0 - a) / (cv2 * a) - 1.0, 1.0)


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
        Own-species fraction of the droplets the fit starts from (when at least
        ``min_cells`` of them exist; else every droplet the species dominates).
    min_cells
        Fewer droplets dominated by a species than this: its rate is borrowed from the other
        species through the soup's composition, else it has none (``floor``: not tested).
    min_rate
        Floor of ``a_S`` (a sample without any other-species UMI would otherwise call one
        stray UMI a doublet).
    trim_p, max_iter, start_quantile
        The bulk starts as the droplets at or below the ``start_quantile`` of the
        other-species fractions within each size bin (so up to ~75% of them may be doublets;
        at least the 3 lowest) and is refitted on the droplets the species dominates whose
        one-sided p-value under the current fit is at least ``trim_p``, until it no longer
        changes (at most ``max_iter`` fits).
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
    dom_h = n_h >= n_m
    for s in SPECIES:
        own = n_h if s == "human" else n_m
        dom = (tot > 0) & (dom_h if s == "human" else ~dom_h)
        model.n_bulk[s] = 0
        model.rate[s] = float(min_rate)
        model.concentration[s] = float("inf")
        model.source[s] = "floor"
        model.exponent[s] = 1.0
        model.ref_size[s] = float("nan")
        if int(dom.sum()) < min_cells:
            continue
        t_d = tot[dom]
        k_d = t_d - own[dom]
        fit = _fit_species(
            t_d, k_d, min_fraction, min_cells, min_rate, trim_p, max_iter, min_cv, start_quantile
        )
        model.rate[s], model.concentration[s], model.exponent[s], model.ref_size[s] = fit[:4]
        model.n_bulk[s] = fit[4]
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
        a_o, c_o = model.rate[o], model.concentration[o]
        cv2 = (1.0 - a_o) / ((c_o + 1.0) * a_o) if np.isfinite(c_o) else 0.0
        a_s = model.rate[s]
        model.concentration[s] = max((1 - a_s) / (cv2 * a_s) - 1.0, 1.0) if cv2 > 0 else c_o
        model.exponent[s] = model.exponent[o]
        model.ref_size[s] = model.ref_size[o]
        model.source[s] = "empty_droplets"
    return model


def _fit_species(
    t: np.ndarray,
    k: np.ndarray,
    min_fraction: float,
    min_cells: int,
    min_rate: float,
    trim_p: float,
    max_iter: int,
    min_cv: float,
    start_quantile: float,
) -> tuple[float, float, float, float, int]:
    """Rate, concentration, exponent, reference size and bulk size of one dominant species.

    ``t``: UMIs of the droplets the species dominates, ``k``: their other-species UMIs.
    """
    f = k / t
    start_pool = (1.0 - f) >= min_fraction
    if int(start_pool.sum()) < min_cells:
        start_pool = np.ones(t.size, dtype=bool)
    bulk = _start_bulk(t, f, start_pool, start_quantile)
    k_i = np.rint(k).astype(np.int64)
    t_i = np.rint(t).astype(np.int64)
    fit = (float(min_rate), float("inf"), 1.0, float("nan"))
    for _ in range(max_iter):
        fit = _fit_bulk(t[bulk], k[bulk], min_rate, min_cv)
        m = AmbientModel(
            rate={"x": fit[0]},
            concentration={"x": fit[1]},
            exponent={"x": fit[2]},
            ref_size={"x": fit[3]},
        )
        p = _upper_tail(k_i, t_i, m.rate_at("x", t), m.concentration_at("x", t))
        new = p >= trim_p
        if int(new.sum()) < min(3, t.size) or np.array_equal(new, bulk):
            break
        bulk = new
    return (*fit, int(bulk.sum()))


def _start_bulk(t: np.ndarray, f: np.ndarray, pool: np.ndarray, q: float) -> np.ndarray:
    """Droplets at or below the ``q`` quantile of other-species fractions per size bin.

    Size bins (up to 10, of >= 50 droplets) keep the start from favouring large droplets
    when the ambient fraction falls with size; each bin gives at least its 3 lowest.
    """
    idx = np.flatnonzero(pool)
    n_bins = int(np.clip(idx.size // 50, 1, 10))
    order = idx[np.argsort(t[idx], kind="stable")]
    bulk = np.zeros(t.size, dtype=bool)
    for part in np.array_split(order, n_bins):
        n_take = max(int(np.ceil(q * part.size)), min(3, part.size))
        bulk[part[np.argsort(f[part], kind="stable")[:n_take]]] = True
    return bulk


def _fit_bulk(
    t: np.ndarray, k: np.ndarray, min_rate: float, min_cv: float
) -> tuple[float, float, float, float]:
    """Rate at the median size, concentration, size exponent and that size, of the bulk.

    The expected ambient count is ``mu = A * (t / t_ref) ** b``, a Poisson GLM (log link) on
    the bulk; ``b`` stays 1 (a constant fraction) unless the bulk has ``MIN_SLOPE_CELLS``
    droplets spread over sizes and ``b`` differs from 1 by more than 3 standard errors
    (quasi-Poisson) and 0.1; it is clipped to [0, 1]. With ``b = 1`` the rate is the pooled
    fraction ``sum k / sum t``.
    """
    t_ref = float(np.median(t))
    b = 1.0
    x = np.log(t / t_ref)
    if k.sum() > 0 and t.size >= MIN_SLOPE_CELLS and float(np.std(x)) >= _MIN_LOG_SIZE_SD:
        b = _poisson_slope(x, k)
    if b == 1.0:
        a = max(float(k.sum() / t.sum()), min_rate)
        mu = a * t
    else:
        amp = float(k.sum() / np.sum(np.exp(b * x)))
        a = max(amp / t_ref, min_rate)
        mu = a * t_ref * np.exp(b * x)
    # robust coefficient of variation of the droplets' rates: the MAD of k / mu, less the
    # Poisson part, floored at min_cv (per-droplet contamination varies with lysis and size,
    # and a fit that trims its own tail would otherwise shrink it)
    rel = k / mu
    spread = float(stats.median_abs_deviation(rel)) * _MAD_K
    cv2 = max(spread**2 - float(np.median((1.0 - mu / t) / mu)), min_cv**2)
    c = max((1 - a) / (cv2 * a) - 1.0, 1.0)
    return a, c, b, t_ref


def _poisson_slope(x: np.ndarray, k: np.ndarray) -> float:
    """Slope of ``log E[k] = c0 + b * x`` (Poisson GLM by Newton), snapped to 1 unless clear."""
    theta = np.array([np.log(max(float(k.mean()), 1e-3)), 1.0])
    X = np.c_[np.ones_like(x), x]
    for _ in range(50):
        mu = np.exp(np.clip(X @ theta, -30, 30))
        grad = X.T @ (k - mu)
        hess = (X * mu[:, None]).T @ X
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return 1.0
        theta = theta + step
        if np.max(np.abs(step)) < 1e-8:
            break
    mu = np.exp(np.clip(X @ theta, -30, 30))
    hess = (X * mu[:, None]).T @ X
    phi = max(float(np.sum((k - mu) ** 2 / mu)) / max(k.size - 2, 1), 1.0)
    try:
        se = float(np.sqrt(phi * np.linalg.inv(hess)[1, 1]))
    except np.linalg.LinAlgError:
        return 1.0
    b = float(theta[1])
    if not np.isfinite(b) or abs(b - 1.0) <= max(3.0 * se, 0.1):
        return 1.0
    return float(np.clip(b, 0.0, 1.0))


def _upper_tail(
    k: np.ndarray, n: np.ndarray, a: float | np.ndarray, c: float | np.ndarray
) -> np.ndarray:
    """One-sided ``P(K >= k)`` of the beta-binomial (binomial where ``c`` is infinite)."""
    a = np.broadcast_to(np.asarray(a, dtype=np.float64), k.shape)
    c = np.broadcast_to(np.asarray(c, dtype=np.float64), k.shape)
    p = np.empty(k.shape)
    fin = np.isfinite(c)
    if fin.any():
        p[fin] = stats.betabinom.sf(k[fin] - 1, n[fin], a[fin] * c[fin], (1 - a[fin]) * c[fin])
    if (~fin).any():
        p[~fin] = stats.binom.sf(k[~fin] - 1, n[~fin], a[~fin])
    return np.clip(p, 0.0, 1.0)


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values by statsmodels (NaN stays NaN and is not counted)."""
    return adjust_pvalues(np.asarray(p, dtype=np.float64), "fdr_bh")


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
        a = model.rate_at(s, tot[sel])
        c = model.concentration_at(s, tot[sel])
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
                "to estimate the ambient rate (>= %d are needed) and no empty-droplet soup; "
                "only species_calling.min_fraction calls them",
                n_dom,
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

"""Empirical-Bayes variance moderation: limma's ``squeezeVar`` with its robust and trend options.

A Python implementation of the hyperparameter estimation of limma (Smyth 2004, Stat Appl Genet
Mol Biol 3:Article3; Phipson, Lee, Majewski, Alexander and Smyth 2016, Ann Appl Stat
10:946-963), written to give limma's numbers: ``tests/unit/stats/test_r_reference.py`` compares
posterior variances, prior variances and prior degrees of freedom with limma's ``squeezeVar``
in R (to 1e-6 relative) on several data sets, with and without ``robust`` and ``covariate``,
and is skipped where R or limma is absent. The behaviour followed is that of limma 3.54
(Bioconductor 3.16), where the residual degrees of freedom are the same for every row:

- non-robust (``fitFDist``): moments of ``log(s2)``; with a covariate, the mean of
  ``log(s2)`` follows a natural cubic spline of the covariate with 1 + (n >= 3) + (n >= 6) +
  (n >= 30) degrees of freedom (at most the covariate's distinct values), knots at the
  covariate's quantiles; when the variances are no more spread than sampling explains, the
  prior degrees of freedom are infinite and the prior variance is their mean (their trend
  with a covariate);
- robust (``fitFDistRobustly``): moments of Winsorized ``log(s2)`` (tails 5% and 10%) around
  their trimmed mean, or around a lowess trend (span 0.4) of the covariate, matched to the
  Winsorized moments of the scaled F distribution by Gauss-Legendre quadrature; outlying
  variances get smaller, per-row prior degrees of freedom. With fewer than 10 rows both tails
  fall below one row and the robust fit is the non-robust one, as in limma.

Provenance and licence: written from the papers above and from reading limma's R sources
(``fitFDist``, ``fitFDistRobustly``, ``squeezeVar``; limma is GPL (>= 2), by Gordon Smyth and
co-authors), whose structure it follows closely; R's ``lowess`` is likewise followed. Whether
that makes this module a derivative work of GPL code inside an MIT project is an open question
recorded in the changelog; a maintained library with a robust ``squeezeVar`` would replace it
(``inmoose`` has none today).
"""

import functools
from typing import NamedTuple

import numpy as np
from scipy import optimize, special
from scipy import stats as sps

#: Winsorized tail probabilities (lower, upper) of the robust fit (limma's default).
WINSOR_TAIL_P: tuple[float, float] = (0.05, 0.1)
#: Lowess span of the robust fit's trend on a covariate (limma's).
TREND_SPAN = 0.4


class FDistFit(NamedTuple):
    """Prior of the variances.

    ``scale`` is s0^2 (one per row with a covariate, else a scalar), ``df2`` is d0 and
    ``df2_shrunk`` the per-row d0 of a robust fit.
    """

    scale: np.ndarray | float
    df2: float
    df2_shrunk: np.ndarray | None = None


def trigamma_inverse(x: float) -> float:
    """Solve ``trigamma(y) = x`` for ``y > 0`` by Newton's method on ``1 / trigamma``."""
    if x > 1e7:
        return 1.0 / np.sqrt(x)
    if x < 1e-6:
        return 1.0 / x
    y = 0.5 + 1.0 / x
    for _ in range(51):
        tri = float(special.polygamma(1, y))
        step = tri * (1 - tri / x) / float(special.polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


def _natural_spline_basis(x: np.ndarray, df: int, knots_from: np.ndarray) -> np.ndarray:
    """A basis of natural cubic splines with ``df`` knots (boundary and interior).

    The boundary knots are the range of ``knots_from`` and the ``df - 2`` interior knots its
    quantiles at ``1/(df-1), ..., (df-2)/(df-1)`` (R's ``splines::ns(df=df, intercept=TRUE)``
    spans the same space, so least-squares fits agree); outside the boundary the basis is
    linear. Truncated-power form (Hastie, Tibshirani and Friedman, ESL eq. 5.4-5.5) on the
    covariate rescaled to [0, 1].
    """
    lo, hi = float(knots_from.min()), float(knots_from.max())
    width = hi - lo if hi > lo else 1.0
    u = (np.asarray(x, float) - lo) / width
    probs = np.linspace(0.0, 1.0, df)
    knots = (np.quantile(knots_from, probs) - lo) / width
    knots[0], knots[-1] = 0.0, 1.0
    cols = [np.ones_like(u), u]

    def d(k: int) -> np.ndarray:
        return (np.clip(u - knots[k], 0, None) ** 3 - np.clip(u - knots[-1], 0, None) ** 3) / (
            knots[-1] - knots[k]
        )

    last = d(len(knots) - 2)
    cols += [d(k) - last for k in range(len(knots) - 2)]
    return np.column_stack(cols)


def fit_f_dist(x: np.ndarray, df1: float, covariate: np.ndarray | None = None) -> FDistFit:
    """Moment estimates of the scaled F distribution of variances ``x`` on ``df1`` df.

    limma's ``fitFDist`` for one ``df1`` shared by every row (see the module docstring).
    Non-finite or negative variances are left out of the fit (with a covariate their prior
    comes from the trend at their covariate); zeros are raised to 1e-5 x the median.
    """
    x = np.asarray(x, float)
    n = x.size
    if n == 0 or not (np.isfinite(df1) and df1 > 1e-15):
        return FDistFit(np.nan, np.nan)
    if n == 1:
        return FDistFit(x.copy() if covariate is not None else float(x[0]), 0.0)
    cov = None if covariate is None else _finite_covariate(covariate, n)
    ok = np.isfinite(x) & (x > -1e-15)
    nok = int(ok.sum())
    if nok == 1:
        return FDistFit(float(x[ok][0]), 0.0)
    if nok == 0:
        return FDistFit(np.nan, np.nan)
    xs = np.maximum(x[ok], 0.0)
    splinedf = 1
    if cov is not None:
        splinedf = 1 + (nok >= 3) + (nok >= 6) + (nok >= 30)
        splinedf = min(splinedf, np.unique(cov[ok]).size)
        if splinedf < 2:
            fit = fit_f_dist(x, df1)
            return FDistFit(np.full(n, fit.scale), fit.df2)
    m = float(np.median(xs))
    if m == 0:
        m = 1.0
    xs = np.maximum(xs, 1e-5 * m)
    e = np.log(xs) - special.digamma(df1 / 2) + np.log(df1 / 2)
    if cov is None:
        emean: np.ndarray | float = float(e.mean())
        evar = float(((e - emean) ** 2).sum() / (nok - 1))
    else:
        design = _natural_spline_basis(cov[ok], splinedf, cov[ok])
        coef, _, rank, _ = np.linalg.lstsq(design, e, rcond=None)
        fitted = design @ coef
        evar = float(((e - fitted) ** 2).sum() / (nok - rank))
        emean = np.empty(n)
        emean[ok] = fitted
        if nok < n:
            emean[~ok] = _natural_spline_basis(cov[~ok], splinedf, cov[ok]) @ coef
    evar -= float(special.polygamma(1, df1 / 2))
    if evar > 0:
        df2 = 2 * trigamma_inverse(evar)
        scale = np.exp(emean + special.digamma(df2 / 2) - np.log(df2 / 2))
    else:
        df2 = np.inf
        scale = float(xs.mean()) if cov is None else np.exp(emean)
    return FDistFit(scale, df2)


def _finite_covariate(covariate: np.ndarray, n: int) -> np.ndarray:
    cov = np.asarray(covariate, float).copy()
    if cov.size != n:
        msg = f"covariate has {cov.size} values for {n} variances"
        raise ValueError(msg)
    if np.isnan(cov).any():
        msg = "NaN covariate values are not allowed"
        raise ValueError(msg)
    fin = np.isfinite(cov)
    if not fin.all():
        if fin.any():
            cov[cov == -np.inf] = cov[fin].min() - 1
            cov[cov == np.inf] = cov[fin].max() + 1
        else:
            cov = np.sign(cov)
    return cov


def lowess(x: np.ndarray, y: np.ndarray, *, span: float, iterations: int = 4) -> np.ndarray:
    """Cleveland's (1979) robust locally linear smoother; fitted values in the input order.

    The algorithm of R's ``stats::lowess`` (tricube weights on the ``floor(span * n)``
    nearest points, ties included; ``iterations - 1`` bisquare robustness passes with 6 x
    the median absolute residual; points within ``delta = 0.01 * range(x)`` of the last
    fitted one are interpolated), as limma's ``loessFit`` calls it without weights. With
    ``span < 1 / n`` every point is its own fit.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    n = x.size
    if span < 1 / n:
        return y.copy()
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    fitted = _lowess_sorted(xs, ys, span, iterations - 1, 0.01 * (xs[-1] - xs[0]))
    out = np.empty(n)
    out[order] = fitted
    return out


def _local_fit(
    xs: np.ndarray, ys: np.ndarray, at: int, left: int, right: int, rw: np.ndarray | None
) -> float | None:
    """The weighted local line at ``xs[at]`` from points ``left..right`` (and ties beyond)."""
    n = xs.size
    x0 = xs[at]
    h = max(x0 - xs[left], xs[right] - x0)
    w = np.zeros(n)
    j = left
    while j < n:
        r = abs(xs[j] - x0)
        if r <= 0.999 * h:
            w[j] = 1.0 if r <= 0.001 * h else (1 - (r / h) ** 3) ** 3
            if rw is not None:
                w[j] *= rw[j]
        elif xs[j] > x0:
            break
        j += 1
    sl = slice(left, j)
    total = w[sl].sum()
    if total <= 0:
        return None
    wj = w[sl] / total
    xj = xs[sl]
    if h > 0:
        centre = float((wj * xj).sum())
        spread = float((wj * (xj - centre) ** 2).sum())
        if np.sqrt(spread) > 0.001 * (xs[-1] - xs[0]):
            wj = wj * ((x0 - centre) / spread * (xj - centre) + 1)
    return float((wj * ys[sl]).sum())


def _lowess_sorted(
    xs: np.ndarray, ys: np.ndarray, span: float, robustness_steps: int, delta: float
) -> np.ndarray:
    n = xs.size
    if n < 2:
        return ys.copy()
    ns = max(2, min(n, int(span * n + 1e-7)))
    fit = np.empty(n)
    rw: np.ndarray | None = None
    for step in range(robustness_steps + 1):
        left, right, last, i = 0, ns - 1, -1, 0
        while True:
            while right < n - 1 and xs[i] - xs[left] > xs[right + 1] - xs[i]:
                left += 1
                right += 1
            value = _local_fit(xs, ys, i, left, right, rw)
            fit[i] = ys[i] if value is None else value
            if last < i - 1:  # interpolate the skipped points
                frac = (xs[last + 1 : i] - xs[last]) / (xs[i] - xs[last])
                fit[last + 1 : i] = frac * fit[i] + (1 - frac) * fit[last]
            last = i
            cut = xs[last] + delta
            i = last + 1
            while i < n and xs[i] <= cut:
                if xs[i] == xs[last]:
                    fit[i] = fit[last]
                    last = i
                i += 1
            i = max(last + 1, i - 1)
            if last >= n - 1:
                break
        if step == robustness_steps:
            break
        res = ys - fit
        scale = np.abs(res).mean()
        cmad = 6 * float(np.median(np.abs(res)))
        if cmad < 1e-7 * scale:
            break
        r = np.abs(res)
        rw = np.where(
            r <= 0.001 * cmad, 1.0, np.where(r <= 0.999 * cmad, (1 - (r / cmad) ** 2) ** 2, 0.0)
        )
    return fit


def _f_ppf(p: np.ndarray, df1: float, df2: float) -> np.ndarray:
    """Quantiles of F(df1, df2); chi-square / df1 when ``df2`` is infinite (as R's ``qf``)."""
    if np.isinf(df2):
        return special.chdtri(df1, 1 - p) / df1
    return special.fdtri(df1, df2, p)


def _f_pdf(x: np.ndarray, df1: float, df2: float) -> np.ndarray:
    """Density of F(df1, df2); chi-square's when ``df2`` is infinite.

    From scipy.special directly: the robust fit's root search calls it many times per fit.
    """
    if np.isinf(df2):
        k = df1 / 2
        return np.exp(k * np.log(k) + (k - 1) * np.log(x) - k * x - special.gammaln(k))
    a, b = df1 / 2, df2 / 2
    return np.exp(
        a * np.log(df1 / df2)
        + (a - 1) * np.log(x)
        - (a + b) * np.log1p(df1 * x / df2)
        - special.betaln(a, b)
    )


@functools.cache
def _gauss_uniform(n: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1] (statmod's ``gauss.quad.prob(uniform)``)."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return (nodes + 1) / 2, weights / 2


def _winsorized_moments(
    df1: float, df2: float, tail: tuple[float, float], nodes: np.ndarray, weights: np.ndarray
) -> tuple[float, float]:
    """Mean and variance of log(F(df1, df2)) Winsorized at the ``tail`` probabilities."""
    fq = _f_ppf(np.array([tail[0], 1 - tail[1]]), df1, df2)
    zq = np.log(fq)
    q = fq / (1 + fq)
    u = q[0] + (q[1] - q[0]) * nodes
    fu = u / (1 - u)
    zu = np.log(fu)
    dens = _f_pdf(fu, df1, df2) / (1 - u) ** 2
    width = q[1] - q[0]
    tails = np.asarray(tail)
    mean = width * float((weights * dens * zu).sum()) + float((zq * tails).sum())
    var = width * float((weights * dens * (zu - mean) ** 2).sum()) + float(
        ((zq - mean) ** 2 * tails).sum()
    )
    return mean, var


def fit_f_dist_robustly(
    x: np.ndarray,
    df1: float,
    covariate: np.ndarray | None = None,
    winsor_tail_p: tuple[float, float] = WINSOR_TAIL_P,
) -> FDistFit:
    """Robust estimates of the scaled F distribution (limma's ``fitFDistRobustly``).

    One ``df1`` shared by every row; ``x`` must be finite (a row without a variance has no
    place in propeller's fit). Returns the per-row prior degrees of freedom in ``df2_shrunk``.
    """
    x = np.asarray(x, float)
    n = x.size
    if n < 2:
        return FDistFit(np.nan, np.nan, np.full(n, np.nan))
    if n == 2:
        fit = fit_f_dist(x, df1, covariate)
        return FDistFit(fit.scale, fit.df2, np.full(n, fit.df2))
    if not np.isfinite(x).all():
        msg = "robust variance moderation needs finite variances"
        raise ValueError(msg)
    cov = None if covariate is None else _finite_covariate(covariate, n)
    m = float(np.median(x))
    if m <= 0:
        msg = "variances are mostly <= 0"
        raise ValueError(msg)
    x = np.where(x < m * 1e-12, m * 1e-12, x)
    nonrobust = fit_f_dist(x, df1, cov)
    tail = (float(winsor_tail_p[0]), float(winsor_tail_p[1]))
    if all(t < 1 / n for t in tail):
        return FDistFit(nonrobust.scale, nonrobust.df2, np.full(n, nonrobust.df2))
    z = np.log(x)
    if cov is None:
        ztrend: np.ndarray | float = float(sps.trim_mean(z, tail[1]))
    else:
        ztrend = lowess(cov, z, span=TREND_SPAN)
    zresid = z - ztrend
    lo, hi = np.quantile(zresid, [tail[0], 1 - tail[1]])
    zwins = np.clip(zresid, lo, hi)
    zwmean = float(zwins.mean())
    zwvar = float(((zwins - zwmean) ** 2).mean() * n / (n - 1))
    nodes, weights = _gauss_uniform()

    def moments(df2: float) -> tuple[float, float]:
        return _winsorized_moments(df1, df2, tail, nodes, weights)

    mean_inf, var_inf = moments(np.inf)
    funval_inf = np.log(zwvar / var_inf)
    if funval_inf <= 0:
        corrected = ztrend + zwmean - mean_inf
        fstat = np.exp(z - corrected)
        tail_p = sps.chi2.sf(fstat * df1, df1)
        rank = sps.rankdata(fstat)
        not_outlier = np.minimum(tail_p / ((n - rank + 0.5) / n), 1.0)
        shrunk = np.full(n, np.inf)
        out = not_outlier < 1
        if out.any():
            shrunk[out] = not_outlier[out] * n * df1
            o = np.argsort(tail_p, kind="stable")
            shrunk[o] = np.maximum.accumulate(shrunk[o])
        return FDistFit(np.exp(corrected), np.inf, shrunk)
    if np.isinf(nonrobust.df2):
        return FDistFit(nonrobust.scale, nonrobust.df2, np.full(n, nonrobust.df2))

    def objective(u: float) -> float:
        if u >= 1:  # df2 = inf, where the bracket ends (R's uniroot is given this value)
            return float(funval_inf)
        return float(np.log(zwvar / moments(u / (1 - u))[1]))

    low = nonrobust.df2 / (1 + nonrobust.df2)
    if objective(low) >= 0:
        df2 = nonrobust.df2
    else:
        root = optimize.brentq(objective, low, 1.0, xtol=1e-8)
        df2 = root / (1 - root)
    mean_df2, _ = moments(df2)
    corrected = ztrend + zwmean - mean_df2
    fstat = np.exp(z - corrected)
    log_tail = sps.f.logsf(fstat, df1, df2)
    rank = sps.rankdata(fstat)
    log_not = np.minimum(log_tail - (np.log(n - rank + 0.5) - np.log(n)), 0.0)
    shrunk = np.full(n, df2)
    if (log_not < 0).any():
        p_not = np.exp(log_not)
        p_out = -np.expm1(log_not)
        min_log = float(log_tail.min())
        if min_log == -np.inf:
            shrunk = p_not * df2
        else:
            df2_out = np.log(0.5) / min_log * df2
            new_log = float(sps.f.logsf(fstat.max(), df1, df2_out))
            df2_out = np.log(0.5) / new_log * df2_out
            shrunk = p_not * df2 + p_out * df2_out
        o = np.argsort(log_tail, kind="stable")
        ordered = shrunk[o]
        running = np.cumsum(ordered) / np.arange(1, n + 1)
        imin = int(np.argmin(running))
        ordered[: imin + 1] = running[imin]
        shrunk[o] = np.maximum.accumulate(ordered)
    return FDistFit(np.exp(corrected), df2, shrunk)


def squeeze_var(
    s2: np.ndarray,
    df: float,
    *,
    covariate: np.ndarray | None = None,
    robust: bool = False,
    winsor_tail_p: tuple[float, float] = WINSOR_TAIL_P,
) -> tuple[np.ndarray, np.ndarray | float, np.ndarray | float]:
    """Empirical-Bayes posterior variances (limma's ``squeezeVar``).

    Fits a scaled inverse chi-square prior (``d0``, ``s0^2``) to the residual variances
    ``s2``, each on ``df`` degrees of freedom, and returns the posterior variances
    ``(d0 * s0^2 + df * s2) / (d0 + df)`` with ``d0`` and ``s0^2``. ``covariate`` (e.g. each
    row's mean abundance) lets ``s0^2`` follow a trend: then ``s0^2`` is one value per row.
    ``robust=True`` protects the prior from outlying variances, which get their own smaller
    ``d0`` (one per row). ``d0`` is ``inf`` where the variances are no more spread than
    sampling explains: those rows get ``s0^2``.

    Returns
    -------
    post, d0, s0sq
        Posterior variances; prior df (scalar, or per row when ``robust``); prior variance
        (scalar, or per row with a ``covariate``).
    """
    s2 = np.asarray(s2, float)
    n = s2.size
    if n == 0:
        msg = "no variances to squeeze"
        raise ValueError(msg)
    if n == 1:
        return s2.copy(), 0.0, float(s2[0])
    if robust:
        fit = fit_f_dist_robustly(s2, df, covariate, winsor_tail_p)
        d0: np.ndarray | float = fit.df2_shrunk
    else:
        fit = fit_f_dist(s2, df, covariate)
        d0 = fit.df2
    if np.isnan(np.asarray(d0, float)).any():
        msg = "could not estimate the prior degrees of freedom"
        raise ValueError(msg)
    prior = np.broadcast_to(np.asarray(fit.scale, float), s2.shape)
    d0_rows = np.broadcast_to(np.asarray(d0, float), s2.shape)
    finite = np.isfinite(d0_rows)
    post = prior.copy()
    post[finite] = (df * s2[finite] + d0_rows[finite] * prior[finite]) / (df + d0_rows[finite])
    return post, d0, fit.scale

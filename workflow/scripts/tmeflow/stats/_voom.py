"""limma-voom on pseudobulk counts: the second DE method of the sensitivity table.

A Python port of limma's ``voom`` (Law, Chen, Shi and Smyth 2014, Genome Biol 15:R29), its
weighted ``lmFit`` and ``eBayes`` (Smyth 2004), with edgeR's ``filterByExpr`` (Chen, Lun and
Smyth 2016, F1000Research 5:1438) choosing the genes. The empirical Bayes step is
:func:`tmeflow.stats._ebayes.squeeze_var`, already checked against limma. Why a port and not a
library: ``inmoose`` (the maintained Python edgeR/limma port) ships no wheel for this
platform and its C++ build is not in the lock; no other package on the registry offers voom.
``tests/unit/stats/test_r_reference.py`` compares the weights, coefficients, moderated t and
p-values with limma's in R (skipped where R or limma is absent).

The steps follow limma 3.5x: ``y = log2((counts + 0.5) / (lib + 1) * 1e6)``; an unweighted
linear fit; ``sqrt(sigma)`` against the mean log count (``Amean + mean(log2(lib + 1)) -
log2(1e6)``) smoothed by R's ``lowess`` (span 0.5), interpolated with constant ends; each
observation weighted by ``1 / trend(fitted log count)^4``; a weighted fit; ``squeezeVar`` of
its residual variances (no trend, not robust); moderated t on ``df_residual + d0`` degrees of
freedom (at most the pooled residual df). Library sizes are the column sums (``voom``'s
default without normalisation factors).

Provenance and licence as in :mod:`tmeflow.stats._ebayes` (limma and edgeR are GPL (>= 2)).
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from tmeflow.stats._ebayes import lowess, squeeze_var

#: Name of the method in DE tables and confirmatory rows.
METHOD_VOOM = "limma_voom"
#: voom's lowess span (limma's default).
VOOM_SPAN = 0.5


def filter_by_expr(
    counts: np.ndarray,
    group: np.ndarray,
    *,
    min_count: float = 10,
    min_total_count: float = 15,
    large_n: int = 10,
    min_prop: float = 0.7,
) -> np.ndarray:
    """Which genes (columns of ``counts``, samples x genes) edgeR's ``filterByExpr`` keeps.

    A gene is kept when at least the smallest group's number of samples (shrunk towards
    ``large_n`` by ``min_prop`` above it) reach ``min_count`` counts at the median library
    size, on the CPM scale, and its total is at least ``min_total_count``.
    """
    counts = np.asarray(counts, float)
    lib = counts.sum(axis=1)
    n_min = float(pd.Series(group).value_counts().min())
    if n_min > large_n:
        n_min = large_n + (n_min - large_n) * min_prop
    median_lib = float(np.median(lib))
    cutoff = min_count / median_lib * 1e6
    cpm = counts / lib[:, None] * 1e6
    tol = 1e-14
    enough = (cpm >= cutoff).sum(axis=0) >= n_min - tol
    return enough & (counts.sum(axis=0) >= min_total_count - tol)


def lm_fit(
    y: np.ndarray, design: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The ``lmFit`` of limma for every gene (rows of ``y``, genes x samples), weighted or not.

    Returns ``coefficients`` and ``stdev_unscaled`` (genes x columns), ``sigma`` and
    ``df_residual`` (per gene) and ``Amean`` (the mean of ``y``).
    """
    y = np.asarray(y, float)
    x = np.asarray(design, float)
    n, p = x.shape
    w = np.ones_like(y) if weights is None else np.asarray(weights, float)
    xtwx = np.einsum("si,gs,sj->gij", x, w, x)
    xtwy = np.einsum("si,gs,gs->gi", x, w, y)
    inv = np.linalg.inv(xtwx)
    beta = np.einsum("gij,gj->gi", inv, xtwy)
    resid = y - beta @ x.T
    df = n - p
    sigma = np.sqrt((w * resid**2).sum(axis=1) / df) if df > 0 else np.full(len(y), np.nan)
    return {
        "coefficients": beta,
        "stdev_unscaled": np.sqrt(np.einsum("gii->gi", inv)),
        "sigma": sigma,
        "df_residual": np.full(len(y), float(df)),
        "Amean": y.mean(axis=1),
    }


def voom(counts: np.ndarray, design: np.ndarray, *, span: float = VOOM_SPAN) -> dict:
    """The ``voom`` of limma: log-CPM (genes x samples) and their precision weights.

    ``counts`` is genes x samples (limma's orientation). Returns ``E``, ``weights`` and the
    library sizes ``lib_size``.
    """
    counts = np.asarray(counts, float)
    if counts.shape[0] < 2:
        msg = "voom needs at least two genes to fit a mean-variance trend"
        raise ValueError(msg)
    lib = counts.sum(axis=0)
    y = np.log2((counts + 0.5) / (lib + 1) * 1e6)
    fit = lm_fit(y, design)
    if (fit["df_residual"] > 0).sum() < 2:
        return {"E": y, "weights": np.ones_like(y), "lib_size": lib}
    sx = fit["Amean"] + np.mean(np.log2(lib + 1)) - np.log2(1e6)
    sy = np.sqrt(fit["sigma"])
    nonzero = counts.sum(axis=1) > 0
    sx, sy = sx[nonzero], sy[nonzero]
    smooth = lowess(sx, sy, span=span, iterations=4)
    # approxfun(l, rule = 2, ties = list("ordered", mean)): ties averaged, constant ends
    knots = pd.Series(smooth).groupby(sx).mean()
    fitted = fit["coefficients"] @ np.asarray(design, float).T
    fitted_logcount = np.log2(1e-6 * 2**fitted * (lib + 1))
    trend = np.interp(fitted_logcount, knots.index.to_numpy(float), knots.to_numpy(float))
    return {"E": y, "weights": 1 / trend**4, "lib_size": lib}


def ebayes(fit: dict[str, np.ndarray], coef: int = -1) -> pd.DataFrame:
    """The ``eBayes`` of limma (no trend, not robust) for one coefficient of ``fit``.

    Columns ``coef``, ``se`` (moderated), ``t``, ``df_total``, ``pvalue`` (two-sided).
    """
    df = float(fit["df_residual"][0])
    s2 = fit["sigma"] ** 2
    post, d0, _ = squeeze_var(s2, df)
    df_total = np.minimum(df + np.asarray(d0, float), df * len(s2))
    se = fit["stdev_unscaled"][:, coef] * np.sqrt(post)
    t = fit["coefficients"][:, coef] / se
    return pd.DataFrame(
        {
            "coef": fit["coefficients"][:, coef],
            "se": se,
            "t": t,
            "df_total": np.broadcast_to(df_total, t.shape),
            "pvalue": 2 * stats.t.sf(np.abs(t), np.broadcast_to(df_total, t.shape)),
        }
    )


def design_matrix(
    meta: pd.DataFrame, *, condition_key: str, test: str, covariates: Sequence[str] = ()
) -> np.ndarray:
    """Intercept, covariates (numeric as they are, others as level indicators), test arm last."""
    cols = [np.ones(len(meta))]
    for cov in covariates:
        col = meta[cov]
        if pd.api.types.is_numeric_dtype(col):
            cols.append(col.to_numpy(float))
        else:
            dummies = pd.get_dummies(col.astype(str), drop_first=True, dtype=float)
            cols.extend(dummies[c].to_numpy() for c in dummies.columns)
    cols.append((meta[condition_key].astype(str) == test).to_numpy(float))
    return np.column_stack(cols)


def voom_coefficient(counts: np.ndarray, design: np.ndarray) -> pd.DataFrame:
    """voom, weighted ``lmFit`` and ``eBayes`` of the design's last column.

    ``counts`` is samples x genes (the pseudobulk's orientation); the genes are used as given.
    """
    v = voom(np.asarray(counts, float).T, design)
    fit = lm_fit(v["E"], design, v["weights"])
    return ebayes(fit)


def voom_limma_test(
    counts: pd.DataFrame,
    meta: pd.DataFrame,
    *,
    condition_key: str,
    reference: str,
    test: str,
    covariates: Sequence[str] = (),
) -> tuple[pd.DataFrame | None, str]:
    """limma-voom of ``test`` vs ``reference`` on pseudobulk ``counts`` (samples x genes).

    Genes pass :func:`filter_by_expr` first (by arm). Returns a table indexed by gene
    (``baseMean`` as the mean count, ``log2FoldChange``, ``lfcSE``, ``stat``, ``pvalue``,
    ``padj`` by Benjamini-Hochberg, ``df_total``), or None and the reason it could not run.
    """
    from statsmodels.stats.multitest import multipletests

    arm = meta[condition_key].astype(str).to_numpy()
    values = counts.to_numpy(float)
    keep = filter_by_expr(values, arm)
    if keep.sum() < 2:
        return None, (
            f"not tested: limma-voom keeps {int(keep.sum())} gene(s) after filterByExpr "
            "(it needs two to fit the mean-variance trend)"
        )
    design = design_matrix(meta, condition_key=condition_key, test=test, covariates=covariates)
    if np.linalg.matrix_rank(design) < design.shape[1] or design.shape[0] <= design.shape[1]:
        return None, (
            "not tested: the design is not full rank or leaves no residual degrees of freedom "
            "for limma-voom"
        )
    res = voom_coefficient(values[:, keep], design)
    res.index = counts.columns[keep].astype(str)
    padj = multipletests(res["pvalue"].to_numpy(), method="fdr_bh")[1]
    out = pd.DataFrame(
        {
            "baseMean": values[:, keep].mean(axis=0),
            "log2FoldChange": res["coef"].to_numpy(),
            "lfcSE": res["se"].to_numpy(),
            "stat": res["t"].to_numpy(),
            "pvalue": res["pvalue"].to_numpy(),
            "padj": padj,
            "df_total": res["df_total"].to_numpy(),
        },
        index=res.index,
    )
    return out, ""

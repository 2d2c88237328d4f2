"""The two tests behind :func:`tmeflow.stats.run_de`: PyDESeq2 on pseudobulk, Wilcoxon on cells.

:func:`pydeseq2_test` fits PyDESeq2 (negative-binomial GLM, Wald test) to per-animal pseudobulk
counts; a design that is not full rank or a fit that fails inside PyDESeq2 is returned as a
reason, not raised. :func:`wilcoxon_test` is the exploratory cell-level fallback (scanpy's
Wilcoxon on log1p CP10k) used when an arm has too few animals.
"""

import logging
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from tmeflow._utils import cp10k
from tmeflow.stats._pseudobulk import cp10k_log

logger = logging.getLogger(
    "tmeflow.stats._de"
)  # messages as before the split: the DE step's logger

#: Pseudocount (on the counts-per-10,000 scale) of the Wilcoxon fallback's log2 fold change.
_LFC_PSEUDOCOUNT = 1.0


def lin_reg_mu(
    counts: np.ndarray, size_factors: np.ndarray, design_matrix: np.ndarray, min_mu: float
) -> np.ndarray:
    """PyDESeq2's initial means (``utils.fit_lin_mu``) of every gene in one least-squares solve.

    PyDESeq2 fits one scikit-learn ``LinearRegression`` per gene (normalised counts on the
    design, no intercept) when the design has as many distinct rows as coefficients (every
    two-arm design without covariates); the solution is the same least-squares problem for every
    gene with the same design, solved here for all columns at once. Measured on the small demo's
    DE (13 groups, 600-1,500 genes, 3 + 3 animals): the per-gene fits were 22 of 67 s.
    ``tests/unit/stats/test_de_methods.py`` checks it against PyDESeq2's own function.
    """
    sf = np.asarray(size_factors, dtype=float)[:, None]
    y = np.asarray(counts, dtype=float) / sf
    beta = np.linalg.lstsq(np.asarray(design_matrix, dtype=float), y, rcond=None)[0]
    return np.maximum(sf * (np.asarray(design_matrix, dtype=float) @ beta), min_mu)


def _inference(threads: int):
    """PyDESeq2's DefaultInference with :func:`lin_reg_mu` for its per-gene initial fits."""
    from pydeseq2.default_inference import DefaultInference

    class _Inference(DefaultInference):
        def lin_reg_mu(self, counts, size_factors, design_matrix, min_mu):
            return lin_reg_mu(counts, size_factors, design_matrix, min_mu)

    return _Inference(n_cpus=threads)


def pydeseq2_test(
    counts: pd.DataFrame,
    meta: pd.DataFrame,
    *,
    condition_key: str,
    reference: str,
    test: str,
    covariates: Sequence[str],
    threads: int,
    alpha: float,
    label: str,
    shrink: bool = False,
) -> tuple[pd.DataFrame | None, str]:
    """Fit PyDESeq2; returns (results_df or None, note). Library warnings are logged.

    With ``shrink``, the results also hold ``log2FoldChange_shrunk`` and ``lfcSE_shrunk``:
    the condition coefficient after :meth:`pydeseq2.ds.DeseqStats.lfc_shrink` (apeGLM
    Cauchy prior, Zhu et al. 2019 Bioinformatics 35:2084), as log2 (PyDESeq2 shrinks the
    natural-log coefficient); p-values stay those of the unshrunk Wald test.

    BLAS runs on one thread during the fit (as in every workflow job,
    :data:`tmeflow.core.BLAS_THREADS`): PyDESeq2's per-gene L-BFGS-B fits make thousands of
    tiny BLAS calls, where extra threads only spin (4 s against 10-28 s with two on a busy
    2-core machine). ``threads`` is PyDESeq2's own process count.
    """
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.ds import DeseqStats
    from threadpoolctl import threadpool_limits

    md = pd.DataFrame(index=counts.index)
    for cov in covariates:
        col = meta[cov]
        md[cov] = col.to_numpy() if pd.api.types.is_numeric_dtype(col) else col.astype(str)
    md[condition_key] = pd.Categorical(
        meta[condition_key].astype(str).to_numpy(), categories=[reference, test]
    )
    design = "~" + " + ".join([*covariates, condition_key])
    inference = _inference(threads)
    note = ""
    failure = None
    with (
        threadpool_limits(limits=1, user_api="blas"),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        dds = DeseqDataSet(
            counts=counts,
            metadata=md,
            design=design,
            refit_cooks=True,
            inference=inference,
            quiet=True,
        )
        full_rank = (
            np.linalg.matrix_rank(dds.obsm["design_matrix"].to_numpy(float))
            == (dds.obsm["design_matrix"].shape[1])
        )
        if full_rank:
            try:
                dds.deseq2()
                stats = DeseqStats(
                    dds,
                    contrast=[condition_key, test, reference],
                    alpha=alpha,
                    inference=inference,
                    quiet=True,
                )
                stats.summary()
                mle = stats.results_df.copy()
                # the MAP dispersion of each gene (the leave-one-animal-out refit keeps it)
                mle["dispersion"] = np.asarray(dds.var["dispersions"], dtype=float)
                if shrink:
                    stats.lfc_shrink(coeff=_coefficient(stats.LFC.columns, condition_key, test))
                    mle["log2FoldChange_shrunk"] = stats.results_df["log2FoldChange"]
                    mle["lfcSE_shrunk"] = stats.results_df["lfcSE"]
            except (ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError) as exc:
                # e.g. a dispersion trend that cannot be fitted on a few genes or animals
                failure = f"{type(exc).__name__}: {exc}"
    for w in caught:
        logger.warning("%s: PyDESeq2: %s", label, w.message)
    if failure is not None:
        note = (
            f"not tested: PyDESeq2 failed on the {counts.shape[0]} pseudobulk samples and "
            f"{counts.shape[1]} genes of this group ({failure}); raise de.min_cells or check "
            "this group's counts"
        )
        logger.warning("%s: %s", label, note)
        return None, note
    if not full_rank:
        note = (
            f"not tested: design {design!r} is not full rank for the samples of this group; "
            "drop the covariate(s) confounded with the condition"
        )
        logger.warning("%s: %s", label, note)
        return None, note
    return mle, note


def _coefficient(lfc_columns: pd.Index, condition_key: str, test: str) -> str:
    """The LFC column of the test level (``condition[T.alectinib]`` in formulaic)."""
    columns = [str(c) for c in lfc_columns]
    hits = [c for c in columns if c.startswith(condition_key) and c.endswith(f"{test}]")]
    if len(hits) != 1:
        msg = f"no single design column for {condition_key}={test!r} among {columns}"
        raise ValueError(msg)
    return hits[0]


def wilcoxon_test(
    mat: sp.csr_matrix,
    totals: np.ndarray,
    arm: np.ndarray,
    genes: pd.Index,
    *,
    reference: str,
    test: str,
) -> pd.DataFrame:
    """Cell-level Wilcoxon (scanpy) of test vs reference on log1p CP10k."""
    import scanpy as sc

    lognorm = cp10k_log(mat, totals)
    small = AnnData(
        X=lognorm,
        obs=pd.DataFrame(
            {"_arm": pd.Categorical(arm, categories=[reference, test])},
            index=pd.Index([str(i) for i in range(mat.shape[0])]),
        ),
        var=pd.DataFrame(index=pd.Index(genes.astype(str))),
    )
    sc.tl.rank_genes_groups(
        small,
        "_arm",
        groups=[test],
        reference=reference,
        method="wilcoxon",
        use_raw=False,
        tie_correct=True,
        key_added="_rgg",
    )
    res = sc.get.rank_genes_groups_df(small, group=test, key="_rgg").set_index("names")
    res = res.reindex(genes.astype(str))

    norm = cp10k(mat, totals, log1p=False)
    is_ref = arm == reference
    mean_ref = np.asarray(norm[is_ref].mean(axis=0)).ravel()
    mean_test = np.asarray(norm[~is_ref].mean(axis=0)).ravel()
    lfc = np.log2((mean_test + _LFC_PSEUDOCOUNT) / (mean_ref + _LFC_PSEUDOCOUNT))
    return pd.DataFrame(
        {
            "gene": genes.astype(str),
            "baseMean": np.asarray(norm.mean(axis=0)).ravel(),
            "log2FoldChange": lfc,
            "lfcSE": np.nan,
            "stat": res["scores"].to_numpy(float),
            "pvalue": res["pvals"].to_numpy(float),
            "padj": res["pvals_adj"].to_numpy(float),
            "ci_low": np.nan,
            "ci_high": np.nan,
        }
    )


def median_of_ratios(counts: np.ndarray) -> np.ndarray:
    """DESeq2's size factors of ``counts`` (samples x genes).

    The median ratio to the genes' geometric means over the genes counted in every sample; the
    library sizes scaled to a geometric mean of 1 when no gene is counted in every sample.
    """
    counts = np.asarray(counts, dtype=float)
    every = (counts > 0).all(axis=0)
    if every.any():
        logs = np.log(counts[:, every])
        return np.exp(np.median(logs - logs.mean(axis=0), axis=1))
    lib = np.maximum(counts.sum(axis=1), 1.0)
    return lib / np.exp(np.log(lib).mean())


def nb_glm(
    y: np.ndarray, design: np.ndarray, offset: np.ndarray, dispersion: float, *, max_iter: int = 100
) -> np.ndarray | None:
    """Coefficients (natural log) of a negative binomial GLM with a known dispersion.

    ``log mu = design @ beta + offset`` fitted by iteratively reweighted least squares, with
    PyDESeq2's tiny ridge (1e-6) so that a group of zeros gives a large negative coefficient
    rather than no answer. ``None`` when the design is not of full rank.
    """
    y = np.asarray(y, dtype=float)
    x = np.asarray(design, dtype=float)
    if np.linalg.matrix_rank(x) < x.shape[1]:
        return None
    ridge = 1e-6 * np.eye(x.shape[1])
    beta = np.linalg.lstsq(x, np.log(y + 0.5) - offset, rcond=None)[0]
    for _ in range(max_iter):
        eta = np.clip(x @ beta + offset, -30.0, 30.0)
        mu = np.exp(eta)
        w = mu / (1.0 + dispersion * mu)
        z = eta - offset + (y - mu) / mu
        xtw = x.T * w
        new = np.linalg.solve(xtw @ x + ridge, xtw @ z)
        done = np.max(np.abs(new - beta)) < 1e-8
        beta = new
        if done:
            break
    return beta

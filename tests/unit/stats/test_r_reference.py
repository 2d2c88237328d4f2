"""The statistics checked against their R reference implementations.

limma's ``squeezeVar`` (the empirical Bayes of propeller, :mod:`tmeflow.stats._ebayes`) and
DESeq2's Wald test (PyDESeq2 in :mod:`tmeflow.stats._de_methods`). Each test writes its inputs
to a temporary CSV, runs ``Rscript`` and compares; it is skipped where ``Rscript`` or the R
package is absent (``.ci/run`` installs them under CI or with ``TMEFLOW_R_REFERENCE=1``).
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tmeflow.stats import _ebayes as ebayes

TIMEOUT = 300


def _r_available(*packages: str) -> str | None:
    """Why R cannot run these packages, or None when it can."""
    if shutil.which("Rscript") is None:
        return "Rscript not on PATH"
    code = ";".join(f"suppressMessages(library({p}))" for p in packages)
    try:
        done = subprocess.run(
            ["Rscript", "-e", code], capture_output=True, text=True, timeout=TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"Rscript failed: {err}"
    if done.returncode != 0:
        return f"R package(s) {packages} not available: {done.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def limma_r() -> None:
    reason = _r_available("limma", "statmod", "splines")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def deseq2_r() -> None:
    reason = _r_available("DESeq2")
    if reason:
        pytest.skip(reason)


def run_r(script: str, tmp: Path) -> None:
    path = tmp / "script.R"
    path.write_text(script)
    done = subprocess.run(
        ["Rscript", str(path)], capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp
    )
    assert done.returncode == 0, done.stderr[-2000:]


# --- limma's squeezeVar ----------------------------------------------------------------------


def _datasets() -> dict[str, tuple[np.ndarray, float, np.ndarray]]:
    """Variances, their df and a covariate: three shapes the prior fit meets."""
    rng = np.random.default_rng(20260426)
    out = {}
    # 200 rows, spread beyond sampling (finite d0), a few inflated outliers, a trend in the mean
    cov = rng.normal(0, 1.5, 200)
    s2 = rng.chisquare(4, 200) / 4 * rng.lognormal(0, 0.5, 200) * np.exp(-0.4 * cov)
    s2[:6] *= 25
    out["genes200"] = (s2, 4.0, cov)
    # propeller-like: 12 cell types at 3 vs 3 (df 4), rare types more variable, one outlier
    rng12 = np.random.default_rng(1)
    cov = np.log(rng12.dirichlet(np.full(12, 2.0)) + 0.005)
    s2 = rng12.chisquare(4, 12) / 4 * 0.05 * np.exp(-0.5 * cov) * rng12.lognormal(0, 0.6, 12)
    s2[3] *= 30
    out["types12"] = (s2, 4.0, cov)
    # 8 types, variances no more spread than chi-square sampling (d0 infinite), df 6
    cov = rng.normal(-2, 1, 8)
    out["types8_pure"] = (rng.chisquare(6, 8) / 6 * 0.1, 6.0, cov)
    # 40 rows, a U-shaped trend on the covariate, df 2
    cov = rng.uniform(-3, 3, 40)
    out["rows40"] = (rng.chisquare(2, 40) / 2 * np.exp(0.3 * cov**2) * 0.2, 2.0, cov)
    return out


SQUEEZE_R = """
suppressMessages({library(limma)})
d <- read.csv("in.csv")
rows <- list()
for (name in unique(d$set)) {
  s <- d[d$set == name, ]
  for (robust in c(FALSE, TRUE)) for (trend in c(FALSE, TRUE)) {
    cv <- if (trend) s$cov else NULL
    fit <- squeezeVar(s$var, s$df[1], covariate = cv, robust = robust)
    n <- nrow(s)
    rows[[length(rows) + 1]] <- data.frame(
      set = name, robust = robust, trend = trend, i = seq_len(n),
      var_post = fit$var.post, var_prior = rep_len(fit$var.prior, n),
      df_prior = rep_len(fit$df.prior, n))
  }
}
write.csv(do.call(rbind, rows), "out.csv", row.names = FALSE)
"""


@pytest.fixture(scope="module")
def limma_results(limma_r, tmp_path_factory) -> pd.DataFrame:
    tmp = tmp_path_factory.mktemp("limma")
    rows = [
        pd.DataFrame({"set": name, "var": s2, "df": df, "cov": cov})
        for name, (s2, df, cov) in _datasets().items()
    ]
    pd.concat(rows).to_csv(tmp / "in.csv", index=False, float_format="%.17g")
    run_r(SQUEEZE_R, tmp)
    return pd.read_csv(tmp / "out.csv")


@pytest.mark.parametrize("name", list(_datasets()))
@pytest.mark.parametrize("robust", [False, True])
@pytest.mark.parametrize("trend", [False, True])
def test_squeeze_var_matches_limma(limma_results, name, robust, trend) -> None:
    s2, df, cov = _datasets()[name]
    ref = limma_results[
        (limma_results["set"] == name)
        & (limma_results["robust"] == robust)
        & (limma_results["trend"] == trend)
    ].sort_values("i")
    post, d0, s0sq = ebayes.squeeze_var(s2, df, covariate=cov if trend else None, robust=robust)
    n = s2.size
    np.testing.assert_allclose(post, ref["var_post"], rtol=1e-6)
    np.testing.assert_allclose(np.broadcast_to(s0sq, n), ref["var_prior"], rtol=1e-6)
    # R writes Inf as "Inf", read back as inf
    np.testing.assert_allclose(np.broadcast_to(d0, n), ref["df_prior"], rtol=1e-6)


def test_the_limma_data_sets_exercise_every_branch() -> None:
    """Finite and infinite d0, the robust fit's root search and its d0 = inf branch, per-row d0."""
    sets = _datasets()
    _, d0_pure, s0sq = ebayes.squeeze_var(sets["types8_pure"][0], sets["types8_pure"][1])
    assert d0_pure == np.inf and s0sq == pytest.approx(sets["types8_pure"][0].mean())
    s2, df, cov = sets["types12"]
    plain = ebayes.fit_f_dist(s2, df)
    robust = ebayes.fit_f_dist_robustly(s2, df)
    assert np.isfinite(plain.df2) and robust.df2 > plain.df2  # root search above the plain d0
    assert robust.df2_shrunk.min() < robust.df2  # the outlying type gets a smaller d0
    robust_trend = ebayes.fit_f_dist_robustly(s2, df, cov)
    assert robust_trend.df2 == np.inf and np.isfinite(robust_trend.df2_shrunk).any()
    s2, df, cov = sets["genes200"]
    assert np.ptp(ebayes.fit_f_dist(s2, df, cov).scale) > 0  # the spline trend
    assert np.ptp(ebayes.fit_f_dist_robustly(s2, df, cov).scale) > 0  # the lowess trend


# --- DESeq2's Wald test ----------------------------------------------------------------------

DESEQ2_R = """
suppressMessages({library(DESeq2)})
counts <- as.matrix(read.csv("counts.csv", row.names = 1, check.names = FALSE))
meta <- read.csv("meta.csv", row.names = 1)
meta$condition <- factor(meta$condition, levels = c("{reference}", "{test}"))
dds <- DESeqDataSetFromMatrix(round(t(counts)), colData = meta, design = ~ condition)
dds <- DESeq(dds, quiet = TRUE)
res <- results(dds, contrast = c("condition", "{test}", "{reference}"))
write.csv(as.data.frame(res), "deseq2.csv")
"""


@pytest.fixture(scope="module")
def caf_pseudobulk() -> tuple[pd.DataFrame, pd.DataFrame, str, str]:
    """The simulated demo's CAF cells (seed 1, 3 + 3 animals), summed per animal."""
    import anndata as ad

    from tmeflow.simulate import simulate_experiment
    from tmeflow.stats import pseudobulk

    exp = simulate_experiment(
        n_replicates=3, cells_per_sample=800, n_genes_mouse=400, n_genes_human=200, seed=1
    )
    truth = exp.truth.set_index(["sample", "barcode"])
    parts = []
    for sample, adata in exp.samples.items():
        part = adata.copy()
        info = truth.loc[[(sample, b) for b in part.obs_names]]
        part.obs = info.reset_index().set_index(part.obs_names)
        part.obs_names = [f"{sample}_{b}" for b in part.obs_names]
        parts.append(part)
    cells = ad.concat(parts)
    keep = (cells.obs["cell_type"] == "CAF").to_numpy() & ~cells.obs["is_doublet"].to_numpy(bool)
    caf = cells[keep].copy()
    counts, meta = pseudobulk(caf, group_key="cell_type", sample_key="sample", layer=None)
    reference, test = exp.planted["conditions"]
    meta = meta.copy()
    meta["condition"] = [
        exp.truth.loc[exp.truth["sample"] == s, "condition"].iloc[0] for s in meta["sample"]
    ]
    counts = counts.loc[:, counts.sum(axis=0) > 0]
    return counts, meta, reference, test


def test_pydeseq2_matches_deseq2(deseq2_r, caf_pseudobulk, tmp_path) -> None:
    """Unshrunk log2FC within 0.05 and Wald p within a factor 2 (where p < 0.01) of R."""
    from tmeflow.stats import pydeseq2_test

    counts, meta, reference, test = caf_pseudobulk
    py, note = pydeseq2_test(
        counts,
        meta,
        condition_key="condition",
        reference=reference,
        test=test,
        covariates=[],
        threads=1,
        alpha=0.05,
        label="CAF",
    )
    assert py is not None, note
    counts.to_csv(tmp_path / "counts.csv")
    meta[["condition"]].to_csv(tmp_path / "meta.csv")
    run_r(DESEQ2_R.replace("{reference}", reference).replace("{test}", test), tmp_path)
    r = pd.read_csv(tmp_path / "deseq2.csv", index_col=0)
    both = py[["log2FoldChange", "pvalue"]].join(r[["log2FoldChange", "pvalue"]], rsuffix="_r")
    fc = both.dropna(subset=["log2FoldChange", "log2FoldChange_r"])
    assert len(fc) > 0.8 * counts.shape[1]  # most genes have a fold change in both
    diff = (fc["log2FoldChange"] - fc["log2FoldChange_r"]).abs()
    assert diff.max() < 0.05, fc.loc[diff.nlargest(5).index].to_string()
    # the planted change is found by both (feature names carry the genome prefix)
    mmp11 = next(g for g in counts.columns if g.endswith("Mmp11"))
    assert fc.loc[mmp11, "log2FoldChange_r"] > 1
    small = both.dropna(subset=["pvalue", "pvalue_r"])
    small = small[(small["pvalue"] < 0.01) | (small["pvalue_r"] < 0.01)]
    assert mmp11 in small.index
    ratio = small["pvalue"] / small["pvalue_r"]
    assert ((ratio > 0.5) & (ratio < 2)).all(), small.assign(ratio=ratio).to_string()
    # the same genes lack a p-value (Cook's outliers, all-zero genes) in both
    assert (both["pvalue"].isna() == both["pvalue_r"].isna()).mean() > 0.99


# --- limma-voom ------------------------------------------------------------------------------

VOOM_R = """
suppressMessages({library(limma)})
counts <- t(as.matrix(read.csv("counts.csv", row.names = 1, check.names = FALSE)))
design <- as.matrix(read.csv("design.csv", row.names = 1))
v <- voom(counts, design)
fit <- eBayes(lmFit(v, design))
k <- ncol(design)
out <- data.frame(coef = fit$coefficients[, k], t = fit$t[, k], df_total = fit$df.total,
                  pvalue = fit$p.value[, k], row.names = rownames(counts))
write.csv(out, "voom.csv")
write.csv(v$weights, "weights.csv")
"""


@pytest.mark.parametrize("covariate", [False, True])
def test_voom_limma_matches_limma(limma_r, caf_pseudobulk, tmp_path, covariate) -> None:
    """voom weights, coefficients, moderated t and p-values equal limma's (1e-6 relative)."""
    from tmeflow.stats import _voom

    counts, meta, _reference, test = caf_pseudobulk
    meta = meta.assign(batch=["a", "b", "a", "b", "a", "b"][: len(meta)])
    covariates = ["batch"] if covariate else []
    keep = _voom.filter_by_expr(counts.to_numpy(float), meta["condition"].to_numpy())
    assert 10 < keep.sum() < counts.shape[1]  # the filter keeps some genes and drops some
    sub = counts.loc[:, keep]
    design = _voom.design_matrix(meta, condition_key="condition", test=test, covariates=covariates)
    v = _voom.voom(sub.to_numpy(float).T, design)
    py = _voom.voom_coefficient(sub.to_numpy(float), design)
    sub.to_csv(tmp_path / "counts.csv")
    pd.DataFrame(design, index=sub.index).to_csv(tmp_path / "design.csv")
    run_r(VOOM_R, tmp_path)
    r = pd.read_csv(tmp_path / "voom.csv", index_col=0)
    weights = pd.read_csv(tmp_path / "weights.csv", index_col=0).to_numpy(float)
    np.testing.assert_allclose(v["weights"], weights, rtol=1e-6)
    for col in ("coef", "t", "df_total", "pvalue"):
        np.testing.assert_allclose(py[col].to_numpy(), r[col].to_numpy(), rtol=1e-6, err_msg=col)
    # the planted Mmp11 increase is among the smallest p-values of both
    mmp11 = next(i for i, g in enumerate(sub.columns) if g.endswith("Mmp11"))
    assert py["coef"].iloc[mmp11] > 1 and py["pvalue"].iloc[mmp11] < 0.01


# --- quasi-binomial GLM (confirmatory proportion hypotheses) ----------------------------------

QUASI_R = """
d <- read.csv("in.csv")
rows <- list()
for (name in unique(d$set)) {
  s <- d[d$set == name, ]
  # converged to the closed form (the default epsilon 1e-8 leaves ~1e-6 in the dispersion)
  fit <- glm(cbind(k, n - k) ~ arm, family = quasibinomial, data = s,
             control = glm.control(epsilon = 1e-14, maxit = 100))
  co <- summary(fit)$coefficients
  rows[[length(rows) + 1]] <- data.frame(
    set = name, coef = co["arm", 1], se = co["arm", 2], t = co["arm", 3], p = co["arm", 4],
    dispersion = summary(fit)$dispersion, df = fit$df.residual)
}
write.csv(do.call(rbind, rows), "out.csv", row.names = FALSE)
"""


def test_quasi_binomial_matches_r_glm(tmp_path) -> None:
    """Coefficient, SE, t, p and dispersion of R's glm(family = quasibinomial) to 1e-6."""
    reason = _r_available("stats")
    if reason:
        pytest.skip(reason)
    from tmeflow.stats import _composition as composition

    rng = np.random.default_rng(26)
    sets = {}
    for name, (per_arm, share, conc) in {
        "tam_3v3": (3, 0.22, 60.0),
        "rare_2v2": (2, 0.03, 40.0),
        "subtype_6v6": (6, 0.55, 30.0),
    }.items():
        arm = np.repeat([0, 1], per_arm)
        n = rng.poisson(600, arm.size).astype(float)
        p = rng.beta(conc * share * np.where(arm, 1.5, 1), conc * (1 - share))
        sets[name] = (rng.binomial(n.astype(int), p).astype(float), n, arm)
    frame = pd.concat(
        pd.DataFrame({"set": name, "k": k, "n": n, "arm": arm})
        for name, (k, n, arm) in sets.items()
    )
    frame.to_csv(tmp_path / "in.csv", index=False)
    run_r(QUASI_R, tmp_path)
    r = pd.read_csv(tmp_path / "out.csv").set_index("set")
    for name, (k, n, arm) in sets.items():
        res = composition.quasi_binomial_test(k, n, arm.astype(bool))
        ref = r.loc[name]
        assert ref["dispersion"] > 1, name  # overdispersed: the floor at 1 does not act
        for ours, theirs in (
            (res["effect"], ref["coef"]),
            (res["se"], ref["se"]),
            (res["stat"], ref["t"]),
            (res["pvalue"], ref["p"]),
            (res["dispersion"], ref["dispersion"]),
            (res["df"], ref["df"]),
        ):
            assert ours == pytest.approx(theirs, rel=1e-6), name

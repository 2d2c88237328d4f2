"""The statistics checked against their R reference implementations.

limma's ``squeezeVar`` (the empirical Bayes of propeller, :mod:`tmeflow.stats._ebayes`) and
DESeq2's Wald test (PyDESeq2 in :mod:`tmeflow.stats._de_methods`). Each test writes its inputs
to a temporary CSV, runs ``Rscript`` and compares; it is skipped where ``Rscript`` or the R
package is absent (``.ci/run`` installs them with ``TMEFLOW_R_REFERENCE=1``).
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

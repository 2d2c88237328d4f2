"""PyDESeq2 as the DE methods call it: the vectorised initial means against PyDESeq2's own."""

import warnings

import numpy as np
import pandas as pd
import pytest
from pydeseq2 import utils as deseq_utils
from pydeseq2.dds import DeseqDataSet
from pydeseq2.default_inference import DefaultInference
from pydeseq2.ds import DeseqStats

from tmeflow.stats import _de_methods as methods


@pytest.mark.parametrize("n_coef", [2, 3])
def test_lin_reg_mu_is_pydeseq2s_per_gene_fit(n_coef):
    rng = np.random.default_rng(n_coef)
    n_samples, n_genes = 7, 60
    design = np.column_stack(
        [np.ones(n_samples), np.arange(n_samples) % 2, rng.normal(size=n_samples)][:n_coef]
    )
    counts = rng.negative_binomial(2, 0.05, size=(n_samples, n_genes)).astype(float)
    counts[:, 0] = 0  # a gene of zeros floors at min_mu
    sf = rng.uniform(0.5, 2.0, n_samples)
    ours = methods.lin_reg_mu(counts, sf, design, min_mu=0.5)
    theirs = np.column_stack(
        [deseq_utils.fit_lin_mu(counts[:, i], sf, design, min_mu=0.5) for i in range(n_genes)]
    )
    assert ours.shape == (n_samples, n_genes)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9)
    assert (ours[:, 0] == 0.5).all()


def test_pydeseq2_results_equal_with_the_default_inference():
    """The whole fit (dispersions, Wald test, apeGLM) as with PyDESeq2's DefaultInference."""
    rng = np.random.default_rng(0)
    n_genes = 200
    mean = rng.gamma(2.0, 30.0, n_genes)
    cond = np.array(["control"] * 3 + ["drug"] * 3)
    fold = np.where(np.arange(n_genes) < 20, 4.0, 1.0)
    mu = mean[None, :] * np.where(cond[:, None] == "drug", fold[None, :], 1.0)
    counts = pd.DataFrame(
        rng.negative_binomial(5, 5 / (5 + mu)),
        index=[f"s{i}" for i in range(6)],
        columns=[f"g{i}" for i in range(n_genes)],
    )
    meta = pd.DataFrame({"condition": cond}, index=counts.index)
    ours, note = methods.pydeseq2_test(
        counts, meta, condition_key="condition", reference="control", test="drug",
        covariates=(), threads=1, alpha=0.05, label="test", shrink=True,
    )  # fmt: skip
    assert ours is not None, note
    md = meta.assign(condition=pd.Categorical(cond, categories=["control", "drug"]))
    inference = DefaultInference(n_cpus=1)
    dds = DeseqDataSet(
        counts=counts, metadata=md, design="~condition", refit_cooks=True,
        inference=inference, quiet=True,
    )  # fmt: skip
    with warnings.catch_warnings():  # e.g. the trend fit's fallback, logged by pydeseq2_test
        warnings.simplefilter("ignore")
        dds.deseq2()
        stats = DeseqStats(
            dds, contrast=["condition", "drug", "control"], alpha=0.05, inference=inference,
            quiet=True,
        )  # fmt: skip
        stats.summary()
    theirs = stats.results_df
    for col in ("baseMean", "log2FoldChange", "lfcSE", "pvalue"):
        np.testing.assert_allclose(ours[col], theirs[col], rtol=1e-6, atol=1e-10, err_msg=col)
    assert (ours["padj"].isna() == theirs["padj"].isna()).all()
    assert (ours.loc[ours.index[:20], "log2FoldChange"] > 1).mean() > 0.8  # the planted genes

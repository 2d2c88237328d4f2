"""Tests of tmeflow.stats._genes_of_interest: the genes-of-interest report and its per-animal
table."""

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from tmeflow.stats import _genes_of_interest as goi

from .._de_data import REF, TEST


def test_genes_of_interest_report(de_data: AnnData, de_tables: dict[str, pd.DataFrame]) -> None:
    genes = ["Mmp11", "AXL", "Axl", "NotAGene", "axl"]
    report, per_sample = goi.genes_of_interest(
        de_data,
        de_tables,
        genes=genes,
        group_key="cell_type",
        condition_key="condition",
        reference=REF,
        test=TEST,
    )
    assert list(report.columns) == goi.GOI_COLUMNS
    assert len(report) == len(genes) * 3
    r = report.set_index(["gene", "cell_type"])
    # absent genes (and wrong case) are reported, not errors
    for absent in ("NotAGene", "axl"):
        assert not r.loc[absent, "present"].any()
        assert (r.loc[absent, "note"] == "gene absent from the data").all()
    # DE values copied from the table
    mmp11 = de_tables["CAF"].set_index("gene").loc["Mmp11"]
    assert r.loc[("Mmp11", "CAF"), "log2FoldChange"] == mmp11["log2FoldChange"]
    assert r.loc[("Mmp11", "CAF"), "padj"] < 0.05
    assert r.loc[("Mmp11", "CAF"), "method"] == "pydeseq2"
    # AXL (human) is tested in tumour cells only; Axl (mouse) in stroma only
    assert r.loc[("AXL", "tumor"), "method"] == "pydeseq2"
    assert r.loc[("AXL", "CAF"), "method"] == "not_tested"
    assert "human gene" in r.loc[("AXL", "CAF"), "note"]
    assert r.loc[("Axl", "CAF"), "method"] == "pydeseq2"
    assert r.loc[("Axl", "tumor"), "frac_expressing_reference"] == 0.0
    assert r.loc[("AXL", "tumor"), "frac_expressing_reference"] > 0.5
    # descriptive values against a manual computation
    dense = de_data.layers["counts"].toarray()
    j = list(de_data.var_names).index("Mmp11")
    mask = ((de_data.obs["cell_type"] == "CAF") & (de_data.obs["condition"] == TEST)).to_numpy()
    manual_frac = (dense[mask, j] > 0).mean()
    manual_norm = np.log1p(dense[mask, j] / dense[mask].sum(axis=1) * 1e4).mean()
    assert r.loc[("Mmp11", "CAF"), "frac_expressing_test"] == pytest.approx(manual_frac)
    assert r.loc[("Mmp11", "CAF"), "mean_norm_test"] == pytest.approx(manual_norm)
    assert (
        r.loc[("Mmp11", "CAF"), "mean_norm_test"] > r.loc[("Mmp11", "CAF"), "mean_norm_reference"]
    )

    # per-sample table: pseudobulk of the present genes only
    assert list(per_sample.columns) == goi.GOI_SAMPLE_COLUMNS
    assert set(per_sample["gene"]) == {"Mmp11", "AXL", "Axl"}
    assert len(per_sample) == 3 * 3 * 6
    k = list(de_data.var_names).index("AXL")
    one = per_sample[(per_sample["gene"] == "AXL") & (per_sample["cell_type"] == "tumor")]
    for _, rec in one.iterrows():
        cells = (
            (de_data.obs["sample"] == rec["sample"]) & (de_data.obs["cell_type"] == "tumor")
        ).to_numpy()
        assert rec["counts"] == dense[cells, k].sum()
        assert rec["cpm"] == pytest.approx(dense[cells, k].sum() / dense[cells].sum() * 1e6)
        assert rec["n_cells"] == cells.sum()
    assert list(one["condition"]) == [REF] * 3 + [TEST] * 3

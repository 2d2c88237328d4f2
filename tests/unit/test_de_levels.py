"""Tests of tmeflow.de_levels: subtype selection, the DE summary, the two-level run."""

import pandas as pd
import pytest
from anndata import AnnData

from tmeflow import de, de_levels, goi

from ._de_data import REF, TEST, make_adata, with_subtypes


@pytest.fixture(scope="module")
def adata() -> AnnData:
    return make_adata()


@pytest.fixture(scope="module")
def tables(adata: AnnData) -> dict[str, pd.DataFrame]:
    return de.run_de(adata, group_key="cell_type", reference=REF, test=TEST)


def test_subtype_groups_only_split_types_and_skips_unassigned(adata: AnnData) -> None:
    tested, skipped = de_levels.subtype_groups(with_subtypes(adata))
    assert sorted(tested) == ["iCAF", "myCAF"]  # tumor/TAM labels equal their type
    assert list(skipped) == ["TAM_unassigned"]
    assert "not tested" in skipped["TAM_unassigned"]


def test_subtype_de_finds_planted_effect_in_both_caf_subtypes(adata: AnnData) -> None:
    sub = with_subtypes(adata)
    tested, _ = de_levels.subtype_groups(sub)
    res = de.run_de(sub, group_key="cell_subtype", reference=REF, test=TEST, groups=tested)
    for label in ("myCAF", "iCAF"):
        row = res[label].set_index("gene").loc["Mmp11"]
        assert row["method"] == "pydeseq2"
        assert row["padj"] < 0.05
        assert row["ci_low"] < 2.0 < row["ci_high"] or abs(row["log2FoldChange"] - 2) < 0.6
    report, values = goi.genes_of_interest(
        sub, res, genes=["Mmp11"], group_key="cell_subtype", reference=REF, test=TEST,
        groups=tested,
    )  # fmt: skip
    assert sorted(report["cell_type"]) == ["iCAF", "myCAF"]
    assert set(values["cell_type"]) == {"iCAF", "myCAF"}
    assert len(values) == 2 * 6  # 2 subtypes x 6 animals


def test_de_summary_columns_and_exploratory_flag(tables: dict[str, pd.DataFrame]) -> None:
    summary = de_levels.de_summary(tables, level="cell_type")
    assert list(summary.columns) == de_levels.SUMMARY_COLUMNS
    assert (summary["level"] == "cell_type").all()
    assert not summary["exploratory"].any()
    assert summary.set_index("cell_type").loc["CAF", "n_samples_test"] == 3
    small = make_adata(samples_per_arm=1, cells_per_sample=200, seed=2)
    res = de.run_de(small, group_key="cell_type", reference=REF, test=TEST, groups=["CAF"])
    expl = de_levels.de_summary(res)
    assert expl["exploratory"].all()
    assert "exploratory" in expl.loc[0, "note"]
    empty = de_levels.de_summary({"X": de.empty_table("not tested: because")})
    assert empty.loc[0, "method"] == "not_tested" and not empty.loc[0, "exploratory"]
    assert pd.isna(empty.loc[0, "n_samples_reference"])

"""Tests of tmeflow.stats.run_de: planted effects found by PyDESeq2, the fallback, empty tables."""

import logging

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from tmeflow.stats import _de as de
from tmeflow.stats import _de_tables as de_levels
from tmeflow.stats import _genes_of_interest as goi

from .._de_data import HUMAN, MMP11_FOLD, MOUSE, REF, TEST, make_adata

__all__ = ["HUMAN", "MMP11_FOLD", "MOUSE", "REF", "TEST", "make_adata"]  # test_stats_plots imports


def test_planted_effect_found_with_ci(de_tables: dict[str, pd.DataFrame]) -> None:
    caf = de_tables["CAF"]
    assert list(caf.columns) == de.DE_COLUMNS
    assert (caf["method"] == "pydeseq2").all()
    row = caf.set_index("gene").loc["Mmp11"]
    assert row["log2FoldChange"] == pytest.approx(2.0, abs=0.5)
    assert row["padj"] < 0.05
    assert row["ci_low"] < 2.0 < row["ci_high"]
    assert row["ci_high"] - row["log2FoldChange"] == pytest.approx(1.96 * row["lfcSE"], rel=1e-3)
    assert caf["gene"].iat[0] == "Mmp11"  # sorted by p-value
    assert (row["n_samples_reference"], row["n_samples_test"]) == (3, 3)
    # null genes: nothing planted, (almost) nothing significant
    for name, table in de_tables.items():
        null = table[table["gene"] != "Mmp11"]
        assert (null["padj"] < 0.05).sum() <= 2, name


def test_genes_restricted_to_majority_species(de_tables: dict[str, pd.DataFrame]) -> None:
    assert set(de_tables) == {"tumor", "CAF", "TAM"}
    assert set(de_tables["tumor"]["gene"]) <= set(HUMAN)
    assert set(de_tables["CAF"]["gene"]) <= set(MOUSE)
    assert "AXL" in set(de_tables["tumor"]["gene"]) and "Axl" in set(de_tables["CAF"]["gene"])
    assert de_tables["CAF"].attrs["species"] == "mouse"


def test_sorted_and_deterministic(de_data: AnnData, de_tables: dict[str, pd.DataFrame]) -> None:
    caf = de_tables["CAF"]
    p = caf["pvalue"].to_numpy()
    assert np.all(np.diff(p[~np.isnan(p)]) >= 0)
    again = de.run_de(de_data, group_key="cell_type", reference=REF, test=TEST, groups=["CAF"])
    pd.testing.assert_frame_equal(again["CAF"], caf)


def test_one_replicate_falls_back_to_wilcoxon(caplog: pytest.LogCaptureFixture) -> None:
    small = make_adata(samples_per_arm=1, cells_per_sample=300, seed=1)
    with caplog.at_level(logging.WARNING, logger="tmeflow.stats._de"):
        res = de.run_de(small, group_key="cell_type", reference=REF, test=TEST)
    caf = res["CAF"]
    assert (caf["method"] == "wilcoxon_exploratory").all()
    assert caf["lfcSE"].isna().all() and caf["ci_low"].isna().all()
    assert caf["gene"].iat[0] == "Mmp11"
    assert caf.set_index("gene").loc["Mmp11", "log2FoldChange"] > 1.0
    assert (caf["n_samples_reference"] == 1).all()
    assert any("exploratory" in r.message and r.levelno == logging.WARNING for r in caplog.records)
    assert de_levels.de_summary(res)["method"].eq("wilcoxon_exploratory").all()


def test_too_few_cells_per_sample_falls_back(de_data: AnnData) -> None:
    res = de.run_de(
        de_data, group_key="cell_type", reference=REF, test=TEST, min_cells=10_000, groups=["TAM"]
    )
    assert (res["TAM"]["method"] == "wilcoxon_exploratory").all()
    assert (
        res["TAM"]["n_cells_reference"].iat[0]
        == ((de_data.obs["cell_type"] == "TAM") & (de_data.obs["condition"] == REF)).sum()
    )


def test_group_missing_from_one_arm_gives_empty_table_with_note(de_data: AnnData) -> None:
    obs = de_data.obs
    sub = de_data[~((obs["cell_type"] == "TAM") & (obs["condition"] == REF)).to_numpy()].copy()
    res = de.run_de(sub, group_key="cell_type", reference=REF, test=TEST, groups=["TAM"])
    assert res["TAM"].empty
    assert list(res["TAM"].columns) == de.DE_COLUMNS
    assert "0 cells in 'ctrl'" in res["TAM"].attrs["note"]
    summary = de_levels.de_summary(res)
    assert summary.loc[0, "method"] == "not_tested"
    assert "0 cells" in summary.loc[0, "note"]


@pytest.mark.parametrize("n_samples", [1, 3])
def test_missing_arm_gives_empty_tables_and_descriptive_report(
    de_data: AnnData, n_samples: int
) -> None:
    # a one-condition design (issue 4: one mouse lung, no alectinib sample)
    keep = de_data.obs["sample"].isin([f"{REF}_{i}" for i in range(n_samples)]).to_numpy()
    one = de_data[keep].copy()
    res = de.run_de(one, group_key="cell_type", reference=REF, test=TEST)
    assert set(res) == {"tumor", "CAF", "TAM"}
    for group, table in res.items():
        assert table.empty and list(table.columns) == de.DE_COLUMNS, group
        assert "'alectinib' has no samples: nothing to compare" in table.attrs["note"]
    assert res["CAF"].attrs["species"] == "mouse" and res["tumor"].attrs["species"] == "human"
    summary = de_levels.de_summary(res, level="cell_type")
    assert (summary["method"] == "not_tested").all()
    assert (summary["n_genes"] == 0).all() and summary["note"].str.contains("nothing").all()
    report, per_sample = goi.genes_of_interest(
        one, res, genes=["Gas6", "Mmp11"], reference=REF, test=TEST
    )
    caf = report[(report["gene"] == "Gas6") & (report["cell_type"] == "CAF")].iloc[0]
    cells = (one.obs["cell_type"] == "CAF").to_numpy()
    gas6 = one[cells, "Gas6"].layers["counts"].toarray().ravel()
    assert caf["frac_expressing_reference"] == pytest.approx((gas6 > 0).mean())
    assert caf["mean_norm_reference"] > 0
    assert np.isnan(caf["frac_expressing_test"]) and np.isnan(caf["log2FoldChange"])
    assert caf["method"] == "not_tested" and "nothing to compare" in caf["note"]
    assert set(per_sample["condition"]) == {REF}
    assert per_sample["sample"].nunique() == n_samples


def test_covariates(de_data: AnnData) -> None:
    kw = {"group_key": "cell_type", "reference": REF, "test": TEST, "groups": ["CAF"]}
    res = de.run_de(de_data, covariates=["batch"], **kw)
    row = res["CAF"].set_index("gene").loc["Mmp11"]
    assert row["log2FoldChange"] == pytest.approx(2.0, abs=0.4)
    confounded = de_data.copy()
    confounded.obs["arm_copy"] = confounded.obs["condition"].astype(str)
    res = de.run_de(confounded, covariates=["arm_copy"], **kw)
    assert res["CAF"].empty and "not full rank" in res["CAF"].attrs["note"]


def test_bad_inputs_raise_helpful_errors(de_data: AnnData) -> None:
    with pytest.raises(ValueError, match="neither contrast level"):
        de.run_de(de_data, group_key="cell_type", reference="placebo", test="other")
    with pytest.raises(ValueError, match="sample-level"):
        de.run_de(
            de_data, group_key="cell_type", reference=REF, test=TEST, covariates=["total_counts"]
        )


def test_exploratory_note_names_the_animals_short_of_cells(de_data: AnnData) -> None:
    """Issue 13: a small design says which animals fell short of min_cells, with their cells."""
    obs = de_data.obs
    tam = (obs["cell_type"] == "TAM").to_numpy()
    # keep 4 TAMs of one control animal and none of another: 1 control animal left with enough
    ref_samples = sorted(obs.loc[obs["condition"] == REF, "sample"].astype(str).unique())
    drop = np.zeros(de_data.n_obs, dtype=bool)
    for s, keep in ((ref_samples[0], 4), (ref_samples[1], 0)):
        idx = np.flatnonzero(tam & (obs["sample"].astype(str) == s).to_numpy())
        drop[idx[keep:]] = True
    small = de_data[~drop].copy()
    res = de.run_de(small, group_key="cell_type", reference=REF, test=TEST, min_cells=10)
    table = res["TAM"]
    assert (table["method"] == "wilcoxon_exploratory").all()
    note = table.attrs["note"]
    assert f"animals short of 10 cells (their cells): {REF!r}: " in note
    assert f"{ref_samples[0]} (4)" in note and f"{ref_samples[1]} (0)" in note
    assert ref_samples[2] not in note  # it has enough TAMs
    summary = de_levels.de_summary(res).set_index("cell_type")
    assert f"{ref_samples[0]} (4)" in summary.loc["TAM", "note"]
    gene = str(table["gene"].iat[0])
    report, _ = goi.genes_of_interest(small, res, genes=[gene], reference=REF, test=TEST)
    row = report[report["cell_type"].astype(str) == "TAM"]
    assert f"{ref_samples[0]} (4)" in row["note"].iat[0]


def test_pydeseq2_failure_is_a_not_tested_row_with_the_reason(de_data, monkeypatch) -> None:
    """Issue 13: a fit that fails inside PyDESeq2 is a stated reason, not a traceback."""
    import pydeseq2.dds

    def broken(self, *args, **kwargs):
        raise ValueError("dispersion trend curve fitting did not converge")

    monkeypatch.setattr(pydeseq2.dds.DeseqDataSet, "deseq2", broken)
    res = de.run_de(de_data, group_key="cell_type", reference=REF, test=TEST, groups=["CAF"])
    table = res["CAF"]
    assert table.empty and table.attrs["method"] == "not_tested"
    assert "PyDESeq2 failed" in table.attrs["note"]
    assert "did not converge" in table.attrs["note"]


def test_each_group_is_logged_with_its_position_and_animals(
    de_data: AnnData, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tmeflow.stats._de"):
        de.run_de(de_data, group_key="cell_type", reference=REF, test=TEST)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("DE ")]
    lines = [m for m in lines if m[3].isdigit()]
    assert [m.split(":")[0] for m in lines] == ["DE 1/3", "DE 2/3", "DE 3/3"]
    assert {m.split(":")[1].split(",")[0].strip() for m in lines} == {
        "cell_type tumor",
        "cell_type CAF",
        "cell_type TAM",
    }
    assert all(f", 3 vs 3 animals ({TEST} vs {REF}), " in m and m.endswith(" cells") for m in lines)

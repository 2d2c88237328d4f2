"""Tests of tmeflow.stats._de_tables: subtype selection, the DE summary, the two-level run."""

import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from tmeflow.stats import _de as de
from tmeflow.stats import _de_tables as de_levels
from tmeflow.stats import _genes_of_interest as goi

from .._de_data import REF, TEST, make_adata, with_subtypes

SETTINGS = de.DESettings(condition_key="condition", reference=REF, test=TEST)


def test_subtype_groups_only_split_types_and_skips_unassigned(de_data: AnnData) -> None:
    tested, skipped = de_levels.subtype_groups(with_subtypes(de_data))
    assert sorted(tested) == ["iCAF", "myCAF"]  # tumor/TAM labels equal their type
    assert list(skipped) == ["TAM_unassigned"]
    assert "not tested" in skipped["TAM_unassigned"]


def test_subtype_de_finds_planted_effect_in_both_caf_subtypes(de_data: AnnData) -> None:
    sub = with_subtypes(de_data)
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


def test_de_summary_columns_and_exploratory_flag(de_tables: dict[str, pd.DataFrame]) -> None:
    summary = de_levels.de_summary(de_tables, level="cell_type")
    assert list(summary.columns) == de_levels.DE_SUMMARY_COLUMNS
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


def _levels_data() -> AnnData:
    """2 + 2 animals; CAFs split in two; 'NK' cells in one animal per arm (-> exploratory)."""
    out = with_subtypes(make_adata(samples_per_arm=2, cells_per_sample=120, seed=5))
    ct = out.obs["cell_type"].astype(str).to_numpy().copy()
    sub = out.obs["cell_subtype"].astype(str).to_numpy().copy()
    sample = out.obs["sample"].astype(str).to_numpy()
    for animal in (f"{REF}_0", f"{TEST}_0"):
        cells = np.flatnonzero((ct == "tumor") & (sample == animal))[:30]
        ct[cells], sub[cells] = "NK", "NK"
    out.obs["cell_type"] = pd.Categorical(ct, categories=["tumor", "CAF", "TAM", "NK"])
    out.obs["cell_subtype"] = pd.Categorical(sub)
    return out


def test_run_levels_tables_summary_and_goi(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    data = _levels_data()
    with caplog.at_level(logging.INFO, logger="tmeflow"):
        res = de_levels.run_levels(
            data, SETTINGS, genes=["Mmp11", "AXL", "Nope"], summary_path="summary.tsv"
        )
    assert list(res.by_type) == ["tumor", "CAF", "TAM", "NK"]  # categorical order
    assert list(res.by_subtype) == ["iCAF", "myCAF"]  # sorted labels; TAM_unassigned skipped
    direct = de.run_de(data, group_key="cell_type", reference=REF, test=TEST, groups=["CAF"])
    pd.testing.assert_frame_equal(res.by_type["CAF"], direct["CAF"])
    assert (res.by_type["NK"]["method"] == "wilcoxon_exploratory").all()

    s = res.summary
    assert list(s.columns) == de_levels.DE_SUMMARY_COLUMNS
    assert list(zip(s["level"], s["cell_type"], s["method"], strict=True)) == [
        ("cell_type", "tumor", "pydeseq2"),
        ("cell_type", "CAF", "pydeseq2"),
        ("cell_type", "TAM", "pydeseq2"),
        ("cell_type", "NK", "wilcoxon_exploratory"),
        ("cell_subtype", "iCAF", "pydeseq2"),
        ("cell_subtype", "myCAF", "pydeseq2"),
        ("cell_subtype", "TAM_unassigned", "not_tested"),
    ]
    assert list(s["exploratory"]) == [False, False, False, True, False, False, False]
    assert "matching no subtype" in s["note"].iat[-1]
    n_sig = {g: int((t["padj"] < 0.05).sum()) for g, t in {**res.by_type, **res.by_subtype}.items()}
    assert dict(zip(s["cell_type"].iloc[:6], s["n_significant"].iloc[:6], strict=True)) == n_sig

    assert list(res.goi.columns) == ["level", *goi.GOI_COLUMNS]
    assert list(res.goi["level"]) == ["cell_type"] * 12 + ["cell_subtype"] * 6  # 3 genes
    assert list(res.goi["cell_type"].iloc[12:]) == ["iCAF", "myCAF"] * 3
    mycaf = res.goi.set_index(["level", "gene", "cell_type"]).loc[
        ("cell_subtype", "Mmp11", "myCAF")
    ]
    expected = res.by_subtype["myCAF"].set_index("gene").loc["Mmp11"]
    assert mycaf["method"] == "pydeseq2"
    assert mycaf["log2FoldChange"] == expected["log2FoldChange"] > 1  # planted x4
    assert list(res.values.columns) == ["level", *goi.GOI_SAMPLE_COLUMNS]
    # present genes (2) x groups x 4 animals: 4 types + 2 subtypes, NK only in 2 animals
    assert len(res.values) == 2 * (3 * 4 + 2 + 2 * 4)
    assert set(res.values["gene"]) == {"Mmp11", "AXL"}

    messages = [r.getMessage() for r in caplog.records]
    caf = res.by_type["CAF"]
    assert f"cell_type CAF: {len(caf)} genes tested, {n_sig['CAF']} with padj < 0.05" in messages
    assert any(m.startswith("cell_subtype TAM_unassigned: not tested") for m in messages)
    assert any(m.startswith("1 group(s) tested with the cell-level Wilcoxon") for m in messages)
    assert any("(see summary.tsv)" in m for m in messages)

    res.write(
        tables_dir=tmp_path / "types", subtypes_dir=tmp_path / "subtypes",
        summary=tmp_path / "s.tsv", goi=tmp_path / "g.tsv", values=tmp_path / "v.tsv",
    )  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "types").iterdir()) == [
        "CAF.tsv", "NK.tsv", "TAM.tsv", "tumor.tsv"
    ]  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "subtypes").iterdir()) == ["iCAF.tsv", "myCAF.tsv"]
    written = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert list(written["cell_type"]) == list(s["cell_type"])


def test_run_levels_without_subtypes(tmp_path) -> None:
    data = make_adata(samples_per_arm=2, cells_per_sample=80, seed=6)
    res = de_levels.run_levels(data, SETTINGS, genes=["Gas6"], subtypes=False)
    assert res.by_subtype == {}
    assert set(res.summary["level"]) == {"cell_type"}
    assert set(res.goi["level"]) == {"cell_type"} and len(res.goi) == 3
    res.write(
        tables_dir=tmp_path / "t", subtypes_dir=tmp_path / "s",
        summary=tmp_path / "x.tsv", goi=tmp_path / "g.tsv", values=tmp_path / "v.tsv",
    )  # fmt: skip
    assert (tmp_path / "s").is_dir() and not any((tmp_path / "s").iterdir())


def test_run_levels_tests_and_reports_the_layer_it_is_given() -> None:
    data = make_adata(samples_per_arm=2, cells_per_sample=80, seed=6)
    corrected = data.layers["counts"].copy().tolil()
    j = list(data.var_names).index("Gas6")
    corrected[:, j] = 0  # e.g. every Gas6 UMI ambient
    data.layers["counts_ambient_corrected"] = corrected.tocsr()
    kw = dict(genes=["Gas6"], subtypes=False)
    raw = de_levels.run_levels(data, SETTINGS, **kw)
    corrected_settings = replace(SETTINGS, layer="counts_ambient_corrected")
    corr = de_levels.run_levels(data, corrected_settings, **kw)
    assert raw.values["counts"].sum() > 0 and corr.values["counts"].sum() == 0
    assert "Gas6" in set(raw.by_type["CAF"]["gene"])
    assert "Gas6" not in set(corr.by_type["CAF"]["gene"])  # no counts left: not tested
    with pytest.raises(KeyError, match="nope"):
        de_levels.run_levels(data, replace(SETTINGS, layer="nope"), **kw)

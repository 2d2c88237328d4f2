"""Tests of tmeflow.de: pseudobulk sums, planted effects found by PyDESeq2, the fallback."""

import logging

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

from tmeflow import de

REF, TEST = "ctrl", "alectinib"
HUMAN = ["AXL", "GAS6", "EGFR", *[f"HG{i:03d}" for i in range(97)]]
MOUSE = ["Axl", "Gas6", "Mmp11", *[f"Mg{i:03d}" for i in range(97)]]
MMP11_FOLD = 4.0  # planted: Mmp11 x4 in CAFs under alectinib -> log2FC = 2


def make_adata(*, samples_per_arm: int = 3, cells_per_sample: int = 150, seed: int = 0) -> AnnData:
    """Xenograft-like counts: human tumour cells, mouse CAFs and TAMs, animal-level noise.

    Mmp11 is 4x higher in CAFs of treated animals; every other gene is null. AXL (human,
    tumour) and Axl (mouse, stroma) have different expression so a case-insensitive match
    would be caught.
    """
    rng = np.random.default_rng(seed)
    genes = HUMAN + MOUSE
    is_human = np.array([g in HUMAN for g in genes])
    base = rng.gamma(2.0, 0.3, size=len(genes))
    types = np.array(["tumor", "CAF", "TAM"])
    blocks, obs = [], []
    for arm in (REF, TEST):
        for s in range(samples_per_arm):
            sample = f"{arm}_{s}"
            animal = rng.gamma(25.0, 1 / 25.0, size=len(genes))  # CV 0.2 between animals
            p = [0.6, 0.25, 0.15] if arm == REF else [0.45, 0.25, 0.30]
            cell_types = rng.choice(types, size=cells_per_sample, p=p)
            for t in types:
                n = int((cell_types == t).sum())
                mu = np.where(is_human == (t == "tumor"), base * animal, 0.0)
                if t == "tumor":
                    mu[genes.index("AXL")] = 2.0
                if t == "CAF":
                    mu[genes.index("Gas6")] = 3.0
                    mu[genes.index("Axl")] = 0.2
                    mu[genes.index("Mmp11")] = 0.8 * (MMP11_FOLD if arm == TEST else 1.0)
                x = rng.negative_binomial(5, 5 / (5 + mu[None, :]), size=(n, len(genes)))
                blocks.append(x)
                obs += [
                    {
                        "sample": sample,
                        "condition": arm,
                        "cell_type": t,
                        "cell_subtype": f"{t}_1",
                        "species": "human" if t == "tumor" else "mouse",
                        "batch": f"b{s % 2}",
                        "total_counts": 0.0,  # cell-level, not sample-level
                    }
                ] * n
    counts = sp.csr_matrix(np.vstack(blocks).astype(np.int32))
    obs_df = pd.DataFrame(obs, index=[f"cell{i}" for i in range(len(obs))])
    obs_df["total_counts"] = np.asarray(counts.sum(axis=1)).ravel().astype(float)
    for col in ("sample", "condition", "cell_type", "cell_subtype", "species"):
        obs_df[col] = obs_df[col].astype("category")
    var = pd.DataFrame({"species": np.where(is_human, "human", "mouse")}, index=genes)
    adata = AnnData(X=counts.astype(np.float32), obs=obs_df, var=var)
    adata.layers["counts"] = counts
    return adata


@pytest.fixture(scope="module")
def adata() -> AnnData:
    return make_adata()


@pytest.fixture(scope="module")
def tables(adata: AnnData) -> dict[str, pd.DataFrame]:
    return de.run_de(adata, group_key="cell_type", reference=REF, test=TEST)


# ------------------------------------------------------------------------------ pseudobulk
def test_pseudobulk_sums_equal_manual_sums(adata: AnnData) -> None:
    counts, meta = de.pseudobulk(adata, group_key="cell_type", min_cells=40)
    dense = adata.layers["counts"].toarray()
    obs = adata.obs
    assert list(counts.index) == list(meta.index)
    assert len(counts) == 6 * 3
    for row, rec in meta.iterrows():
        mask = ((obs["sample"] == rec["sample"]) & (obs["cell_type"] == rec["group"])).to_numpy()
        assert row == f"{rec['sample']}|{rec['group']}"
        np.testing.assert_array_equal(counts.loc[row].to_numpy(), dense[mask].sum(axis=0))
        assert rec["n_cells"] == mask.sum()
        assert rec["kept"] == (mask.sum() >= 40)
        assert rec["condition"] == rec["sample"].split("_")[0]
    assert counts.to_numpy().dtype == np.int64
    assert counts.to_numpy().sum() == dense.sum()
    # sample-level columns are carried over; cell-level ones are not
    assert {"condition", "batch"} <= set(meta.columns)
    assert "total_counts" not in meta.columns and "cell_subtype" not in meta.columns
    assert list(meta.columns[:2]) == ["sample", "group"]


def test_pseudobulk_rejects_normalised_values(adata: AnnData) -> None:
    bad = adata.copy()
    bad.layers["counts"] = bad.layers["counts"].astype(np.float32) * 0.5
    with pytest.raises(ValueError, match="non-integer"):
        de.pseudobulk(bad)


# ------------------------------------------------------------------------------ run_de
def test_planted_effect_found_with_ci(tables: dict[str, pd.DataFrame]) -> None:
    caf = tables["CAF"]
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
    for name, table in tables.items():
        null = table[table["gene"] != "Mmp11"]
        assert (null["padj"] < 0.05).sum() <= 2, name


def test_genes_restricted_to_majority_species(tables: dict[str, pd.DataFrame]) -> None:
    assert set(tables) == {"tumor", "CAF", "TAM"}
    assert set(tables["tumor"]["gene"]) <= set(HUMAN)
    assert set(tables["CAF"]["gene"]) <= set(MOUSE)
    assert "AXL" in set(tables["tumor"]["gene"]) and "Axl" in set(tables["CAF"]["gene"])
    assert tables["CAF"].attrs["species"] == "mouse"


def test_sorted_and_deterministic(adata: AnnData, tables: dict[str, pd.DataFrame]) -> None:
    caf = tables["CAF"]
    p = caf["pvalue"].to_numpy()
    assert np.all(np.diff(p[~np.isnan(p)]) >= 0)
    again = de.run_de(adata, group_key="cell_type", reference=REF, test=TEST, groups=["CAF"])
    pd.testing.assert_frame_equal(again["CAF"], caf)


def test_one_replicate_falls_back_to_wilcoxon(caplog: pytest.LogCaptureFixture) -> None:
    small = make_adata(samples_per_arm=1, cells_per_sample=300, seed=1)
    with caplog.at_level(logging.WARNING, logger="tmeflow.de"):
        res = de.run_de(small, group_key="cell_type", reference=REF, test=TEST)
    caf = res["CAF"]
    assert (caf["method"] == "wilcoxon_exploratory").all()
    assert caf["lfcSE"].isna().all() and caf["ci_low"].isna().all()
    assert caf["gene"].iat[0] == "Mmp11"
    assert caf.set_index("gene").loc["Mmp11", "log2FoldChange"] > 1.0
    assert (caf["n_samples_reference"] == 1).all()
    assert any("exploratory" in r.message and r.levelno == logging.WARNING for r in caplog.records)
    assert de.de_summary(res)["method"].eq("wilcoxon_exploratory").all()


def test_too_few_cells_per_sample_falls_back(adata: AnnData) -> None:
    res = de.run_de(
        adata, group_key="cell_type", reference=REF, test=TEST, min_cells=10_000, groups=["TAM"]
    )
    assert (res["TAM"]["method"] == "wilcoxon_exploratory").all()
    assert (
        res["TAM"]["n_cells_reference"].iat[0]
        == ((adata.obs["cell_type"] == "TAM") & (adata.obs["condition"] == REF)).sum()
    )


def test_group_missing_from_one_arm_gives_empty_table_with_note(adata: AnnData) -> None:
    obs = adata.obs
    sub = adata[~((obs["cell_type"] == "TAM") & (obs["condition"] == REF)).to_numpy()].copy()
    res = de.run_de(sub, group_key="cell_type", reference=REF, test=TEST, groups=["TAM"])
    assert res["TAM"].empty
    assert list(res["TAM"].columns) == de.DE_COLUMNS
    assert "0 cells in 'ctrl'" in res["TAM"].attrs["note"]
    summary = de.de_summary(res)
    assert summary.loc[0, "method"] == "not_tested"
    assert "0 cells" in summary.loc[0, "note"]


@pytest.mark.parametrize("n_samples", [1, 3])
def test_missing_arm_gives_empty_tables_and_descriptive_report(
    adata: AnnData, n_samples: int
) -> None:
    # a one-condition design (issue 4: one mouse lung, no alectinib sample)
    keep = adata.obs["sample"].isin([f"{REF}_{i}" for i in range(n_samples)]).to_numpy()
    one = adata[keep].copy()
    res = de.run_de(one, group_key="cell_type", reference=REF, test=TEST)
    assert set(res) == {"tumor", "CAF", "TAM"}
    for group, table in res.items():
        assert table.empty and list(table.columns) == de.DE_COLUMNS, group
        assert "'alectinib' has no samples: nothing to compare" in table.attrs["note"]
    assert res["CAF"].attrs["species"] == "mouse" and res["tumor"].attrs["species"] == "human"
    summary = de.de_summary(res, level="cell_type")
    assert (summary["method"] == "not_tested").all()
    assert (summary["n_genes"] == 0).all() and summary["note"].str.contains("nothing").all()
    report, per_sample = de.genes_of_interest(
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


def test_covariates(adata: AnnData) -> None:
    res = de.run_de(
        adata, group_key="cell_type", reference=REF, test=TEST, covariates=["batch"], groups=["CAF"]
    )
    row = res["CAF"].set_index("gene").loc["Mmp11"]
    assert row["log2FoldChange"] == pytest.approx(2.0, abs=0.4)
    confounded = adata.copy()
    confounded.obs["arm_copy"] = confounded.obs["condition"].astype(str)
    res = de.run_de(
        confounded,
        group_key="cell_type",
        reference=REF,
        test=TEST,
        covariates=["arm_copy"],
        groups=["CAF"],
    )
    assert res["CAF"].empty and "not full rank" in res["CAF"].attrs["note"]


def test_bad_inputs_raise_helpful_errors(adata: AnnData) -> None:
    with pytest.raises(ValueError, match="neither contrast level"):
        de.run_de(adata, group_key="cell_type", reference="placebo", test="other")
    with pytest.raises(ValueError, match="sample-level"):
        de.run_de(
            adata, group_key="cell_type", reference=REF, test=TEST, covariates=["total_counts"]
        )


# ------------------------------------------------------------------------------ report
def test_genes_of_interest_report(adata: AnnData, tables: dict[str, pd.DataFrame]) -> None:
    genes = ["Mmp11", "AXL", "Axl", "NotAGene", "axl"]
    report, per_sample = de.genes_of_interest(
        adata,
        tables,
        genes=genes,
        group_key="cell_type",
        condition_key="condition",
        reference=REF,
        test=TEST,
    )
    assert list(report.columns) == de.GOI_COLUMNS
    assert len(report) == len(genes) * 3
    r = report.set_index(["gene", "cell_type"])
    # absent genes (and wrong case) are reported, not errors
    for absent in ("NotAGene", "axl"):
        assert not r.loc[absent, "present"].any()
        assert (r.loc[absent, "note"] == "gene absent from the data").all()
    # DE values copied from the table
    mmp11 = tables["CAF"].set_index("gene").loc["Mmp11"]
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
    dense = adata.layers["counts"].toarray()
    j = list(adata.var_names).index("Mmp11")
    mask = ((adata.obs["cell_type"] == "CAF") & (adata.obs["condition"] == TEST)).to_numpy()
    manual_frac = (dense[mask, j] > 0).mean()
    manual_norm = np.log1p(dense[mask, j] / dense[mask].sum(axis=1) * 1e4).mean()
    assert r.loc[("Mmp11", "CAF"), "frac_expressing_test"] == pytest.approx(manual_frac)
    assert r.loc[("Mmp11", "CAF"), "mean_norm_test"] == pytest.approx(manual_norm)
    assert (
        r.loc[("Mmp11", "CAF"), "mean_norm_test"] > r.loc[("Mmp11", "CAF"), "mean_norm_reference"]
    )

    # per-sample table: pseudobulk of the present genes only
    assert list(per_sample.columns) == de.GOI_SAMPLE_COLUMNS
    assert set(per_sample["gene"]) == {"Mmp11", "AXL", "Axl"}
    assert len(per_sample) == 3 * 3 * 6
    k = list(adata.var_names).index("AXL")
    one = per_sample[(per_sample["gene"] == "AXL") & (per_sample["cell_type"] == "tumor")]
    for _, rec in one.iterrows():
        cells = (
            (adata.obs["sample"] == rec["sample"]) & (adata.obs["cell_type"] == "tumor")
        ).to_numpy()
        assert rec["counts"] == dense[cells, k].sum()
        assert rec["cpm"] == pytest.approx(dense[cells, k].sum() / dense[cells].sum() * 1e6)
        assert rec["n_cells"] == cells.sum()
    assert list(one["condition"]) == [REF] * 3 + [TEST] * 3


def _with_subtypes(adata: AnnData) -> AnnData:
    """CAFs split into myCAF / iCAF (alternating cells), a few TAMs unassigned."""
    out = adata.copy()
    sub = out.obs["cell_type"].astype(str).to_numpy().copy()
    caf = np.flatnonzero(sub == "CAF")
    sub[caf[::2]], sub[caf[1::2]] = "myCAF", "iCAF"
    tam = np.flatnonzero(sub == "TAM")
    sub[tam[:5]] = "TAM_unassigned"
    out.obs["cell_subtype"] = pd.Categorical(sub)
    return out


def test_subtype_groups_only_split_types_and_skips_unassigned(adata: AnnData) -> None:
    tested, skipped = de.subtype_groups(_with_subtypes(adata))
    assert sorted(tested) == ["iCAF", "myCAF"]  # tumor/TAM labels equal their type
    assert list(skipped) == ["TAM_unassigned"]
    assert "not tested" in skipped["TAM_unassigned"]


def test_subtype_de_finds_planted_effect_in_both_caf_subtypes(adata: AnnData) -> None:
    sub = _with_subtypes(adata)
    tested, _ = de.subtype_groups(sub)
    res = de.run_de(sub, group_key="cell_subtype", reference=REF, test=TEST, groups=tested)
    for label in ("myCAF", "iCAF"):
        row = res[label].set_index("gene").loc["Mmp11"]
        assert row["method"] == "pydeseq2"
        assert row["padj"] < 0.05
        assert row["ci_low"] < 2.0 < row["ci_high"] or abs(row["log2FoldChange"] - 2) < 0.6
    report, values = de.genes_of_interest(
        sub, res, genes=["Mmp11"], group_key="cell_subtype", reference=REF, test=TEST,
        groups=tested,
    )  # fmt: skip
    assert sorted(report["cell_type"]) == ["iCAF", "myCAF"]
    assert set(values["cell_type"]) == {"iCAF", "myCAF"}
    assert len(values) == 2 * 6  # 2 subtypes x 6 animals


def test_de_summary_columns_and_exploratory_flag(tables: dict[str, pd.DataFrame]) -> None:
    summary = de.de_summary(tables, level="cell_type")
    assert list(summary.columns) == de.SUMMARY_COLUMNS
    assert (summary["level"] == "cell_type").all()
    assert not summary["exploratory"].any()
    assert summary.set_index("cell_type").loc["CAF", "n_samples_test"] == 3
    small = make_adata(samples_per_arm=1, cells_per_sample=200, seed=2)
    res = de.run_de(small, group_key="cell_type", reference=REF, test=TEST, groups=["CAF"])
    expl = de.de_summary(res)
    assert expl["exploratory"].all()
    assert "exploratory" in expl.loc[0, "note"]
    empty = de.de_summary({"X": de.empty_table("not tested: because")})
    assert empty.loc[0, "method"] == "not_tested" and not empty.loc[0, "exploratory"]
    assert pd.isna(empty.loc[0, "n_samples_reference"])

"""Tests of tmeflow.stats._expression_sources: which cell types contribute a gene's UMIs."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

from tmeflow.stats import _expression_sources as sources

REF, TEST = "ctrl", "alectinib"
GENES = ["Gas6", "GAS6", "Axl", "AXL", "Actb", "ACTB"]
SPECIES = ["mouse", "human", "mouse", "human", "mouse", "human"]


def make_adata() -> AnnData:
    """Per sample 10 tumour, 6 CAF, 4 TAM cells; mouse Gas6 per cell: half the CAFs 8 (the
    others 0), TAMs 1 (3 in alectinib_2 only), tumour 0; human GAS6 only in tumour cells."""
    rows, obs = [], []
    for arm in (REF, TEST):
        for s in range(3):
            sample = f"{arm}_{s}"
            for t, n in (("tumor", 10), ("CAF", 6), ("TAM", 4)):
                for i in range(n):
                    x = np.zeros(len(GENES), dtype=np.int32)
                    if t == "CAF":
                        x[0] = 8 if i % 2 == 0 else 0  # half the CAFs express, 24 UMIs
                    if t == "TAM":
                        x[0] = 3 if (arm == TEST and s == 2) else 1  # 4 or 12 UMIs
                    if t == "tumor":
                        x[1] = 5  # human GAS6, a different gene
                        x[5] = 20
                    else:
                        x[4] = 20
                    rows.append(x)
                    obs.append({"sample": sample, "condition": arm, "cell_type": t})
    counts = sp.csr_matrix(np.vstack(rows))
    obs_df = pd.DataFrame(obs, index=[f"c{i}" for i in range(len(obs))])
    adata = AnnData(
        X=counts.astype(np.float32),
        obs=obs_df,
        var=pd.DataFrame({"species": SPECIES}, index=GENES),
    )
    adata.layers["counts"] = counts
    return adata


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return sources.expression_sources(make_adata(), "Gas6")


def test_shares_sum_to_one_and_rank_planted_source_first(table: pd.DataFrame) -> None:
    assert list(table.columns) == sources.SOURCE_COLUMNS
    assert len(table) == 2 * 3
    np.testing.assert_allclose(table.groupby("condition")["share"].sum(), 1.0)
    top = table[table["rank"] == 1].set_index("condition")["cell_type"]
    assert top.to_dict() == {REF: "CAF", TEST: "CAF"}
    t = table.set_index(["condition", "cell_type"])
    # ctrl: CAF 3 x 24 = 72, TAM 3 x 4 = 12 -> 72 / 84
    assert t.loc[(REF, "CAF"), "umis"] == 72
    assert t.loc[(REF, "CAF"), "share"] == pytest.approx(72 / 84)
    # alectinib: TAM 4 + 4 + 12 = 20 -> 20 / 92
    assert t.loc[(TEST, "TAM"), "share"] == pytest.approx(20 / 92)
    assert t.loc[(TEST, "tumor"), "share"] == 0.0  # human GAS6 is another gene
    assert t.loc[(TEST, "tumor"), "rank"] == 3


def test_share_sd_and_descriptives(table: pd.DataFrame) -> None:
    t = table.set_index(["condition", "cell_type"])
    assert t.loc[(REF, "CAF"), "share_sd"] == pytest.approx(0.0)
    per_sample_tam = [4 / 28, 4 / 28, 12 / 36]
    assert t.loc[(TEST, "TAM"), "share_sd"] == pytest.approx(np.std(per_sample_tam, ddof=1))
    assert t.loc[(TEST, "TAM"), "n_samples"] == 3
    assert t.loc[(REF, "CAF"), "n_cells"] == 18
    assert t.loc[(REF, "CAF"), "frac_expressing"] == pytest.approx(0.5)
    # half the CAFs: log1p(8 / 28 * 1e4), the other half 0
    assert t.loc[(REF, "CAF"), "mean_norm"] == pytest.approx(np.log1p(8 / 28 * 1e4) / 2)
    assert t.loc[(REF, "tumor"), "mean_norm"] == 0.0


def test_absent_gene_raises_with_case_hint() -> None:
    adata = make_adata()
    with pytest.raises(ValueError, match="'Mmp11' is not in the data"):
        sources.expression_sources(adata, "Mmp11")
    with pytest.raises(ValueError, match=r"'Gas6' \(mouse\), 'GAS6' \(human\)"):
        sources.expression_sources(adata, "gas6")


def test_case_sensitive_gene_choice() -> None:
    human = sources.expression_sources(make_adata(), "GAS6")
    top = human[human["rank"] == 1]
    assert set(top["cell_type"]) == {"tumor"}
    assert top["share"].tolist() == [1.0, 1.0]


def test_primary_sources(table: pd.DataFrame) -> None:
    prim = sources.primary_sources(table, min_share=0.2)
    got = prim.groupby("condition")["cell_type"].apply(list).to_dict()
    # TAM share 12/84 = 0.14 in ctrl, 20/92 = 0.22 under alectinib
    assert got == {REF: ["CAF"], TEST: ["CAF", "TAM"]}
    assert (prim["primary_reason"] == "share >= 0.2").all()
    strict = sources.primary_sources(table, min_share=0.95)
    assert strict["cell_type"].tolist() == ["CAF", "CAF"]
    assert (strict["primary_reason"] == "top group").all()
    with pytest.raises(ValueError, match="min_share"):
        sources.primary_sources(table, min_share=0)


def test_sample_shares_match_pooled_sd(table: pd.DataFrame) -> None:
    per = sources.sample_shares(make_adata(), "Gas6")
    assert list(per.columns) == sources.SAMPLE_SHARE_COLUMNS
    assert len(per) == 6 * 3  # samples x cell types
    np.testing.assert_allclose(per.groupby("sample")["share"].sum(), 1.0)
    # alectinib_2: CAF 24 of 24 + 12 UMIs
    row = per[(per["sample"] == f"{TEST}_2") & (per["cell_type"] == "CAF")].iloc[0]
    assert row["umis"] == 24 and row["share"] == pytest.approx(24 / 36)
    sd = per.groupby(["condition", "cell_type"])["share"].std(ddof=1)
    t = table.set_index(["condition", "cell_type"])
    np.testing.assert_allclose(t.loc[(TEST, "CAF"), "share_sd"], sd.loc[(TEST, "CAF")])


def test_primary_summary_ranks_levels_with_per_sample_range(table: pd.DataFrame) -> None:
    adata = make_adata()
    per = sources.sample_shares(adata, "Gas6")
    summary = sources.primary_summary({"cell_type": table}, {"cell_type": per}, min_share=0.2)
    assert list(summary.columns) == sources.PRIMARY_COLUMNS
    caf = summary[(summary["condition"] == TEST) & (summary["cell_type"] == "CAF")].iloc[0]
    assert caf["rank"] == 1 and caf["level"] == "cell_type"
    assert caf["share_min"] == pytest.approx(24 / 36)
    assert caf["share_max"] == pytest.approx(24 / 28)
    assert caf["share_min"] <= caf["share"] <= caf["share_max"]
    pooled = summary[summary["condition"] == "all"].set_index("cell_type")
    assert pooled.loc["CAF", "share"] == pytest.approx(144 / 176)  # 72 + 72 of 84 + 92 UMIs
    assert pooled.loc["CAF", "rank"] == 1 and pooled.loc["CAF", "n_samples"] == 6
    assert "TAM" not in pooled.index  # 32 / 176 < min_share 0.2
    assert pooled.loc["CAF", "share_sd"] > 0
    # a note-only table (absent gene) contributes nothing
    none = sources.primary_summary({"cell_type": pd.DataFrame([{"gene": "X", "note": "absent"}])})
    assert none.empty and list(none.columns) == sources.PRIMARY_COLUMNS


def test_gene_sources_levels_samples_and_absent_gene(tmp_path) -> None:
    adata = make_adata()
    adata.obs["cell_subtype"] = adata.obs["cell_type"]
    levels, samples = sources.gene_sources(adata, "Gas6")
    assert set(levels) == {"cell_type", "cell_subtype"}
    pd.testing.assert_frame_equal(levels["cell_type"], sources.expression_sources(adata, "Gas6"))
    assert list(samples.columns) == ["level", *sources.SAMPLE_SHARE_COLUMNS]
    assert list(samples["level"].unique()) == ["cell_type", "cell_subtype"]
    absent, none = sources.gene_sources(adata, "Nope")
    assert list(absent["cell_type"].columns) == ["gene", "note"]
    assert "not in the data" in absent["cell_subtype"]["note"].iat[0]
    assert none.empty and list(none.columns) == ["level", *sources.SAMPLE_SHARE_COLUMNS]
    # the files of rule sources_gene give the same summary as the tables
    paths = {}
    for gene, (lv, sm) in {"Gas6": (levels, samples), "Nope": (absent, none)}.items():
        for name, t in (*lv.items(), ("samples", sm)):
            if sm.empty and name == "samples":
                continue  # header only
            paths.setdefault(name, []).append(tmp_path / f"{gene}.{name}.tsv")
            t.to_csv(paths[name][-1], sep="\t", index=False)
    assert len(sources.read_tables(paths["cell_type"])) == len(levels["cell_type"])
    assert sources.read_tables(paths["cell_type"][1:]).empty
    from_files = sources.primary_from_files(
        paths["cell_type"], paths["cell_subtype"], paths["samples"], min_share=0.2
    )
    direct = sources.primary_summary(
        {k: sources.read_tables(paths[k]) for k in ("cell_type", "cell_subtype")},
        dict(list(sources.read_tables(paths["samples"]).groupby("level", sort=False))),
        min_share=0.2,
    )
    pd.testing.assert_frame_equal(from_files, direct)
    assert set(from_files["level"]) == {"cell_type", "cell_subtype"}

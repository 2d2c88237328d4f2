"""scanpy's palettes and rank_genes_groups layout on the annotated object and the markers."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc

from tmeflow.annotate import _cluster_markers as markers
from tmeflow.annotate import _scverse as scv
from tmeflow.core._vocabulary import condition_colors, label_colors

from .test_cluster_markers import clustered, xenograft


def annotated() -> ad.AnnData:
    a = clustered()
    n = a.n_obs
    a.obs["cell_subtype"] = np.where(a.obs["cell_type"] == "CAF", "CAF_myCAF", "NA")
    a.obs["sample"] = [f"S{i % 4 + 1}" for i in range(n)]  # S1, S3 treated; S2, S4 control
    a.obs["condition"] = np.where(a.obs["sample"].isin(["S1", "S3"]), "treated", "control")
    return a


def test_palettes_match_the_figures_colours(tmp_path):
    a = annotated()
    stored = scv.add_palettes(a, conditions=["control", "treated"])
    assert set(stored) == {"cell_type", "cell_subtype", "condition", "sample"}
    for column in stored:
        cats = list(a.obs[column].cat.categories)
        assert len(a.uns[f"{column}_colors"]) == len(cats)
    cell_types = dict(
        zip(a.obs["cell_type"].cat.categories, a.uns["cell_type_colors"], strict=True)
    )
    assert cell_types == label_colors(cell_types)
    conds = dict(zip(a.obs["condition"].cat.categories, a.uns["condition_colors"], strict=True))
    assert conds == condition_colors(["control", "treated"])  # reference grey, test red
    assert conds["control"] != conds["treated"]
    # scanpy keeps them (it would replace a palette of the wrong length) and reads them back
    path = tmp_path / "a.h5ad"
    a.write_h5ad(path)
    b = ad.read_h5ad(path)
    b.obsm["X_umap"] = np.random.default_rng(0).normal(size=(b.n_obs, 2))
    for column in stored:
        sc.pl.umap(b, color=column, show=False)
        assert list(b.uns[f"{column}_colors"]) == stored[column]
    import matplotlib.pyplot as plt

    plt.close("all")


def test_sample_colours_follow_the_arms():
    a = annotated()
    stored = scv.add_palettes(a, conditions=["control", "treated"], columns=["sample"])
    samples = dict(zip(a.obs["sample"].cat.categories, stored["sample"], strict=True))
    assert len(set(samples.values())) == 4


def test_rank_genes_groups_round_trips_through_scanpy(tmp_path):
    a = clustered()
    table, _ = markers.rank_markers(a, groupby="leiden", n_genes=5)
    a.uns["rank_genes_groups"] = scv.rank_genes_groups_uns(table, a.obs, groupby="leiden")
    path = tmp_path / "rgg.h5ad"
    ad.AnnData(uns={"rank_genes_groups": a.uns["rank_genes_groups"]}).write_h5ad(path)
    a.uns.update(ad.read_h5ad(path).uns)  # what a user does with the workflow's file
    assert a.uns["rank_genes_groups"]["params"]["groupby"] == "leiden"
    for group, rows in table.groupby("group"):
        got = sc.get.rank_genes_groups_df(a, group=str(group))
        assert list(got["names"]) == list(rows["gene"])
        np.testing.assert_allclose(got["scores"], rows["score"], rtol=1e-6)
        np.testing.assert_allclose(got["pvals_adj"], rows["pvals_adj"])
    assert list(a.uns["rank_genes_groups"]["names"].dtype.names) == ["0", "1", "2"]
    sc.pl.rank_genes_groups_dotplot(a, n_genes=2, dendrogram=False, show=False)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_group_in_two_species_keeps_the_one_with_most_cells():
    a = xenograft()
    table, _ = markers.rank_markers(a, groupby="leiden", n_genes=3)
    # cluster "3" also ranked among mouse cells, with fewer cells there than among human ones
    fake = table[table["group"] == "3"].assign(species="mouse", gene="g0", score=99.0)
    obs = a.obs.copy()
    first_mouse = obs.index[obs["species"] == "mouse"][:2]
    obs["leiden"] = obs["leiden"].astype(str)
    obs.loc[first_mouse, "leiden"] = "3"
    uns = scv.rank_genes_groups_uns(pd.concat([table, fake]), obs, groupby="leiden")
    assert uns["params"]["species"]["3"] == "human"
    assert uns["names"]["3"][0] == table[table["group"] == "3"]["gene"].iloc[0]
    assert set(uns["names"].dtype.names) == {"0", "1", "2", "3", "4"}


@pytest.mark.parametrize("n_genes", [2, 4])
def test_groups_with_fewer_genes_are_padded(n_genes):
    table = pd.DataFrame(
        {
            "species": "mouse",
            "group": ["a"] * n_genes + ["b"],
            "rank": [*range(1, n_genes + 1), 1],
            "gene": [f"g{i}" for i in range(n_genes)] + ["x"],
            "score": 1.0,
            "logfoldchange": 1.0,
            "pvals": 0.01,
            "pvals_adj": 0.02,
        }
    )
    obs = pd.DataFrame({"leiden": ["a", "b"]})
    uns = scv.rank_genes_groups_uns(table, obs, groupby="leiden")
    assert list(uns["names"]["b"]) == ["x"] + [""] * (n_genes - 1)
    assert np.isnan(uns["pvals"]["b"][1:]).all()

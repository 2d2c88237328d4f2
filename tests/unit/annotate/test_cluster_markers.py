"""Tests of tmeflow.annotate._cluster_markers (per-cluster and per-label marker genes) and their dot
plot."""

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

from tmeflow.annotate import _cluster_markers as markers
from tmeflow.plots import atlas

from .._synthetic import clustered_counts

CLUSTER = {"A": "0", "B": "1", "C": "2"}
CELL_TYPE = {"A": "CAF", "B": "TAM", "C": "unassigned"}
CELL_TYPE_OF_CLUSTER = {CLUSTER[k]: v for k, v in CELL_TYPE.items()}


def lognorm(adata: ad.AnnData) -> ad.AnnData:
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    return adata


def clustered(planted: str = "g100", seed: int = 0, **kwargs) -> ad.AnnData:
    """Three clusters (0 CAF, 1 TAM, 2 unassigned) with ``planted`` expressed only in 2."""
    a = clustered_counts(seed=seed, **kwargs)
    x = a.X.toarray()
    gene = a.var_names.get_loc(planted)
    c = (a.obs["group"] == "C").to_numpy()
    x[:, gene] = 0
    x[c, gene] = 200
    a.X = type(a.X)(x)
    a.obs["leiden"] = pd.Categorical(a.obs["group"].map(CLUSTER))
    a.obs["cell_type"] = pd.Categorical(a.obs["group"].map(CELL_TYPE))
    return lognorm(a)


def xenograft() -> ad.AnnData:
    """Human cells (one tumour cluster, 3) and mouse cells (clusters 0-2) side by side.

    The human cells express only the human genes h0..h59 and the mouse cells only the mouse
    genes g0..g119, so across species every human gene would outrank any mouse marker.
    """
    mouse = clustered_counts(seed=1)
    human = clustered_counts(groups=("T", "U"), n_genes=60, seed=2, n_per_group=40)
    human.var_names = [f"h{i}" for i in range(human.n_vars)]
    mouse.obs["leiden"] = mouse.obs["group"].map(CLUSTER)
    human.obs["leiden"] = human.obs["group"].map({"T": "3", "U": "4"})
    mouse.obs["species"], human.obs["species"] = "mouse", "human"
    mouse.obs["cell_type"] = mouse.obs["group"].map(CELL_TYPE)
    human.obs["cell_type"] = "tumour"
    human.obs_names = [f"h{n}" for n in human.obs_names]
    a = ad.concat([mouse, human], join="outer", fill_value=0)
    a.var["species"] = ["human" if g.startswith("h") else "mouse" for g in a.var_names]
    return lognorm(a)


def test_planted_gene_ranks_first_for_its_cluster():
    table, notes = markers.rank_markers(clustered(), groupby="leiden", n_genes=5)
    assert list(table.columns) == markers.COLUMNS
    assert notes.empty
    top = table.loc[table["rank"] == 1].set_index("group")
    assert top.loc["2", "gene"] == "g100"
    assert top.loc["2", "label"] == "unassigned"
    assert top.loc["2", "pct_in"] == 1.0 and top.loc["2", "pct_out"] == 0.0
    assert top.loc["2", "logfoldchange"] > 3
    # the genes planted per group by clustered_counts are each cluster's markers
    for group, lo in (("0", 0), ("1", 10)):
        genes = table.loc[table["group"] == group, "gene"]
        assert all(lo <= int(g[1:]) < lo + 10 for g in genes), (group, list(genes))
    assert table.groupby("group").size().tolist() == [5, 5, 5]
    assert (table["level"] == "leiden").all() and set(table["species"]) == {""}


def test_cell_type_level_and_labels():
    table, _ = markers.rank_markers(clustered(), groupby="cell_type", n_genes=3)
    assert list(dict.fromkeys(table["group"])) == ["CAF", "TAM", "unassigned"]
    assert (table["label"] == table["group"]).all()
    first = table.loc[table["rank"] == 1].set_index("group")["gene"]
    assert first["unassigned"] == "g100"


def test_ties_sorted_by_gene_and_deterministic():
    a = clustered()
    # two identical planted genes tie on every statistic: the name breaks the tie
    x = a.X.toarray()
    x[:, a.var_names.get_loc("g101")] = x[:, a.var_names.get_loc("g100")]
    a.X = sp.csr_matrix(x)
    first, _ = markers.rank_markers(a, groupby="leiden", n_genes=4)
    second, _ = markers.rank_markers(a[::-1].copy(), groupby="leiden", n_genes=4)
    pd.testing.assert_frame_equal(first, second)
    c2 = first.loc[first["group"] == "2"]
    assert c2["gene"].iloc[:2].tolist() == ["g100", "g101"]
    assert c2["score"].iloc[0] == c2["score"].iloc[1]


def test_xenograft_ranks_within_species():
    a = xenograft()
    table, notes = markers.rank_markers(a, groupby="leiden", n_genes=5)
    assert notes.empty
    for row in table.itertuples():
        assert row.gene.startswith("h") == (row.species == "human"), row
    mouse = table.loc[table["species"] == "mouse"]
    assert set(mouse["group"]) == {"0", "1", "2"}
    top0 = mouse.loc[mouse["group"] == "0", "gene"]
    assert all(int(g[1:]) < 10 for g in top0)  # cluster 0's own genes, not species genes
    # pct_out is within the species: the other mouse clusters, not the human cells
    for row in table.itertuples():
        rest = (a.obs["species"] == row.species) & (a.obs["leiden"] != row.group)
        expressed = a[rest.to_numpy(), row.gene].X.toarray().ravel() > 0
        assert row.pct_out == pytest.approx(expressed.mean()), row
    assert (table.loc[table["species"] == "human", "label"] == "tumour").all()


def test_species_with_one_group_gets_a_note(caplog):
    a = xenograft()
    a.obs["leiden"] = a.obs["leiden"].replace({"4": "3"})
    with caplog.at_level(logging.WARNING, logger="tmeflow.annotate._cluster_markers"):
        table, notes = markers.rank_markers(a, groupby="leiden", n_genes=3)
    assert set(table["species"]) == {"mouse"}
    assert notes[["species", "group"]].values.tolist() == [["human", "3"]]
    assert "nothing to compare" in notes["note"].item()
    assert "nothing to compare" in caplog.text


def test_tiny_groups_get_a_note_not_a_crash():
    a = clustered()
    leiden = a.obs["leiden"].astype(str).to_numpy()
    leiden[0] = "9"  # a one-cell cluster
    a.obs["leiden"] = leiden
    table, notes = markers.rank_markers(a, groupby="leiden", n_genes=3)
    assert list(notes.columns) == markers.NOTE_COLUMNS
    assert notes[["group", "n_cells"]].values.tolist() == [["9", 1]]
    assert "fewer than 2" in notes["note"].item()
    assert set(table["group"]) == {"0", "1", "2"}
    # a data set with a single cluster: every group noted, an empty table with the columns
    a.obs["leiden"] = "0"
    table, notes = markers.rank_markers(a, groupby="leiden")
    assert table.empty and list(table.columns) == markers.COLUMNS
    assert len(notes) == 1


def test_bad_arguments():
    a = clustered()
    with pytest.raises(ValueError, match="no obs column"):
        markers.rank_markers(a, groupby="nope")
    with pytest.raises(ValueError, match="n_genes"):
        markers.rank_markers(a, groupby="leiden", n_genes=0)


def test_cluster_labels_majority():
    a = clustered()
    ct = a.obs["cell_type"].astype(str).to_numpy()
    ct[:5] = "TAM"  # a minority of cluster 0
    a.obs["cell_type"] = ct
    labels = markers.cluster_labels(a, "leiden")
    assert labels.set_index("group")["label"].to_dict() == CELL_TYPE_OF_CLUSTER


def test_dotplot_written_and_deterministic(tmp_path):
    a = clustered()
    table, _ = markers.rank_markers(a, groupby="leiden", n_genes=5)
    first = atlas.cluster_markers_dotplot(a, table, stem=tmp_path / "a" / "cluster_markers")
    second = atlas.cluster_markers_dotplot(a, table, stem=tmp_path / "b" / "cluster_markers")
    assert [p.suffix for p in first] == [".pdf", ".png"]
    for p, q in zip(first, second, strict=True):
        assert p.stat().st_size > 1000
        assert p.read_bytes() == q.read_bytes(), p.name


def test_dotplot_xenograft_and_empty(tmp_path):
    a = xenograft()
    table, _ = markers.rank_markers(a, groupby="leiden", n_genes=3)
    paths = atlas.cluster_markers_dotplot(a, table, stem=tmp_path / "xeno")
    assert all(p.is_file() for p in paths)
    empty = atlas.cluster_markers_dotplot(a, table.iloc[:0], stem=tmp_path / "empty")
    assert all(p.is_file() for p in empty)


def test_cluster_rows_name_species_when_a_cluster_spans_two():
    table = pd.DataFrame(
        {"species": ["human", "mouse", "mouse"], "group": ["3", "3", "0"],
         "label": ["tumour", "CAF", "TAM"]}
    )  # fmt: skip
    names = atlas._cluster_names(table).set_index(["species", "group"])["row"].to_dict()
    assert names == {("human", "3"): "3 human (tumour)", ("mouse", "3"): "3 mouse (CAF)",
                     ("mouse", "0"): "0 (TAM)"}  # fmt: skip
    assert np.all(table["group"].notna())

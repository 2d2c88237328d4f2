"""Marker genes of each cluster and each cell type, ranked within each species' cells.

A cluster called ``unassigned`` by the panel-based annotation can only be interpreted from its
own marker genes. :func:`rank_markers` ranks the genes of every group of an ``obs`` column
(``leiden`` or ``cell_type``) against the other cells *of the same species*
(``scanpy.tl.rank_genes_groups``, two-sided Wilcoxon, group vs rest, on the log-normalised
``X``): in a xenograft a human tumour cluster compared with mouse stroma would otherwise be
ranked on species genes. Where ``var["species"]`` marks the features of the species, only
those are ranked. Groups with fewer than ``min_cells`` cells, and species with a single group
(nothing to compare with), are skipped with a note instead of an error.
"""

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData

from tmeflow._utils import natural_key

logger = logging.getLogger(__name__)

__all__ = ["COLUMNS", "NOTE_COLUMNS", "cluster_labels", "rank_markers"]

#: Columns of a marker table, in order.
COLUMNS = [
    "species", "level", "group", "label", "rank", "gene", "score", "logfoldchange", "pvals",
    "pvals_adj", "pct_in", "pct_out",
]  # fmt: skip
#: Columns of the notes on what was not ranked.
NOTE_COLUMNS = ["species", "level", "group", "n_cells", "note"]


def _cell_species(adata: AnnData) -> pd.Series:
    """``obs["species"]`` as strings, or ``""`` for every cell when there is no such column."""
    if "species" in adata.obs.columns:
        return adata.obs["species"].astype(str)
    return pd.Series("", index=adata.obs_names)


def _species_genes(adata: AnnData, species: str) -> np.ndarray:
    """Boolean mask of the features of ``species`` (all features if none is marked so)."""
    if "species" not in adata.var.columns:
        return np.ones(adata.n_vars, dtype=bool)
    mask = (adata.var["species"].astype(str) == species).to_numpy()
    return mask if mask.any() else np.ones(adata.n_vars, dtype=bool)


def cluster_labels(adata: AnnData, groupby: str, label_key: str = "cell_type") -> pd.DataFrame:
    """The label of each group of each species: its most common ``obs[label_key]``.

    Ties go to the label first in natural sort order. Without ``obs[label_key]`` the label is
    the group itself.

    Parameters
    ----------
    adata
        AnnData with ``obs[groupby]`` (and optionally ``obs["species"]``, ``obs[label_key]``).
    groupby
        Column of ``obs`` holding the groups (e.g. ``leiden``).
    label_key
        Column of ``obs`` holding the labels (e.g. ``cell_type``).

    Returns
    -------
    pandas.DataFrame
        Columns ``species``, ``group``, ``label``, ``n_cells``; one row per species and group.
    """
    obs = pd.DataFrame(
        {"species": _cell_species(adata).to_numpy(), "group": adata.obs[groupby].to_numpy()}
    )
    obs = obs.loc[obs["group"].notna()].astype(str)
    if label_key in adata.obs.columns:
        obs["label"] = adata.obs[label_key].astype(str).to_numpy()[obs.index]
    else:
        obs["label"] = obs["group"]
    rows = []
    for (species, group), sub in obs.groupby(["species", "group"], sort=False):
        counts = sub["label"].value_counts()
        best = sorted(counts.index[counts == counts.max()], key=natural_key)[0]
        rows.append({"species": species, "group": group, "label": best, "n_cells": len(sub)})
    table = pd.DataFrame(rows, columns=["species", "group", "label", "n_cells"])
    order = sorted(range(len(table)), key=lambda i: (table["species"].iat[i],
                   natural_key(table["group"].iat[i])))  # fmt: skip
    return table.iloc[order].reset_index(drop=True)


def _fraction_expressing(x, mask: np.ndarray) -> np.ndarray:
    """Fraction of the rows of ``x`` selected by ``mask`` with a value > 0, per column."""
    if not mask.any():
        return np.full(x.shape[1], np.nan)
    sub = x[mask]
    nnz = (sub > 0).sum(axis=0)
    return np.asarray(nnz, dtype=float).ravel() / mask.sum()


def _rank_species(
    x, genes: pd.Index, groups: np.ndarray, kept: list[str], n_genes: int
) -> pd.DataFrame:
    """Wilcoxon group-vs-rest of the cells of one species; the top ``n_genes`` of each group.

    ``x`` holds the species' cells (rows, log-normalised) and genes; ``groups`` their group.
    Returns columns ``group``, ``rank`` and ``gene`` to ``pct_out``; ties of the score are
    broken by gene name, so the result depends on the data only.
    """
    obs = pd.DataFrame({"g": pd.Categorical(groups)}, index=np.arange(len(groups)).astype(str))
    sub = AnnData(X=x, obs=obs, var=pd.DataFrame(index=genes))
    sc.tl.rank_genes_groups(sub, "g", groups=kept, reference="rest", method="wilcoxon",
                            use_raw=False, n_genes=sub.n_vars, tie_correct=True)  # fmt: skip
    parts = []
    for group in kept:
        df = sc.get.rank_genes_groups_df(sub, group=group)
        df = df.rename(columns={"names": "gene", "scores": "score", "logfoldchanges":
                                "logfoldchange"})  # fmt: skip
        df = df.sort_values(["score", "gene"], ascending=[False, True], kind="mergesort")
        df = df.head(n_genes).reset_index(drop=True)
        idx = genes.get_indexer(df["gene"])
        in_group = groups == group
        df["pct_in"] = _fraction_expressing(x[:, idx], in_group)
        df["pct_out"] = _fraction_expressing(x[:, idx], ~in_group)
        df.insert(0, "rank", np.arange(1, len(df) + 1))
        df.insert(0, "group", group)
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


def _skips(sizes: pd.DataFrame, level: str, min_cells: int) -> tuple[list[str], list[dict]]:
    """The groups of one species to rank, and a note on each of the others (see rank_markers).

    A group is ranked when it has at least ``min_cells`` cells and so have the other cells of
    its species (a species' only group has nothing to be compared with).
    """
    total = int(sizes["n_cells"].sum())
    kept, notes = [], []
    for row in sizes.itertuples(index=False):
        if row.n_cells < min_cells:
            note = f"{row.n_cells} cell(s), fewer than {min_cells}: not ranked"
        elif total == row.n_cells:
            note = "the only group of its species: nothing to compare it with, not ranked"
        elif total - row.n_cells < min_cells:
            note = (
                f"the other groups of its species have {total - row.n_cells} cell(s), fewer "
                f"than {min_cells}: nothing to compare it with, not ranked"
            )
        else:
            kept.append(row.group)
            continue
        notes.append({"species": row.species, "level": level, "group": row.group,
                      "n_cells": row.n_cells, "note": note})  # fmt: skip
    return kept, notes


def rank_markers(
    adata: AnnData,
    *,
    groupby: str,
    n_genes: int = 10,
    min_cells: int = 2,
    label_key: str = "cell_type",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Top marker genes of every group of ``obs[groupby]``, within each species.

    Per species (``obs["species"]``; all cells when absent), every group with at least
    ``min_cells`` cells is compared with all other cells of the species (two-sided Wilcoxon
    rank-sum, ``scanpy.tl.rank_genes_groups``, Benjamini-Hochberg ``pvals_adj`` over the
    species' genes) on ``X`` (log1p CP10k), over the species' own features when
    ``var["species"]`` marks them. A species with a single group has nothing to compare with
    and is not ranked. Skipped groups are listed in the notes (and logged).

    Parameters
    ----------
    adata
        AnnData with log-normalised ``X`` and ``obs[groupby]``.
    groupby
        Column of ``obs`` with the groups, e.g. ``leiden`` or ``cell_type``.
    n_genes
        Genes kept per group: the highest Wilcoxon scores, ties broken by gene name.
    min_cells
        Groups with fewer cells (in a species) are not ranked.
    label_key
        Column of ``obs`` giving each group's ``label`` (its most common value; see
        :func:`cluster_labels`).

    Returns
    -------
    table : pandas.DataFrame
        :data:`COLUMNS`: ``level`` is ``groupby``, ``rank`` 1..n_genes, ``pct_in`` and
        ``pct_out`` the fractions of the group's and of the other cells of the species with
        the gene > 0. Sorted by species, group (natural order) and rank.
    notes : pandas.DataFrame
        :data:`NOTE_COLUMNS`, one row per group not ranked.
    """
    if groupby not in adata.obs.columns:
        msg = f"no obs column {groupby!r} to rank marker genes of; have {list(adata.obs.columns)}"
        raise ValueError(msg)
    if n_genes < 1 or min_cells < 2:
        raise ValueError(f"need n_genes >= 1 and min_cells >= 2; got {n_genes}, {min_cells}")
    labels = cluster_labels(adata, groupby, label_key)
    species = _cell_species(adata).to_numpy()
    groups = adata.obs[groupby].astype(object).to_numpy()
    tables, notes = [], []
    for sp_name, sizes in labels.groupby("species", sort=True):
        kept, sp_notes = _skips(sizes, groupby, min_cells)
        notes += sp_notes
        if not kept:
            continue
        cells = np.flatnonzero((species == sp_name) & pd.notna(groups))
        gmask = _species_genes(adata, sp_name)
        x = adata.X[cells][:, gmask]
        x = x.tocsr() if sp.issparse(x) else np.asarray(x)
        ranked = _rank_species(x, adata.var_names[gmask], groups[cells].astype(str), kept, n_genes)
        ranked.insert(0, "species", sp_name)
        tables.append(ranked)
    for note in notes:
        logger.warning("marker genes (%s %s %s): %s", groupby, note["species"], note["group"],
                       note["note"])  # fmt: skip
    return _assemble(tables, labels, groupby), pd.DataFrame(notes, columns=NOTE_COLUMNS)


def _assemble(tables: Sequence[pd.DataFrame], labels: pd.DataFrame, level: str) -> pd.DataFrame:
    """Concatenate the species' rankings into :data:`COLUMNS`, sorted for display."""
    if not tables:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    table = pd.concat(tables, ignore_index=True)
    table = table.merge(labels[["species", "group", "label"]], on=["species", "group"])
    table["level"] = level
    key = [(s, natural_key(g), r) for s, g, r in zip(table["species"], table["group"],
                                                    table["rank"], strict=True)]  # fmt: skip
    order = sorted(range(len(table)), key=key.__getitem__)
    return table.iloc[order][COLUMNS].reset_index(drop=True)

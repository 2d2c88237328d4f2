"""scverse conventions on what the workflow writes: scanpy's palettes and marker rankings.

:func:`add_palettes` stores ``uns["<column>_colors"]`` for ``cell_type``, ``cell_subtype``,
``condition`` and ``sample`` with the colours of the workflow's figures
(:func:`tmeflow.core.palette_for`), so that ``sc.pl.umap(adata, color="cell_type")`` draws
what ``results/figures/`` shows. :func:`rank_genes_groups_uns` turns a marker table of
:func:`tmeflow.annotate.rank_markers` into scanpy's ``uns["rank_genes_groups"]`` layout, for
``sc.get.rank_genes_groups_df`` and ``sc.pl.rank_genes_groups_dotplot``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from tmeflow._utils import natural_key
from tmeflow.core._vocabulary import ordered_conditions, palette_for, sample_order

#: The ``obs`` columns :func:`add_palettes` colours.
PALETTE_COLUMNS: tuple[str, ...] = ("cell_type", "cell_subtype", "condition", "sample")
#: The per-gene fields of scanpy's ``uns["rank_genes_groups"]``, from marker-table columns.
RANK_FIELDS: dict[str, str] = {
    "names": "gene",
    "scores": "score",
    "logfoldchanges": "logfoldchange",
    "pvals": "pvals",
    "pvals_adj": "pvals_adj",
}


def _categorical(values: pd.Series) -> pd.Categorical:
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.array  # type: ignore[return-value]
    text = values.astype(object).where(values.notna(), None)
    return pd.Categorical(text)  # sorted categories, as AnnData's strings_to_categoricals


def add_palettes(
    adata: AnnData,
    *,
    conditions: Sequence[str] | None = None,
    columns: Sequence[str] = PALETTE_COLUMNS,
) -> dict[str, list[str]]:
    """Store scanpy's ``uns["<column>_colors"]`` with the figures' colours.

    Each present column becomes categorical (its categories kept, or sorted as AnnData stores
    strings) and gets one colour per category, in category order, as scanpy reads them:
    cell types and subtypes by the label vocabulary (:func:`tmeflow.core.label_colors`),
    conditions reference grey and test red (:func:`tmeflow.core.condition_colors`, in the
    order of ``conditions``), samples as the figures colour them (arm, then natural order).

    Parameters
    ----------
    adata
        Annotated object; changed in place (``obs`` dtypes, ``uns``).
    conditions
        The contrast's levels, reference first.
    columns
        ``obs`` columns to colour; absent ones are skipped.

    Returns
    -------
    dict
        ``{column: colours}`` as stored.
    """
    stored = {}
    order_conditions = None
    if "condition" in adata.obs.columns:
        order_conditions = ordered_conditions(adata.obs["condition"], conditions)
    for column in columns:
        if column not in adata.obs.columns:
            continue
        cat = _categorical(adata.obs[column])
        adata.obs[column] = cat
        order: list[str] | None = None
        if column == "condition":
            order = order_conditions
        elif column == "sample" and "condition" in adata.obs.columns:
            arms = adata.obs[["sample", "condition"]].drop_duplicates("sample")
            pairs = dict(
                zip(arms["sample"].astype(str), arms["condition"].astype(str), strict=True)
            )
            order = sample_order(pairs, order_conditions or sorted(set(pairs.values())))
        colors = palette_for(column, [str(c) for c in cat.categories], order)
        stored[column] = [colors[str(c)] for c in cat.categories]
        adata.uns[f"{column}_colors"] = np.array(stored[column], dtype=object)
    return stored


def rank_genes_groups_uns(
    table: pd.DataFrame, obs: pd.DataFrame, *, groupby: str
) -> dict[str, object]:
    """A marker table in scanpy's ``uns["rank_genes_groups"]`` layout.

    One record field per ranked group (in natural order), one row per rank; ``names`` holds
    the genes, ``scores``/``logfoldchanges``/``pvals``/``pvals_adj`` the Wilcoxon results
    (padded with ``""``/NaN where a group has fewer genes). The ranking is within a species;
    a group ranked in several species (a cluster with cells of both) keeps the species with
    most of its cells, named in ``params["species"]``.

    Parameters
    ----------
    table
        :func:`tmeflow.annotate.rank_markers`'s table (columns ``species``, ``group``,
        ``rank``, ``gene``, ``score``, ...).
    obs
        The object's ``obs`` (``groupby`` and, for xenografts, ``species``).
    groupby
        The ``obs`` column ranked (``table["level"]``).

    Returns
    -------
    dict
        ``params`` (``groupby``, ``reference="rest"``, ``method="wilcoxon"``,
        ``use_raw=False``, ``layer=None``, ``corr_method="benjamini-hochberg"``, ``species``)
        and the record arrays of :data:`RANK_FIELDS`.
    """
    groups_of = obs[groupby].astype(str)
    species_of = (
        obs["species"].astype(str) if "species" in obs.columns else pd.Series("all", obs.index)
    )
    sizes = pd.crosstab(groups_of, species_of)
    table = table.assign(group=table["group"].astype(str))
    chosen: dict[str, str] = {}
    for group, rows in table.groupby("group", sort=False):
        ranked_in = sorted(rows["species"].astype(str).unique())
        if group in sizes.index and len(ranked_in) > 1:
            counts = sizes.loc[group].reindex(ranked_in, fill_value=0)
            chosen[group] = str(counts.idxmax())
        else:
            chosen[group] = ranked_in[0]
    groups = sorted(chosen, key=natural_key)
    n = int(table["rank"].max()) if len(table) else 0
    out: dict[str, object] = {
        "params": {
            "groupby": groupby,
            "reference": "rest",
            "method": "wilcoxon",
            "use_raw": False,
            "layer": None,
            "corr_method": "benjamini-hochberg",
            "species": {g: chosen[g] for g in groups},
        }
    }
    picked = {
        g: table[(table["group"] == g) & (table["species"].astype(str) == chosen[g])]
        .sort_values("rank")
        .set_index("rank")
        .reindex(range(1, n + 1))
        for g in groups
    }
    for field, column in RANK_FIELDS.items():
        if field == "names":
            cols = [picked[g][column].fillna("").astype(str).to_numpy() for g in groups]
            width = max([1, *(len(x) for c in cols for x in c)])
            dtype = [(g, f"U{width}") for g in groups]
        else:
            kind = "f4" if field in ("scores", "logfoldchanges") else "f8"
            cols = [picked[g][column].astype(float).to_numpy() for g in groups]
            dtype = [(g, kind) for g in groups]
        if groups:
            out[field] = np.rec.fromarrays(cols, dtype=dtype)
    return out

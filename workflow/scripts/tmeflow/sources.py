"""Which cell types make a gene (e.g. the ligand Gas6), per condition.

The share of a gene's UMIs contributed by a group combines how many cells the group has and
how much each expresses, which is what "the main source" means for a secreted ligand. The
pooled share is computed over all cells of a condition; its spread across animals
(``share_sd``) says whether one animal drives it.
"""

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

logger = logging.getLogger(__name__)

SOURCE_COLUMNS: list[str] = [
    "gene",
    "condition",
    "cell_type",
    "umis",
    "share",
    "share_sd",
    "n_samples",
    "n_cells",
    "frac_expressing",
    "mean_norm",
    "rank",
]

_TARGET_SUM = 1e4


def _levels(values: pd.Series) -> list[str]:
    if isinstance(values.dtype, pd.CategoricalDtype):
        observed = set(values.dropna().astype(str))
        return [str(c) for c in values.cat.categories if str(c) in observed]
    return sorted(values.dropna().astype(str).unique())


def _gene_column(adata: AnnData, gene: str, layer: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``gene`` per cell and total counts per cell, without densifying the matrix."""
    names = pd.Index(adata.var_names.astype(str))
    if gene not in names:
        near = [g for g in names if g.lower() == gene.lower()]
        hint = ""
        if near:
            species = (
                adata.var["species"].astype(str).to_numpy()[names.get_indexer(near)]
                if "species" in adata.var.columns
                else ["?"] * len(near)
            )
            options = ", ".join(f"{g!r} ({s})" for g, s in zip(near, species, strict=True))
            hint = (
                f"; symbols match case-sensitively (mouse Title-case, human upper-case): {options}"
            )
        msg = f"gene {gene!r} is not in the data{hint}"
        raise ValueError(msg)
    if layer is None:
        mat = adata.X
    elif layer in adata.layers:
        mat = adata.layers[layer]
    else:
        msg = f"no layer {layer!r} (layers: {list(adata.layers)}); pass the raw counts layer"
        raise KeyError(msg)
    mat = sp.csr_matrix(mat) if not isinstance(mat, sp.csr_matrix) else mat
    j = names.get_loc(gene)
    col = np.asarray(mat[:, [j]].toarray()).ravel().astype(np.float64)
    totals = np.asarray(mat.sum(axis=1)).ravel().astype(np.float64)
    return col, totals


def expression_sources(
    adata: AnnData,
    gene: str,
    *,
    group_key: str = "cell_type",
    condition_key: str = "condition",
    sample_key: str = "sample",
    layer: str | None = "counts",
) -> pd.DataFrame:
    """Share of a gene's UMIs contributed by each group, per condition.

    Parameters
    ----------
    adata
        Annotated object with raw counts in ``layers[layer]``; only one gene's column and the
        per-cell totals are read.
    gene
        Symbol, matched case-sensitively (mouse ``Gas6`` and human ``GAS6`` differ).
    group_key, condition_key, sample_key
        ``obs`` columns.
    layer
        Layer of raw counts (``X`` when ``None``).

    Returns
    -------
    pandas.DataFrame
        One row per condition x group (columns :data:`SOURCE_COLUMNS`; the group column is
        ``cell_type`` whatever ``group_key``): ``umis`` (the group's counts of the gene),
        ``share`` (``umis`` / all counts of the gene in the condition; sums to 1 per
        condition, NaN if the gene has no counts there), ``share_sd`` (standard deviation,
        ddof=1, of the per-sample shares over the ``n_samples`` samples of the condition in
        which the gene has counts), ``n_cells``, ``frac_expressing`` (cells with count > 0),
        ``mean_norm`` (mean log1p counts per 10,000) and ``rank`` (1 = largest share in the
        condition; ties by group order). Ordered by condition, then rank.

    Raises
    ------
    ValueError
        The gene is not in ``var_names``; the message lists case-insensitive matches.
    """
    missing = [k for k in (group_key, condition_key, sample_key) if k not in adata.obs.columns]
    if missing:
        msg = f"obs lacks column(s) {missing}; available: {list(adata.obs.columns)}"
        raise KeyError(msg)
    col, totals = _gene_column(adata, gene, layer)
    norm = np.log1p(np.divide(col * _TARGET_SUM, totals, out=np.zeros_like(col), where=totals > 0))
    cells = pd.DataFrame(
        {
            "condition": adata.obs[condition_key].astype(str).to_numpy(),
            "cell_type": adata.obs[group_key].astype(str).to_numpy(),
            "sample": adata.obs[sample_key].astype(str).to_numpy(),
            "umis": col,
            "expressing": col > 0,
            "norm": norm,
        }
    )
    groups = _levels(adata.obs[group_key])
    conditions = _levels(adata.obs[condition_key])

    per = cells.groupby(["condition", "cell_type"], sort=False).agg(
        umis=("umis", "sum"),
        n_cells=("umis", "size"),
        frac_expressing=("expressing", "mean"),
        mean_norm=("norm", "mean"),
    )
    full = pd.MultiIndex.from_product([conditions, groups], names=["condition", "cell_type"])
    per = per.reindex(full)
    per["n_cells"] = per["n_cells"].fillna(0).astype(np.int64)
    per["umis"] = per["umis"].fillna(0.0)
    cond_total = per.groupby(level="condition", sort=False)["umis"].transform("sum")
    per["share"] = np.where(cond_total > 0, per["umis"] / cond_total.where(cond_total > 0), np.nan)

    # per-sample shares: the group's counts / the sample's counts of the gene
    by_sample = cells.groupby(["condition", "sample", "cell_type"], sort=False)["umis"].sum()
    by_sample = by_sample.unstack("cell_type").reindex(columns=groups).fillna(0.0)
    sample_total = by_sample.sum(axis=1)
    shares = by_sample[sample_total > 0].div(sample_total[sample_total > 0], axis=0)
    long = shares.reset_index().melt(
        id_vars=["condition", "sample"], var_name="cell_type", value_name="share_sd"
    )
    sd = long.groupby(["condition", "cell_type"], sort=False)["share_sd"].std(ddof=1)
    n_s = shares.groupby(level="condition").size().rename("n_samples")
    per = per.join(sd)
    per = per.join(n_s, on="condition")
    per["n_samples"] = per["n_samples"].fillna(0).astype(np.int64)
    per = per.reset_index()
    per["gene"] = gene
    per["umis"] = per["umis"].astype(np.int64)

    order = {g: i for i, g in enumerate(groups)}
    per["_order"] = per["cell_type"].map(order)
    per = per.sort_values(
        ["condition", "share", "_order"],
        ascending=[True, False, True],
        na_position="last",
        kind="mergesort",
        key=lambda s: (
            s.map({c: i for i, c in enumerate(conditions)}) if s.name == "condition" else s
        ),
    )
    per["rank"] = per.groupby("condition", sort=False).cumcount() + 1
    for cond in conditions:
        if not (per["condition"] == cond).any() or per.loc[per["condition"] == cond, "umis"].sum():
            continue
        logger.warning("%s: no counts in condition %r; shares are undefined", gene, cond)
    return per[SOURCE_COLUMNS].reset_index(drop=True)


def primary_sources(table: pd.DataFrame, *, min_share: float = 0.2) -> pd.DataFrame:
    """Main producers of the gene in each condition.

    Parameters
    ----------
    table
        Output of :func:`expression_sources`.
    min_share
        Groups contributing at least this share of the gene's UMIs are primary sources; where
        none reaches it, the top-ranked group is.

    Returns
    -------
    pandas.DataFrame
        The selected rows of ``table`` (same columns), per condition in rank order, plus
        ``primary_reason`` (``"share >= {min_share}"`` or ``"top group"``). Conditions where
        the gene has no counts contribute no rows.
    """
    if not 0 < min_share <= 1:
        msg = f"min_share={min_share} must be in (0, 1]"
        raise ValueError(msg)
    missing = [c for c in ("condition", "cell_type", "share", "rank") if c not in table.columns]
    if missing:
        msg = f"table lacks column(s) {missing}; pass the output of sources.expression_sources"
        raise KeyError(msg)
    parts = []
    for _, sub in table.groupby("condition", sort=False):
        sub = sub[sub["share"].notna()].sort_values("rank", kind="mergesort")
        if sub.empty:
            continue
        hit = sub[sub["share"] >= min_share].copy()
        if hit.empty:
            hit = sub.iloc[[0]].copy()
            hit["primary_reason"] = "top group"
        else:
            hit["primary_reason"] = f"share >= {min_share:g}"
        parts.append(hit)
    if not parts:
        return pd.DataFrame(columns=[*table.columns, "primary_reason"])
    return pd.concat(parts, ignore_index=True)

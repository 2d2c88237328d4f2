"""Which cell types make a gene (e.g. the ligand Gas6), per condition.

The share of a gene's UMIs contributed by a group combines how many cells the group has and
how much each expresses, which is what "the main source" means for a secreted ligand. The
pooled share is computed over all cells of a condition; its spread across animals
(``share_sd``) says whether one animal drives it.
"""

import logging
import os

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from tmeflow._utils import cp10k_scale, observed_levels, row_sums
from tmeflow.cells import _ambient as ambient

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
    "umis_other_species",
    "umis_ambient",
    "ambient_explained",
    "umis_corrected",
    "share_corrected",
    "soup_source",
]
"""Columns of :func:`expression_sources`; the last six are the ambient RNA accounting
(:mod:`tmeflow.cells._ambient`), added beside the uncorrected ``umis``/``share``."""


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
    totals = row_sums(mat)
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
        condition, NaN if the gene has no counts there; *uncorrected*: every observed UMI,
        ambient ones included), ``share_sd`` (standard deviation,
        ddof=1, of the per-sample shares over the ``n_samples`` samples of the condition in
        which the gene has counts), ``n_cells``, ``frac_expressing`` (cells with count > 0),
        ``mean_norm`` (mean log1p counts per 10,000) and ``rank`` (1 = largest share in the
        condition; ties by group order). Ordered by condition, then rank. The ambient
        accounting (:mod:`tmeflow.cells._ambient`; zeros where no cross-species signal lets it be
        estimated, or without ``obs["species"]``): ``umis_other_species`` (the group's UMIs
        of the gene in cells of the other species, e.g. mouse ``Gas6`` in human tumour cells:
        ambient RNA or doublets, never expression), ``umis_ambient`` (the ambient UMIs the
        soup model expects in the group's cells of the gene's own species),
        ``ambient_explained`` (the share of the group's ``umis`` those two explain, capped at
        1; NaN without UMIs), ``umis_corrected`` (``umis`` minus both, floored at 0; the
        SoupX-style subtraction applied to the group's total), ``share_corrected`` (its
        share of the condition's corrected UMIs) and ``soup_source`` (where the soup profile
        of the gene's species came from in the condition's samples,
        :data:`tmeflow.cells.SOUP_SOURCES`, ``;``-joined; ``pooled_cells`` for an object
        without ``uns["ambient"]``, empty for a gene of neither species). On
        ``layers["counts_ambient_corrected"]`` (:func:`tmeflow.cells.corrected_counts`) the
        other-species and ambient UMIs are already removed and the accounting finds ~0.

    Raises
    ------
    ValueError
        The gene is not in ``var_names``; the message lists case-insensitive matches.
    """
    _require_obs(adata, (group_key, condition_key, sample_key))
    col, totals = _gene_column(adata, gene, layer)
    norm = np.log1p(col * cp10k_scale(totals))
    other, expected = ambient.gene_ambient(adata, col, gene, sample_key=sample_key, layer=layer)
    cells = pd.DataFrame(
        {
            "condition": adata.obs[condition_key].astype(str).to_numpy(),
            "cell_type": adata.obs[group_key].astype(str).to_numpy(),
            "sample": adata.obs[sample_key].astype(str).to_numpy(),
            "umis": col,
            "expressing": col > 0,
            "norm": norm,
            "other": other,
            "ambient": expected,
        }
    )
    groups = observed_levels(adata.obs[group_key])
    conditions = observed_levels(adata.obs[condition_key])
    per = _pooled_shares(cells, conditions, groups)
    per = _with_share_spread(per, cells, groups)
    per = _with_correction(per)
    per["soup_source"] = per["condition"].map(
        _soup_sources(adata, gene, cells.groupby("condition", sort=False)["sample"].unique())
    )
    per["gene"] = gene
    per["umis"] = per["umis"].astype(np.int64)
    per = _ranked(per, conditions, groups)
    for cond in conditions:
        if not (per["condition"] == cond).any() or per.loc[per["condition"] == cond, "umis"].sum():
            continue
        logger.warning("%s: no counts in condition %r; shares are undefined", gene, cond)
    return per[SOURCE_COLUMNS].reset_index(drop=True)


def _soup_sources(adata: AnnData, gene: str, samples: pd.Series) -> dict[str, str]:
    """Condition -> the soup sources (``;``-joined) of the gene's species in its samples."""
    g_sp = (
        str(adata.var["species"].astype(str).iat[adata.var_names.get_loc(gene)])
        if "species" in adata.var
        else ""
    )
    rec = adata.uns.get("ambient", {}).get("samples", {})
    out = {}
    for cond, names in samples.items():
        if g_sp not in ambient.CELL_SPECIES:
            out[cond] = ""
            continue
        found = {str(rec.get(str(s), {}).get(f"soup_source_{g_sp}", "pooled_cells")) for s in names}
        out[cond] = ";".join(sorted(found))
    return out


def _require_obs(adata: AnnData, keys: tuple[str, ...]) -> None:
    """Raise ``KeyError`` naming the ``keys`` that ``adata.obs`` lacks."""
    missing = [k for k in keys if k not in adata.obs.columns]
    if missing:
        msg = f"obs lacks column(s) {missing}; available: {list(adata.obs.columns)}"
        raise KeyError(msg)


def _pooled_shares(cells: pd.DataFrame, conditions: list, groups: list) -> pd.DataFrame:
    """Per condition x group (every pair): counts, cells, expression and the pooled share."""
    per = cells.groupby(["condition", "cell_type"], sort=False).agg(
        umis=("umis", "sum"),
        n_cells=("umis", "size"),
        frac_expressing=("expressing", "mean"),
        mean_norm=("norm", "mean"),
        umis_other_species=("other", "sum"),
        umis_ambient=("ambient", "sum"),
    )
    full = pd.MultiIndex.from_product([conditions, groups], names=["condition", "cell_type"])
    per = per.reindex(full)
    per["n_cells"] = per["n_cells"].fillna(0).astype(np.int64)
    per["umis"] = per["umis"].fillna(0.0)
    per["umis_other_species"] = per["umis_other_species"].fillna(0.0)
    per["umis_ambient"] = per["umis_ambient"].fillna(0.0)
    cond_total = per.groupby(level="condition", sort=False)["umis"].transform("sum")
    per["share"] = np.where(cond_total > 0, per["umis"] / cond_total.where(cond_total > 0), np.nan)
    return per


def _with_correction(per: pd.DataFrame) -> pd.DataFrame:
    """``per`` with ``ambient_explained``, ``umis_corrected`` and ``share_corrected``."""
    umis = per["umis"].to_numpy(dtype=np.float64)
    explained = np.minimum(
        per["umis_other_species"].to_numpy() + per["umis_ambient"].to_numpy(), umis
    )
    per["ambient_explained"] = np.divide(
        explained, umis, out=np.full_like(umis, np.nan), where=umis > 0
    )
    per["umis_corrected"] = umis - explained
    total = per.groupby("condition", sort=False)["umis_corrected"].transform("sum").to_numpy()
    per["share_corrected"] = np.divide(
        per["umis_corrected"].to_numpy(), total, out=np.full_like(umis, np.nan), where=total > 0
    )
    return per


def _with_share_spread(per: pd.DataFrame, cells: pd.DataFrame, groups: list) -> pd.DataFrame:
    """``per`` with ``share_sd`` and ``n_samples`` (over samples with counts), index reset."""
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
    return per.reset_index()


def _ranked(per: pd.DataFrame, conditions: list, groups: list) -> pd.DataFrame:
    """``per`` ordered by condition, then share (ties by group order), with ``rank``."""
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
    return per


def primary_sources(
    table: pd.DataFrame, *, min_share: float = 0.2, corrected: bool = False
) -> pd.DataFrame:
    """Main producers of the gene in each condition.

    Parameters
    ----------
    table
        Output of :func:`expression_sources`.
    min_share
        Groups contributing at least this share of the gene's UMIs are primary sources; where
        none reaches it, the top-ranked group is.
    corrected
        Select on ``share_corrected`` (the ambient-corrected share) instead of ``share``,
        ranking by it: a group whose UMIs ambient RNA explains (mouse ``Gas6`` in human
        tumour cells) is never named; a group with no corrected UMIs is never the "top
        group" either. Ignored for a table without ``share_corrected``.

    Returns
    -------
    pandas.DataFrame
        The selected rows of ``table`` (same columns), per condition in rank order, plus
        ``primary_reason`` (``"share >= {min_share}"``, ``"share_corrected >= {min_share}"``
        or ``"top group"``); ``rank`` stays the uncorrected rank. Conditions where
        the gene has no counts contribute no rows.
    """
    if not 0 < min_share <= 1:
        msg = f"min_share={min_share} must be in (0, 1]"
        raise ValueError(msg)
    missing = [c for c in ("condition", "cell_type", "share", "rank") if c not in table.columns]
    if missing:
        msg = f"table lacks column(s) {missing}; pass the output of sources.expression_sources"
        raise KeyError(msg)
    col = "share_corrected" if corrected and "share_corrected" in table.columns else "share"
    parts = []
    for _, sub in table.groupby("condition", sort=False):
        sub = sub[sub[col].notna()].sort_values("rank", kind="mergesort")
        if col != "share":
            sub = sub[sub[col] > 0].sort_values(col, ascending=False, kind="mergesort")
        if sub.empty:
            continue
        hit = sub[sub[col] >= min_share].copy()
        if hit.empty:
            hit = sub.iloc[[0]].copy()
            hit["primary_reason"] = "top group"
        else:
            hit["primary_reason"] = f"{col} >= {min_share:g}"
        parts.append(hit)
    if not parts:
        return pd.DataFrame(columns=[*table.columns, "primary_reason"])
    return pd.concat(parts, ignore_index=True)


#: Columns of :func:`sample_shares`, in order.
SAMPLE_SHARE_COLUMNS: list[str] = [
    "gene",
    "condition",
    "sample",
    "cell_type",
    "umis",
    "share",
]

#: Columns of :func:`primary_summary`, in order.
PRIMARY_COLUMNS: list[str] = [
    "gene",
    "level",
    "condition",
    "rank",
    "cell_type",
    "share",
    "share_sd",
    "share_min",
    "share_max",
    "n_samples",
    "frac_expressing",
    "mean_norm",
    "primary_reason",
    "share_corrected",
    "ambient_explained",
]


def sample_shares(
    adata: AnnData,
    gene: str,
    *,
    group_key: str = "cell_type",
    condition_key: str = "condition",
    sample_key: str = "sample",
    layer: str | None = "counts",
) -> pd.DataFrame:
    """Per-animal share of a gene's UMIs contributed by each group.

    The per-sample companion of :func:`expression_sources` (whose ``share_sd`` is the
    standard deviation of these shares): one row per sample x group (every observed group,
    zeros included; columns :data:`SAMPLE_SHARE_COLUMNS`). ``share`` is NaN in a sample
    without any count of the gene. Ordered by condition, sample, then group.

    Raises
    ------
    ValueError
        The gene is not in ``var_names``.
    """
    _require_obs(adata, (group_key, condition_key, sample_key))
    col, _totals = _gene_column(adata, gene, layer)
    obs = adata.obs
    samples = observed_levels(obs[sample_key])
    groups = observed_levels(obs[group_key])
    conditions = observed_levels(obs[condition_key])
    s = pd.Categorical(obs[sample_key].astype(str), categories=samples)
    g = pd.Categorical(obs[group_key].astype(str), categories=groups)
    umis = (
        pd.Series(col)
        .groupby([s, g], observed=False)
        .sum()
        .unstack()
        .reindex(index=samples, columns=groups)
        .fillna(0.0)
    )
    total = umis.sum(axis=1)
    share = umis.div(total.where(total > 0), axis=0)
    cond = obs[condition_key].astype(str).groupby(obs[sample_key].astype(str)).first()
    long = pd.DataFrame(
        {
            "gene": gene,
            "sample": np.repeat(samples, len(groups)),
            "cell_type": np.tile(groups, len(samples)),
            "umis": umis.to_numpy().ravel().astype(np.int64),
            "share": share.to_numpy().ravel(),
        }
    )
    long["condition"] = cond.reindex(long["sample"]).to_numpy()
    c_rank = {c: i for i, c in enumerate(conditions)}
    long["_c"] = long["condition"].map(c_rank)
    long = long.sort_values(["_c"], kind="mergesort")  # samples, groups keep their level order
    return long[SAMPLE_SHARE_COLUMNS].reset_index(drop=True)


POOLED = "all"


def _pooled(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of :func:`expression_sources` summed over conditions (``condition="all"``)."""
    df = table.copy()
    for col in ("frac_expressing", "mean_norm"):
        df[col] = df[col].fillna(0.0) * df["n_cells"]
    n_samples = df.groupby("condition", sort=False)["n_samples"].max().sum()
    summed = ["umis", "n_cells", "frac_expressing", "mean_norm"]
    summed += [c for c in ("umis_other_species", "umis_ambient") if c in df.columns]
    out = df.groupby("cell_type", sort=False)[summed].sum()
    for col in ("frac_expressing", "mean_norm"):
        out[col] = out[col] / out["n_cells"].where(out["n_cells"] > 0)
    total = out["umis"].sum()
    out["share"] = out["umis"] / total if total > 0 else np.nan
    out = out.reset_index()
    if "umis_ambient" in out.columns:
        out = _with_correction(out.assign(condition=POOLED))
    if "soup_source" in df.columns:
        found = df["soup_source"].dropna().astype(str).str.split(";").explode()
        out["soup_source"] = ";".join(sorted({f for f in found if f}))
    out["gene"] = table["gene"].iat[0]
    out["condition"] = POOLED
    out["share_sd"] = np.nan
    out["n_samples"] = int(n_samples)
    out = out.sort_values("share", ascending=False, kind="mergesort", na_position="last")
    out["rank"] = np.arange(1, len(out) + 1)
    return out[[c for c in SOURCE_COLUMNS if c in out.columns]].reset_index(drop=True)


def primary_summary(
    tables: dict[str, pd.DataFrame],
    samples: dict[str, pd.DataFrame] | None = None,
    *,
    min_share: float = 0.1,
    corrected: bool = False,
) -> pd.DataFrame:
    """Ranked primary sources of one or more genes, at one or more annotation levels.

    Per gene, level and condition, and pooled over conditions (``condition="all"``: every
    cell of the data, the answer to "which cells make this gene"), the groups selected by
    :func:`primary_sources`.

    Parameters
    ----------
    tables
        Level name (``"cell_type"``, ``"cell_subtype"``) -> output of
        :func:`expression_sources` (any number of genes; a table without a ``share`` column,
        e.g. the note written for an absent gene, contributes no rows).
    samples
        Level name -> output of :func:`sample_shares` for the same genes, for the per-animal
        range ``share_min`` / ``share_max`` (and ``share_sd`` of the pooled rows); NaN
        without it.
    min_share, corrected
        See :func:`primary_sources`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PRIMARY_COLUMNS` (``share_corrected`` and ``ambient_explained`` NaN
        for tables written without them), per gene and level: conditions in table order, then
        ``all``; groups in rank order.
    """
    parts = []
    for level, table in tables.items():
        if "share" not in table.columns or table.empty:
            continue
        for gene, sub in table.groupby("gene", sort=False):
            sub = pd.concat([sub, _pooled(sub)], ignore_index=True)
            prim = primary_sources(sub, min_share=min_share, corrected=corrected)
            if prim.empty:
                continue
            prim = prim.assign(level=level, share_min=np.nan, share_max=np.nan)
            per = None if samples is None else samples.get(level)
            if per is not None and len(per):
                per = per[per["gene"] == gene]
                both = pd.concat([per, per.assign(condition=POOLED)], ignore_index=True)
                rng = both.groupby(["condition", "cell_type"])["share"].agg(["min", "max", "std"])
                key = pd.MultiIndex.from_arrays([prim["condition"], prim["cell_type"]])
                prim["share_min"] = rng["min"].reindex(key).to_numpy()
                prim["share_max"] = rng["max"].reindex(key).to_numpy()
                pooled = (prim["condition"] == POOLED).to_numpy()
                prim.loc[pooled, "share_sd"] = rng["std"].reindex(key).to_numpy()[pooled]
            parts.append(prim)
    if not parts:
        return pd.DataFrame(columns=PRIMARY_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    return out.reindex(columns=PRIMARY_COLUMNS)


def gene_sources(
    adata: AnnData,
    gene: str,
    *,
    levels: tuple[str, ...] = ("cell_type", "cell_subtype"),
    condition_key: str = "condition",
    layer: str = "counts",
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The source tables of one gene at every annotation level (rule ``sources_gene``).

    Parameters
    ----------
    adata
        As for :func:`expression_sources`.
    gene
        The gene's symbol.
    levels
        ``obs`` columns of the annotation levels.
    condition_key
        ``obs`` column of the condition.
    layer
        Layer of counts (``counts_ambient_corrected`` for the ambient-corrected tables).

    Returns
    -------
    tables : dict[str, pandas.DataFrame]
        Level -> :func:`expression_sources`; for a gene absent from the data, a one-row table
        ``gene``, ``note`` (the error's message, also logged as a warning).
    samples : pandas.DataFrame
        The :func:`sample_shares` of every level, with a leading ``level`` column (columns
        ``level`` + :data:`SAMPLE_SHARE_COLUMNS`; no rows for an absent gene).
    """
    tables, per_sample = {}, []
    for key in levels:
        try:
            tables[key] = expression_sources(
                adata, gene, group_key=key, condition_key=condition_key, layer=layer
            )
            per_sample.append(
                sample_shares(
                    adata, gene, group_key=key, condition_key=condition_key, layer=layer
                ).assign(level=key)
            )
        except ValueError as err:
            logger.warning("%s", err)
            tables[key] = pd.DataFrame([{"gene": gene, "note": str(err)}])
    samples = (
        pd.concat(per_sample, ignore_index=True)
        if per_sample
        else pd.DataFrame({c: pd.Series(dtype=object) for c in SAMPLE_SHARE_COLUMNS}).assign(
            level=pd.Series(dtype=object)
        )
    )
    return tables, samples[["level", *SAMPLE_SHARE_COLUMNS]]


def read_tables(paths: list[str | os.PathLike[str]]) -> pd.DataFrame:
    """The tables of rule ``sources_gene`` at one level, concatenated.

    Parameters
    ----------
    paths
        TSV files written from :func:`gene_sources`.

    Returns
    -------
    pandas.DataFrame
        The tables that have a ``share`` column (notes of absent genes are left out), in
        order; an empty frame when none has.
    """
    parts = [pd.read_csv(p, sep="\t") for p in paths]
    parts = [t for t in parts if "share" in t.columns]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def primary_from_files(
    types: list[str | os.PathLike[str]],
    subtypes: list[str | os.PathLike[str]],
    samples: list[str | os.PathLike[str]],
    *,
    min_share: float,
    corrected: bool = False,
) -> pd.DataFrame:
    """:func:`primary_summary` of the files of rule ``sources_gene`` (rule ``sources_primary``).

    Parameters
    ----------
    types, subtypes
        The per-gene tables at the cell-type and the subtype level.
    samples
        The per-gene per-sample tables (column ``level``).
    min_share, corrected
        See :func:`primary_sources`.

    Returns
    -------
    pandas.DataFrame
        As :func:`primary_summary`.
    """
    per_sample = read_tables(samples)
    by_level = (
        {lvl: t for lvl, t in per_sample.groupby("level", sort=False)} if len(per_sample) else {}
    )
    return primary_summary(
        {"cell_type": read_tables(types), "cell_subtype": read_tables(subtypes)},
        by_level,
        min_share=min_share,
        corrected=corrected,
    )

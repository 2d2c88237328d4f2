"""Figures of the expression sources: which cell types make a gene's UMIs, per condition.

Conditions are drawn in the contrast's order, reference first, coloured by
:func:`~tmeflow.core._vocabulary.condition_colors`.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tmeflow.core._vocabulary import condition_colors, label_order, ordered_conditions
from tmeflow.plots._style import message_panel, new_figure, save_figure, style
from tmeflow.plots._utils import (
    as_labels,
    dodge,
    dot_handles,
    legend_right,
    patch_handles,
    require_columns,
    wrap_note,
)

__all__ = ["primary_sources_plot", "source_note", "sources_plot"]

_LEVEL_TAG = {"cell_type": "", "cell_subtype": " (subtype)"}


def source_note(table: pd.DataFrame, gene: str) -> str | None:
    """The note of a source table written for a gene without sources (e.g. absent from the data).

    Parameters
    ----------
    table
        A table of ``results/sources/<gene>.tsv``: the sources (``cell_type``, ``condition``,
        ``share``, ...) or, for a gene that could not be measured, ``gene`` and ``note``.
    gene
        The gene; with a ``gene`` column, only its rows are read.

    Returns
    -------
    str or None
        The note, or None when ``table`` holds sources or no note.
    """
    if "share" in table.columns or "note" not in table.columns:
        return None
    rows = table.loc[table["gene"].astype(str) == gene] if "gene" in table.columns else table
    notes = rows["note"].dropna().astype(str)
    notes = notes[notes != ""]
    return str(notes.iloc[0]) if len(notes) else None


def sources_plot(
    table: pd.DataFrame,
    *,
    gene: str,
    stem: str | Path,
    conditions: list[str],
) -> list[Path]:
    """Share of a gene's UMIs contributed by each cell type, per condition.

    Bars per cell type (:func:`~tmeflow.core._vocabulary.label_order`) and condition with
    ``share_sd`` error bars (missing SD: no bar). When ``table`` has a ``gene`` column, only its
    rows for ``gene`` are drawn. A note table (see :func:`source_note`) gives a panel with the
    note; an empty table gives a "no data" panel.

    Parameters
    ----------
    table
        Columns ``cell_type``, ``condition``, ``share`` (0-1), ``share_sd``; or ``gene`` and
        ``note``.
    gene
        Gene named in the title (and filtered on, see above).
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.
    conditions
        Condition order, reference first (others are drawn after).

    Returns
    -------
    list of Path
    """
    note = source_note(table, gene)
    if note is not None:
        table = pd.DataFrame(columns=["cell_type", "condition", "share"])
    require_columns(table, ["cell_type", "condition", "share"], "sources_plot")
    df = table.copy()
    if "gene" in df.columns:
        df = df.loc[df["gene"].astype(str) == gene]
    if "share_sd" not in df.columns:
        df["share_sd"] = np.nan
    df["cell_type"] = as_labels(df["cell_type"])
    df["condition"] = df["condition"].astype(str)
    df["share"] = pd.to_numeric(df["share"], errors="coerce")
    df["share_sd"] = pd.to_numeric(df["share_sd"], errors="coerce")
    df = df.loc[df["share"].notna()]
    conds = ordered_conditions(df["condition"], conditions)
    cell_types = label_order(df["cell_type"])
    with style():
        fig = new_figure(1.8 + 0.5 * max(len(cell_types), 2), 3.2)
        ax = fig.add_subplot()
        ax.set_title(f"sources of {gene}")
        if df.empty:
            message_panel(ax, wrap_note(note) if note else f"no source table for {gene}")
            return save_figure(fig, stem)
        offsets, step = dodge(len(conds))
        colors = condition_colors(conds)
        for j, cond in enumerate(conds):
            sub = (
                df.loc[df["condition"] == cond]
                .groupby("cell_type", sort=False)
                .agg(share=("share", "mean"), share_sd=("share_sd", "mean"))
            )
            sub = sub.reindex([c for c in cell_types if c in sub.index])
            if sub.empty:
                continue
            pos = np.array([cell_types.index(c) for c in sub.index]) + offsets[j]
            sd = sub["share_sd"].to_numpy(dtype=float)
            ax.bar(pos, sub["share"].to_numpy(dtype=float), width=step * 0.9, color=colors[cond],
                   label=cond, yerr=np.where(np.isfinite(sd), sd, 0.0),
                   error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "0.2"})  # fmt: skip
        ax.set_xticks(np.arange(len(cell_types)), cell_types, rotation=45, ha="right")
        ax.set_xlim(-0.6, len(cell_types) - 0.4)
        ax.set_ylabel(f"share of {gene} UMIs")
        ax.set_ylim(bottom=0)
        legend_right(fig, patch_handles(colors), title="condition")
    return save_figure(fig, stem)


def _primary_panel(ax, prim, samples, *, gene, conds, colors, rng, width) -> None:
    """One gene's primary sources: pooled share (bar) and each animal's share (points)."""
    groups = []
    for level in ("cell_type", "cell_subtype"):
        sub = prim[prim["level"] == level]
        groups += [(level, g) for g in dict.fromkeys(sub["cell_type"].astype(str))]
    for x, (level, group) in enumerate(groups):
        for j, cond in enumerate(conds):
            pos = x + (j - (len(conds) - 1) / 2) * width
            pooled = prim[
                (prim["level"] == level)
                & (prim["cell_type"].astype(str) == group)
                & (prim["condition"].astype(str) == cond)
            ]["share"]
            if len(pooled):
                ax.bar(pos, float(pooled.iloc[0]), width=width * 0.9, color=colors[cond],
                       alpha=0.35, edgecolor="none")  # fmt: skip
            pts = samples[
                (samples["gene"].astype(str) == gene)
                & (samples["level"] == level)
                & (samples["cell_type"].astype(str) == group)
                & (samples["condition"].astype(str) == cond)
            ]["share"].dropna()
            if len(pts):
                jitter = rng.uniform(-width * 0.25, width * 0.25, size=len(pts))
                ax.scatter(pos + jitter, pts.to_numpy(float), s=14, color=colors[cond],
                           edgecolors="white", linewidths=0.4, zorder=3)  # fmt: skip
    labels = [g + _LEVEL_TAG.get(lvl, "") for lvl, g in groups]
    ax.set_xticks(np.arange(len(groups)), labels, rotation=45, ha="right")
    ax.set_xlim(-0.6, max(len(groups), 1) - 0.4)
    ax.set_ylim(0, 1)
    ax.set_title(f"primary sources of {gene}")
    ax.set_ylabel(f"share of {gene} UMIs per animal")


def primary_sources_plot(
    primary: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    stem: str | Path,
    conditions: Sequence[str],
    seed: int = 0,
) -> list[Path]:
    """Per-animal shares of each gene's UMIs for its primary sources.

    One panel per gene (order of ``primary``). x: every group that is a primary source in
    some condition, cell types first, then subtypes (marked "(subtype)"); a bar per condition
    at the pooled share and one point per animal (its share). Without primary sources a panel
    says so.

    Parameters
    ----------
    primary
        Output of :func:`tmeflow.stats.primary_summary` (``gene``, ``level``,
        ``condition``, ``cell_type``, ``share``).
    samples
        Output of :func:`tmeflow.stats.sample_shares` with a ``level`` column.
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.
    conditions
        Condition order, reference first.
    seed
        Seed of the horizontal jitter.

    Returns
    -------
    list of Path
    """
    genes = list(dict.fromkeys(primary["gene"].astype(str))) if len(primary) else []
    conds = list(conditions)
    colors = condition_colors(conds)
    rng = np.random.default_rng(seed)
    n_panels = max(len(genes), 1)
    width = 0.8 / max(len(conds), 1)
    with style():
        fig = new_figure(3.6 * n_panels + 1.2, 3.4)
        axes = np.atleast_1d(fig.subplots(1, n_panels, squeeze=False)[0])
        if not genes:
            message_panel(axes[0], "no primary sources", color="black")
        for ax, gene in zip(axes, genes, strict=False):
            _primary_panel(ax, primary[primary["gene"].astype(str) == gene], samples, gene=gene,
                           conds=conds, colors=colors, rng=rng, width=width)  # fmt: skip
        legend_right(axes[-1], dot_handles(colors), title="condition")
    return save_figure(fig, stem)

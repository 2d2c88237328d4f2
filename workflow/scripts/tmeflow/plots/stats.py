"""Figures of the condition statistics: genes of interest, composition, volcano plots, GSEA.

Conditions are drawn in the contrast's order, reference first, coloured by
:func:`~tmeflow.core._vocabulary.condition_colors`; samples by arm, then naturally. The figures
of the expression sources are in :mod:`tmeflow.plots.sources`.
"""

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm

from tmeflow.core._vocabulary import (
    condition_colors,
    label_colors,
    label_order,
    ordered_conditions,
    sample_order,
)
from tmeflow.plots._style import message_panel, new_figure, save_figure, style
from tmeflow.plots._utils import (
    as_labels,
    dodge,
    dot_handles,
    legend_right,
    patch_handles,
    require_columns,
    size_handles,
    wrap_note,
)
from tmeflow.plots.sources import source_note, sources_plot

logger = logging.getLogger(__name__)

__all__ = [
    "composition_plot",
    "gene_figures",
    "genes_of_interest_plot",
    "gsea_dotplot",
    "volcano_plot",
    "volcano_plots",
]


# --------------------------------------------------------------------------- pseudobulk figures
def _strip_plot(
    ax,
    df: pd.DataFrame,
    *,
    x_order: list[str],
    conditions: list[str],
    value: str,
    rng: np.random.Generator,
    mean_line: bool,
) -> None:
    offsets, step = dodge(len(conditions))
    colors = condition_colors(conditions)
    for i, ct in enumerate(x_order):
        for j, cond in enumerate(conditions):
            vals = df.loc[(df["cell_type"] == ct) & (df["condition"] == cond), value]
            vals = vals.to_numpy(dtype=float)
            vals = vals[np.isfinite(vals)]
            pos = i + offsets[j]
            if vals.size == 0:
                continue
            if mean_line:
                ax.plot([pos - step * 0.35, pos + step * 0.35], [vals.mean()] * 2,
                        color=colors[cond], lw=1.5)  # fmt: skip
            jitter = rng.uniform(-step * 0.25, step * 0.25, vals.size)
            ax.scatter(pos + jitter, vals, s=12, color=colors[cond], edgecolors="white",
                       linewidths=0.4, zorder=3)  # fmt: skip
    ax.set_xticks(np.arange(len(x_order)), x_order, rotation=45, ha="right")
    ax.set_xlim(-0.6, len(x_order) - 0.4)


def genes_of_interest_plot(
    pseudobulk_values: pd.DataFrame,
    *,
    gene: str,
    stem: str | Path,
    conditions: list[str],
    seed: int = 0,
    note: str | None = None,
) -> list[Path]:
    """Per-sample pseudobulk CPM of one gene per cell type and condition.

    For each cell type (x axis, :func:`~tmeflow.core._vocabulary.label_order`) and condition (in
    the order given, others after), one point per sample shows ``log1p(cpm)``; the bar is
    ``log1p`` of the mean CPM. Rows with missing CPM are skipped; a gene without rows gives a
    panel with ``note`` (or "no pseudobulk values").

    Parameters
    ----------
    pseudobulk_values
        Columns ``gene``, ``cell_type``, ``sample``, ``condition``, ``cpm`` (``n_cells`` and
        ``counts`` are allowed and unused).
    gene
        Gene to draw, matched exactly against ``gene``.
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.
    conditions
        Condition order, reference first.
    seed
        Seed of the horizontal jitter.
    note
        What the panel says when the gene has no values (e.g. why it is absent).

    Returns
    -------
    list of Path
    """
    df = pseudobulk_values
    require_columns(
        df, ["gene", "cell_type", "sample", "condition", "cpm"], "genes_of_interest_plot"
    )
    df = df.loc[df["gene"].astype(str) == gene].copy()
    df["cell_type"] = as_labels(df["cell_type"])
    df["condition"] = df["condition"].astype(str)
    df["log1p_cpm"] = np.log1p(pd.to_numeric(df["cpm"], errors="coerce"))
    df = df.loc[np.isfinite(df["log1p_cpm"])]
    conds = ordered_conditions(df["condition"], conditions)
    cell_types = label_order(df["cell_type"])
    with style():
        fig = new_figure(1.8 + 0.5 * max(len(cell_types), 2), 3.2)
        ax = fig.add_subplot()
        ax.set_title(gene)
        if df.empty:
            text = wrap_note(note) if note else f"no pseudobulk values for {gene}"
            message_panel(ax, text)
            return save_figure(fig, stem)
        means = df.groupby(["cell_type", "condition"], sort=False)["cpm"].mean()
        bar_df = np.log1p(means).rename("log1p_mean").reset_index()
        offsets, step = dodge(len(conds))
        colors = condition_colors(conds)
        for row in bar_df.itertuples(index=False):
            pos = cell_types.index(row.cell_type) + offsets[conds.index(row.condition)]
            ax.bar(pos, row.log1p_mean, width=step * 0.9, color=colors[row.condition],
                   alpha=0.35, edgecolor="none")  # fmt: skip
        _strip_plot(ax, df, x_order=cell_types, conditions=conds, value="log1p_cpm",
                    rng=np.random.default_rng(seed), mean_line=False)  # fmt: skip
        ax.set_ylabel(f"{gene} log1p(CPM)")
        ax.set_ylim(bottom=0)
        legend_right(fig, patch_handles(colors), title="condition")
    return save_figure(fig, stem)


def _composition_bars(ax, wide: pd.DataFrame, colors, sample_cond, conds) -> None:
    """Stacked bars per sample with a bracket naming each arm."""
    samples = list(wide.index)
    bottom = np.zeros(len(samples))
    xs = np.arange(len(samples))
    for ct, color in colors.items():
        ax.bar(xs, wide[ct].to_numpy(), bottom=bottom, width=0.85, color=color, edgecolor="none",
               label=ct)  # fmt: skip
        bottom += wide[ct].to_numpy()
    ax.set_xticks(xs, samples, rotation=90)
    ax.set_ylabel("fraction of cells")
    ax.set_ylim(0, max(1.0, float(bottom.max())))
    ax.set_xlim(-0.6, len(samples) - 0.4)
    trans = ax.get_xaxis_transform()
    for cond in conds:
        idx = [i for i, s in enumerate(samples) if sample_cond[s] == cond]
        if not idx:
            continue
        ax.plot([idx[0] - 0.4, idx[-1] + 0.4], [1.02, 1.02], color="0.3", lw=0.8,
                transform=trans, clip_on=False)  # fmt: skip
        ax.text((idx[0] + idx[-1]) / 2, 1.03, cond, ha="center", va="bottom", transform=trans)


def composition_plot(
    props: pd.DataFrame,
    *,
    stem: str | Path,
    conditions: list[str],
    seed: int = 0,
) -> list[Path]:
    """Cell-type composition per sample (stacked bars) and per condition (points).

    Left: one stacked bar per sample, samples grouped by condition (in the order given, others
    after) and naturally sorted within. Right: per cell type, each sample's fraction as a point
    by condition with a line at the mean. Cell types missing from a sample count as 0.

    Parameters
    ----------
    props
        Columns ``sample``, ``condition``, ``cell_type``, ``fraction`` (``n_cells`` optional).
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
    require_columns(props, ["sample", "condition", "cell_type", "fraction"], "composition_plot")
    df = props.copy()
    df["cell_type"] = as_labels(df["cell_type"])
    df["sample"] = df["sample"].astype(str)
    df["condition"] = df["condition"].astype(str)
    df["fraction"] = pd.to_numeric(df["fraction"], errors="coerce").fillna(0.0)
    conds = ordered_conditions(df["condition"], conditions)
    cell_types = label_order(df["cell_type"])
    colors = label_colors(cell_types)
    sample_cond = df.drop_duplicates("sample").set_index("sample")["condition"]
    samples = sample_order(sample_cond.to_dict(), conds)
    with style():
        fig = new_figure(2.5 + 0.3 * max(len(samples), 2) + 0.45 * max(len(cell_types), 2), 3.4)
        ax_bar, ax_pt = fig.subplots(
            1, 2, width_ratios=[max(len(samples), 2), 1.5 * max(len(cell_types), 2)]
        )
        if df.empty:
            message_panel(ax_bar, "no cells")
            message_panel(ax_pt, "no cells")
            return save_figure(fig, stem)
        wide = df.pivot_table(
            index="sample", columns="cell_type", values="fraction", aggfunc="sum", fill_value=0.0
        ).reindex(index=samples, columns=cell_types, fill_value=0.0)
        _composition_bars(ax_bar, wide, colors, sample_cond, conds)
        long = wide.stack().rename("fraction").reset_index()
        long["condition"] = long["sample"].map(sample_cond)
        _strip_plot(ax_pt, long, x_order=cell_types, conditions=conds, value="fraction",
                    rng=np.random.default_rng(seed), mean_line=True)  # fmt: skip
        ax_pt.set_ylabel("fraction of cells per sample")
        ax_pt.set_ylim(bottom=0)
        legend_right(fig, [*patch_handles(colors), *dot_handles(condition_colors(conds))])
    return save_figure(fig, stem)


def gene_figures(
    values: pd.DataFrame,
    sources: pd.DataFrame,
    *,
    gene: str,
    out: str | Path,
    conditions: list[str],
) -> list[Path]:
    """The two figures of a gene of interest: ``goi_<gene>`` and ``sources_<gene>``.

    A gene absent from the data gets both figures, each with a panel that says so (the note of
    its source table, see :func:`source_note`).

    Parameters
    ----------
    values
        Pseudobulk values (``results/de/pseudobulk_values.tsv``); with a ``level`` column only
        the ``cell_type`` rows are drawn.
    sources
        The gene's source table (``results/sources/<gene>.tsv``).
    gene
        The gene.
    out
        Output folder.
    conditions
        The contrast's levels, reference first: order and colours of both figures.

    Returns
    -------
    list of Path
        The files of :func:`genes_of_interest_plot`, then of :func:`sources_plot`.
    """
    if "level" in values.columns:  # cell types here; subtypes are in the same table
        values = values[values["level"] == "cell_type"]
    out = Path(out)
    note = source_note(sources, gene)
    return [
        *genes_of_interest_plot(
            values, gene=gene, stem=out / f"goi_{gene}", conditions=conditions, note=note
        ),
        *sources_plot(sources, gene=gene, stem=out / f"sources_{gene}", conditions=conditions),
    ]


# --------------------------------------------------------------------------- DE and GSEA
def volcano_plot(
    de: pd.DataFrame,
    *,
    title: str,
    stem: str | Path,
    highlight: Sequence[str] = (),
    alpha: float = 0.05,
    label_top: int = 10,
) -> list[Path]:
    """Volcano plot of a differential-expression table.

    x: ``log2FoldChange``; y: ``-log10(pvalue)`` (p-values of 0 are drawn at a tenth of the
    smallest positive one). Genes with ``padj < alpha`` are coloured (up red, down blue;
    missing ``padj`` counts as not significant). The ``label_top`` significant genes with the
    smallest ``padj`` and every gene of ``highlight`` present are labelled. Rows without a
    finite fold change or p-value are left out; an empty table gives a "no test possible"
    panel.

    Parameters
    ----------
    de
        Columns ``gene``, ``log2FoldChange``, ``pvalue``, ``padj``.
    title
        Axes title.
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.
    highlight
        Genes to mark and label.
    alpha
        Significance level on ``padj``.
    label_top
        Number of top significant genes to label.

    Returns
    -------
    list of Path
    """
    require_columns(de, ["gene", "log2FoldChange", "pvalue", "padj"], "volcano_plot")
    df = pd.DataFrame(
        {
            "gene": de["gene"].astype(str).to_numpy(),
            "lfc": pd.to_numeric(de["log2FoldChange"], errors="coerce").to_numpy(dtype=float),
            "p": pd.to_numeric(de["pvalue"], errors="coerce").to_numpy(dtype=float),
            "padj": pd.to_numeric(de["padj"], errors="coerce").to_numpy(dtype=float),
        }
    )
    df = df.loc[np.isfinite(df["lfc"]) & np.isfinite(df["p"])].reset_index(drop=True)
    with style():
        fig = new_figure(4.2, 3.8)
        ax = fig.add_subplot()
        ax.set_title(title)
        if df.empty:
            message_panel(ax, "no test possible")
            return save_figure(fig, stem)
        positive = df["p"][df["p"] > 0]
        floor = positive.min() / 10 if not positive.empty else 1e-300
        df["y"] = -np.log10(df["p"].clip(lower=floor))
        sig = (df["padj"] < alpha).to_numpy()
        up, down = sig & (df["lfc"] > 0).to_numpy(), sig & (df["lfc"] < 0).to_numpy()
        for mask, color, label in (
            (~sig, "#BDBDBD", "n.s."),
            (up, "#C44E52", f"up ({up.sum()})"),
            (down, "#4C72B0", f"down ({down.sum()})"),
        ):
            ax.scatter(df.loc[mask, "lfc"], df.loc[mask, "y"], s=6, color=color, linewidths=0,
                       label=label, rasterized=bool(len(df) > 5000))  # fmt: skip
        ax.axvline(0, color="0.6", lw=0.6, ls="--")
        hl = df.loc[df["gene"].isin(list(highlight))]
        if not hl.empty:
            ax.scatter(hl["lfc"], hl["y"], s=18, facecolors="none", edgecolors="black",
                       linewidths=0.8, zorder=3)  # fmt: skip
        top = df.loc[sig].sort_values(["padj", "p", "gene"], kind="stable").head(label_top)
        to_label = pd.concat([top, hl]).drop_duplicates("gene")
        for row in to_label.itertuples(index=False):
            weight = "bold" if row.gene in highlight else "normal"
            ax.annotate(row.gene, (row.lfc, row.y), xytext=(3, 3), textcoords="offset points",
                        fontsize=6, fontweight=weight)  # fmt: skip
        ax.set_xlabel("log2 fold change")
        ax.set_ylabel("-log10 p-value")
        ax.legend(loc="upper left", title=f"padj < {alpha:g}", markerscale=2)
    return save_figure(fig, stem)


def volcano_plots(
    tables: Mapping[str, pd.DataFrame],
    *,
    out: str | Path,
    conditions: Sequence[str],
    highlight: Sequence[str] = (),
    alpha: float = 0.05,
) -> list[Path]:
    """One volcano plot per DE table, titled ``<group>: <test> vs <reference>``.

    Parameters
    ----------
    tables
        ``{group: DE table}`` (see :func:`volcano_plot`); each is drawn as ``out/<group>``.
    out
        Output folder (created).
    conditions
        The contrast's levels, reference first.
    highlight
        Genes to mark and label (the genes of interest).
    alpha
        Significance level on ``padj``.

    Returns
    -------
    list of Path
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for group, de in tables.items():
        written += volcano_plot(
            de,
            title=f"{group}: {conditions[1]} vs {conditions[0]}",
            stem=out / group,
            highlight=list(highlight),
            alpha=alpha,
        )
    return written


def _gsea_terms(table: pd.DataFrame, top: int, fdr_floor: float) -> tuple[pd.DataFrame, list]:
    """Rows of the ``top`` terms (smallest FDR in any cell type, then larger ``|NES|``)."""
    df = pd.DataFrame(
        {
            "term": table["Term"].astype(str).to_numpy(),
            "nes": pd.to_numeric(table["NES"], errors="coerce").to_numpy(dtype=float),
            "fdr": pd.to_numeric(table["FDR q-val"], errors="coerce").to_numpy(dtype=float),
            "cell_type": (
                as_labels(table["cell_type"])
                if "cell_type" in table.columns
                else pd.Series("all", index=table.index)
            ).to_numpy(),
        }
    )
    df = df.loc[np.isfinite(df["nes"])]
    df["fdr"] = df["fdr"].fillna(1.0).clip(lower=fdr_floor, upper=1.0)
    df = df.sort_values(
        ["fdr", "nes"],
        key=lambda s: s.abs() if s.name == "nes" else s,
        ascending=[True, False],
        kind="stable",
    )
    df = df.drop_duplicates(["term", "cell_type"])
    best = (
        df.assign(absnes=df["nes"].abs())
        .groupby("term")
        .agg(fdr=("fdr", "min"), absnes=("absnes", "max"))
        .reset_index()
    )
    best = best.sort_values(["fdr", "absnes", "term"], ascending=[True, False, True], kind="stable")
    terms = best["term"].head(top).tolist()
    return df.loc[df["term"].isin(terms)], terms


def gsea_dotplot(
    table: pd.DataFrame,
    *,
    stem: str | Path,
    top: int = 15,
    fdr_floor: float = 1e-4,
    max_term_length: int = 55,
) -> list[Path]:
    """Dot plot of prerank GSEA results across cell types.

    Draws the ``top`` terms with the smallest FDR in any cell type (ties: larger ``|NES|``,
    then name), best at the top, against cell types
    (:func:`~tmeflow.core._vocabulary.label_order`). Colour is NES (diverging, centred at 0);
    size is ``-log10 FDR`` with FDR floored at ``fdr_floor`` (permutation FDRs of 0). Rows
    without a numeric NES are left out; nothing left gives a "no gene sets" panel.

    Parameters
    ----------
    table
        gseapy ``res2d`` style: columns ``Term``, ``NES``, ``FDR q-val`` and ``cell_type``
        (optional: without it one column ``all``). Values may be strings.
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.
    top
        Number of terms drawn.
    fdr_floor
        Smallest FDR drawn.
    max_term_length
        Longer term names are shortened with an ellipsis.

    Returns
    -------
    list of Path
    """
    require_columns(table, ["Term", "NES", "FDR q-val"], "gsea_dotplot")
    df, terms = _gsea_terms(table, top, fdr_floor)
    cell_types = label_order(df["cell_type"])
    with style():
        longest = min(max((len(t) for t in terms), default=10), max_term_length)
        fig = new_figure(
            2.6 + 0.065 * longest + 0.4 * max(len(cell_types), 2),
            1.6 + 0.22 * max(len(terms), 4),
        )
        ax = fig.add_subplot()
        if df.empty:
            message_panel(ax, "no gene sets")
            return save_figure(fig, stem)
        x = df["cell_type"].map({c: i for i, c in enumerate(cell_types)}).to_numpy()
        y = df["term"].map({t: i for i, t in enumerate(terms)}).to_numpy()
        logfdr = -np.log10(df["fdr"].to_numpy())
        size_max = -np.log10(fdr_floor)

        def area(v):
            return 10 + 110 * np.asarray(v) / size_max

        vmax = max(1.0, float(np.abs(df["nes"]).max()))
        sc = ax.scatter(x, y, s=area(logfdr), c=df["nes"].to_numpy(), cmap="RdBu_r",
                        norm=TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax), edgecolors="0.3",
                        linewidths=0.3)  # fmt: skip
        short = [t if len(t) <= max_term_length else t[: max_term_length - 1] + "…" for t in terms]
        ax.set_yticks(np.arange(len(terms)), short)
        ax.set_xticks(np.arange(len(cell_types)), cell_types, rotation=45, ha="right")
        ax.set_xlim(-0.6, len(cell_types) - 0.4)
        ax.set_ylim(len(terms) - 0.4, -0.6)
        fig.colorbar(sc, ax=ax, shrink=0.5, label="NES")
        sizes = {
            f"{q:g}": float(np.sqrt(area(-np.log10(q)))) for q in (0.25, 0.05, 0.01, fdr_floor)
        }
        legend_right(ax, size_handles(sizes), title="FDR")
    return save_figure(fig, stem)

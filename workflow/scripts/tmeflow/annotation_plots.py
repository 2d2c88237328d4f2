"""Figures of integration quality, the resolution sweep and the annotation scores.

Built with the house style and deterministic saving of :mod:`tmeflow.figures`; every function
takes an output stem, writes ``{stem}.pdf`` and ``{stem}.png`` and returns the files.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from tmeflow.figures import label_colors, label_order, save_figure, style
from tmeflow.metrics import BATCH_METRICS, BIO_METRICS

_EMBEDDING_COLORS = ("#7F7F7F", "#4C72B0", "#55A868", "#C44E52")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _message(ax, text: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.3")


def integration_metrics_plot(
    metrics: pd.DataFrame, condition: pd.DataFrame, *, stem: str | Path
) -> list[Path]:
    """Plot the scib metrics per embedding and the condition signal per cell type.

    Bars for batch correction, bio conservation and the aggregates; flagged cell types are
    marked with ``!``.
    """
    embeddings = metrics["embedding"].astype(str).tolist()
    colors = {e: _EMBEDDING_COLORS[i % len(_EMBEDDING_COLORS)] for i, e in enumerate(embeddings)}
    groups = [
        ("batch correction", list(BATCH_METRICS)),
        ("bio conservation", list(BIO_METRICS)),
        ("aggregate", ["batch_correction", "bio_conservation", "total"]),
    ]
    width = 0.8 / max(len(embeddings), 1)
    with style():
        fig = _figure(10.0, 6.0)
        axes = fig.subplots(2, 3, squeeze=False)
        for ax, (title, cols) in zip(axes[0], groups, strict=True):
            x = np.arange(len(cols))
            for i, emb in enumerate(embeddings):
                row = metrics.loc[metrics["embedding"] == emb].iloc[0]
                vals = pd.to_numeric(row[cols], errors="coerce").to_numpy(dtype=float)
                ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(vals), width, color=colors[emb],
                       label=emb)  # fmt: skip
                for xi, v in zip(x, vals, strict=True):
                    if not np.isfinite(v):
                        ax.text(xi - 0.4 + width * (i + 0.5), 0.02, "NA", ha="center", fontsize=5)
            ax.set_xticks(x, cols, rotation=45, ha="right")
            ax.set_ylim(0, 1.05)
            ax.set_title(title)
        axes[0][0].set_ylabel("score (higher is better)")
        axes[0][2].legend(loc="upper right")
        gs = axes[1][0].get_gridspec()
        for ax in axes[1]:
            ax.remove()
        ax = fig.add_subplot(gs[1, :])
        sig_cols = [f"condition_signal_{e}" for e in embeddings]
        if condition.empty or not set(sig_cols) <= set(condition.columns):
            _message(ax, "condition signal not estimable")
        else:
            cell_types = label_order(condition["cell_type"])
            table = condition.set_index("cell_type").loc[cell_types]
            x = np.arange(len(cell_types))
            for i, emb in enumerate(embeddings):
                vals = table[f"condition_signal_{emb}"].to_numpy(dtype=float)
                ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(vals), width, color=colors[emb],
                       label=emb)  # fmt: skip
            flagged = table.get("flagged", pd.Series(False, index=table.index)).fillna(False)
            for xi, flag in zip(x, flagged.astype(bool), strict=True):
                if flag:
                    ax.text(xi, 1.0, "!", ha="center", va="bottom", color="#D62728",
                            fontweight="bold")  # fmt: skip
            ax.set_xticks(x, cell_types, rotation=45, ha="right")
            ax.set_ylim(0, 1.1)
            ax.set_ylabel("condition signal\n(leave-one-sample-out)")
            ax.set_title("condition separability within cell type (! = removed by integration)")
            ax.legend(loc="upper right")
    return save_figure(fig, stem)


def resolution_sweep_plot(sweep: pd.DataFrame, *, stem: str | Path) -> list[Path]:
    """Plot the number of clusters and their stability against the Leiden resolution.

    Stability is the seed ARI and the ARI with the previous resolution; the resolution used is
    marked.
    """
    with style():
        fig = _figure(6.5, 3.0)
        ax1, ax2 = fig.subplots(1, 2)
        if sweep.empty:
            _message(ax1, "no resolution sweep")
            _message(ax2, "")
            return save_figure(fig, stem)
        res = sweep["resolution"].to_numpy(dtype=float)
        ax1.plot(res, sweep["n_clusters"].to_numpy(dtype=float), marker="o", color="#4C72B0")
        if {"n_clusters_min", "n_clusters_max"} <= set(sweep.columns):
            ax1.fill_between(res, sweep["n_clusters_min"].to_numpy(dtype=float),
                             sweep["n_clusters_max"].to_numpy(dtype=float), color="#4C72B0",
                             alpha=0.2, linewidth=0)  # fmt: skip
        ax1.set_xlabel("Leiden resolution")
        ax1.set_ylabel("clusters")
        ax2.plot(res, sweep["stability"].to_numpy(dtype=float), marker="o", color="#55A868",
                 label="between seeds")  # fmt: skip
        ax2.plot(res, sweep["ari_previous"].to_numpy(dtype=float), marker="s", color="#8172B2",
                 label="vs previous resolution")  # fmt: skip
        ax2.set_xlabel("Leiden resolution")
        ax2.set_ylabel("adjusted Rand index")
        ax2.set_ylim(0, 1.05)
        ax2.legend(loc="lower left")
        chosen = sweep.loc[sweep.get("chosen", pd.Series(False, index=sweep.index)).astype(bool)]
        for ax in (ax1, ax2):
            for r in chosen["resolution"].to_numpy(dtype=float):
                ax.axvline(r, color="#D62728", ls="--", lw=0.8)
        if len(chosen):
            ax1.set_title(f"used: {float(chosen['resolution'].iloc[0]):g}")
    return save_figure(fig, stem)


def score_heatmap(table: pd.DataFrame, *, stem: str | Path) -> list[Path]:
    """Plot per-cluster mean marker scores as a heatmap.

    Rows: clusters with their label, columns: panel labels; one panel per level of the
    annotation table (cell types, each parent's subtypes and states). The best label of each
    cluster is boxed; unassigned clusters are in grey text.
    """
    levels = list(dict.fromkeys(table["level"].astype(str))) if len(table) else []
    heights = []
    blocks = []
    for level in levels:
        sub = table.loc[table["level"].astype(str) == level].copy()
        present = [c for c in sub.columns if c.startswith("score_") and sub[c].notna().any()]
        # columns in display order (cell-type vocabulary first), rows grouped by their label
        score_cols = [
            f"score_{lab}" for lab in label_order(c.removeprefix("score_") for c in present)
        ]
        rank = {lab: i for i, lab in enumerate(c.removeprefix("score_") for c in score_cols)}
        sub["_rank"] = [rank.get(str(b), len(rank)) for b in sub["best_label"]]
        sub["_unassigned"] = sub["label"].astype(str).str.contains("unassigned")
        sub = sub.sort_values(["_unassigned", "_rank"], kind="stable")
        if "species" in sub:
            sub["species"] = sub["species"].fillna("").astype(str)
        blocks.append((level, sub, score_cols))
        heights.append(1.0 + 0.22 * max(len(sub), 1))
    with style():
        if not blocks:
            fig = _figure(4.0, 2.0)
            _message(fig.add_subplot(), "no annotation scores")
            return save_figure(fig, stem)
        n_cols = max(len(cols) for _, _, cols in blocks)
        fig = _figure(2.5 + 0.45 * max(n_cols, 3), sum(heights) + 0.5)
        axes = fig.subplots(len(blocks), 1, squeeze=False, height_ratios=heights)[:, 0]
        image = None
        for ax, (level, sub, cols) in zip(axes, blocks, strict=True):
            if not cols:
                _message(ax, f"{level}: no scores")
                continue
            values = sub[cols].to_numpy(dtype=float)
            image = ax.imshow(values, aspect="auto", cmap="RdBu_r", interpolation="nearest",
                              norm=TwoSlopeNorm(vcenter=0.0, vmin=-2.0, vmax=2.0))  # fmt: skip
            labels = [c.removeprefix("score_") for c in cols]
            prefix = (
                sub["species"] + " " if "species" in sub and sub["species"].ne("").any() else ""
            )
            rows = (prefix + sub["group"].astype(str) + " (" + sub["n_cells"].astype(str)
                    + ") → " + sub["label"].astype(str)).tolist()  # fmt: skip
            ax.set_yticks(np.arange(len(rows)), rows)
            ax.set_xticks(np.arange(len(labels)), labels, rotation=45, ha="right")
            colors = label_colors(labels)
            for tick, lab in zip(ax.get_xticklabels(), labels, strict=True):
                tick.set_color(colors[lab] if level == "cell_type" else "black")
            for i, (best, label) in enumerate(zip(sub["best_label"], sub["label"], strict=True)):
                if best in labels:
                    j = labels.index(best)
                    ax.add_patch(_box(j, i, "black" if "unassigned" not in str(label) else "0.6"))
            for tick, label in zip(ax.get_yticklabels(), sub["label"].astype(str), strict=True):
                if "unassigned" in label:
                    tick.set_color("0.5")
            ax.set_title(level)
        if image is not None:
            fig.colorbar(image, ax=list(axes), shrink=0.4, label="mean marker z-score")
    return save_figure(fig, stem)


def _box(x: int, y: int, color: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor=color, linewidth=1.2)

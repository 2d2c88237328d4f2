"""Figures of the condition statistics not covered by :mod:`tmeflow.figures`.

Built with the house style and deterministic saving of :mod:`tmeflow.figures`.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from tmeflow.figures import condition_colors, save_figure, style

_LEVEL_TAG = {"cell_type": "", "cell_subtype": " (subtype)"}


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
    at the pooled share and one point per animal (its share). A gene without primary sources
    gets a "no counts" panel.

    Parameters
    ----------
    primary
        Output of :func:`tmeflow.sources.primary_summary` (``gene``, ``level``,
        ``condition``, ``cell_type``, ``share``).
    samples
        Output of :func:`tmeflow.sources.sample_shares` with a ``level`` column.
    stem
        Output stem; see :func:`tmeflow.figures.save_figure`.
    conditions
        Condition order, reference first.
    seed
        Seed of the horizontal jitter.
    """
    genes = list(dict.fromkeys(primary["gene"].astype(str))) if len(primary) else []
    conds = list(conditions)
    colors = condition_colors(conds)
    rng = np.random.default_rng(seed)
    n_panels = max(len(genes), 1)
    width = 0.8 / max(len(conds), 1)
    with style():
        fig = Figure(figsize=(3.6 * n_panels + 1.2, 3.4))
        FigureCanvasAgg(fig)
        axes = np.atleast_1d(fig.subplots(1, n_panels, squeeze=False)[0])
        if not genes:
            axes[0].text(0.5, 0.5, "no primary sources", ha="center", va="center")
            axes[0].set_axis_off()
        for ax, gene in zip(axes, genes, strict=False):
            prim = primary[primary["gene"].astype(str) == gene]
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
                        ax.bar(
                            pos,
                            float(pooled.iloc[0]),
                            width=width * 0.9,
                            color=colors[cond],
                            alpha=0.35,
                            edgecolor="none",
                        )
                    pts = samples[
                        (samples["gene"].astype(str) == gene)
                        & (samples["level"] == level)
                        & (samples["cell_type"].astype(str) == group)
                        & (samples["condition"].astype(str) == cond)
                    ]["share"].dropna()
                    if len(pts):
                        jitter = rng.uniform(-width * 0.25, width * 0.25, size=len(pts))
                        ax.scatter(
                            pos + jitter,
                            pts.to_numpy(float),
                            s=14,
                            color=colors[cond],
                            edgecolors="white",
                            linewidths=0.4,
                            zorder=3,
                        )
            labels = [g + _LEVEL_TAG.get(lvl, "") for lvl, g in groups]
            ax.set_xticks(np.arange(len(groups)), labels, rotation=45, ha="right")
            ax.set_xlim(-0.6, max(len(groups), 1) - 0.4)
            ax.set_ylim(0, 1)
            ax.set_title(f"primary sources of {gene}")
            ax.set_ylabel(f"share of {gene} UMIs per animal")
        handles = [
            Line2D([], [], marker="o", linestyle="", color=c, label=k) for k, c in colors.items()
        ]
        axes[-1].legend(
            handles=handles,
            title="condition",
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0,
        )
    return save_figure(fig, stem)

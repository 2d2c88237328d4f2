"""The sensitivity figure: each pre-specified hypothesis x setting -> its verdict.

One row per hypothesis, one column per setting (the configured one first, its label in bold);
a cell's colour is the verdict under that setting and its text the Holm-adjusted p-value.
Settings that could not be recomputed or are not available are hatched white.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.patches import Patch, Rectangle

from tmeflow.plots._style import message_panel, new_figure, save_figure, style
from tmeflow.plots._utils import legend_right, require_columns, wrap_note

__all__ = ["VERDICT_FILL", "sensitivity_plot"]

#: Fill colour (and hatch) of each verdict.
VERDICT_FILL: dict[str, tuple[str, str]] = {
    "supported": ("#1b7837", ""),
    "not supported": ("#f4a582", ""),
    "inconclusive": ("#fee090", ""),
    "not testable": ("#d9d9d9", ""),
    "not recomputable": ("white", "///"),
    "not available": ("white", ".."),
}


def sensitivity_plot(table: pd.DataFrame, *, stem: str | Path) -> list[Path]:
    """The verdict grid of :func:`tmeflow.stats.sensitivity`'s table.

    Parameters
    ----------
    table
        ``results/sensitivity.tsv`` (``setting``, ``value``, ``hypothesis``, ``verdict``,
        ``p_holm``), rows in table order.
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.

    Returns
    -------
    list of Path
    """
    require_columns(table, ["setting", "value", "hypothesis", "verdict", "p_holm"], "sensitivity")
    label = table["setting"].astype(str) + " " + table["value"].astype(str)
    label = label.where(table["setting"] != "configured", "configured")
    hyps, cols = list(pd.unique(table["hypothesis"])), list(pd.unique(label))
    records = table.to_dict("records")
    cell = {(r["hypothesis"], c): r for c, r in zip(label, records, strict=True)}
    with style():
        fig = new_figure(2.6 + 0.42 * len(cols), 2.3 + 0.32 * len(hyps))
        ax = fig.subplots()
        if table.empty:
            message_panel(ax, "no pre-specified hypotheses")
            return save_figure(fig, stem)
        for i, hyp in enumerate(hyps):
            for j, col in enumerate(cols):
                rec = cell.get((hyp, col))
                if rec is not None:
                    _cell(ax, i, j, rec)
        ax.set_xlim(-0.5, len(cols) - 0.5)
        ax.set_ylim(len(hyps) - 0.5, -0.5)
        ax.set_xticks(np.arange(len(cols)), cols, rotation=90, fontsize=6)
        ax.set_yticks(np.arange(len(hyps)), [wrap_note(h) for h in hyps], fontsize=6)
        if "configured" in cols:
            ax.get_xticklabels()[cols.index("configured")].set_fontweight("bold")
        ax.tick_params(length=0)
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        ax.set_title("Verdict with one choice changed (cell text: Holm p)", fontsize=7)
        handles = [
            Patch(facecolor=c, edgecolor="0.6", hatch=h, label=v)
            for v, (c, h) in VERDICT_FILL.items()
        ]
        legend_right(fig, handles)
    return save_figure(fig, stem)


def _cell(ax, i: int, j: int, rec: dict) -> None:
    color, hatch = VERDICT_FILL.get(str(rec["verdict"]), ("white", "xx"))
    ax.add_patch(
        Rectangle(
            (j - 0.5, i - 0.5),
            1,
            1,
            facecolor=color,
            edgecolor="0.6" if hatch else "white",
            hatch=hatch,
            lw=0.6 if hatch else 1,
        )
    )
    p = float(rec["p_holm"]) if pd.notna(rec["p_holm"]) else np.nan
    if np.isfinite(p):
        dark = sum(to_rgb(color)) < 1.5
        ax.text(j, i, f"{p:.1g}", ha="center", va="center", fontsize=4.5,
                color="white" if dark else "0.1")  # fmt: skip

"""The figure of the confirmatory table: one panel per pre-specified hypothesis.

Each panel shows the value behind the test for every animal of both arms (pseudobulk CPM of
the gene in the group, the group's share of the gene's UMIs, or the type's fraction of the
denominator), a line at each arm's mean, and in its title the verdict, the effect with its
interval and the Holm-adjusted p-value.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from tmeflow.core._vocabulary import condition_colors, ordered_conditions
from tmeflow.plots._style import message_panel, new_figure, save_figure, style
from tmeflow.plots._utils import dot_handles, legend_right, require_columns, wrap_note

__all__ = ["confirmatory_plot"]

_VERDICT_COLORS = {
    "supported": "#1b7837",
    "not supported": "0.25",
    "inconclusive": "#b35806",
    "not testable": "0.5",
}


def confirmatory_plot(
    table: pd.DataFrame,
    values: pd.DataFrame,
    *,
    stem: str | Path,
    conditions: list[str],
    seed: int = 0,
    ncols: int = 3,
) -> list[Path]:
    """One panel per row of the confirmatory table, a point per animal in both arms.

    Parameters
    ----------
    table
        :func:`tmeflow.stats.confirm`'s table (``hypothesis``, ``verdict``,
        ``effect``, ``ci_low``, ``ci_high``, ``p_holm``, ``reason``).
    values
        Its per-animal values (``hypothesis``, ``sample``, ``condition``, ``value``,
        ``value_label``).
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.
    conditions
        Condition order, reference first.
    seed
        Seed of the horizontal jitter (the figure is deterministic for a seed).
    ncols
        Panels per row.

    Returns
    -------
    list of Path
    """
    require_columns(
        table, ["hypothesis", "verdict", "effect", "p_holm", "reason"], "confirmatory_plot"
    )
    require_columns(
        values, ["hypothesis", "sample", "condition", "value", "value_label"], "confirmatory_plot"
    )
    conds = ordered_conditions(values["condition"].astype(str), conditions)
    colors = condition_colors(conds)
    rng = np.random.default_rng(seed)
    n = max(len(table), 1)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    with style():
        fig = new_figure(2.9 * ncols + 1.2, 2.8 * nrows)
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        if table.empty:
            message_panel(axes[0], "no pre-specified hypotheses")
        for ax, rec in zip(axes, table.to_dict("records"), strict=False):
            _panel(ax, rec, values[values["hypothesis"] == rec["hypothesis"]], conds, colors, rng)
        for ax in axes[len(table) :]:
            ax.set_axis_off()
        legend_right(fig, dot_handles(colors))
    return save_figure(fig, stem)


def _panel(ax, rec: dict, vals: pd.DataFrame, conds: list[str], colors: dict, rng) -> None:
    verdict = str(rec["verdict"])
    title = f"{wrap_note(str(rec['hypothesis']))}\n{verdict}"
    if np.isfinite(rec["effect"]):
        title += f"\neffect {rec['effect']:+.2f}"
        if np.isfinite(rec.get("ci_low", np.nan)):
            title += f" [{rec['ci_low']:+.2f}, {rec['ci_high']:+.2f}]"
        title += f", Holm p {rec['p_holm']:.2g}"
    ax.set_title(title, fontsize=7, color=_VERDICT_COLORS.get(verdict, "0.25"))
    if vals.empty:
        message_panel(ax, wrap_note(str(rec["reason"]) or "no per-animal values"))
        return
    for j, cond in enumerate(conds):
        v = vals.loc[vals["condition"].astype(str) == cond, "value"].to_numpy(float)
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        ax.plot([j - 0.25, j + 0.25], [v.mean()] * 2, color=colors[cond], lw=1.5)
        ax.scatter(j + rng.uniform(-0.12, 0.12, v.size), v, s=16, color=colors[cond],
                   edgecolors="white", linewidths=0.4, zorder=3)  # fmt: skip
    ax.set_xticks(np.arange(len(conds)), conds)
    ax.set_xlim(-0.6, len(conds) - 0.4)
    ax.set_ylim(bottom=0)
    ax.set_ylabel(wrap_note(str(vals["value_label"].iat[0])), fontsize=6)

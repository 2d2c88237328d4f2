"""The sensitivity figures of :func:`tmeflow.stats.sensitivity`'s table.

:func:`sensitivity_plot`, the verdict grid: one row per hypothesis, one column per setting (the
configured one first, its label in bold); a cell's colour is the verdict under that setting and
its text the Holm-adjusted p-value. Settings that could not be recomputed or are not available
are hatched white.

:func:`specification_curve`, one panel per hypothesis: the effect with its 95% interval under
every setting that gave one, sorted by effect, coloured by verdict, the configured setting
marked, a line at no effect; the settings without an effect are counted below the panel.
"""

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from tmeflow.plots._style import message_panel, new_figure, save_figure, style
from tmeflow.plots._utils import legend_right, require_columns, wrap_note

__all__ = ["VERDICT_FILL", "sensitivity_plot", "specification_curve"]

CONFIGURED = "configured"

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
    label = _labels(table)
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
        if CONFIGURED in cols:
            ax.get_xticklabels()[cols.index(CONFIGURED)].set_fontweight("bold")
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


def specification_curve(
    table: pd.DataFrame,
    *,
    stem: str | Path,
    ncols: int = 3,
    formats: Sequence[str] = ("pdf", "png"),
) -> list[Path]:
    """One specification curve per hypothesis of :func:`tmeflow.stats.sensitivity`'s table.

    In each panel the settings whose effect is finite are sorted by effect (ties by setting
    label), one point per setting at its rank with its 95% interval (``ci_low``, ``ci_high``;
    a bare point where they are missing or NaN, as in tables written before they existed),
    coloured by its verdict (:data:`VERDICT_FILL`). The configured setting is the larger
    black-edged point, annotated and in bold below the axis. The dashed line is no effect
    (:func:`_null`); the y label is the ``effect_scale``. The title says in how many of the
    plotted settings the hypothesis is supported, and the settings without an effect (not
    recomputable, not available, not testable) are counted below the panel.

    Parameters
    ----------
    table
        ``results/sensitivity.tsv`` (``setting``, ``value``, ``hypothesis``, ``verdict``,
        ``effect``, ``effect_scale``; ``ci_low`` and ``ci_high`` where present). Panels
        follow the hypotheses' first appearance.
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.
    ncols
        Panels per row.
    formats
        File formats, as :func:`~tmeflow.plots._style.save_figure`'s.

    Returns
    -------
    list of Path
    """
    require_columns(
        table,
        ["setting", "value", "hypothesis", "verdict", "effect", "effect_scale"],
        "specification_curve",
    )
    rows = _curve_order(table)
    hyps = list(pd.unique(rows["hypothesis"]))
    n = max(len(hyps), 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    n_points = int(rows["computed"].groupby(rows["hypothesis"]).sum().max()) if hyps else 0
    with style():
        fig = new_figure(max(3.1, 1.2 + 0.09 * n_points) * ncols + 1.4, 3.4 * nrows)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        if not hyps:
            message_panel(axes[0], "no pre-specified hypotheses")
        for ax, hyp in zip(axes, hyps, strict=False):
            _curve_panel(ax, hyp, rows[rows["hypothesis"] == hyp])
        for ax in axes[len(hyps) :]:
            ax.set_axis_off()
        drawn = set(rows.loc[rows["computed"], "verdict"])
        handles = [
            Line2D([], [], marker="o", linestyle="", markerfacecolor=c, markeredgecolor="0.3",
                   markeredgewidth=0.5, markersize=5, label=v)
            for v, (c, _) in VERDICT_FILL.items()
            if v in drawn
        ]  # fmt: skip
        if rows["configured"].to_numpy(bool)[rows["computed"].to_numpy(bool)].any():
            handles.append(
                Line2D([], [], marker="o", linestyle="", markerfacecolor="white",
                       markeredgecolor="black", markeredgewidth=1.2, markersize=7,
                       label=CONFIGURED)
            )  # fmt: skip
        legend_right(fig, handles, title="verdict")
    return save_figure(fig, stem, formats=formats)


def _labels(table: pd.DataFrame) -> pd.Series:
    """``<setting> <value>``, and ``configured`` for the configured run."""
    label = table["setting"].astype(str) + " " + table["value"].astype(str)
    return label.where(table["setting"].astype(str) != CONFIGURED, CONFIGURED)


def _numeric(table: pd.DataFrame, column: str) -> np.ndarray:
    """``table[column]`` as floats (text and missing as NaN); all NaN without the column."""
    values = table.get(column)
    if values is None:
        return np.full(len(table), np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(float)


def _curve_order(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the specification curves in drawing order.

    Hypotheses in order of first appearance; within one, the settings with a finite effect
    sorted by effect (ties by label), ``rank`` 0, 1..., then the others by label with
    ``rank`` -1. Columns ``hypothesis``, ``label``, ``verdict``, ``effect_scale``, ``effect``,
    ``ci_low``, ``ci_high`` (floats; NaN where absent), ``computed``, ``configured``,
    ``rank``; a fresh index.
    """
    effect = _numeric(table, "effect")
    scale = table["effect_scale"].astype(object).where(table["effect_scale"].notna(), "")
    rows = pd.DataFrame(
        {
            "hypothesis": table["hypothesis"].astype(str).to_numpy(),
            "label": _labels(table).to_numpy(),
            "verdict": table["verdict"].astype(str).to_numpy(),
            "effect_scale": scale.astype(str).to_numpy(),
            "effect": effect,
            "ci_low": _numeric(table, "ci_low"),
            "ci_high": _numeric(table, "ci_high"),
            "computed": np.isfinite(effect),
            "configured": (table["setting"].astype(str) == CONFIGURED).to_numpy(),
        }
    )
    rows["_hyp"] = pd.factorize(rows["hypothesis"])[0]
    rows["_key"] = rows["effect"].where(rows["computed"], 0.0)
    rows = rows.sort_values(
        ["_hyp", "computed", "_key", "label"],
        ascending=[True, False, True, True],
        kind="mergesort",
    )
    rank = rows.groupby("_hyp").cumcount()
    rows["rank"] = rank.where(rows["computed"], -1).astype(int)
    return rows.drop(columns=["_hyp", "_key"]).reset_index(drop=True)


def _null(scale: str) -> float:
    """The effect meaning "no effect" on ``scale``: 1 for a ratio on the linear scale, else 0.

    Every scale the confirmatory family writes today (log2 fold change, mean log2
    enrichment, logit differences, differences in score) is a difference or a log ratio: 0.
    """
    text = scale.lower()
    return 1.0 if "ratio" in text and "log" not in text else 0.0


def _settings(n: int) -> str:
    return f"{n} setting{'' if n == 1 else 's'}"


def _curve_panel(ax, hyp: str, rows: pd.DataFrame) -> None:
    curve = rows[rows["computed"]]
    n_missing = len(rows) - len(curve)
    missing = f"{_settings(n_missing)} not computed"
    if rows["configured"].any() and not curve["configured"].any():
        missing += ", the configured one among them"
    n_supported = int((curve["verdict"] == "supported").sum())
    if curve.empty:
        ax.set_title(wrap_note(hyp), fontsize=7)
        message_panel(ax, f"no setting gave an effect\n{wrap_note(f'({missing})')}")
        return
    title = f"{wrap_note(hyp)}\nsupported in {n_supported} of {_settings(len(curve))}"
    ax.set_title(title, fontsize=7)
    scales = [s for s in pd.unique(rows["effect_scale"]) if s]
    null = _null(scales[0]) if scales else 0.0
    ax.axhline(null, color="0.5", lw=0.6, ls="--", zorder=0)
    x = curve["rank"].to_numpy(float)
    y, lo, hi = (curve[c].to_numpy(float) for c in ("effect", "ci_low", "ci_high"))
    interval = np.isfinite(lo) & np.isfinite(hi)
    ax.vlines(x[interval], lo[interval], hi[interval], color="0.35", lw=0.8, zorder=1)
    colors = [VERDICT_FILL.get(v, ("white", ""))[0] for v in curve["verdict"]]
    configured = curve["configured"].to_numpy(bool)
    ax.scatter(x, y, s=18, c=colors, edgecolors="0.3", linewidths=0.5, zorder=2)
    for i in np.flatnonzero(configured):
        ax.scatter(x[i], y[i], s=46, c=[colors[i]], edgecolors="black", linewidths=1.2,
                   zorder=3)  # fmt: skip
        top = max(y[i], hi[i]) if interval[i] else y[i]
        ax.annotate(CONFIGURED, (x[i], top), xytext=(0, 4), textcoords="offset points",
                    ha="center", va="bottom", fontsize=5.5)  # fmt: skip
    labels = curve["label"].tolist()
    ax.set_xticks(x, labels, rotation=90, fontsize=4.5)
    for tick, is_configured in zip(ax.get_xticklabels(), configured, strict=True):
        if is_configured:
            tick.set_fontweight("bold")
    ax.set_xlim(-0.7, len(curve) - 0.3)
    ax.margins(y=0.15)
    ax.set_ylabel(wrap_note(" / ".join(scales)) if scales else "effect", fontsize=6)
    if n_missing:
        ax.set_xlabel(missing, fontsize=6, color="0.3")

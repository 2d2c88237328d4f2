"""QC figures that explain themselves.

Per-sample metrics before/after with the thresholds applied, and the per-sample ambient
(cross-species) contamination.
"""

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from tmeflow._utils import natural_key
from tmeflow.cells._cross_species import AmbientModel
from tmeflow.core._vocabulary import (
    condition_colors,
    label_colors,
    ordered_conditions,
    sample_order,
)
from tmeflow.plots._style import message_panel, new_figure, save_figure, style

logger = logging.getLogger(__name__)

__all__ = [
    "CONTAMINATION",
    "PANELS",
    "contamination_plot",
    "crossspecies_plot",
    "qc_sample_plot",
    "removed_by_label_plot",
]

PANELS: tuple[tuple[str, str, str], ...] = (
    ("total_counts", "min_counts", "UMIs per cell"),
    ("n_genes_by_counts", "min_genes", "genes per cell"),
    ("pct_counts_mt", "max_pct_mito", "% mitochondrial UMIs"),
)
"""(obs column, threshold name in the metrics, axis label) per panel."""
_LOG = frozenset({"total_counts", "n_genes_by_counts"})
_GROUPS = ("human", "mouse", "mixed", "all")
_THRESHOLD_COLOR = "#D62728"


def _thresholds(metrics: Mapping[str, Any], name: str) -> dict[str, float]:
    """``{group: value}`` from ``threshold_<name>_<group>`` metrics columns."""
    out = {}
    pat = re.compile(rf"^threshold_{re.escape(name)}_(.+)$")
    for key, value in metrics.items():
        m = pat.match(str(key))
        if m and value is not None and np.isfinite(float(value)):
            out[m.group(1)] = float(value)
    return out


def _explanation(metrics: Mapping[str, Any]) -> str:
    reasons = [
        f"{k.removeprefix('removed_').replace('_', ' ')} {int(v)}"
        for k, v in metrics.items()
        if str(k).startswith("removed_") and int(v) > 0
    ]
    head = f"{int(metrics.get('n_cells_in', 0))} cells in, {int(metrics.get('n_kept', 0))} kept"
    return head + ("; removed: " + ", ".join(reasons) if reasons else "; none removed")


def _violin(ax, v: np.ndarray, pos: float, color: str, alpha: float, rng) -> None:
    """One group's values as a violin with its median, or as points when degenerate."""
    if np.unique(v).size >= 2:
        parts = ax.violinplot(v, positions=[pos], widths=0.36, showextrema=False, showmedians=True)
        for body in parts["bodies"]:
            body.set_facecolor(color)
            body.set_edgecolor("none")
            body.set_alpha(alpha)
        parts["cmedians"].set_color("0.15")
        parts["cmedians"].set_linewidth(0.8)
    elif v.size:
        jitter = rng.uniform(-0.05, 0.05, v.size)
        ax.scatter(pos + jitter, v, s=6, color=color, alpha=alpha)


def qc_sample_plot(
    cells: pd.DataFrame, metrics: Mapping[str, Any], *, sample: str, stem: str | Path
) -> list[Path]:
    """One sample's QC metrics before and after filtering, per species, thresholds drawn.

    Parameters
    ----------
    cells
        Per-cell table of the sample (``results/qc/<sample>.cells.tsv.gz``): the metric
        columns of :data:`PANELS`, boolean ``qc_pass`` and, optionally, ``species``.
    metrics
        The sample's QC metrics row (``results/qc/<sample>.metrics.tsv``); its
        ``threshold_<name>_<group>`` entries are drawn as dashed red lines over their group,
        its ``removed_<reason>`` counts are written in the title.
    sample
        Sample name for the title.
    stem
        Output stem (``.pdf`` and ``.png`` are written).

    Returns
    -------
    list of Path
        The files written. Each panel shows, per species group, all cells (light) and the
        cells passing QC (dark); a group without cells passing is drawn with its cells only.
    """
    missing = [c for c, _, _ in PANELS if c not in cells.columns]
    if missing or "qc_pass" not in cells.columns:
        msg = f"qc_sample_plot: sample {sample!r}: columns {missing or ['qc_pass']} missing"
        raise ValueError(msg)
    groups_col = (
        cells["species"].astype(str)
        if "species" in cells.columns
        else pd.Series("all", index=cells.index)
    )
    present = [g for g in _GROUPS if (groups_col == g).any()]
    present += sorted(set(groups_col) - set(present))
    colors = label_colors(present)
    passed = cells["qc_pass"].astype(str).str.lower().isin(["true", "1"]).to_numpy()
    with style():
        fig = new_figure(2.4 + 1.3 * max(len(present), 1), 6.2)
        axes = fig.subplots(len(PANELS), 1, squeeze=False)[:, 0]
        rng = np.random.default_rng(0)
        for ax, (col, tname, label) in zip(axes, PANELS, strict=True):
            ths = _thresholds(metrics, tname)
            log = col in _LOG
            values = pd.to_numeric(cells[col], errors="coerce").to_numpy(dtype=float)
            if log:
                values = np.log10(1 + np.clip(values, 0, None))
            for i, g in enumerate(present):
                in_g = (groups_col == g).to_numpy()
                for j, (mask, alpha) in enumerate(((in_g, 0.35), (in_g & passed, 0.9))):
                    v = values[mask]
                    _violin(ax, v[np.isfinite(v)], i - 0.2 + 0.4 * j, colors[g], alpha, rng)
                t = ths.get(g, ths.get("all"))
                if t is not None:
                    y = float(np.log10(1 + max(t, 0))) if log else t
                    ax.plot([i - 0.45, i + 0.45], [y, y], color=_THRESHOLD_COLOR, lw=1, ls="--")
            ax.set_ylabel(f"log10(1 + {label})" if log else label)
            ax.set_xticks(np.arange(len(present)), present if ax is axes[-1] else [])
            ax.set_xlim(-0.6, max(len(present), 1) - 0.4)
        fig.suptitle(f"{sample}: {_explanation(metrics)}", fontsize=7, wrap=True)
        handles = [
            Patch(facecolor="0.6", alpha=0.35, label="before QC (left)"),
            Patch(facecolor="0.3", alpha=0.9, label="after QC (right)"),
            Line2D([], [], color=_THRESHOLD_COLOR, ls="--", label="threshold"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False, fontsize=6)
    return save_figure(fig, stem)


CONTAMINATION = (
    ("mouse_in_human", "human", "mouse UMIs in human cells"),
    ("human_in_mouse", "mouse", "human UMIs in mouse cells"),
)
"""(summary column infix, species of the cells, legend label) per bar."""


def _by_arm(summary: pd.DataFrame, conditions: Sequence[str] | None) -> pd.DataFrame:
    """Rows of ``summary`` (one per sample) by arm, reference first, then naturally."""
    samples = summary["sample"].astype(str)
    if "condition" not in summary.columns:
        order = sorted(samples, key=natural_key)
    else:
        by_sample = dict(zip(samples, summary["condition"].astype(str), strict=True))
        order = sample_order(by_sample, ordered_conditions(by_sample.values(), conditions))
    rank = {s: i for i, s in enumerate(order)}
    rows = np.argsort([rank[s] for s in samples], kind="stable")
    return summary.assign(sample=samples).iloc[rows].reset_index(drop=True)


def contamination_plot(
    summary: pd.DataFrame, *, stem: str | Path, conditions: Sequence[str] | None = None
) -> list[Path]:
    """Per-sample ambient contamination from the species-exclusive genes.

    For each sample, the median (bar) and mean (black tick) percentage of the other species'
    UMIs in cells called human (mouse UMIs) and in cells called mouse (human UMIs), from the
    ``contamination_<kind>_median``/``_mean`` columns of ``results/qc/summary.tsv``. Without
    those columns (not a xenograft) a panel says so. NaN (no cells of that species) is left
    blank and labelled ``n/a``.

    Parameters
    ----------
    summary
        One row per sample: ``sample``, optionally ``condition``, and the contamination
        columns.
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.
    conditions
        The contrast's levels, reference first. Samples are drawn by arm in this order (other
        conditions after), then naturally; without a ``condition`` column, naturally.

    Returns
    -------
    list of Path
    """
    if "sample" in summary:
        summary = _by_arm(summary, conditions)
    samples = summary["sample"].astype(str).tolist() if "sample" in summary else []
    colors = label_colors(["human", "mouse"])
    have = all(f"contamination_{k}_median" in summary for k, _, _ in CONTAMINATION)
    with style():
        fig = new_figure(2.4 + 0.5 * max(len(samples), 2), 3.0)
        ax = fig.subplots(1, 1)
        if not have or not samples:
            message_panel(ax, "no contamination estimate\n(not a xenograft run)", color="black")
            return save_figure(fig, stem)
        x = np.arange(len(samples))
        for j, (kind, sp_, label) in enumerate(CONTAMINATION):
            med = 100 * pd.to_numeric(summary[f"contamination_{kind}_median"]).to_numpy()
            mean_col = f"contamination_{kind}_mean"
            mean = (
                100 * pd.to_numeric(summary[mean_col]).to_numpy()
                if mean_col in summary
                else np.full(len(samples), np.nan)
            )
            pos = x - 0.2 + 0.4 * j
            ax.bar(pos, np.nan_to_num(med), width=0.38, color=colors[sp_], label=label)
            ax.scatter(pos, mean, marker="_", s=60, color="black", zorder=3)
            for p_, m in zip(pos, med, strict=True):
                if not np.isfinite(m):
                    ax.text(p_, 0, "n/a", ha="center", va="bottom", fontsize=5)
        ax.set_xticks(x, samples, rotation=90)
        ax.set_ylabel("% of the cell's UMIs (median; tick = mean)")
        ax.set_title("ambient RNA: other-species UMIs per cell", fontsize=8)
        ax.legend(frameon=False, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, stem)


_CALL_COLORS = {"fraction": "#7F7F7F", "ambient_test": "#000000"}
_BOUNDARY_COLOR = "#7B3294"  # purple: distinct from the species colours (human is red)


def _boundary(model: AmbientModel, species: str, p_star: float, n: np.ndarray) -> np.ndarray:
    """Smallest other-species count called at one-sided p <= ``p_star``, per total ``n``.

    With the model's rate and spread at each droplet size (``rate_at``, ``concentration_at``):
    the soup a droplet carries need not grow in proportion to its size.
    """
    from scipy import stats

    a = model.rate_at(species, n)
    c = model.concentration_at(species, n)
    k = np.where(
        np.isfinite(c),
        stats.betabinom.isf(p_star, n, a * np.where(np.isfinite(c), c, 1.0),
                            (1 - a) * np.where(np.isfinite(c), c, 1.0)),
        stats.binom.isf(p_star, n, a),
    )  # fmt: skip
    return np.asarray(k, dtype=float) + 1


def crossspecies_plot(
    obs: pd.DataFrame, model: Mapping[str, Any] | None, *, stem: str | Path, sample: str
) -> list[Path]:
    """Own- vs other-species UMIs per droplet, with the ambient expectation and the boundary.

    One panel per dominant species (log-log; other-species UMIs + 1): droplets called pure in the
    species' colour, ``mixed`` by ``min_fraction`` in grey, ``mixed`` only by the ambient count test
    as black crosses; the dashed line is the ambient expectation (``total * a_S(total)``, the
    sample's size-dependent soup rate), the solid purple one the called boundary (the other-species
    count at which the one-sided p-value reaches the largest p the BH procedure called).

    Parameters
    ----------
    obs
        ``obs`` of ``results/species/{sample}.h5ad``: ``n_counts_human``, ``n_counts_mouse``,
        ``species`` and, when the test ran, ``species_reason``, ``crossspecies_p``,
        ``crossspecies_q``.
    model
        ``uns["species"]["ambient"]`` (``rate``, ``concentration``, ``fdr``); ``None`` when
        the test did not run (a panel says so).
    stem, sample
        Output stem (see :func:`~tmeflow.plots._style.save_figure`) and the title.

    Returns
    -------
    list of Path
    """
    colors = label_colors(["human", "mouse"])
    with style():
        fig = new_figure(6.4, 3.0)
        axes = fig.subplots(1, 2)
        if model is None or "crossspecies_q" not in obs:
            for ax in axes:
                message_panel(ax, "no cross-species test\n(not a xenograft run)", color="black")
            return save_figure(fig, stem)
        n_h = obs["n_counts_human"].to_numpy(dtype=float)
        n_m = obs["n_counts_mouse"].to_numpy(dtype=float)
        reason = obs["species_reason"].astype(str).to_numpy()
        p = obs["crossspecies_p"].to_numpy(dtype=float)
        q = obs["crossspecies_q"].to_numpy(dtype=float)
        called = q < float(model["fdr"])
        p_star = (
            float(np.nanmax(p[called])) if called.any() else float(model["fdr"]) / max(len(p), 1)
        )
        for ax, sp_ in zip(axes, ("human", "mouse"), strict=True):
            own, other = (n_h, n_m) if sp_ == "human" else (n_m, n_h)
            dom = own >= other if sp_ == "human" else own > other
            cc = _CALL_COLORS
            groups = (
                (sp_, dom & (reason == ""), colors[sp_], "o", 4),
                ("mixed (fraction)", dom & (reason == "fraction"), cc["fraction"], "o", 4),
                ("mixed (ambient test)", dom & (reason == "ambient_test"), cc["ambient_test"],
                 "x", 10),
            )  # fmt: skip
            for label, sel, color, marker, size in groups:
                ax.scatter(
                    own[sel], other[sel] + 1, s=size, color=color, alpha=0.8, marker=marker,
                    lw=0.6 if marker == "x" else 0, label=f"{label} ({int(sel.sum())})",
                )  # fmt: skip
            tested = model.get("source", {}).get(sp_) != "floor"  # floor: no rate, not tested
            if tested:
                hi = max(float(np.nanmax(own[dom])) if dom.any() else 10.0, 10.0)
                x = np.geomspace(10, hi * 1.2, 100)
                fit = AmbientModel.from_dict(model)
                a = fit.rate_at(sp_, x)
                ax.plot(
                    x, x * a / (1 - a) + 1, ls="--", color="black", lw=0.8,
                    label="ambient expected",
                )  # fmt: skip
                n = np.rint(x).astype(np.int64)
                k = _boundary(fit, sp_, p_star, n)
                # the boundary in (own, other) coordinates: own = n - k
                ok = np.isfinite(k) & (n - k > 0)
                ax.plot(
                    n[ok] - k[ok], k[ok] + 1, color=_BOUNDARY_COLOR, lw=0.8,
                    label="called boundary",
                )  # fmt: skip
            ax.set_xscale("log")
            ax.set_yscale("log")
            other_sp = "mouse" if sp_ == "human" else "human"
            ax.set_xlabel(f"{sp_} UMIs")
            ax.set_ylabel(f"{other_sp} UMIs + 1")
            ax.set_title(
                f"{sample}: {sp_}-dominant droplets"
                + ("" if tested else "\n(not tested: too few pure cells)"),
                fontsize=8,
            )
            ax.legend(frameon=False, fontsize=5, loc="upper left")
    return save_figure(fig, stem)


def removed_by_label_plot(
    table: pd.DataFrame,
    flags: pd.DataFrame,
    *,
    stem: str | Path,
    conditions: Sequence[str] | None = None,
) -> list[Path]:
    """Cells removed before annotation, by the label of their nearest kept cells and by arm.

    Left: the removed cells per label, one bar per arm (summed over its samples); right: the
    removal rate per label and arm (removed / (removed + kept) over all the arm's samples,
    the ``rates`` of ``flags``: the table lists only samples with removed cells). A
    label whose rate differs between arms beyond the flag (``flagged`` in the table, see
    :func:`tmeflow.cells.removed_flags`) is starred. An empty table gives a panel saying so.

    Parameters
    ----------
    table
        ``results/qc/removed_by_label.tsv`` (:func:`tmeflow.cells.removed_table`).
    flags
        ``results/qc/removed_flags.tsv`` (:func:`tmeflow.cells.removed_flags`).
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.
    conditions
        The contrast's levels, reference first (other conditions after).

    Returns
    -------
    list of Path
    """
    with style():
        if table.empty:
            fig = new_figure(4.0, 2.5)
            message_panel(fig.subplots(1, 1), "no cell removed", color="black")
            return save_figure(fig, stem)
        t = table.assign(label=table["label"].astype(str), condition=table["condition"].astype(str))
        arms = ordered_conditions(t["condition"].unique(), conditions)
        removed = t.pivot_table("n_removed", "label", "condition", aggfunc="sum", fill_value=0)
        removed = removed.reindex(columns=arms, fill_value=0)
        order = removed.sum(axis=1).sort_values(ascending=False, kind="stable").index
        removed = removed.loc[order]
        rate = _arm_rates(flags, order, arms)
        flagged = set(t.loc[t["flagged"].astype(str).str.lower() == "true", "label"])
        names = [f"{lab} *" if lab in flagged else lab for lab in order]
        colors = condition_colors(list(arms))
        fig = new_figure(2.0 + 0.45 * max(len(order), 2) * 2, 3.2)
        ax_n, ax_r = fig.subplots(1, 2)
        x = np.arange(len(order))
        width = 0.8 / max(len(arms), 1)
        for j, arm in enumerate(arms):
            pos = x - 0.4 + width * (j + 0.5)
            ax_n.bar(pos, removed[arm].to_numpy(), width=width, color=colors[arm], label=arm)
            ax_r.bar(pos, 100 * np.nan_to_num(rate[:, j]), width=width, color=colors[arm])
        for ax, ylab in ((ax_n, "removed cells"), (ax_r, "% of the label's cells removed")):
            ax.set_xticks(x, names, rotation=90)
            ax.set_ylabel(ylab)
        ax_n.set_title("removed cells by nearest kept label", fontsize=8)
        ax_r.set_title("removal rate (* arms differ > 2x)", fontsize=8)
        ax_n.legend(frameon=False, fontsize=6)
    return save_figure(fig, stem)


def _arm_rates(flags: pd.DataFrame, labels: Sequence[str], arms: Sequence[str]) -> np.ndarray:
    """Labels x arms removal rates from the flags' ``rates`` (``arm=rate; ...``); NaN absent."""
    out = np.full((len(labels), len(arms)), np.nan)
    by_label = dict(
        zip(flags["label"].astype(str), flags["rates"].fillna("").astype(str), strict=True)
    )
    for i, lab in enumerate(labels):
        for part in filter(None, by_label.get(str(lab), "").split("; ")):
            arm, _, value = part.rpartition("=")
            if arm in arms:
                out[i, list(arms).index(arm)] = float(value)
    return out

"""Figures of the ligand-receptor communication (:mod:`tmeflow.stats._communication`).

- :func:`dotplot`: the top pairs of each sender -> receiver, per arm: dot size = the animals'
  mean fraction expressing (the lower of ligand and receptor), colour = mean score;
- :func:`summary`: sender x receiver heat map of the pairs scored and of those changed
  (BH padj < alpha), the arrow of each cell says which way most changed pairs go;
- :func:`hypotheses`: one panel per pre-specified ``interaction`` hypothesis, a point per
  animal (:func:`tmeflow.plots.confirmatory.confirmatory_plot` on those rows).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from tmeflow.core._vocabulary import ordered_conditions
from tmeflow.plots._style import message_panel, new_figure, save_figure, style
from tmeflow.plots._utils import require_columns
from tmeflow.plots.confirmatory import confirmatory_plot

__all__ = ["dotplot", "hypotheses", "summary"]


def top_pairs(comparison: pd.DataFrame, top_n: int) -> pd.DataFrame:
    """The ``top_n`` best-ranked pairs (``rank``) of every sender -> receiver."""
    return comparison[comparison["rank"] <= top_n].sort_values(
        ["sender", "receiver", "rank"], kind="mergesort"
    )


def dotplot(
    scores: pd.DataFrame,
    comparison: pd.DataFrame,
    *,
    stem: str | Path,
    conditions: list[str],
    top_n: int = 5,
) -> list[Path]:
    """Top pairs per sender -> receiver (rows) in each arm (columns)."""
    require_columns(comparison, ["sender", "receiver", "interaction", "rank", "padj"], "dotplot")
    require_columns(scores, ["sender", "receiver", "interaction", "condition", "score"], "dotplot")
    top = top_pairs(comparison, top_n)
    conds = ordered_conditions(scores["condition"].astype(str), conditions)
    labels = [f"{r.sender} > {r.receiver}: {r.interaction}" for r in top.itertuples()]
    with style():
        fig = new_figure(2.0 + 1.0 * len(conds) + 2.5, 1.2 + 0.17 * max(len(top), 1))
        ax = fig.add_subplot(1, 1, 1)
        if top.empty:
            message_panel(ax, "no ligand-receptor pair scored")
            return save_figure(fig, stem)
        key = ["sender", "receiver", "interaction", "condition"]
        frac = np.minimum(scores["ligand_frac"], scores["receptor_frac"])
        mean = scores.assign(frac=frac).groupby(key, sort=False)[["score", "frac"]].mean()
        finite = mean["score"].to_numpy(float)
        finite = finite[np.isfinite(finite)]
        vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        sc = None
        for i, r in enumerate(top.itertuples()):
            for j, c in enumerate(conds):
                k = (r.sender, r.receiver, r.interaction, c)
                if k not in mean.index:
                    continue
                m = mean.loc[k]
                if not (np.isfinite(m["score"]) and np.isfinite(m["frac"])):
                    continue  # no cell of the sender or the receiver in that arm's animals
                sc = ax.scatter(j, i, s=10 + 120 * float(m["frac"]), c=[float(m["score"])],
                                cmap="viridis", vmin=0, vmax=vmax, edgecolors="0.3",
                                linewidths=0.3)  # fmt: skip
            star = "*" if np.isfinite(r.padj) and r.padj < 0.05 else ""
            ax.text(len(conds) - 0.4, i, f"{star}padj {r.padj:.2g}", fontsize=5, va="center")
        ax.set_yticks(np.arange(len(top)), labels, fontsize=5)
        ax.set_xticks(np.arange(len(conds)), conds)
        ax.set_xlim(-0.5, len(conds) + 0.6)
        ax.invert_yaxis()
        ax.set_title(f"top {top_n} pairs per sender > receiver (rank of the arm comparison)")
        if sc is not None:
            fig.colorbar(sc, ax=ax, label="mean score sqrt(L x R)", shrink=0.5)
    return save_figure(fig, stem)


def summary(comparison: pd.DataFrame, *, stem: str | Path, alpha: float = 0.05) -> list[Path]:
    """Sender x receiver: pairs scored (text) and pairs changed at BH padj < alpha (colour)."""
    require_columns(comparison, ["sender", "receiver", "padj", "effect"], "summary")
    with style():
        if comparison.empty:
            fig = new_figure(3, 2)
            message_panel(fig.add_subplot(1, 1, 1), "no ligand-receptor pair scored")
            return save_figure(fig, stem)
        senders = list(dict.fromkeys(comparison["sender"]))
        receivers = list(dict.fromkeys(comparison["receiver"]))
        n = comparison.groupby(["sender", "receiver"]).size()
        sig = comparison[comparison["padj"] < alpha]
        up = sig[sig["effect"] > 0].groupby(["sender", "receiver"]).size()
        down = sig[sig["effect"] < 0].groupby(["sender", "receiver"]).size()
        grid = np.zeros((len(senders), len(receivers)))
        fig = new_figure(2.5 + 0.6 * len(receivers), 1.5 + 0.3 * len(senders))
        ax = fig.add_subplot(1, 1, 1)
        for i, s in enumerate(senders):
            for j, r in enumerate(receivers):
                grid[i, j] = up.get((s, r), 0) + down.get((s, r), 0)
                if (s, r) in n.index:
                    txt = f"{up.get((s, r), 0)}+ {down.get((s, r), 0)}-\n/{n[(s, r)]}"
                    ax.text(j, i, txt, ha="center", va="center", fontsize=5)
        im = ax.imshow(grid, cmap="Reds", aspect="auto", vmin=0)
        ax.set_xticks(np.arange(len(receivers)), receivers, rotation=45, ha="right")
        ax.set_yticks(np.arange(len(senders)), senders)
        ax.set_xlabel("receiver")
        ax.set_ylabel("sender")
        ax.set_title(f"pairs changed (BH padj < {alpha:g}): up+ down- / scored")
        fig.colorbar(im, ax=ax, label="pairs changed", shrink=0.6)
    return save_figure(fig, stem)


def hypotheses(
    table: pd.DataFrame,
    values: pd.DataFrame,
    *,
    stem: str | Path,
    conditions: list[str],
    seed: int = 0,
) -> list[Path]:
    """One panel per ``interaction`` row of the confirmatory table, a point per animal."""
    rows = table[table["kind"] == "interaction"]
    vals = values[values["hypothesis"].isin(rows["hypothesis"])]
    return confirmatory_plot(rows, vals, stem=stem, conditions=conditions, seed=seed)

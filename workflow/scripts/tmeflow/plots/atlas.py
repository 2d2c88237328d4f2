"""Figures of the cell atlas.

UMAPs, the marker dot plots (of the panel, of each cluster's own markers),
the integration metrics, the resolution sweep and the annotation scores.
"""

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from matplotlib.colors import TwoSlopeNorm
from matplotlib.patches import Rectangle

from tmeflow.core._vocabulary import (
    EMBEDDING_COLORS,
    LAST_LABELS,
    NA_COLOR,
    label_colors,
    label_order,
    palette_for,
)
from tmeflow.embed._metrics import BATCH_METRICS, BIO_METRICS
from tmeflow.plots._style import message_panel, new_figure, save_figure, style
from tmeflow.plots._utils import as_labels, dot_handles, legend_right, size_handles

logger = logging.getLogger(__name__)

__all__ = [
    "cluster_markers_dotplot",
    "integration_metrics_plot",
    "marker_dotplot",
    "resolution_sweep_plot",
    "score_heatmap",
    "umap_plot",
]


# --------------------------------------------------------------------------- UMAP
def _umap_labels(fig, ax, coords, values: pd.Series, *, color, order, seed, size) -> None:
    """Categorical colouring: ``NA``/``unassigned`` underneath, others in a seeded order."""
    labels = as_labels(values)
    if order is None and isinstance(values.dtype, pd.CategoricalDtype) and (color == "condition"):
        order = [str(c) for c in values.cat.categories]
    colors = palette_for(color, labels, order)
    lab = labels.to_numpy()
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(lab))
    under = np.isin(lab[perm], LAST_LABELS)
    perm = np.concatenate([perm[under], perm[~under]])
    ax.scatter(
        *coords[perm].T, s=size, c=[colors[x] for x in lab[perm]], linewidths=0, rasterized=True
    )
    counts = labels.value_counts()
    handles = {f"{k} ({counts.get(k, 0)})": c for k, c in colors.items()}
    legend_right(fig, dot_handles(handles, markersize=5), title=color)


def umap_plot(
    adata,
    *,
    color: str,
    stem: str | Path,
    order: list[str] | None = None,
    title: str | None = None,
    basis: str = "X_umap",
    seed: int = 0,
    point_size: float | None = None,
) -> list[Path]:
    """Scatter of ``obsm["X_umap"]`` coloured by an ``obs`` column.

    A categorical (or string/boolean) column is coloured per label: cell types
    with :func:`~tmeflow.core._vocabulary.label_colors`, species with
    :data:`~tmeflow.core._vocabulary.SPECIES_COLORS`, ``condition`` with
    :func:`~tmeflow.core._vocabulary.condition_colors` in ``order``. Missing values are drawn as
    ``NA``; ``NA`` and ``unassigned`` cells are drawn first, underneath, and the other cells in
    a seeded random order so that no group hides another. A numeric column is drawn with a
    colour bar.

    Parameters
    ----------
    adata
        AnnData with ``obsm[basis]`` (n_obs x >= 2) and ``obs[color]``.
    color
        Column of ``obs``.
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.
    order
        Legend order (and, for ``condition``, colour order); labels not listed follow.
    title
        Axes title; defaults to ``color``.
    basis
        Key of the embedding in ``obsm``.
    seed
        Seed of the drawing order.
    point_size
        Marker area; defaults to ``min(20, 120000 / n_obs)``.

    Returns
    -------
    list of Path
    """
    if basis not in adata.obsm:
        msg = f"no obsm[{basis!r}] (have {list(adata.obsm)}); run the clustering stage first"
        raise ValueError(msg)
    if color not in adata.obs.columns:
        msg = f"no obs column {color!r} to colour by; have {list(adata.obs.columns)}"
        raise ValueError(msg)
    coords = np.asarray(adata.obsm[basis])[:, :2].astype(float)
    values = adata.obs[color]
    n = adata.n_obs
    size = point_size if point_size is not None else min(20.0, 120000 / max(n, 1))
    with style():
        fig = new_figure(6.0, 4.8)
        ax = fig.add_subplot()
        ax.set_title(title if title is not None else color)
        ax.set_xlabel(f"{basis.removeprefix('X_').upper()} 1")
        ax.set_ylabel(f"{basis.removeprefix('X_').upper()} 2")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal", adjustable="datalim")
        if n == 0:
            message_panel(ax, "no cells")
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            v = values.to_numpy(dtype=float)
            nan = np.isnan(v)
            ax.scatter(*coords[nan].T, s=size, c=NA_COLOR, linewidths=0, rasterized=True)
            idx = np.flatnonzero(~nan)
            idx = idx[np.argsort(v[idx], kind="stable")]
            sc = ax.scatter(
                *coords[idx].T, s=size, c=v[idx], cmap="viridis", linewidths=0, rasterized=True
            )
            fig.colorbar(sc, ax=ax, shrink=0.6, label=color)
        else:
            _umap_labels(fig, ax, coords, values, color=color, order=order, seed=seed, size=size)
    return save_figure(fig, stem)


# --------------------------------------------------------------------------- marker dot plot
def _group_stats(x, codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-group mean and fraction > 0 of the columns of ``x``."""
    n = x.shape[0]
    ind = sp.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(n_groups, n))
    sizes = np.asarray(ind.sum(axis=1)).ravel()
    sizes[sizes == 0] = 1
    pos = (x > 0).astype(np.float64) if sp.issparse(x) else (np.asarray(x) > 0).astype(float)
    sums = np.asarray((ind @ x).todense() if sp.issparse(x) else ind @ np.asarray(x, float))
    nnz = np.asarray((ind @ pos).todense() if sp.issparse(pos) else ind @ pos)
    return sums / sizes[:, None], nnz / sizes[:, None]


def _marker_columns(var_names, markers: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """``(set name, gene)`` of the markers found in ``var_names``; the others are logged."""
    var_index = pd.Index(var_names)
    columns: list[tuple[str, str]] = []
    for set_name, genes in markers.items():
        missing = [g for g in genes if g not in var_index]
        if missing:
            logger.info("marker set %r: genes not in var_names, skipped: %s", set_name, missing)
        columns += [(str(set_name), g) for g in genes if g in var_index]
    return columns


def _set_brackets(ax, columns: list[tuple[str, str]]) -> None:
    """A bracket with the marker-set name above each set's columns."""
    start = 0
    trans = ax.get_xaxis_transform()
    for set_name in dict.fromkeys(s for s, _ in columns):
        width = sum(1 for s, _ in columns if s == set_name)
        end = start + width - 1
        ax.plot([start - 0.3, end + 0.3], [1.01, 1.01], color="0.3", lw=0.8, transform=trans,
                clip_on=False)  # fmt: skip
        ax.text(
            (start + end) / 2,
            1.02,
            set_name,
            ha="center",
            va="bottom",
            rotation=90 if width < 2 and len(set_name) > 3 else 0,
            transform=trans,
            fontsize=7,
        )
        start = end + 1


def marker_dotplot(
    adata,
    *,
    markers: Mapping[str, Sequence[str]],
    groupby: str,
    stem: str | Path,
    layer: str | None = None,
    max_dot_size: float = 120.0,
) -> list[Path]:
    """Dot plot of marker genes per group.

    Dot size is the fraction of cells with a value > 0; colour is the group mean of ``X``
    (log1p CP10k) or of ``layers[layer]``, min-max scaled per gene across groups. Genes are
    grouped by marker set in the order of ``markers``; genes absent from ``var_names`` are
    skipped and logged (names must match exactly, species prefixes included). Groups follow
    :func:`~tmeflow.core._vocabulary.label_order`; missing group values are shown as ``NA``.

    Parameters
    ----------
    adata
        AnnData; ``obs[groupby]`` holds the groups.
    markers
        ``{set name: [gene, ...]}``, e.g. cell type to markers.
    groupby
        Column of ``obs``.
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.
    layer
        Layer to use instead of ``X``.
    max_dot_size
        Marker area of a dot for fraction 1.

    Returns
    -------
    list of Path
    """
    if groupby not in adata.obs.columns:
        msg = f"no obs column {groupby!r} to group by; have {list(adata.obs.columns)}"
        raise ValueError(msg)
    if layer is not None and layer not in adata.layers:
        msg = f"no layer {layer!r}; have {list(adata.layers)}"
        raise ValueError(msg)
    columns = _marker_columns(adata.var_names, markers)
    labels = as_labels(adata.obs[groupby])
    groups = label_order(labels)
    n_genes, n_groups = len(columns), len(groups)
    with style():
        fig = new_figure(2.8 + 0.28 * max(n_genes, 4), 1.6 + 0.28 * max(n_groups, 3))
        ax = fig.add_subplot()
        if not columns or adata.n_obs == 0:
            message_panel(ax, "no marker genes found" if not columns else "no cells")
            return save_figure(fig, stem)
        x = adata.layers[layer] if layer is not None else adata.X
        x = x[:, pd.Index(adata.var_names).get_indexer([g for _, g in columns])]
        codes = pd.Categorical(labels, categories=groups).codes
        mean, frac = _group_stats(x, np.asarray(codes), n_groups)
        lo, hi = mean.min(axis=0), mean.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        scaled = np.where(hi > lo, (mean - lo) / span, 0.0)
        gx, gy = np.meshgrid(np.arange(n_genes), np.arange(n_groups))
        sc = ax.scatter(gx.ravel(), gy.ravel(), s=frac.ravel() * max_dot_size, c=scaled.ravel(),
                        cmap="Reds", vmin=0, vmax=1, edgecolors="0.4", linewidths=0.3)  # fmt: skip
        ax.set_xticks(np.arange(n_genes), [g for _, g in columns], rotation=90)
        counts = labels.value_counts()
        ax.set_yticks(np.arange(n_groups), [f"{g} ({counts.get(g, 0)})" for g in groups])
        ax.set_xlim(-0.6, n_genes - 0.4)
        ax.set_ylim(n_groups - 0.4, -0.6)
        ax.set_ylabel(groupby)
        _set_brackets(ax, columns)
        fig.colorbar(sc, ax=ax, shrink=0.5, label="mean expression\n(scaled per gene)")
        sizes = {f"{f:.0%}": np.sqrt(f * max_dot_size) for f in (0.25, 0.5, 0.75, 1.0)}
        legend_right(ax, size_handles(sizes), title="fraction\nexpressing")
    return save_figure(fig, stem)


def _cluster_names(top: pd.DataFrame) -> pd.DataFrame:
    """Per ranked species and cluster, its column-set ``name`` and its ``row`` label.

    ``name`` is the cluster (``<cluster> <species>`` when it was ranked in several species),
    ``row`` is ``<name> (<label>)``.
    """
    keys = top[["species", "group", "label"]].drop_duplicates().astype(str)
    multi = keys["group"].duplicated(keep=False)
    keys["name"] = keys["group"].where(~multi, keys["group"] + " " + keys["species"])
    keys["row"] = keys["name"] + " (" + keys["label"] + ")"
    return keys


def cluster_markers_dotplot(
    adata, table: pd.DataFrame, *, stem: str | Path, groupby: str = "leiden", n_top: int = 3
) -> list[Path]:
    """Dot plot of each cluster's own top marker genes (of :func:`tmeflow.annotate.rank_markers`).

    Rows are the ranked clusters, labelled ``<cluster> (<cell type>)`` (and the cell count);
    columns the ``n_top`` best-ranked genes of each cluster, under a bracket with the cluster's
    name. Dots are drawn as in :func:`marker_dotplot` (size: fraction of the row's cells
    expressing; colour: mean log-normalised expression scaled per gene across rows). Cells of
    clusters that were not ranked are left out.

    Parameters
    ----------
    adata
        AnnData with log-normalised ``X`` and ``obs[groupby]`` (and ``obs["species"]``).
    table
        Marker table of the clusters: ``species``, ``group``, ``label``, ``rank``, ``gene``.
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.
    groupby
        Column of ``obs`` holding the clusters.
    n_top
        Genes per cluster.

    Returns
    -------
    list of Path
    """
    top = table.loc[table["rank"].astype(int) <= n_top].astype({"species": str, "group": str})
    keys = _cluster_names(top)
    top = top.merge(keys[["species", "group", "name"]], on=["species", "group"])
    rows = dict(zip(zip(keys["species"], keys["group"], strict=True), keys["row"], strict=True))
    species = (adata.obs["species"].astype(str) if "species" in adata.obs.columns
               else pd.Series("", index=adata.obs_names))  # fmt: skip
    cells = zip(species, adata.obs[groupby].astype(str), strict=True)
    row = pd.Series([rows.get(k) for k in cells], dtype=object)
    keep = row.notna().to_numpy()
    genes = sorted(set(top["gene"]))
    x = adata.X[:, pd.Index(adata.var_names).get_indexer(genes)][keep]
    obs = pd.DataFrame({"cluster (cell type)": row[keep].to_numpy()},
                       index=pd.Index(adata.obs_names[keep], dtype=str))  # fmt: skip
    sub = AnnData(X=x, obs=obs, var=pd.DataFrame(index=pd.Index(genes, dtype=str)))
    top = top.sort_values(["name", "rank"], kind="stable")
    by_set = {n: list(g["gene"]) for n, g in top.groupby("name", sort=False)}
    ordered = {n: by_set[n] for n in label_order(by_set)}
    return marker_dotplot(sub, markers=ordered, groupby="cluster (cell type)", stem=stem)


# --------------------------------------------------------------------------- integration
def integration_metrics_plot(
    metrics: pd.DataFrame, condition: pd.DataFrame, *, stem: str | Path
) -> list[Path]:
    """Plot the scib metrics per embedding and the condition signal per cell type.

    Bars for batch correction, bio conservation and the aggregates; flagged cell types are
    marked with ``!``.

    Parameters
    ----------
    metrics
        One row per embedding: ``embedding``, the metrics of
        :data:`~tmeflow.embed.BATCH_METRICS` and :data:`~tmeflow.embed.BIO_METRICS`,
        ``batch_correction``, ``bio_conservation`` and ``total``.
    condition
        One row per cell type: ``cell_type``, ``condition_signal_<embedding>`` and optionally
        ``flagged``; empty when not estimable (a panel says so).
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.

    Returns
    -------
    list of Path
    """
    embeddings = metrics["embedding"].astype(str).tolist()
    colors = {e: EMBEDDING_COLORS[i % len(EMBEDDING_COLORS)] for i, e in enumerate(embeddings)}
    groups = [
        ("batch correction", list(BATCH_METRICS)),
        ("bio conservation", list(BIO_METRICS)),
        ("aggregate", ["batch_correction", "bio_conservation", "total"]),
    ]
    width = 0.8 / max(len(embeddings), 1)
    with style():
        fig = new_figure(10.0, 6.0)
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
            message_panel(ax, "condition signal not estimable")
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


# --------------------------------------------------------------------------- clustering
def resolution_sweep_plot(sweep: pd.DataFrame, *, stem: str | Path) -> list[Path]:
    """Plot the number of clusters and their stability against the Leiden resolution.

    Stability is the seed ARI and the ARI with the previous resolution; the resolution used is
    marked.

    Parameters
    ----------
    sweep
        One row per resolution: ``resolution``, ``n_clusters`` (optionally
        ``n_clusters_min``/``_max``), ``stability``, ``ari_previous`` and boolean ``chosen``.
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.

    Returns
    -------
    list of Path
    """
    with style():
        fig = new_figure(6.5, 3.0)
        ax1, ax2 = fig.subplots(1, 2)
        if sweep.empty:
            message_panel(ax1, "no resolution sweep")
            message_panel(ax2, "")
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


# --------------------------------------------------------------------------- annotation
def _score_blocks(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame, list[str]]]:
    """Per level of the annotation table: its rows grouped by label and its score columns."""
    levels = list(dict.fromkeys(table["level"].astype(str))) if len(table) else []
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
    return blocks


def _box(x: int, y: int, color: str) -> Rectangle:
    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor=color, linewidth=1.2)


def score_heatmap(table: pd.DataFrame, *, stem: str | Path) -> list[Path]:
    """Plot per-cluster mean marker scores as a heatmap.

    Rows: clusters with their label, columns: panel labels; one panel per level of the
    annotation table (cell types, each parent's subtypes and states). The best label of each
    cluster is boxed; unassigned clusters are in grey text.

    Parameters
    ----------
    table
        One row per level and cluster: ``level``, ``group``, ``n_cells``, ``label``,
        ``best_label``, ``score_<label>`` columns and optionally ``species``.
    stem
        Output stem; see :func:`~tmeflow.plots._style.save_figure`.

    Returns
    -------
    list of Path
    """
    blocks = _score_blocks(table)
    heights = [1.0 + 0.22 * max(len(sub), 1) for _, sub, _ in blocks]
    with style():
        if not blocks:
            fig = new_figure(4.0, 2.0)
            message_panel(fig.add_subplot(), "no annotation scores")
            return save_figure(fig, stem)
        n_cols = max(len(cols) for _, _, cols in blocks)
        fig = new_figure(2.5 + 0.45 * max(n_cols, 3), sum(heights) + 0.5)
        axes = fig.subplots(len(blocks), 1, squeeze=False, height_ratios=heights)[:, 0]
        image = None
        for ax, (level, sub, cols) in zip(axes, blocks, strict=True):
            if not cols:
                message_panel(ax, f"{level}: no scores")
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

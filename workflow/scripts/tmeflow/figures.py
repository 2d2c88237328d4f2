"""Deterministic figures for every stage of the workflow.

Every public plotting function takes explicit output stems, writes ``{stem}.pdf`` and
``{stem}.png`` (see :func:`save_figure`) and returns the list of files written. Figures are
built with :class:`matplotlib.figure.Figure` on the Agg canvas, never through pyplot's global
state: nothing is shown, nothing is left open, and the same inputs give the same bytes
(no creation dates, no version strings, fixed SVG hash salt, a bundled font, seeded jitter and
drawing order).

Colours and orders are fixed per label: cell types follow :data:`DEFAULT_VOCAB` with one colour
each (:func:`label_colors`), species have :data:`SPECIES_COLORS`, and conditions are coloured
in the order they are given, reference first (:func:`condition_colors`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import scipy.sparse as sp
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from tmeflow._utils import natural_key

logger = logging.getLogger(__name__)

__all__ = [
    "CELL_TYPE_COLORS",
    "DEFAULT_VOCAB",
    "NA_LABEL",
    "SPECIES_COLORS",
    "SPECIES_VOCAB",
    "composition_plot",
    "condition_colors",
    "genes_of_interest_plot",
    "gsea_dotplot",
    "label_colors",
    "label_order",
    "marker_dotplot",
    "qc_violin_plot",
    "save_figure",
    "sources_plot",
    "style",
    "umap_plot",
    "volcano_plot",
]

#: Cell-type vocabulary in display order; ``unassigned`` is always drawn last.
DEFAULT_VOCAB: tuple[str, ...] = (
    "tumor",
    "CAF",
    "TAM",
    "monocyte",
    "neutrophil",
    "NK",
    "B",
    "T",
    "DC",
    "endothelial",
    "pericyte",
    "epithelial",
    "unassigned",
)
#: Species vocabulary in display order.
SPECIES_VOCAB: tuple[str, ...] = ("human", "mouse", "mixed")
#: Label used for missing values (NaN) in a plotted column.
NA_LABEL = "NA"

CELL_TYPE_COLORS: dict[str, str] = {
    "tumor": "#D62728",
    "CAF": "#FF7F0E",
    "TAM": "#9467BD",
    "monocyte": "#E377C2",
    "neutrophil": "#8C564B",
    "NK": "#2CA02C",
    "B": "#1F77B4",
    "T": "#17BECF",
    "DC": "#BCBD22",
    "endothelial": "#393B79",
    "pericyte": "#E7BA52",
    "epithelial": "#00A087",
    "unassigned": "#BDBDBD",
}
SPECIES_COLORS: dict[str, str] = {"human": "#E64B35", "mouse": "#4DBBD5", "mixed": "#7E6148"}
_NA_COLOR = "#E5E5E5"
_FIXED_COLORS: dict[str, str] = {**CELL_TYPE_COLORS, **SPECIES_COLORS, NA_LABEL: _NA_COLOR}
_LAST_LABELS = ("unassigned", NA_LABEL)
# Colours for labels outside the fixed table, handed out in order; none repeats a fixed colour.
_EXTRA_COLORS: tuple[str, ...] = (
    "#AEC7E8",
    "#FFBB78",
    "#98DF8A",
    "#FF9896",
    "#C5B0D5",
    "#C49C94",
    "#F7B6D2",
    "#DBDB8D",
    "#9EDAE5",
    "#5254A3",
    "#8CA252",
    "#BD9E39",
    "#AD494A",
    "#A55194",
    "#6B6ECF",
    "#B5CF6B",
    "#E7969C",
    "#DE9ED6",
    "#3182BD",
    "#E6550D",
    "#31A354",
    "#756BB1",
    "#636363",
    "#843C39",
)
# Reference condition first (neutral), then the test condition(s).
_CONDITION_COLORS: tuple[str, ...] = ("#7F7F7F", "#C44E52", "#4C72B0", "#55A868", "#8172B2")

_FORMATS = ("pdf", "png", "svg")
# Metadata that would otherwise carry dates or version strings.
_METADATA: dict[str, dict[str, Any]] = {
    "pdf": {"Creator": "tmeflow", "Producer": None, "CreationDate": None, "ModDate": None},
    "png": {"Software": "tmeflow"},
    "svg": {"Creator": "tmeflow", "Date": None},
}
_RC: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # bundled with matplotlib: same glyphs everywhere
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.0,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "figure.constrained_layout.use": True,
    "image.cmap": "viridis",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "svg.hashsalt": "tmeflow",
    "path.simplify": True,
}
_QC_METRICS = ("total_counts", "n_genes_by_counts", "pct_counts_mt")
_LOG_METRICS = frozenset({"total_counts", "n_genes_by_counts"})


# --------------------------------------------------------------------------- style and saving
@contextmanager
def style() -> Iterator[None]:
    """Apply the house figure style (fonts, sizes, no top/right spines) within a block.

    Every plotting function of this module builds and saves its figure inside this context;
    use it around your own figures to match them.
    """
    with mpl.rc_context(_RC):
        yield


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save_figure(
    fig: Figure,
    stem: str | Path,
    *,
    formats: Sequence[str] = ("pdf", "png"),
    dpi: int = 150,
    close: bool = False,
) -> list[Path]:
    """Write ``fig`` as ``{stem}.{fmt}`` for each format, byte-for-byte reproducibly.

    Creation dates, producer and software versions are left out of the files, the SVG hash
    salt is fixed and text uses the bundled DejaVu Sans, so the same figure gives the same
    bytes on every run and machine. The parent folder is created.

    Parameters
    ----------
    fig
        The figure to save.
    stem
        Output path without extension (``results/figures/umap_cell_type``); dots in the name
        are kept (``qc.sampleA`` gives ``qc.sampleA.pdf``).
    formats
        Any of ``"pdf"``, ``"png"``, ``"svg"``.
    dpi
        Resolution of the PNG and of rasterised layers in the PDF.
    close
        Also close the figure in pyplot (only for figures made with ``pyplot``).

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.
    """
    if isinstance(formats, str):
        formats = (formats,)
    unknown = [f for f in formats if f not in _FORMATS]
    if unknown or not formats:
        msg = f"unsupported figure format(s) {unknown!r}; choose from {_FORMATS}"
        raise ValueError(msg)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with style():
        for fmt in formats:
            path = stem.with_name(f"{stem.name}.{fmt}")
            fig.savefig(path, format=fmt, dpi=dpi, metadata=dict(_METADATA[fmt]))
            written.append(path)
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return written


# --------------------------------------------------------------------------- palettes
def _clean_labels(labels: Iterable[Any]) -> list[str]:
    out = {str(x) for x in labels if not (pd.api.types.is_scalar(x) and pd.isna(x))}
    return sorted(out)


def label_order(labels: Iterable[Any], *, vocabulary: Sequence[str] = DEFAULT_VOCAB) -> list[str]:
    """Order labels for display.

    Vocabulary order, then others naturally sorted, then ``unassigned`` and ``NA``.

    The result depends only on the set of labels, never on the order they are given in.
    Missing values (None/NaN) are dropped.
    """
    present = _clean_labels(labels)
    vocab_index = {lab: i for i, lab in enumerate(vocabulary)}
    known = sorted(
        (x for x in present if x in vocab_index and x not in _LAST_LABELS),
        key=vocab_index.__getitem__,
    )
    others = sorted(
        (x for x in present if x not in vocab_index and x not in _LAST_LABELS), key=natural_key
    )
    last = [x for x in _LAST_LABELS if x in present]
    return known + others + last


def label_colors(
    labels: Iterable[Any], *, vocabulary: Sequence[str] = DEFAULT_VOCAB
) -> dict[str, str]:
    """Map labels to stable hex colours, in display order (see :func:`label_order`).

    Cell types of :data:`DEFAULT_VOCAB`, species and ``NA`` have fixed colours. A vocabulary
    label without a fixed colour gets the extra colour of its vocabulary position, and labels
    outside the vocabulary get the following extra colours in natural sort order, so colours
    depend on the set of labels only, not on the order they are given in. Pass the full label
    set (for instance all categories of ``obs["cell_type"]``) to keep colours of non-vocabulary
    labels consistent between figures.

    Parameters
    ----------
    labels
        Labels to colour; missing values are dropped, other values are converted to ``str``.
    vocabulary
        Known labels in display order.

    Returns
    -------
    dict
        ``{label: "#RRGGBB"}`` ordered for display.
    """
    present = set(_clean_labels(labels))
    colors: dict[str, str] = {}
    slot = 0
    for lab in vocabulary:
        if lab in _FIXED_COLORS:
            colors[lab] = _FIXED_COLORS[lab]
        else:
            colors[lab] = _EXTRA_COLORS[slot % len(_EXTRA_COLORS)]
            slot += 1
    extras = sorted(
        (x for x in present if x not in colors and x not in _FIXED_COLORS), key=natural_key
    )
    for lab in extras:
        colors[lab] = _EXTRA_COLORS[slot % len(_EXTRA_COLORS)]
        slot += 1
    if slot > len(_EXTRA_COLORS):
        logger.warning("%d labels outside the fixed palette: colours repeat", slot)
    for lab in present - colors.keys():
        colors[lab] = _FIXED_COLORS[lab]
    return {lab: colors[lab] for lab in label_order(present, vocabulary=vocabulary)}


def condition_colors(conditions: Sequence[str]) -> dict[str, str]:
    """Colour conditions in the order given: reference (first) grey, test (second) red."""
    return {c: _CONDITION_COLORS[i % len(_CONDITION_COLORS)] for i, c in enumerate(conditions)}


def _palette_for(column: str, labels: Iterable[Any], order: Sequence[str] | None) -> dict:
    labels = _clean_labels(labels)
    present = set(labels)
    if present and present <= set(SPECIES_VOCAB) | {NA_LABEL}:
        colors = label_colors(present, vocabulary=SPECIES_VOCAB)
    elif column == "condition":
        given = [str(c) for c in order or ()]
        extra = sorted((c for c in present if c not in given), key=natural_key)
        colors = {c: v for c, v in condition_colors([*given, *extra]).items() if c in present}
    else:
        colors = label_colors(present)
    if order is not None:
        first = [x for x in order if x in colors]
        colors = {x: colors[x] for x in [*first, *(x for x in colors if x not in first)]}
    return colors


def _ordered_conditions(present: Iterable[Any], conditions: Sequence[str] | None) -> list[str]:
    present = [str(x) for x in pd.unique(pd.Series(list(present), dtype=object).dropna())]
    if conditions is None:
        return present
    given = [str(c) for c in conditions]
    extra = sorted((c for c in present if c not in given), key=natural_key)
    if extra:
        logger.warning("conditions %s not in %s: drawn after them", extra, given)
    return given + extra


# --------------------------------------------------------------------------- helpers
def _message_panel(ax, text: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.3")


def _require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        msg = f"{what}: missing column(s) {missing}; got {list(df.columns)}"
        raise ValueError(msg)


def _as_labels(values: pd.Series) -> pd.Series:
    """String labels with missing values as ``NA``."""
    out = values.astype(object).where(values.notna(), NA_LABEL)
    return out.map(str)


def _dodge(n: int, width: float = 0.8) -> tuple[np.ndarray, float]:
    step = width / max(n, 1)
    return -width / 2 + step * (np.arange(n) + 0.5), step


def _legend_right(fig: Figure, handles: list, title: str | None = None) -> None:
    if handles:
        ncol = 1 if len(handles) <= 18 else 2
        fig.legend(handles=handles, loc="outside right upper", title=title, ncol=ncol)


def _patch_handles(colors: Mapping[str, str]) -> list[Patch]:
    return [Patch(facecolor=c, edgecolor="none", label=lab) for lab, c in colors.items()]


# --------------------------------------------------------------------------- UMAP
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
    with :func:`label_colors`, species with :data:`SPECIES_COLORS`, ``condition`` with
    :func:`condition_colors` in ``order``. Missing values are drawn as ``NA``; ``NA`` and
    ``unassigned`` cells are drawn first, underneath, and the other cells in a seeded random
    order so that no group hides another. A numeric column is drawn with a colour bar.

    Parameters
    ----------
    adata
        AnnData with ``obsm[basis]`` (n_obs x >= 2) and ``obs[color]``.
    color
        Column of ``obs``.
    stem
        Output stem; see :func:`save_figure`.
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
        fig = _new_figure(6.0, 4.8)
        ax = fig.add_subplot()
        ax.set_title(title if title is not None else color)
        ax.set_xlabel(f"{basis.removeprefix('X_').upper()} 1")
        ax.set_ylabel(f"{basis.removeprefix('X_').upper()} 2")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal", adjustable="datalim")
        if n == 0:
            _message_panel(ax, "no cells")
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            v = values.to_numpy(dtype=float)
            nan = np.isnan(v)
            ax.scatter(*coords[nan].T, s=size, c=_NA_COLOR, linewidths=0, rasterized=True)
            idx = np.flatnonzero(~nan)
            idx = idx[np.argsort(v[idx], kind="stable")]
            sc = ax.scatter(
                *coords[idx].T, s=size, c=v[idx], cmap="viridis", linewidths=0, rasterized=True
            )
            fig.colorbar(sc, ax=ax, shrink=0.6, label=color)
        else:
            labels = _as_labels(values)
            if (
                order is None
                and isinstance(values.dtype, pd.CategoricalDtype)
                and (color == "condition")
            ):
                order = [str(c) for c in values.cat.categories]
            colors = _palette_for(color, labels, order)
            lab = labels.to_numpy()
            rng = np.random.default_rng(seed)
            perm = rng.permutation(n)
            under = np.isin(lab[perm], _LAST_LABELS)
            perm = np.concatenate([perm[under], perm[~under]])
            ax.scatter(
                *coords[perm].T,
                s=size,
                c=[colors[x] for x in lab[perm]],
                linewidths=0,
                rasterized=True,
            )
            counts = labels.value_counts()
            handles = [
                Line2D(
                    [],
                    [],
                    marker="o",
                    linestyle="",
                    markersize=5,
                    color=c,
                    label=f"{k} ({counts.get(k, 0)})",
                )
                for k, c in colors.items()
            ]
            _legend_right(fig, handles, title=color)
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
    :func:`label_order`; missing group values are shown as ``NA``.

    Parameters
    ----------
    adata
        AnnData; ``obs[groupby]`` holds the groups.
    markers
        ``{set name: [gene, ...]}``, e.g. cell type to markers.
    groupby
        Column of ``obs``.
    stem
        Output stem; see :func:`save_figure`.
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
    var_index = pd.Index(adata.var_names)
    columns: list[tuple[str, str]] = []
    for set_name, genes in markers.items():
        missing = [g for g in genes if g not in var_index]
        if missing:
            logger.info("marker set %r: genes not in var_names, skipped: %s", set_name, missing)
        columns += [(str(set_name), g) for g in genes if g in var_index]
    labels = _as_labels(adata.obs[groupby])
    groups = label_order(labels)
    n_genes, n_groups = len(columns), len(groups)
    with style():
        fig = _new_figure(2.8 + 0.28 * max(n_genes, 4), 1.6 + 0.28 * max(n_groups, 3))
        ax = fig.add_subplot()
        if not columns or adata.n_obs == 0:
            _message_panel(ax, "no marker genes found" if not columns else "no cells")
            return save_figure(fig, stem)
        x = adata.layers[layer] if layer is not None else adata.X
        x = x[:, var_index.get_indexer([g for _, g in columns])]
        codes = pd.Categorical(labels, categories=groups).codes
        mean, frac = _group_stats(x, np.asarray(codes), n_groups)
        lo, hi = mean.min(axis=0), mean.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        scaled = np.where(hi > lo, (mean - lo) / span, 0.0)
        gx, gy = np.meshgrid(np.arange(n_genes), np.arange(n_groups))
        sc = ax.scatter(
            gx.ravel(),
            gy.ravel(),
            s=frac.ravel() * max_dot_size,
            c=scaled.ravel(),
            cmap="Reds",
            vmin=0,
            vmax=1,
            edgecolors="0.4",
            linewidths=0.3,
        )
        ax.set_xticks(np.arange(n_genes), [g for _, g in columns], rotation=90)
        counts = labels.value_counts()
        ax.set_yticks(np.arange(n_groups), [f"{g} ({counts.get(g, 0)})" for g in groups])
        ax.set_xlim(-0.6, n_genes - 0.4)
        ax.set_ylim(n_groups - 0.4, -0.6)
        ax.set_ylabel(groupby)
        # marker-set brackets above the columns
        start = 0
        trans = ax.get_xaxis_transform()
        for set_name in dict.fromkeys(s for s, _ in columns):
            width = sum(1 for s, _ in columns if s == set_name)
            end = start + width - 1
            ax.plot(
                [start - 0.3, end + 0.3],
                [1.01, 1.01],
                color="0.3",
                lw=0.8,
                transform=trans,
                clip_on=False,
            )
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
        fig.colorbar(sc, ax=ax, shrink=0.5, label="mean expression\n(scaled per gene)")
        handles = [
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                color="0.5",
                markersize=np.sqrt(f * max_dot_size),
                label=f"{f:.0%}",
            )
            for f in (0.25, 0.5, 0.75, 1.0)
        ]
        ax.legend(
            handles=handles,
            title="fraction\nexpressing",
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0,
        )
    return save_figure(fig, stem)


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
    offsets, step = _dodge(len(conditions))
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
                ax.plot(
                    [pos - step * 0.35, pos + step * 0.35],
                    [vals.mean()] * 2,
                    color=colors[cond],
                    lw=1.5,
                )
            jitter = rng.uniform(-step * 0.25, step * 0.25, vals.size)
            ax.scatter(
                pos + jitter,
                vals,
                s=12,
                color=colors[cond],
                edgecolors="white",
                linewidths=0.4,
                zorder=3,
            )
    ax.set_xticks(np.arange(len(x_order)), x_order, rotation=45, ha="right")
    ax.set_xlim(-0.6, len(x_order) - 0.4)


def genes_of_interest_plot(
    pseudobulk_values: pd.DataFrame,
    *,
    gene: str,
    stem: str | Path,
    conditions: list[str],
    seed: int = 0,
) -> list[Path]:
    """Per-sample pseudobulk CPM of one gene per cell type and condition.

    For each cell type (x axis, :func:`label_order`) and condition (in the order given, others
    after), one point per sample shows ``log1p(cpm)``; the bar is ``log1p`` of the mean CPM.
    Rows with missing CPM are skipped; a gene without rows gives a "no data" panel.

    Parameters
    ----------
    pseudobulk_values
        Columns ``gene``, ``cell_type``, ``sample``, ``condition``, ``cpm`` (``n_cells`` and
        ``counts`` are allowed and unused).
    gene
        Gene to draw, matched exactly against ``gene``.
    stem
        Output stem; see :func:`save_figure`.
    conditions
        Condition order, reference first.
    seed
        Seed of the horizontal jitter.

    Returns
    -------
    list of Path
    """
    df = pseudobulk_values
    _require_columns(
        df, ["gene", "cell_type", "sample", "condition", "cpm"], "genes_of_interest_plot"
    )
    df = df.loc[df["gene"].astype(str) == gene].copy()
    df["cell_type"] = _as_labels(df["cell_type"])
    df["condition"] = df["condition"].astype(str)
    df["log1p_cpm"] = np.log1p(pd.to_numeric(df["cpm"], errors="coerce"))
    df = df.loc[np.isfinite(df["log1p_cpm"])]
    conds = _ordered_conditions(df["condition"], conditions)
    cell_types = label_order(df["cell_type"])
    with style():
        fig = _new_figure(1.8 + 0.5 * max(len(cell_types), 2), 3.2)
        ax = fig.add_subplot()
        ax.set_title(gene)
        if df.empty:
            _message_panel(ax, f"no pseudobulk values for {gene}")
            return save_figure(fig, stem)
        means = df.groupby(["cell_type", "condition"], sort=False)["cpm"].mean()
        bar_df = np.log1p(means).rename("log1p_mean").reset_index()
        offsets, step = _dodge(len(conds))
        colors = condition_colors(conds)
        for row in bar_df.itertuples(index=False):
            pos = cell_types.index(row.cell_type) + offsets[conds.index(row.condition)]
            ax.bar(
                pos,
                row.log1p_mean,
                width=step * 0.9,
                color=colors[row.condition],
                alpha=0.35,
                edgecolor="none",
            )
        _strip_plot(
            ax,
            df,
            x_order=cell_types,
            conditions=conds,
            value="log1p_cpm",
            rng=np.random.default_rng(seed),
            mean_line=False,
        )
        ax.set_ylabel(f"{gene} log1p(CPM)")
        ax.set_ylim(bottom=0)
        _legend_right(fig, _patch_handles(colors), title="condition")
    return save_figure(fig, stem)


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
        Output stem; see :func:`save_figure`.
    conditions
        Condition order, reference first.
    seed
        Seed of the horizontal jitter.

    Returns
    -------
    list of Path
    """
    _require_columns(props, ["sample", "condition", "cell_type", "fraction"], "composition_plot")
    df = props.copy()
    df["cell_type"] = _as_labels(df["cell_type"])
    df["sample"] = df["sample"].astype(str)
    df["condition"] = df["condition"].astype(str)
    df["fraction"] = pd.to_numeric(df["fraction"], errors="coerce").fillna(0.0)
    conds = _ordered_conditions(df["condition"], conditions)
    cell_types = label_order(df["cell_type"])
    colors = label_colors(cell_types)
    sample_cond = df.drop_duplicates("sample").set_index("sample")["condition"]
    samples = sorted(sample_cond.index, key=lambda s: (conds.index(sample_cond[s]), natural_key(s)))
    with style():
        fig = _new_figure(2.5 + 0.3 * max(len(samples), 2) + 0.45 * max(len(cell_types), 2), 3.4)
        ax_bar, ax_pt = fig.subplots(
            1, 2, width_ratios=[max(len(samples), 2), 1.5 * max(len(cell_types), 2)]
        )
        if df.empty:
            _message_panel(ax_bar, "no cells")
            _message_panel(ax_pt, "no cells")
            return save_figure(fig, stem)
        wide = df.pivot_table(
            index="sample", columns="cell_type", values="fraction", aggfunc="sum", fill_value=0.0
        ).reindex(index=samples, columns=cell_types, fill_value=0.0)
        bottom = np.zeros(len(samples))
        xs = np.arange(len(samples))
        for ct in cell_types:
            ax_bar.bar(
                xs,
                wide[ct].to_numpy(),
                bottom=bottom,
                width=0.85,
                color=colors[ct],
                edgecolor="none",
                label=ct,
            )
            bottom += wide[ct].to_numpy()
        ax_bar.set_xticks(xs, samples, rotation=90)
        ax_bar.set_ylabel("fraction of cells")
        ax_bar.set_ylim(0, max(1.0, float(bottom.max())))
        ax_bar.set_xlim(-0.6, len(samples) - 0.4)
        trans = ax_bar.get_xaxis_transform()
        for cond in conds:
            idx = [i for i, s in enumerate(samples) if sample_cond[s] == cond]
            if not idx:
                continue
            ax_bar.plot(
                [idx[0] - 0.4, idx[-1] + 0.4],
                [1.02, 1.02],
                color="0.3",
                lw=0.8,
                transform=trans,
                clip_on=False,
            )
            ax_bar.text(
                (idx[0] + idx[-1]) / 2, 1.03, cond, ha="center", va="bottom", transform=trans
            )
        long = wide.stack().rename("fraction").reset_index()
        long["condition"] = long["sample"].map(sample_cond)
        _strip_plot(
            ax_pt,
            long,
            x_order=cell_types,
            conditions=conds,
            value="fraction",
            rng=np.random.default_rng(seed),
            mean_line=True,
        )
        ax_pt.set_ylabel("fraction of cells per sample")
        ax_pt.set_ylim(bottom=0)
        cond_handles = [
            Line2D([], [], marker="o", linestyle="", color=c, label=k)
            for k, c in condition_colors(conds).items()
        ]
        _legend_right(fig, [*_patch_handles(colors), *cond_handles])
    return save_figure(fig, stem)


def sources_plot(
    table: pd.DataFrame,
    *,
    gene: str,
    stem: str | Path,
    conditions: list[str] | None = None,
) -> list[Path]:
    """Share of a gene's UMIs contributed by each cell type, per condition.

    Bars per cell type (:func:`label_order`) and condition with ``share_sd`` error bars
    (missing SD: no bar). When ``table`` has a ``gene`` column, only its rows for ``gene`` are
    drawn. An empty table gives a "no data" panel.

    Parameters
    ----------
    table
        Columns ``cell_type``, ``condition``, ``share`` (0-1), ``share_sd``.
    gene
        Gene named in the title (and filtered on, see above).
    stem
        Output stem; see :func:`save_figure`.
    conditions
        Condition order, reference first; default: order of first appearance.

    Returns
    -------
    list of Path
    """
    _require_columns(table, ["cell_type", "condition", "share"], "sources_plot")
    df = table.copy()
    if "gene" in df.columns:
        df = df.loc[df["gene"].astype(str) == gene]
    if "share_sd" not in df.columns:
        df["share_sd"] = np.nan
    df["cell_type"] = _as_labels(df["cell_type"])
    df["condition"] = df["condition"].astype(str)
    df["share"] = pd.to_numeric(df["share"], errors="coerce")
    df["share_sd"] = pd.to_numeric(df["share_sd"], errors="coerce")
    df = df.loc[df["share"].notna()]
    conds = _ordered_conditions(df["condition"], conditions)
    cell_types = label_order(df["cell_type"])
    with style():
        fig = _new_figure(1.8 + 0.5 * max(len(cell_types), 2), 3.2)
        ax = fig.add_subplot()
        ax.set_title(f"sources of {gene}")
        if df.empty:
            _message_panel(ax, f"no source table for {gene}")
            return save_figure(fig, stem)
        offsets, step = _dodge(len(conds))
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
            ax.bar(
                pos,
                sub["share"].to_numpy(dtype=float),
                width=step * 0.9,
                color=colors[cond],
                label=cond,
                yerr=np.where(np.isfinite(sd), sd, 0.0),
                error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "0.2"},
            )
        ax.set_xticks(np.arange(len(cell_types)), cell_types, rotation=45, ha="right")
        ax.set_xlim(-0.6, len(cell_types) - 0.4)
        ax.set_ylabel(f"share of {gene} UMIs")
        ax.set_ylim(bottom=0)
        _legend_right(fig, _patch_handles(colors), title="condition")
    return save_figure(fig, stem)


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
        Output stem; see :func:`save_figure`.
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
    _require_columns(de, ["gene", "log2FoldChange", "pvalue", "padj"], "volcano_plot")
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
        fig = _new_figure(4.2, 3.8)
        ax = fig.add_subplot()
        ax.set_title(title)
        if df.empty:
            _message_panel(ax, "no test possible")
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
            ax.scatter(
                df.loc[mask, "lfc"],
                df.loc[mask, "y"],
                s=6,
                color=color,
                linewidths=0,
                label=label,
                rasterized=bool(len(df) > 5000),
            )
        ax.axvline(0, color="0.6", lw=0.6, ls="--")
        hl = df.loc[df["gene"].isin(list(highlight))]
        if not hl.empty:
            ax.scatter(
                hl["lfc"],
                hl["y"],
                s=18,
                facecolors="none",
                edgecolors="black",
                linewidths=0.8,
                zorder=3,
            )
        top = df.loc[sig].sort_values(["padj", "p", "gene"], kind="stable").head(label_top)
        to_label = pd.concat([top, hl]).drop_duplicates("gene")
        for row in to_label.itertuples(index=False):
            ax.annotate(
                row.gene,
                (row.lfc, row.y),
                xytext=(3, 3),
                textcoords="offset points",
                fontsize=6,
                fontweight="bold" if row.gene in highlight else "normal",
            )
        ax.set_xlabel("log2 fold change")
        ax.set_ylabel("-log10 p-value")
        ax.legend(loc="upper left", title=f"padj < {alpha:g}", markerscale=2)
    return save_figure(fig, stem)


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
    then name), best at the top, against cell types (:func:`label_order`). Colour is NES
    (diverging, centred at 0); size is ``-log10 FDR`` with FDR floored at ``fdr_floor``
    (permutation FDRs of 0). Rows without a numeric NES are left out; nothing left gives a
    "no gene sets" panel.

    Parameters
    ----------
    table
        gseapy ``res2d`` style: columns ``Term``, ``NES``, ``FDR q-val`` and ``cell_type``
        (optional: without it one column ``all``). Values may be strings.
    stem
        Output stem; see :func:`save_figure`.
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
    _require_columns(table, ["Term", "NES", "FDR q-val"], "gsea_dotplot")
    df = pd.DataFrame(
        {
            "term": table["Term"].astype(str).to_numpy(),
            "nes": pd.to_numeric(table["NES"], errors="coerce").to_numpy(dtype=float),
            "fdr": pd.to_numeric(table["FDR q-val"], errors="coerce").to_numpy(dtype=float),
            "cell_type": (
                _as_labels(table["cell_type"])
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
    df = df.loc[df["term"].isin(terms)]
    cell_types = label_order(df["cell_type"])
    with style():
        longest = min(max((len(t) for t in terms), default=10), max_term_length)
        fig = _new_figure(
            2.6 + 0.065 * longest + 0.4 * max(len(cell_types), 2),
            1.6 + 0.22 * max(len(terms), 4),
        )
        ax = fig.add_subplot()
        if df.empty:
            _message_panel(ax, "no gene sets")
            return save_figure(fig, stem)
        x = df["cell_type"].map({c: i for i, c in enumerate(cell_types)}).to_numpy()
        y = df["term"].map({t: i for i, t in enumerate(terms)}).to_numpy()
        logfdr = -np.log10(df["fdr"].to_numpy())
        size_max = -np.log10(fdr_floor)

        def area(v):
            return 10 + 110 * np.asarray(v) / size_max

        vmax = max(1.0, float(np.abs(df["nes"]).max()))
        sc = ax.scatter(
            x,
            y,
            s=area(logfdr),
            c=df["nes"].to_numpy(),
            cmap="RdBu_r",
            norm=TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax),
            edgecolors="0.3",
            linewidths=0.3,
        )
        short = [t if len(t) <= max_term_length else t[: max_term_length - 1] + "…" for t in terms]
        ax.set_yticks(np.arange(len(terms)), short)
        ax.set_xticks(np.arange(len(cell_types)), cell_types, rotation=45, ha="right")
        ax.set_xlim(-0.6, len(cell_types) - 0.4)
        ax.set_ylim(len(terms) - 0.4, -0.6)
        fig.colorbar(sc, ax=ax, shrink=0.5, label="NES")
        handles = [
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                color="0.5",
                markersize=float(np.sqrt(area(-np.log10(q)))),
                label=f"{q:g}",
            )
            for q in (0.25, 0.05, 0.01, fdr_floor)
        ]
        ax.legend(
            handles=handles,
            title="FDR",
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0,
        )
    return save_figure(fig, stem)


# --------------------------------------------------------------------------- QC
def _threshold_lines(
    thresholds: Mapping[str, Any] | None, metric: str, samples: list[str]
) -> dict[str, list[float]]:
    """``{sample: [values]}`` for ``metric`` from the accepted threshold spellings."""
    out: dict[str, list[float]] = {s: [] for s in samples}
    if not thresholds:
        return out

    def add(spec: Any) -> None:
        if isinstance(spec, Mapping):
            for s, v in spec.items():
                if str(s) in out:
                    add_to(str(s), v)
        else:
            for s in samples:
                add_to(s, spec)

    def add_to(sample: str, value: Any) -> None:
        values = value if isinstance(value, list | tuple) else [value]
        out[sample] += [float(v) for v in values if v is not None and np.isfinite(float(v))]

    for key, spec in thresholds.items():
        if key in (metric, f"min_{metric}", f"max_{metric}"):
            add(spec)
    return out


def qc_violin_plot(
    obs: pd.DataFrame,
    *,
    stem: str | Path,
    thresholds: Mapping[str, Any] | None = None,
    sample_key: str = "sample",
) -> list[Path]:
    """Per-sample QC metric distributions before and after filtering.

    One row per metric of ``total_counts``, ``n_genes_by_counts``, ``pct_counts_mt`` present
    in ``obs`` (counts on a ``log10(1 + x)`` axis); per sample a grey violin of all cells and a
    blue one of cells with ``qc_pass`` (without that column only all cells are drawn). Groups of
    fewer than two distinct values are drawn as points.

    Parameters
    ----------
    obs
        Per-cell table with ``sample`` and the metric columns, and boolean ``qc_pass``.
    stem
        Output stem; see :func:`save_figure`.
    thresholds
        Lines to draw. Keys ``<metric>``, ``min_<metric>`` or ``max_<metric>``; values a number,
        a list/tuple of numbers, or ``{sample: number or list}`` for per-sample thresholds.
        Other keys are ignored.
    sample_key
        Column with the sample names.

    Returns
    -------
    list of Path
    """
    metrics = [m for m in _QC_METRICS if m in obs.columns]
    if not metrics:
        msg = f"qc_violin_plot: none of {list(_QC_METRICS)} in obs columns {list(obs.columns)}"
        raise ValueError(msg)
    _require_columns(obs, [sample_key], "qc_violin_plot")
    samples = sorted(_clean_labels(obs[sample_key]), key=natural_key)
    has_pass = "qc_pass" in obs.columns
    if not has_pass:
        logger.info("qc_violin_plot: no qc_pass column; drawing all cells only")
    keep = obs["qc_pass"].fillna(False).astype(bool).to_numpy() if has_pass else None
    sample_values = obs[sample_key].astype(str).to_numpy()
    sets = [("all cells", "#BDBDBD", None)]
    if has_pass:
        sets.append(("passing QC", "#4C72B0", keep))
    offsets, step = _dodge(len(sets))
    with style():
        fig = _new_figure(2.2 + 0.6 * max(len(samples), 2), 1.2 + 1.7 * len(metrics))
        axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
        for ax, metric in zip(axes, metrics, strict=True):
            if not samples:
                _message_panel(ax, "no cells")
                continue
            log = metric in _LOG_METRICS
            values = pd.to_numeric(obs[metric], errors="coerce").to_numpy(dtype=float)
            if log:
                values = np.log10(1 + np.clip(values, 0, None))
            for i, sample in enumerate(samples):
                in_sample = sample_values == sample
                for j, (_, color, mask) in enumerate(sets):
                    sel = in_sample if mask is None else in_sample & mask
                    v = values[sel]
                    v = v[np.isfinite(v)]
                    pos = i + offsets[j]
                    if np.unique(v).size >= 2:
                        parts = ax.violinplot(
                            v,
                            positions=[pos],
                            widths=step * 0.9,
                            showextrema=False,
                            showmedians=True,
                        )
                        for body in parts["bodies"]:
                            body.set_facecolor(color)
                            body.set_edgecolor("none")
                            body.set_alpha(0.8)
                        parts["cmedians"].set_color("0.15")
                        parts["cmedians"].set_linewidth(0.8)
                    elif v.size:
                        ax.scatter(np.full(v.size, pos), v, s=8, color=color)
                for t in _threshold_lines(thresholds, metric, samples)[sample]:
                    t = float(np.log10(1 + max(t, 0))) if log else t
                    ax.plot([i - 0.45, i + 0.45], [t, t], color="#D62728", lw=0.8, ls="--")
            ax.set_ylabel(f"log10(1 + {metric})" if log else metric)
            ax.set_xticks(np.arange(len(samples)), samples if ax is axes[-1] else [])
            ax.set_xlim(-0.6, len(samples) - 0.4)
        axes[-1].tick_params(axis="x", labelrotation=90)
        handles = [Patch(facecolor=c, label=lab) for lab, c, _ in sets]
        if thresholds:
            handles.append(Line2D([], [], color="#D62728", ls="--", label="threshold"))
        _legend_right(fig, handles)
    return save_figure(fig, stem)

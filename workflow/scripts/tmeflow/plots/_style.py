"""House style and deterministic saving: the rcParams, a figure factory, message panels.

Files carry no creation dates, producer or software versions, the SVG hash salt is fixed and
text uses the bundled DejaVu Sans, so the same figure gives the same bytes on every run.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["message_panel", "new_figure", "save_figure", "style"]

FORMATS = ("pdf", "png", "svg")
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


@contextmanager
def style() -> Iterator[None]:
    """Apply the house figure style (fonts, sizes, no top/right spines) within a block.

    Every plotting function of :mod:`tmeflow.plots` builds and saves its figure inside this
    context; use it around your own figures to match them.

    Yields
    ------
    None
    """
    with mpl.rc_context(_RC):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas, outside pyplot (call inside :func:`style`).

    Parameters
    ----------
    width, height
        Size in inches.

    Returns
    -------
    matplotlib.figure.Figure
        With constrained layout (from the house style).
    """
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def message_panel(ax, text: str, *, color: str = "0.3") -> None:
    """Turn ``ax`` into a panel that only says ``text`` (no data, a skipped step).

    Parameters
    ----------
    ax
        The axes to clear of ticks and spines.
    text
        The message, centred.
    color
        Text colour.
    """
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=color)


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
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        msg = f"unsupported figure format(s) {unknown!r}; choose from {FORMATS}"
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

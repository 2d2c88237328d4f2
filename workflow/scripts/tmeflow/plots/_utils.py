"""Small helpers shared by the plotting modules: input checks, labels, dodging, legends."""

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from tmeflow.core._vocabulary import NA_LABEL


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise a ValueError naming the columns of ``columns`` missing from ``df``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        msg = f"{what}: missing column(s) {missing}; got {list(df.columns)}"
        raise ValueError(msg)


def as_labels(values: pd.Series) -> pd.Series:
    """String labels with missing values as ``NA``."""
    out = values.astype(object).where(values.notna(), NA_LABEL)
    return out.map(str)


def dodge(n: int, width: float = 0.8) -> tuple[np.ndarray, float]:
    """Offsets of ``n`` side-by-side items within a slot of ``width``, and their step."""
    step = width / max(n, 1)
    return -width / 2 + step * (np.arange(n) + 0.5), step


def legend_right(owner, handles: list, title: str | None = None) -> None:
    """The one legend of the figures: right of the figure, or right of the axes ``owner``.

    A figure's legend goes outside its upper right corner (in two columns past 18 entries);
    an axes' legend is anchored at its upper right edge. Nothing is drawn without handles.
    """
    if not handles:
        return
    ncol = 1 if len(handles) <= 18 else 2
    if isinstance(owner, Figure):
        owner.legend(handles=handles, loc="outside right upper", title=title, ncol=ncol)
    else:
        owner.legend(
            handles=handles,
            title=title,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0,
            ncol=ncol,
        )


def patch_handles(colors: Mapping[str, str]) -> list[Patch]:
    """Legend patches, one per ``{label: colour}``."""
    return [Patch(facecolor=c, edgecolor="none", label=lab) for lab, c in colors.items()]


def dot_handles(colors: Mapping[str, str], **kwargs) -> list[Line2D]:
    """Legend dots, one per ``{label: colour}``; ``kwargs`` go to ``Line2D``."""
    return [
        Line2D([], [], marker="o", linestyle="", color=c, label=lab, **kwargs)
        for lab, c in colors.items()
    ]


def size_handles(sizes: Mapping[str, float]) -> list[Line2D]:
    """Grey legend dots of a size scale, one per ``{label: marker size in points}``."""
    return [
        Line2D([], [], marker="o", linestyle="", color="0.5", markersize=s, label=lab)
        for lab, s in sizes.items()
    ]


def wrap_note(note: str) -> str:
    """A note (e.g. why a gene has no figure) wrapped to fit a message panel."""
    return textwrap.fill(note, width=45)

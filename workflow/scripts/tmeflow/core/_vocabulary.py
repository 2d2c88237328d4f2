"""Label vocabulary, display orders and colours shared by every figure.

Cell types follow :data:`DEFAULT_VOCAB` with one fixed colour each (:func:`label_colors`),
species have :data:`SPECIES_COLORS`, and conditions are coloured in the contrast's order,
reference first (:func:`condition_colors`); samples are ordered by arm, then naturally
(:func:`sample_order`).

This module does not import matplotlib: non-plotting code (the simulator, tables) can use the
vocabulary and orders.
"""

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from tmeflow._utils import natural_key

logger = logging.getLogger(__name__)

__all__ = [
    "CELL_TYPE_COLORS",
    "DEFAULT_VOCAB",
    "NA_COLOR",
    "NA_LABEL",
    "SPECIES_COLORS",
    "SPECIES_VOCAB",
    "condition_colors",
    "label_colors",
    "label_order",
    "ordered_conditions",
    "sample_order",
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
#: Labels drawn after all others (and underneath, in scatter plots).
LAST_LABELS: tuple[str, ...] = ("unassigned", NA_LABEL)

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
#: Colour of missing values.
NA_COLOR = "#E5E5E5"
_FIXED_COLORS: dict[str, str] = {**CELL_TYPE_COLORS, **SPECIES_COLORS, NA_LABEL: NA_COLOR}
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
#: Colours of the embeddings compared in the integration metrics (unintegrated PCA first).
EMBEDDING_COLORS: tuple[str, ...] = ("#7F7F7F", "#4C72B0", "#55A868", "#C44E52")


def clean_labels(labels: Iterable[Any]) -> list[str]:
    """Distinct labels as sorted strings, missing values (None/NaN) dropped.

    Parameters
    ----------
    labels
        Any values.

    Returns
    -------
    list of str
    """
    out = {str(x) for x in labels if not (pd.api.types.is_scalar(x) and pd.isna(x))}
    return sorted(out)


def label_order(labels: Iterable[Any], *, vocabulary: Sequence[str] = DEFAULT_VOCAB) -> list[str]:
    """Order labels for display.

    Vocabulary order, then others naturally sorted, then ``unassigned`` and ``NA``. The result
    depends only on the set of labels, never on the order they are given in. Missing values
    (None/NaN) are dropped.

    Parameters
    ----------
    labels
        Labels to order; other values than strings are converted to ``str``.
    vocabulary
        Known labels in display order.

    Returns
    -------
    list of str
    """
    present = clean_labels(labels)
    vocab_index = {lab: i for i, lab in enumerate(vocabulary)}
    known = sorted(
        (x for x in present if x in vocab_index and x not in LAST_LABELS),
        key=vocab_index.__getitem__,
    )
    others = sorted(
        (x for x in present if x not in vocab_index and x not in LAST_LABELS), key=natural_key
    )
    last = [x for x in LAST_LABELS if x in present]
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
    present = set(clean_labels(labels))
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
    """Colour conditions in the order given: reference (first) grey, test (second) red.

    Parameters
    ----------
    conditions
        Conditions in the contrast's order, reference first (see :func:`ordered_conditions`).

    Returns
    -------
    dict
        ``{condition: "#RRGGBB"}`` in the order given.
    """
    return {c: _CONDITION_COLORS[i % len(_CONDITION_COLORS)] for i, c in enumerate(conditions)}


def ordered_conditions(present: Iterable[Any], conditions: Sequence[str] | None) -> list[str]:
    """The conditions to draw: the contrast's order, reference first, then any others.

    Parameters
    ----------
    present
        Condition values of the data; missing values are dropped.
    conditions
        The contrast's levels, reference first. ``None``: the order of first appearance in
        ``present``.

    Returns
    -------
    list of str
        ``conditions`` (all of them, present or not), then the other present conditions in
        natural order (logged).
    """
    present = [str(x) for x in pd.unique(pd.Series(list(present), dtype=object).dropna())]
    if conditions is None:
        return present
    given = [str(c) for c in conditions]
    extra = sorted((c for c in present if c not in given), key=natural_key)
    if extra:
        logger.warning("conditions %s not in %s: drawn after them", extra, given)
    return given + extra


def sample_order(sample_conditions: Mapping[str, str], conditions: Sequence[str]) -> list[str]:
    """Order samples by arm (in ``conditions`` order), then naturally (``S2`` before ``S10``).

    Parameters
    ----------
    sample_conditions
        ``{sample: condition}``.
    conditions
        Every condition of ``sample_conditions`` in display order, reference first (see
        :func:`ordered_conditions`).

    Returns
    -------
    list of str
    """
    rank = {str(c): i for i, c in enumerate(conditions)}
    return sorted(
        sample_conditions,
        key=lambda s: (rank.get(str(sample_conditions[s]), len(rank)), natural_key(s)),
    )


def palette_for(column: str, labels: Iterable[Any], order: Sequence[str] | None) -> dict:
    """Colours of the labels of an ``obs`` column, in legend order.

    Parameters
    ----------
    column
        Column name; ``condition`` is coloured with :func:`condition_colors` in ``order``.
    labels
        The column's values.
    order
        Legend order; labels not listed follow.

    Returns
    -------
    dict
        ``{label: "#RRGGBB"}``; species labels with :data:`SPECIES_COLORS`, others with
        :func:`label_colors`.
    """
    labels = clean_labels(labels)
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

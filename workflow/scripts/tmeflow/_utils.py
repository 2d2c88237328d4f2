"""Small helpers shared by several stages: level order of a column, natural sort."""

import re
from typing import Any

import pandas as pd

__all__ = ["natural_key", "observed_levels"]


def observed_levels(values: pd.Series) -> list[str]:
    """Observed levels of a column, in categorical order when categorical, else sorted.

    Parameters
    ----------
    values
        A column of ``obs`` (or any Series); missing values are ignored.

    Returns
    -------
    list of str
        The levels that occur at least once, as strings.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        observed = set(values.dropna().astype(str))
        return [str(c) for c in values.cat.categories if str(c) in observed]
    return sorted(values.dropna().astype(str).unique())


def natural_key(label: Any) -> tuple:
    """Sort key that orders digit runs by value: ``2 < 10``, ``S2 < S10``, ``3 < 3:1 < 4``.

    Letters compare case-insensitively; the label itself breaks ties, and a label that is a
    prefix of another sorts first.

    Parameters
    ----------
    label
        Any value; it is compared as ``str(label)``.

    Returns
    -------
    tuple
        A key for :func:`sorted`.
    """
    text = str(label)
    parts = re.split(r"(\d+)", text)
    key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p)
    return (*key, (-1, 0, text))

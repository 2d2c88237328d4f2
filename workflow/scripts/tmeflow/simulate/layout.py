"""The demo's layout: its sample sheet and the files the demo folder holds.

:func:`demo_layout` is the sample sheet and :func:`demo_outputs` the file list (used at parse
time by ``workflow/rules/common.smk``); :mod:`tmeflow.simulate.demo` writes them and
:mod:`tmeflow.simulate.model` checks its arguments with the same rules.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tmeflow.simulate.truth import CONDITIONS_DEFAULT

MTX_FILES = ("matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv.gz")


def _check_conditions(conditions: Sequence[str]) -> tuple[str, ...]:
    """Two or more distinct arm names, the reference first (usable in file names)."""
    conds = tuple(conditions)
    if len(conds) < 2 or not all(isinstance(c, str) and c for c in conds):
        msg = (
            "conditions must be two or more non-empty strings (reference first, then the "
            f"treated arms); got {conditions!r}"
        )
        raise ValueError(msg)
    twice = sorted({c for c in conds if conds.count(c) > 1})
    if twice:
        msg = f"conditions must differ; got {twice[0]!r} twice"
        raise ValueError(msg)
    for c in conds:
        if any(ch in c for ch in "/\\\t\n ") or c.startswith("."):
            msg = f"condition {c!r} cannot be part of a file name; use letters, digits, '_' or '-'"
            raise ValueError(msg)
    return conds


def _check_replicates(n_replicates: int) -> int:
    if isinstance(n_replicates, bool) or not isinstance(n_replicates, int | np.integer):
        msg = f"n_replicates must be an integer; got {n_replicates!r}"
        raise TypeError(msg)
    if n_replicates < 1:
        msg = f"n_replicates must be at least 1; got {n_replicates}"
        raise ValueError(msg)
    return int(n_replicates)


def demo_layout(
    *, n_replicates: int = 3, conditions: Sequence[str] = CONDITIONS_DEFAULT
) -> pd.DataFrame:
    """Sample sheet of the demo data.

    Parameters
    ----------
    n_replicates
        Samples per condition.
    conditions
        ``(reference, test)`` condition names, or more arms (reference first).

    Returns
    -------
    pandas.DataFrame
        Columns ``sample``, ``condition``, ``path``, ``format``; samples ordered
        ``{reference}_1..n`` then ``{test}_1..n`` (then any further arm's). Sample ``k``
        (0-based) is written as 10x HDF5 (``format="10x_h5"``, ``path=f"{sample}.h5"``) when
        ``k`` is even and as a 10x v3 matrix-market folder (``format="10x_mtx"``,
        ``path=sample``) when odd. Paths are relative to the demo output directory.
    """
    n = _check_replicates(n_replicates)
    conds = _check_conditions(conditions)
    rows = []
    for cond in conds:
        for i in range(1, n + 1):
            sample = f"{cond}_{i}"
            k = len(rows)
            if k % 2 == 0:
                rows.append((sample, cond, f"{sample}.h5", "10x_h5"))
            else:
                rows.append((sample, cond, sample, "10x_mtx"))
    return pd.DataFrame(rows, columns=["sample", "condition", "path", "format"])


def demo_outputs(
    *, n_replicates: int = 3, conditions: Sequence[str] = CONDITIONS_DEFAULT
) -> list[str]:
    """Every file :func:`write_demo` creates, relative to the output directory.

    Parameters
    ----------
    n_replicates, conditions
        As for :func:`demo_layout`.

    Returns
    -------
    list of str
        The ``.h5`` files, the three files of each mtx folder, ``truth.tsv`` and
        ``planted.yaml``.
    """
    layout = demo_layout(n_replicates=n_replicates, conditions=conditions)
    out: list[str] = []
    for path, fmt in zip(layout["path"], layout["format"], strict=True):
        if fmt == "10x_h5":
            out.append(path)
        else:
            out.extend(f"{path}/{name}" for name in MTX_FILES)
    out.extend(["truth.tsv", "planted.yaml"])
    return out

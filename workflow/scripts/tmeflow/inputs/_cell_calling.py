"""Tell a raw (unfiltered) droplet matrix from a cell-called one, and call cells in it.

Public GEO deposits sometimes hold Cell Ranger's *raw* matrix (every barcode with a UMI, most
of them empty droplets) instead of the filtered one. :func:`looks_raw` recognises such a
matrix: at least ``raw_min_barcodes`` barcodes (20,000 by default; a 10x lane holds at most a
few tens of thousands of cells) or, with at least 1,000 barcodes, a majority of barcodes with
fewer than ``min_umi`` UMIs (cell-called matrices have almost none below 100).

Cells are then called with the **inflection point of the barcode-rank curve**, the method of
``DropletUtils::barcodeRanks`` (Lun et al. 2019): barcodes are ranked by total UMIs, the curve
``log10(total)`` against ``log10(rank)`` is taken over barcodes with at least ``min_umi``
UMIs, resampled on an even grid of log-rank (so that the thousands of tied low ranks do not
dominate), smoothed with a running mean, and the cut-off is the total at its steepest descent
(the minimum of the first derivative), searching ranks >= ``exclude_top`` only so that the
few very large barcodes at the head of the curve do not create a spurious drop. Every barcode
with ``total >= cut-off`` is a cell.

Why the inflection and not an EmptyDrops test: it needs no ambient profile nor Monte-Carlo
p-values, is deterministic, runs in a second on 10^5 barcodes, and on the real unfiltered
10x ``hgmm_100`` library (118,098 barcodes) it calls 122 cells (cut-off 1,071 UMIs), all of
them in the published filtered matrix, recovering 122 of its 123 barcodes (the one lost holds
570 UMIs, at the foot of the drop; see tests/unit/inputs/test_realdata_inputs.py). Its known
weakness, shared with Cell Ranger 2: small cells with few UMIs (e.g. neutrophils) below the
knee are lost. Where that matters, supply the filtered matrix of a dedicated caller (Cell
Ranger >= 3, EmptyDrops) and set ``ingest.cell_calling: never``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

logger = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("auto", "always", "never")
"""``auto``: call cells only in a matrix that looks raw; ``always``: call cells in every
matrix; ``never``: never call cells and refuse a matrix that looks raw."""


def barcode_totals(adata: AnnData) -> np.ndarray:
    """Total UMIs per barcode (row sums of ``X``), as float64."""
    X = adata.X
    if sp.issparse(X):
        return np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
    return np.asarray(X, dtype=np.float64).sum(axis=1)


def looks_raw(
    totals: np.ndarray, *, raw_min_barcodes: int = 20_000, min_umi: int = 100
) -> tuple[bool, str]:
    """Whether a matrix with these per-barcode totals is an unfiltered droplet matrix.

    Returns
    -------
    raw, why
        The verdict and a sentence saying why (for logs and the summary).
    """
    n = int(totals.size)
    low = float(np.mean(totals < min_umi)) if n else 0.0
    if n >= raw_min_barcodes:
        return True, f"{n} barcodes (>= {raw_min_barcodes})"
    if n >= 1000 and low > 0.5:
        return True, f"{low:.0%} of {n} barcodes have < {min_umi} UMIs"
    return False, f"{n} barcodes, {low:.0%} with < {min_umi} UMIs"


def inflection_cutoff(
    totals: np.ndarray,
    *,
    min_umi: int = 100,
    exclude_top: int = 10,
    grid_step: float = 0.01,
    smooth_window: int = 5,
) -> float:
    """Total-UMI cut-off at the inflection (steepest descent) of the barcode-rank curve.

    Parameters
    ----------
    totals
        Total UMIs per barcode.
    min_umi
        Barcodes below this total are not part of the curve (they are certainly empty).
    exclude_top
        The search starts at this rank, skipping the head of the curve.
    grid_step
        Spacing of the log10-rank grid the curve is resampled on.
    smooth_window
        Width (grid points) of the running mean applied before differentiating.

    Returns
    -------
    float
        The cut-off: barcodes with ``total >= cut-off`` are cells.

    Raises
    ------
    ValueError
        Fewer than ``exclude_top + 3`` barcodes with at least ``min_umi`` UMIs: no curve.
    """
    t = np.sort(np.asarray(totals, dtype=np.float64))[::-1]
    t = t[t >= min_umi]
    if t.size < exclude_top + 3:
        msg = (
            f"only {t.size} barcodes have >= {min_umi} UMIs; no barcode-rank curve to call "
            "cells on. Provide the filtered (cell-called) matrix, or lower ingest.min_umi."
        )
        raise ValueError(msg)
    rank = np.arange(1, t.size + 1, dtype=np.float64)
    x = np.log10(rank)
    y = np.log10(t)
    grid = np.arange(x[0], x[-1] + grid_step / 2, grid_step)
    # y is non-increasing in x; interpolate on the grid (steps at ties become slopes)
    yg = np.interp(grid, x, y)
    if smooth_window > 1 and yg.size > smooth_window:
        kernel = np.ones(smooth_window) / smooth_window
        pad = smooth_window // 2
        yg = np.convolve(np.pad(yg, pad, mode="edge"), kernel, mode="valid")[: grid.size]
    d = np.gradient(yg, grid)
    start = int(np.searchsorted(grid, np.log10(max(exclude_top, 1))))
    start = min(start, d.size - 2)
    i = start + int(np.argmin(d[start:-1]))
    # the inflection lies inside the steepest segment; the cut-off is the total at its upper
    # end, so that the barcodes just above the drop are kept.
    cut = float(10 ** yg[i])
    upper = t[t >= cut]
    return float(upper.min()) if upper.size else cut


def call_cells(
    adata: AnnData,
    *,
    mode: str = "auto",
    raw_min_barcodes: int = 20_000,
    min_umi: int = 100,
    sample: str | None = None,
    path: str = "",
) -> tuple[AnnData, dict[str, Any]]:
    """Detect an unfiltered matrix and keep only the called cells.

    Parameters
    ----------
    adata
        Raw counts, one row per barcode.
    mode
        One of :data:`MODES`.
    raw_min_barcodes, min_umi
        See :func:`looks_raw` and :func:`inflection_cutoff`.
    sample, path
        For messages.

    Returns
    -------
    adata, info
        The called cells (``adata`` itself when nothing is called) and a dict:
        ``looks_raw`` (bool), ``why``, ``called`` (bool), ``method``, ``n_barcodes``,
        ``n_cells``, ``cutoff_umi`` (NaN when not called), ``min_umi`` and, when cells are
        called, ``n_empty_droplets`` (barcodes with at least one and fewer than ``min_umi``
        UMIs). The same dict is stored in ``uns["cell_calling"]`` of the result. When cells
        are called, ``var["ambient_umis"]`` of the result holds the UMIs of each feature
        summed over those empty droplets: the ambient (soup) profile of the sample, used by
        :mod:`tmeflow.cells._cross_species` and :mod:`tmeflow.cells._ambient`.

    Raises
    ------
    ValueError
        Unknown mode; ``mode="never"`` on a matrix that looks raw (asks for the filtered
        matrix); or no curve to call cells on.
    """
    if mode not in MODES:
        msg = f"ingest.cell_calling={mode!r}; use one of {', '.join(MODES)}."
        raise ValueError(msg)
    who = f"sample {sample!r}: " if sample is not None else ""
    totals = barcode_totals(adata)
    raw, why = looks_raw(totals, raw_min_barcodes=raw_min_barcodes, min_umi=min_umi)
    info: dict[str, Any] = {
        "looks_raw": bool(raw),
        "why": why,
        "called": False,
        "method": "none",
        "n_barcodes": int(adata.n_obs),
        "n_cells": int(adata.n_obs),
        "cutoff_umi": float("nan"),
        "min_umi": int(min_umi),
        "mode": mode,
    }
    if mode == "never" and raw:
        msg = (
            f"{who}{path!r} looks like an unfiltered (raw) droplet matrix ({why}). Provide the "
            "filtered (cell-called) matrix, e.g. Cell Ranger's filtered_feature_bc_matrix, or "
            "set ingest.cell_calling: auto to call cells at the barcode-rank inflection."
        )
        raise ValueError(msg)
    if mode == "never" or (mode == "auto" and not raw):
        adata.uns["cell_calling"] = info
        return adata, info
    try:
        cut = inflection_cutoff(totals, min_umi=min_umi)
    except ValueError as exc:
        raise ValueError(f"{who}{path!r}: {exc}") from exc
    keep = totals >= cut
    empty = (totals > 0) & (totals < min_umi)
    out = adata[keep].copy()
    out.var["ambient_umis"] = _column_sums(adata.X, empty)
    info.update(
        {
            "called": True,
            "method": "barcode-rank inflection",
            "n_cells": int(keep.sum()),
            "cutoff_umi": float(cut),
            "n_empty_droplets": int(empty.sum()),
        }
    )
    out.uns["cell_calling"] = info
    logger.info(
        "%scell calling (%s): %d of %d barcodes have >= %.0f UMIs",
        who,
        why,
        info["n_cells"],
        info["n_barcodes"],
        cut,
    )
    return out, info


def _column_sums(X: Any, rows: np.ndarray) -> np.ndarray:
    """Per-feature sums of ``X`` over the ``rows`` mask, as int64."""
    idx = np.flatnonzero(rows)
    if idx.size == 0:
        return np.zeros(X.shape[1], dtype=np.int64)
    sub = X[idx]
    return np.rint(np.asarray(sub.sum(axis=0), dtype=np.float64).ravel()).astype(np.int64)

"""Ambient RNA (soup) in a xenograft: how much of a gene's UMIs each cell owes to it.

In a xenograft a human tumour cell cannot express a mouse gene: the mouse ``Gas6`` UMIs found
in human cells are ambient RNA (or an undetected doublet), never tumour expression. They also
measure the soup: the other-species UMIs of pure cells give the sample's total ambient
fraction ``rho``, and with it the ambient UMIs every cell carries of its *own* species' genes,
which cannot be told apart from expression one cell at a time.

The model, per sample (SoupX's, with the contamination estimated from the other species):

- the soup profile ``p`` is the sample's pooled counts (each gene's share of all UMIs of the
  sample's cells; the empty droplets, when a raw matrix was given, only set the soup's species
  composition at the species step, :mod:`tmeflow.crossspecies`, and are not carried to the
  merged object);
- a cell with ``T`` UMIs received ``T * rho * p_g`` ambient UMIs of gene ``g``;
- ``rho`` = (mouse UMIs of human cells + human UMIs of mouse cells) / (UMIs of human cells *
  soup mouse share + UMIs of mouse cells * soup human share).

Without cells of both species (or without ``var["species"]``/``obs["species"]``) there is no
cross-species signal: ``rho`` is NaN and nothing is corrected (logged).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

logger = logging.getLogger(__name__)

CELL_SPECIES: tuple[str, str] = ("human", "mouse")


def _counts(adata: AnnData, layer: str | None) -> sp.csr_matrix:
    mat = adata.X if layer is None else adata.layers[layer]
    return mat if isinstance(mat, sp.csr_matrix) else sp.csr_matrix(mat)


def sample_contamination(
    adata: AnnData,
    *,
    sample_key: str = "sample",
    species_key: str = "species",
    layer: str | None = "counts",
) -> pd.DataFrame:
    """Per sample: the soup's mouse share and the total ambient fraction ``rho``.

    Returns
    -------
    pandas.DataFrame
        Indexed by sample: ``n_umis`` (all UMIs of its cells), ``soup_mouse_fraction`` (mouse
        share of them), ``rho`` (NaN without cells of both species or feature species) and
        ``n_cross_species_umis`` (the other-species UMIs of its pure cells that ``rho`` rests
        on).
    """
    mat = _counts(adata, layer)
    samples = adata.obs[sample_key].astype(str).to_numpy()
    total = np.asarray(mat.sum(axis=1), dtype=np.float64).ravel()
    rows = []
    has_species = "species" in adata.var and species_key in adata.obs
    if has_species:
        var_sp = adata.var["species"].astype(str).to_numpy()
        n_m = np.asarray(mat[:, np.flatnonzero(var_sp == "mouse")].sum(axis=1)).ravel()
        n_h = np.asarray(mat[:, np.flatnonzero(var_sp == "human")].sum(axis=1)).ravel()
        cell_sp = adata.obs[species_key].astype(str).to_numpy()
    for s in pd.unique(samples):
        sel = samples == s
        row = {"sample": s, "n_umis": float(total[sel].sum())}
        row["soup_mouse_fraction"] = np.nan
        row["rho"] = np.nan
        row["n_cross_species_umis"] = 0.0
        if has_species:
            both = float(n_h[sel].sum() + n_m[sel].sum())
            s_m = float(n_m[sel].sum()) / both if both > 0 else np.nan
            row["soup_mouse_fraction"] = s_m
            h = sel & (cell_sp == "human")
            m = sel & (cell_sp == "mouse")
            if h.any() and m.any() and 0 < s_m < 1:
                cross = float(n_m[h].sum() + n_h[m].sum())
                denom = float(total[h].sum() * s_m + total[m].sum() * (1 - s_m))
                row["rho"] = min(cross / denom, 1.0)
                row["n_cross_species_umis"] = cross
        rows.append(row)
    out = pd.DataFrame(rows).set_index("sample")
    for s, r in out.iterrows():
        if not np.isfinite(r["rho"]):
            logger.warning(
                "sample %s: no cross-species signal (cells of both species and feature species "
                "needed); ambient RNA not estimated, counts not corrected",
                s,
            )
    return out


def gene_ambient(
    adata: AnnData,
    col: np.ndarray,
    gene: str,
    *,
    sample_key: str = "sample",
    species_key: str = "species",
    layer: str | None = "counts",
) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: the gene's other-species UMIs and its expected ambient UMIs.

    Parameters
    ----------
    adata
        Cells with raw counts in ``layers[layer]``, ``obs[sample_key]``, ``obs[species_key]``
        and ``var["species"]``.
    col
        The gene's counts per cell.
    gene
        Its name in ``var_names``.

    Returns
    -------
    other_species, expected
        ``other_species``: the cell's counts of the gene when the gene's species differs from
        the cell's (a mouse gene in a human cell: ambient or doublet; else 0).
        ``expected``: ``T * rho * p_g`` for cells of the gene's species (0 for the others,
        whose UMIs are all in ``other_species``; 0 where ``rho`` is NaN).
    """
    col = np.asarray(col, dtype=np.float64)
    other = np.zeros_like(col)
    expected = np.zeros_like(col)
    if "species" not in adata.var or species_key not in adata.obs:
        return other, expected
    g_sp = str(adata.var["species"].astype(str).iat[adata.var_names.get_loc(gene)])
    if g_sp not in CELL_SPECIES:
        return other, expected
    cell_sp = adata.obs[species_key].astype(str).to_numpy()
    foreign = np.isin(cell_sp, CELL_SPECIES) & (cell_sp != g_sp)
    other[foreign] = col[foreign]
    cont = sample_contamination(adata, sample_key=sample_key, species_key=species_key, layer=layer)
    mat = _counts(adata, layer)
    total = np.asarray(mat.sum(axis=1), dtype=np.float64).ravel()
    samples = adata.obs[sample_key].astype(str).to_numpy()
    for s, r in cont.iterrows():
        sel = samples == s
        if not np.isfinite(r["rho"]) or r["n_umis"] <= 0:
            continue
        p_g = float(col[sel].sum()) / float(r["n_umis"])
        own = sel & ~foreign
        expected[own] = total[own] * r["rho"] * p_g
    return other, expected

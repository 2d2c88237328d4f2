"""Ambient RNA (soup) in a xenograft: how much of a gene's UMIs each cell owes to it.

In a xenograft a human tumour cell cannot express a mouse gene: the mouse ``Gas6`` UMIs found
in human cells are ambient RNA (or an undetected doublet), never tumour expression. They also
measure the soup: the other-species UMIs of pure cells give the sample's total ambient
fraction ``rho``, and with it the ambient UMIs every cell carries of its *own* species' genes,
which cannot be told apart from expression one cell at a time.

The model, per sample (SoupX's, with the contamination estimated from the other species):

- the soup profile ``p`` (:func:`soup_profiles`, per sample and species) comes from the
  sample's empty droplets when a raw matrix was given (``var["ambient_umis"]`` at ingest,
  carried into ``varm["ambient_umis"]`` of the merged object), otherwise from the other
  species' cells (the mouse UMIs of human cells are all ambient) or the pooled cells;
- a cell with ``T`` UMIs received ``T * rho * p_g`` ambient UMIs of gene ``g``;
- ``rho`` = (mouse UMIs of human cells + human UMIs of mouse cells) / (UMIs of human cells *
  soup mouse share + UMIs of mouse cells * soup human share).

Without cells of both species (or without ``var["species"]``/``obs["species"]``) there is no
cross-species signal: ``rho`` is NaN and nothing is corrected (logged).

:func:`add_corrected_layer` (rule ``integrate_merge``, on every gene) writes the
ambient-corrected counts ``layers["counts_ambient_corrected"]``: per cell, the other species'
UMIs of a pure cell and ``rho * T`` soup UMIs of its own species removed (SoupX's
``subtraction``), integer, never below 0; ``layers["counts"]`` stays raw.
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
    soup: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per sample: the soup's mouse share and the total ambient fraction ``rho``.

    Parameters
    ----------
    soup
        Soup profiles, genes x samples (:func:`soup_profiles`; by default
        ``varm["soup_profile"]`` when the object has it): a sample's soup mouse share is
        that of its profile. Without one, the pooled cells' mouse share.

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
    if soup is None and "soup_profile" in adata.varm:
        soup = pd.DataFrame(adata.varm["soup_profile"], index=adata.var_names)
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
            if soup is not None and s in soup.columns:
                s_m = _profile_mouse_share(soup[s], adata.var)
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


def _profile_mouse_share(profile: pd.Series, var: pd.DataFrame) -> float:
    """Mouse share of a soup profile's human + mouse mass (NaN without any)."""
    p = profile.reindex(var.index).fillna(0.0).to_numpy(np.float64)
    var_sp = var["species"].astype(str).to_numpy()
    hm = float(p[np.isin(var_sp, CELL_SPECIES)].sum())
    return float(p[var_sp == "mouse"].sum()) / hm if hm > 0 else np.nan


def gene_ambient(
    adata: AnnData,
    col: np.ndarray,
    gene: str,
    *,
    sample_key: str = "sample",
    species_key: str = "species",
    layer: str | None = "counts",
    cache: dict | None = None,
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
    cache
        A dict kept between calls on the same object (many genes): the per-sample
        contamination, cell totals and species are then computed once instead of per gene.

    Returns
    -------
    other_species, expected
        ``other_species``: the cell's counts of the gene when the gene's species differs from
        the cell's (a mouse gene in a human cell: ambient or doublet; else 0).
        ``expected``: ``T * rho * p_g`` for cells of the gene's species (0 for the others,
        whose UMIs are all in ``other_species``; 0 where ``rho`` is NaN), ``p_g`` the gene's
        share of the sample's soup profile (``varm["soup_profile"]``, :func:`soup_profiles`)
        or, without one, of the sample's pooled counts.
    """
    col = np.asarray(col, dtype=np.float64)
    other = np.zeros_like(col)
    expected = np.zeros_like(col)
    if "species" not in adata.var or species_key not in adata.obs:
        return other, expected
    key = ("gene_ambient", sample_key, species_key, layer)
    ctx = None if cache is None else cache.get(key)
    if ctx is None:
        ctx = {"var_sp": adata.var["species"].astype(str).to_numpy()}
        if cache is not None:
            cache[key] = ctx
    j = adata.var_names.get_loc(gene)
    g_sp = str(ctx["var_sp"][j])
    if g_sp not in CELL_SPECIES:
        return other, expected
    if "cont" not in ctx:
        mat = _counts(adata, layer)
        ctx["cell_sp"] = adata.obs[species_key].astype(str).to_numpy()
        ctx["cont"] = sample_contamination(
            adata, sample_key=sample_key, species_key=species_key, layer=layer
        )
        ctx["total"] = np.asarray(mat.sum(axis=1), dtype=np.float64).ravel()
        ctx["samples"] = adata.obs[sample_key].astype(str).to_numpy()
    cell_sp, cont, total, samples = ctx["cell_sp"], ctx["cont"], ctx["total"], ctx["samples"]
    foreign = np.isin(cell_sp, CELL_SPECIES) & (cell_sp != g_sp)
    other[foreign] = col[foreign]
    soup = adata.varm["soup_profile"] if "soup_profile" in adata.varm else None
    for s, r in cont.iterrows():
        sel = samples == s
        if not np.isfinite(r["rho"]) or r["n_umis"] <= 0:
            continue
        if isinstance(soup, pd.DataFrame) and s in soup.columns:
            p_g = float(soup[s].iat[j])
        else:
            p_g = float(col[sel].sum()) / float(r["n_umis"])
        own = sel & ~foreign
        expected[own] = total[own] * r["rho"] * p_g
    return other, expected


# --- soup profile and the ambient-corrected counts layer -------------------------------------

CORRECTED_LAYER = "counts_ambient_corrected"
"""Layer of the SoupX-style corrected counts (:func:`corrected_counts`)."""

SOUP_SOURCES: tuple[str, ...] = ("empty_droplets", "other_species_cells", "pooled_cells")
"""Where a sample's soup profile of one species comes from, in order of preference."""

#: Fewest UMIs a soup profile (of a sample, or of one species in it) rests on; below it the
#: next source of :data:`SOUP_SOURCES` is used.
MIN_SOUP_UMIS = 1000

#: Stored entries of the counts matrix corrected at a time (whole cells; bounds the temporary
#: arrays: about 100 bytes per entry).
CHUNK_ENTRIES = 2_000_000


def soup_profiles(
    adata: AnnData,
    *,
    sample_key: str = "sample",
    species_key: str = "species",
    layer: str | None = "counts",
    empty_umis: pd.DataFrame | None = None,
    min_soup_umis: int = MIN_SOUP_UMIS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per sample, the soup profile (each gene's share of the ambient RNA) and its source.

    Per sample and per species ``S`` (``human``, ``mouse``; features of neither species count
    as ``unknown``), the first source with at least ``min_soup_umis`` UMIs:

    - ``empty_droplets``: the sample's empty droplets (``empty_umis``, by default
      ``varm["ambient_umis"]`` of the merged object, from ``var["ambient_umis"]`` written at
      ingest for a raw matrix); they also set the soup's species composition;
    - ``other_species_cells``: the ``S`` UMIs found in the sample's pure cells of the other
      species (a two-genome sample: every mouse UMI in a human cell is ambient RNA or a
      doublet), normalised within ``S``;
    - ``pooled_cells``: the ``S`` UMIs of all the sample's cells (SoupX's fallback: the soup
      resembles the pooled cells), normalised within ``S``.

    Without empty droplets the species composition is the pooled cells' (as in
    :func:`sample_contamination`).

    Returns
    -------
    profile : pandas.DataFrame
        Genes (``var_names``) x samples; each column sums to 1 (0 for a sample without UMIs).
    table : pandas.DataFrame
        Indexed by sample: ``soup_source_<S>`` (a :data:`SOUP_SOURCES` entry; ``""`` for a
        species without features), ``soup_umis_<S>`` (the UMIs that source rests on) and
        ``soup_mouse_fraction`` (mouse share of the profile's human + mouse mass; NaN
        without feature species).
    """
    mat = _counts(adata, layer)
    samples = adata.obs[sample_key].astype(str).to_numpy()
    var_sp = (
        adata.var["species"].astype(str).to_numpy()
        if "species" in adata.var
        else np.full(adata.n_vars, "unknown", dtype=object)
    )
    var_sp = np.where(np.isin(var_sp, CELL_SPECIES), var_sp, "unknown")
    cell_sp = (
        adata.obs[species_key].astype(str).to_numpy()
        if species_key in adata.obs
        else np.full(adata.n_obs, "", dtype=object)
    )
    if empty_umis is None and "ambient_umis" in adata.varm:
        empty_umis = pd.DataFrame(adata.varm["ambient_umis"], index=adata.var_names)
    names = list(pd.unique(samples))
    profile = np.zeros((adata.n_vars, len(names)), dtype=np.float64)
    rows = []
    for k, s in enumerate(names):
        sel = samples == s
        pooled = np.asarray(mat[np.flatnonzero(sel)].sum(axis=0), dtype=np.float64).ravel()
        empty = None
        if empty_umis is not None and s in empty_umis.columns:
            empty = empty_umis[s].reindex(adata.var_names).fillna(0.0).to_numpy(np.float64)
        row: dict[str, object] = {"sample": s}
        if empty is not None and empty.sum() >= min_soup_umis:
            p = empty.copy()
            for sp_name in CELL_SPECIES:
                has = bool((var_sp == sp_name).any())
                row[f"soup_source_{sp_name}"] = "empty_droplets" if has else ""
                row[f"soup_umis_{sp_name}"] = float(empty[var_sp == sp_name].sum())
        else:
            p = np.zeros_like(pooled)
            for sp_name in (*CELL_SPECIES, "unknown"):
                genes = var_sp == sp_name
                mass = float(pooled[genes].sum())
                if not genes.any() or mass <= 0:
                    if sp_name != "unknown":
                        row[f"soup_source_{sp_name}"] = "" if not genes.any() else "pooled_cells"
                        row[f"soup_umis_{sp_name}"] = 0.0
                    continue
                within, source = pooled[genes], "pooled_cells"
                foreign = sel & np.isin(cell_sp, CELL_SPECIES) & (cell_sp != sp_name)
                if sp_name != "unknown" and foreign.any():
                    cross = np.asarray(
                        mat[np.flatnonzero(foreign)][:, np.flatnonzero(genes)].sum(axis=0),
                        dtype=np.float64,
                    ).ravel()
                    if cross.sum() >= min_soup_umis:
                        within, source = cross, "other_species_cells"
                p[genes] = mass * within / within.sum()
                if sp_name != "unknown":
                    row[f"soup_source_{sp_name}"] = source
                    row[f"soup_umis_{sp_name}"] = float(within.sum())
        total = float(p.sum())
        if total > 0:
            profile[:, k] = p / total
        hm = float(profile[np.isin(var_sp, CELL_SPECIES), k].sum())
        mouse = float(profile[var_sp == "mouse", k].sum())
        row["soup_mouse_fraction"] = mouse / hm if hm > 0 else np.nan
        rows.append(row)
    table = pd.DataFrame(rows).set_index("sample")
    return pd.DataFrame(profile, index=adata.var_names.copy(), columns=names), table


def _allocate(
    rows: np.ndarray, counts: np.ndarray, weights: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """SoupX's subtraction for many cells at once: remove ``target[i]`` UMIs from cell ``i``.

    The entries (``rows``, ``counts``, soup ``weights``; rows sorted, ascending) of each cell
    lose ``min(count, lambda_i * weight)`` with ``lambda_i`` chosen so that the cell loses
    ``target[i]`` in all (all its counts when they are fewer): in proportion to the soup
    where the counts allow, the remainder spread over the genes that still have counts.
    Returns the (fractional) UMIs removed per entry.
    """
    removed = np.zeros(counts.size, dtype=np.float64)
    ok = weights > 0
    if not ok.any():
        return removed
    idx = np.flatnonzero(ok)
    r, c, w = rows[idx], counts[idx], weights[idx]
    t = c / w
    order = np.lexsort((t, r))
    r, c, w, t, idx = r[order], c[order], w[order], t[order], idx[order]
    n_rows = target.size
    n_per = np.bincount(r, minlength=n_rows)
    start = np.r_[0, np.cumsum(n_per)[:-1]]
    pos = np.arange(r.size) - start[r]
    c_cum = np.cumsum(c)
    c_excl = c_cum - c - (c_cum - c)[start[r]]  # this cell's counts before the entry
    w_cum = np.cumsum(w)
    w_tot = np.bincount(r, weights=w, minlength=n_rows)
    w_from = w_tot[r] - (w_cum - w - (w_cum - w)[start[r]])  # weights from the entry on
    reach = c_excl + t * w_from  # UMIs removed when lambda = t (this entry just capped)
    k = np.bincount(r, weights=(reach < target[r]), minlength=n_rows).astype(np.int64)
    lam = np.full(n_rows, np.inf)
    has = k < n_per
    first = start[has] + k[has]
    lam[has] = (target[has] - c_excl[first]) / w_from[first]
    rem = np.where(pos < k[r], c, np.minimum(c, lam[r] * w))
    removed[idx] = rem
    return removed


def _round_removed(rows: np.ndarray, removed: np.ndarray, n_rows: int) -> np.ndarray:
    """Integer UMIs removed per entry: floors, plus one for the largest remainders of a cell.

    Deterministic (ties by position) and keeps each cell's total the rounded fractional total;
    an entry never loses more than ``ceil`` of its fractional removal, so never more than its
    count.
    """
    base = np.floor(removed + 1e-9)
    frac = np.clip(removed - base, 0.0, None)
    want = np.floor(np.bincount(rows, weights=removed, minlength=n_rows) + 0.5)
    extra = (want - np.bincount(rows, weights=base, minlength=n_rows)).astype(np.int64)
    extra = np.maximum(extra, 0)
    order = np.lexsort((np.arange(rows.size), -frac, rows))
    n_per = np.bincount(rows, minlength=n_rows)
    start = np.r_[0, np.cumsum(n_per)[:-1]]
    pos = np.empty(rows.size, dtype=np.int64)
    pos[order] = np.arange(rows.size) - start[rows[order]]
    bump = (pos < extra[rows]) & (frac > 0)
    return (base + bump).astype(np.int64)


def corrected_counts(
    adata: AnnData,
    *,
    sample_key: str = "sample",
    species_key: str = "species",
    layer: str = "counts",
    profile: pd.DataFrame | None = None,
    contamination: pd.DataFrame | None = None,
    chunk_entries: int = CHUNK_ENTRIES,
) -> tuple[sp.csr_matrix, pd.DataFrame]:
    """Ambient-corrected integer counts (SoupX-style subtraction with the estimated ``rho``).

    Per cell of sample ``s`` with ``T`` UMIs, species ``S`` and contamination ``rho_s``
    (:func:`sample_contamination`, with the soup composition of ``profile``):

    - in a pure cell (``obs[species_key]`` ``human``/``mouse``), every UMI of the other
      species' genes is removed (ambient RNA or a doublet, never expression); of its own
      species' (and unassigned) genes ``rho * T * (1 - soup share of the other species)``
      UMIs are removed;
    - any other cell loses ``rho * T`` UMIs over all genes;
    - the UMIs to remove are spread over the genes in proportion to the soup profile, capped
      at each gene's count, the excess going to the genes that still have counts (SoupX's
      ``subtraction``), then rounded per cell (floors plus the largest remainders): integers,
      never below 0, never above the raw count;
    - a sample whose ``rho`` is NaN (no cross-species signal) is left uncorrected (logged).

    Parameters
    ----------
    adata
        Cells with raw integer counts in ``layers[layer]``, ``obs[sample_key]``,
        ``obs[species_key]`` and ``var["species"]``; not modified.
    profile, contamination
        Outputs of :func:`soup_profiles` and :func:`sample_contamination` (computed when
        ``None``).
    chunk_entries
        Stored entries corrected at a time (whole cells, at least one): besides the result
        (at most as many entries as the counts), the temporary arrays hold one chunk's.

    Returns
    -------
    counts : scipy.sparse.csr_matrix
        Same shape and dtype as the raw counts; the raw layer is untouched.
    table : pandas.DataFrame
        Indexed by sample: ``rho``, ``n_umis``, ``n_umis_removed``, ``fraction_removed``.
    """
    mat = _counts(adata, layer)
    if mat.dtype.kind == "f" and mat.data.size and not np.all(np.mod(mat.data, 1) == 0):
        msg = f"layers[{layer!r}] holds non-integer values; pass the raw counts"
        raise ValueError(msg)
    if profile is None:
        profile, _ = soup_profiles(adata, sample_key=sample_key, species_key=species_key,
                                   layer=layer)  # fmt: skip
    if contamination is None:
        contamination = sample_contamination(
            adata, sample_key=sample_key, species_key=species_key, layer=layer, soup=profile
        )
    samples = adata.obs[sample_key].astype(str).to_numpy()
    names = list(profile.columns)
    s_idx = pd.Index(names).get_indexer(samples)
    if (s_idx < 0).any():
        msg = f"samples {sorted(set(samples[s_idx < 0]))} have no soup profile"
        raise KeyError(msg)
    prof = profile.reindex(adata.var_names).fillna(0.0).to_numpy(np.float64).T  # samples x genes
    rho = contamination["rho"].reindex(names).to_numpy(np.float64)
    var_sp = (
        adata.var["species"].astype(str).to_numpy()
        if "species" in adata.var
        else np.full(adata.n_vars, "unknown", dtype=object)
    )
    cell_sp = (
        adata.obs[species_key].astype(str).to_numpy()
        if species_key in adata.obs
        else np.full(adata.n_obs, "", dtype=object)
    )
    gene_code = np.select([var_sp == "human", var_sp == "mouse"], [0, 1], 2)
    cell_code = np.select([cell_sp == "human", cell_sp == "mouse"], [0, 1], 2)
    # soup share of the other species, per sample and cell species
    share = np.stack([prof[:, gene_code == g].sum(axis=1) for g in (0, 1)], axis=1)
    out = mat.copy()
    totals = np.asarray(mat.sum(axis=1), dtype=np.float64).ravel()
    lo = 0
    while lo < adata.n_obs:
        hi = int(np.searchsorted(mat.indptr, mat.indptr[lo] + max(int(chunk_entries), 1), "right"))
        hi = min(max(hi - 1, lo + 1), adata.n_obs)
        a, b = mat.indptr[lo], mat.indptr[hi]
        rows = np.repeat(np.arange(hi - lo), np.diff(mat.indptr[lo : hi + 1]))
        cols = mat.indices[a:b]
        c = mat.data[a:b].astype(np.float64)
        si = s_idx[lo:hi]
        r_s = rho[si]
        cc = cell_code[lo:hi]
        pure = cc < 2
        target = r_s * totals[lo:hi]
        other_share = np.where(pure, share[si, 1 - np.minimum(cc, 1)], 0.0)
        target = np.where(np.isfinite(r_s), target * (1.0 - other_share), 0.0)
        g = gene_code[cols]
        foreign = pure[rows] & (g < 2) & (g != cc[rows]) & np.isfinite(r_s)[rows]
        w = np.where(foreign, 0.0, prof[si[rows], cols])
        removed = _allocate(rows, np.where(foreign, 0.0, c), w, target)
        removed = _round_removed(rows, removed, hi - lo)
        removed = np.where(foreign, c, removed).astype(np.int64)
        out.data[a:b] = (c - removed).astype(out.data.dtype)
        lo = hi
    out.eliminate_zeros()
    kept = np.asarray(out.sum(axis=1), dtype=np.float64).ravel()
    table = (
        pd.DataFrame({"sample": samples, "n": totals, "kept": kept})
        .groupby("sample", sort=False)[["n", "kept"]]
        .sum()
    )
    table = pd.DataFrame(
        {
            "rho": contamination["rho"].reindex(table.index).to_numpy(),
            "n_umis": table["n"].to_numpy(),
            "n_umis_removed": (table["n"] - table["kept"]).to_numpy(),
        },
        index=table.index,
    )
    table["fraction_removed"] = table["n_umis_removed"] / table["n_umis"].where(table["n_umis"] > 0)
    return out, table


def add_corrected_layer(
    adata: AnnData,
    *,
    sample_key: str = "sample",
    species_key: str = "species",
    layer: str = "counts",
    min_soup_umis: int = MIN_SOUP_UMIS,
) -> pd.DataFrame:
    """Write the soup profiles and ``layers["counts_ambient_corrected"]`` into ``adata``.

    Writes ``varm["soup_profile"]`` (genes x samples, :func:`soup_profiles`),
    ``layers[CORRECTED_LAYER]`` (:func:`corrected_counts`; ``layers[layer]`` untouched) and
    ``uns["ambient"]``: ``method`` (``soupx_subtraction``), ``layer``, ``min_soup_umis`` and,
    per sample, the soup sources, ``rho`` and the UMIs removed (the returned table).

    Returns
    -------
    pandas.DataFrame
        Indexed by sample: the columns of both tables and ``soup_mouse_fraction``.
    """
    profile, sources_table = soup_profiles(
        adata, sample_key=sample_key, species_key=species_key, layer=layer,
        min_soup_umis=min_soup_umis,
    )  # fmt: skip
    cont = sample_contamination(
        adata, sample_key=sample_key, species_key=species_key, layer=layer, soup=profile
    )
    corrected, removed = corrected_counts(
        adata, sample_key=sample_key, species_key=species_key, layer=layer, profile=profile,
        contamination=cont,
    )  # fmt: skip
    adata.layers[CORRECTED_LAYER] = corrected
    adata.varm["soup_profile"] = profile
    table = sources_table.join(removed)
    adata.uns["ambient"] = {
        "method": "soupx_subtraction",
        "layer": CORRECTED_LAYER,
        "min_soup_umis": int(min_soup_umis),
        "samples": {
            str(s): {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
            for s, r in table.iterrows()
        },
    }
    for s, r in table.iterrows():
        logger.info(
            "sample %s: soup from %s (human) / %s (mouse); rho %.4f; %.2f%% of UMIs removed",
            s,
            r.get("soup_source_human", ""),
            r.get("soup_source_mouse", ""),
            r["rho"],
            100.0 * r["fraction_removed"] if np.isfinite(r["fraction_removed"]) else 0.0,
        )
    return table

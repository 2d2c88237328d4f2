"""Merge per-sample objects, normalise, select highly variable genes and integrate with scVI."""

import logging
import os

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData

from tmeflow._utils import missing_from_union

logger = logging.getLogger(__name__)

TARGET_SUM = 1e4


def set_threads(threads: int) -> None:
    """Pin the thread pools of BLAS, numba and torch to ``threads`` (set before heavy work)."""
    threads = max(1, int(threads))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    sc.settings.n_jobs = threads
    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover - numba ships with scanpy
        pass
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch only in the scVI step
        pass


def merge_samples(adatas: list[AnnData]) -> AnnData:
    """Concatenate per-sample QC'd objects (features measured in every sample) and normalise.

    Writes ``layers["counts"]`` (CSR int32 raw counts) and ``X`` (log1p of counts normalised to
    10,000 per cell, float32). ``var["species"]`` is kept when the samples agree on it. See
    :func:`concat_samples` for the features kept and ``uns["merge"]``.

    Parameters
    ----------
    adatas
        Per-sample objects with raw integer counts in ``X``.

    Returns
    -------
    AnnData
        The merged, normalised object.
    """
    merged = concat_samples(adatas)
    normalise(merged)
    return merged


MAX_EXAMPLES = 10
"""How many example feature names ``uns["merge"]`` keeps per sample."""


def missing_features(adatas: list[AnnData]) -> dict[str, dict]:
    """Features of the union that each sample lacks (count and up to 10 examples).

    Parameters
    ----------
    adatas
        Per-sample objects; a sample is named by its first ``obs["sample"]`` value (its
        position, ``#i``, without one).

    Returns
    -------
    dict
        As :func:`tmeflow._utils.missing_from_union`.
    """
    names = {
        (str(a.obs["sample"].iat[0]) if "sample" in a.obs.columns and a.n_obs else f"#{i}"): (
            a.var_names.astype(str)
        )
        for i, a in enumerate(adatas)
    }
    return missing_from_union(names, max_examples=MAX_EXAMPLES)


def concat_samples(adatas: list[AnnData]) -> AnnData:
    """Concatenate per-sample objects; raw counts in ``layers["counts"]`` (int32 CSR), no ``X``.

    Only features measured in every sample are kept (inner join): a feature absent from one
    sample's matrix (another reference or annotation) was not measured there, and filling it
    with zeros would read as "not expressed". The samples lacking features are named in a
    WARNING and in ``uns["merge"]``: ``join`` (``"inner"``), ``n_features_union``,
    ``n_features`` (kept), ``n_features_dropped`` and ``missing`` (per sample lacking any:
    ``n_missing`` and up to 10 ``examples``). When all samples share their features nothing
    is dropped.

    Pass the list without keeping another reference to it (``concat_samples([read(f) for f in
    files])``) and the per-sample matrices are freed on return: the merge then peaks at about
    twice the counts' size instead of three times. :func:`normalise` writes ``X`` afterwards.

    Parameters
    ----------
    adatas
        Per-sample objects with raw integer counts in ``X`` and unique cell names.

    Returns
    -------
    AnnData
        Cells of all samples x features measured in every sample.

    Raises
    ------
    ValueError
        No samples, duplicate cell names, non-integer counts, or no feature shared by all
        samples.
    """
    if not adatas:
        raise ValueError("no samples to merge: every sample was empty after QC")
    missing = missing_features(adatas)
    n_union = len(set().union(*(set(a.var_names.astype(str)) for a in adatas)))
    merged = ad.concat(adatas, join="inner", merge="same", uns_merge=None)
    if merged.n_vars == 0:
        msg = (
            "the samples share no feature: they were counted against different references; "
            "recount them against one reference"
        )
        raise ValueError(msg)
    if missing:
        logger.warning(
            "kept the %d of %d features measured in every sample; %s",
            merged.n_vars,
            n_union,
            "; ".join(
                f"sample {s} lacks {m['n_missing']} (e.g. {', '.join(m['examples'][:3])})"
                for s, m in missing.items()
            ),
        )
    if merged.obs_names.has_duplicates:
        raise ValueError("duplicate cell names across samples; sample ids must be unique")
    counts = merged.X if sp.isspmatrix_csr(merged.X) else sp.csr_matrix(merged.X)
    if counts.data.size and not np.all(np.equal(np.mod(counts.data, 1), 0)):
        raise ValueError("merged counts are not integers; an upstream step altered X")
    counts.data = counts.data.astype(np.int32)  # in place: no second copy of the matrix
    merged.layers["counts"] = counts
    merged.X = None
    for col in ("species",):
        if col not in merged.var.columns:
            species = pd.Series(pd.NA, index=merged.var_names, dtype=object)
            for a in adatas:
                if col in a.var.columns:
                    species = species.fillna(a.var[col].reindex(merged.var_names))
            merged.var[col] = species.fillna("unknown").astype(str)
    merged.obs_names_make_unique()
    merged.uns["merge"] = {
        "join": "inner",
        "n_features_union": int(n_union),
        "n_features": int(merged.n_vars),
        "n_features_dropped": int(n_union - merged.n_vars),
        "missing": missing,
    }
    return merged


def normalise(adata: AnnData, *, target_sum: float = TARGET_SUM) -> None:
    """Keep raw counts in ``layers["counts"]`` and put log1p(CP10k) in ``X`` (float32).

    Records the normalisation in ``uns["normalisation"]`` and, as :func:`scanpy.pp.log1p`
    does, ``uns["log1p"] = {"base": None}`` (natural log), so that scanpy functions reading
    ``X`` (``rank_genes_groups``, ``highly_variable_genes``) know it is log-transformed.

    Kept by hand rather than :func:`scanpy.pp.normalize_total` + :func:`scanpy.pp.log1p`,
    which divide by ``total / target_sum`` where this multiplies by ``target_sum / total``:
    measured by ``bench/lib_equality.py``, 1 float32 ulp (max relative 1.2e-7) apart in
    58,145 of 6,000,000 entries of 3000 x 2000 counts, which would change every output
    downstream of ``X`` (HVGs, markers, figures).
    """
    counts = adata.layers["counts"] if "counts" in adata.layers else adata.X
    counts = counts if sp.isspmatrix_csr(counts) else sp.csr_matrix(counts)
    if counts.dtype != np.int32:
        counts = counts.astype(np.int32)
    adata.layers["counts"] = counts
    # Built row by row on the CSR arrays: one float32 copy of the non-zeros, no dense or
    # intermediate matrices. Library sizes are integers, exact in float32 up to 2**24.
    totals = np.asarray(counts.sum(axis=1), dtype=np.float32).ravel()
    scale = np.divide(target_sum, totals, out=np.zeros_like(totals), where=totals > 0)
    data = counts.data.astype(np.float32)
    data *= np.repeat(scale.astype(np.float32), np.diff(counts.indptr))
    np.log1p(data, out=data)
    adata.X = sp.csr_matrix((data, counts.indices.copy(), counts.indptr.copy()), shape=counts.shape)
    adata.uns["normalisation"] = {"target_sum": target_sum, "log1p": True}
    adata.uns["log1p"] = {"base": None}


HVG_STEPS: tuple[str, ...] = (
    "seurat_v3",
    "seurat_v3_span",
    "seurat_v3_min_cells",
    "pearson_residuals",
    "log_variance",
)
"""The fallback chain of :func:`select_hvgs`, in the order tried for each batch."""

_FIT_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError)


def select_hvgs(
    adata: AnnData,
    *,
    n_top_genes: int,
    batch_key: str = "sample",
    span: float = 0.3,
    fallback_span: float = 0.6,
    fallback_min_cells: int = 3,
    min_species_fraction: float = 0.25,
) -> None:
    """Flag highly variable genes (seurat_v3 on raw counts, batch-aware) in ``var``.

    Mitochondrial genes (``mt-``/``MT-``) are never selected. Each batch (``batch_key``) is
    fitted on its own, as scanpy's ``flavor="seurat_v3"`` with ``batch_key`` does, and the
    batches' ranks are combined as scanpy does (median rank among each batch's top genes, ties
    broken by the number of batches ranking the gene in its top). Batches are ignored (one
    fit on all cells) when one has fewer than 2 cells. When every batch's first fit works the
    selection is identical to scanpy's.

    **Fallbacks.** seurat_v3's loess fit of log variance on log mean can fail (a singular fit)
    in small batches, where thousands of genes seen in one or two cells share a few
    (mean, variance) points. Each batch then tries, in order (:data:`HVG_STEPS`):

    1. ``seurat_v3``: loess with ``span``, genes detected in the batch (scanpy's fit);
    2. ``seurat_v3_span``: loess with the wider ``fallback_span``;
    3. ``seurat_v3_min_cells``: ``fallback_span`` and only the genes detected in at least
       ``fallback_min_cells`` cells of the batch;
    4. ``pearson_residuals``: variance of analytic Pearson residuals of the batch's raw counts
       (scanpy's ``pearson_residuals`` flavor, theta 100; no loess), genes detected in the
       batch;
    5. ``log_variance``: variance of the batch's log1p(CP10k) counts, genes detected in the
       batch (no fit: cannot fail).

    Each fallback is logged as a WARNING naming the species, the batch and the reason. In
    steps 3-5, genes outside the fitted set get no rank in that batch (in step 1-2, as in
    scanpy, a gene not detected in a batch is ranked there with normalised variance 0).

    **Xenograft mode** (``var["species"]`` holds both ``human`` and ``mouse`` features and
    ``obs["species"]`` the cells' calls): genes are selected per species, human features on
    human cells and mouse features on mouse cells (``mixed`` cells and features of ``unknown``
    species are used for neither), so that neither genome crowds the other out. The
    ``n_top_genes`` are split in proportion to the number of cells of each species, with a
    floor: each species gets at least ``min_species_fraction * n_top_genes`` (rounded up) and
    at most the rest; a species whose fits rank fewer genes than its share passes the
    remainder to the other. A species without cells (or without ranked genes) gets none.

    Parameters
    ----------
    adata
        Raw integer counts in ``layers["counts"]``; ``obs[batch_key]``; in xenograft mode
        ``obs["species"]`` and ``var["species"]`` (:func:`tmeflow.species.assign_species`).
    n_top_genes
        Number of genes to select (in all species together).
    batch_key
        ``obs`` column naming the batches (samples).
    span
        loess span of the first fit (scanpy's default 0.3).
    fallback_span
        loess span of fallback steps 2 and 3.
    fallback_min_cells
        Step 3 fits only genes detected in at least this many cells of the batch.
    min_species_fraction
        Xenograft mode: the least fraction of ``n_top_genes`` each species gets (0 to 0.5;
        0.5 splits evenly).

    Notes
    -----
    Writes ``var["highly_variable"]``, ``var["highly_variable_rank"]`` (median rank among the
    batches' top genes; NaN when none) and ``var["highly_variable_nbatches"]``, and
    ``uns["hvg"]``: ``flavor``, ``mode`` (``xenograft`` or ``single``), ``n_top_genes``
    (requested), ``n_eligible`` (genes ranked in at least one batch: non-mitochondrial genes
    detected in the cells, fewer when a step 3-5 fit left genes out), ``n_selected`` (equal to
    ``min(n_top_genes, n_eligible)``), ``batch_key`` (``""`` when batches were ignored),
    ``step`` (the furthest step any batch needed), ``n_fallbacks`` (batches that needed one),
    ``min_cells`` (the largest ``min_cells`` of the fits used: ``fallback_min_cells`` when a
    batch ended at step 3, else 1), ``span``,
    ``fallback_span``, ``fallback_min_cells``, ``min_species_fraction``; ``species``: per
    species (``all`` outside xenograft mode) ``n_cells``, ``n_eligible``, ``n_top_genes``
    (its share), ``n_selected``, ``batch_key``; ``fits``: per species and batch ``step``,
    ``span``, ``min_cells``, ``n_cells``, ``n_genes`` (genes fitted) and ``failed`` (the
    earlier steps' errors, ``""`` when the first fit worked).
    """
    if not 0 <= min_species_fraction <= 0.5:
        msg = f"min_species_fraction={min_species_fraction} must be in [0, 0.5]"
        raise ValueError(msg)
    counts = sp.csr_matrix(adata.layers["counts"])
    totals = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    is_mito = np.asarray(adata.var_names.str.lower().str.startswith("mt-"))
    groups = _hvg_groups(adata)
    mode = "xenograft" if len(groups) > 1 else "single"

    scored = {}
    for name, cells, genes in groups:
        cell_idx = np.flatnonzero(cells)
        sub = counts[cell_idx] if cell_idx.size < adata.n_obs else counts
        # cells per gene (in this group's cells), without a boolean copy of the matrix
        n_cells = np.bincount(sub.indices[sub.data > 0], minlength=adata.n_vars)
        candidates = np.flatnonzero((n_cells >= 1) & ~is_mito & genes)
        batches = adata.obs[batch_key].to_numpy()[cell_idx].astype(str)
        scored[name] = _score_group(
            name,
            sub if candidates.size == adata.n_vars else sub[:, candidates],
            candidates,
            batches,
            totals[cell_idx],
            batch_key=batch_key,
            span=span,
            fallback_span=fallback_span,
            fallback_min_cells=fallback_min_cells,
        )

    n_eligible = {name: int(s["n_ranked"]) for name, s in scored.items()}
    n_cells_group = {name: int(c.sum()) for name, c, _ in groups}
    shares = split_hvg_budget(
        int(n_top_genes), n_cells_group, n_eligible, min_fraction=min_species_fraction
    )

    hv = np.zeros(adata.n_vars, dtype=bool)
    rank = np.full(adata.n_vars, np.nan, dtype=np.float32)
    nbatches = np.zeros(adata.n_vars, dtype=np.int64)
    species_info, fits = {}, {}
    for name, s in scored.items():
        sel, med, nb = _combine_ranks(s["scores"], shares[name])
        idx = s["genes"]
        hv[idx[sel]] = True
        rank[idx] = med
        nbatches[idx] = nb
        species_info[name] = {
            "n_cells": n_cells_group[name],
            "n_eligible": n_eligible[name],
            "n_top_genes": int(shares[name]),
            "n_selected": int(sel.sum()),
            "batch_key": s["batch_key"],
        }
        fits[name] = s["fits"]
    adata.var["highly_variable"] = hv
    adata.var["highly_variable_rank"] = rank
    adata.var["highly_variable_nbatches"] = nbatches

    # batches too small to fit (step "none") take no step of the chain
    used = [f["step"] for per in fits.values() for f in per.values() if f["step"] in HVG_STEPS]
    furthest = max(used, key=HVG_STEPS.index) if used else HVG_STEPS[0]
    adata.uns["hvg"] = {
        "flavor": "seurat_v3",
        "mode": mode,
        "n_top_genes": int(n_top_genes),
        "n_eligible": int(sum(n_eligible.values())),
        "n_selected": int(hv.sum()),
        "batch_key": batch_key if any(v["batch_key"] for v in species_info.values()) else "",
        "step": furthest,
        "n_fallbacks": int(sum(u != HVG_STEPS[0] for u in used)),
        "min_cells": int(max([f["min_cells"] for p in fits.values() for f in p.values()] or [1])),
        "span": float(span),
        "fallback_span": float(fallback_span),
        "fallback_min_cells": int(fallback_min_cells),
        "min_species_fraction": float(min_species_fraction),
        "species": species_info,
        "fits": fits,
    }
    logger.info(
        "HVGs (%s mode): %d of %d eligible genes selected; %s; furthest step %s",
        mode,
        int(hv.sum()),
        int(sum(n_eligible.values())),
        ", ".join(
            f"{k}: {v['n_selected']} (of {v['n_eligible']}, {v['n_cells']} cells)"
            for k, v in species_info.items()
        ),
        furthest,
    )


def split_hvg_budget(
    n_top_genes: int,
    n_cells: dict[str, int],
    n_eligible: dict[str, int],
    *,
    min_fraction: float = 0.25,
) -> dict[str, int]:
    """Split ``n_top_genes`` between species: in proportion to cells, with a floor.

    Parameters
    ----------
    n_top_genes
        Genes to select in all groups together.
    n_cells
        Cells per group (species).
    n_eligible
        Genes each group can rank at most.
    min_fraction
        With two groups that both have cells and genes, each gets at least
        ``ceil(min_fraction * n_top_genes)`` and at most the rest.

    Returns
    -------
    dict
        Genes per group; they sum to ``min(n_top_genes, sum of eligible genes of the groups
        with cells)``. A group's share above its eligible genes goes to the other.
    """
    active = [g for g in n_cells if n_cells[g] > 0 and n_eligible.get(g, 0) > 0]
    shares = dict.fromkeys(n_cells, 0)
    if not active:
        return shares
    if len(active) == 1:
        shares[active[0]] = int(min(n_top_genes, n_eligible[active[0]]))
        return shares
    if len(active) > 2:  # pragma: no cover - only human and mouse exist
        raise ValueError("split_hvg_budget splits between two groups")
    a, b = active
    floor = int(np.ceil(min_fraction * n_top_genes))
    share_a = round(n_top_genes * n_cells[a] / (n_cells[a] + n_cells[b]))
    share_a = min(max(share_a, floor), n_top_genes - floor)
    share_b = n_top_genes - share_a
    if share_a > n_eligible[a]:
        share_b += share_a - n_eligible[a]
        share_a = n_eligible[a]
    if share_b > n_eligible[b]:
        share_a = min(n_eligible[a], share_a + share_b - n_eligible[b])
        share_b = n_eligible[b]
    shares[a], shares[b] = int(share_a), int(share_b)
    return shares


def _hvg_groups(adata: AnnData) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, cell mask, feature mask) per species in xenograft mode, else one ``all`` group."""
    var_sp = (
        adata.var["species"].astype(str).to_numpy()
        if "species" in adata.var.columns
        else np.full(adata.n_vars, "", dtype=object)
    )
    if "species" in adata.obs.columns and {"human", "mouse"} <= set(var_sp):
        obs_sp = adata.obs["species"].astype(str).to_numpy()
        return [(s, obs_sp == s, var_sp == s) for s in ("human", "mouse")]
    return [("all", np.ones(adata.n_obs, dtype=bool), np.ones(adata.n_vars, dtype=bool))]


def _score_group(
    name: str,
    counts: sp.csr_matrix,
    genes: np.ndarray,
    batches: np.ndarray,
    totals: np.ndarray,
    *,
    batch_key: str,
    span: float,
    fallback_span: float,
    fallback_min_cells: int,
) -> dict:
    """Per-batch scores (batches x genes; NaN = not ranked) of one species' candidate genes."""
    sizes = pd.Series(batches).value_counts()
    use_batch = sizes.size > 1 and sizes.min() >= 2
    if sizes.size > 1 and not use_batch:
        logger.warning(
            "HVGs (%s cells): a batch has fewer than 2 cells (%s); one fit on all cells",
            name,
            sizes.to_dict(),
        )
    labels = np.unique(batches) if use_batch else np.array(["all"])
    scores = np.zeros((len(labels), genes.size), dtype=np.float64)
    fits = {}
    for i, label in enumerate(labels):
        rows = np.flatnonzero(batches == label) if use_batch else np.arange(len(batches))
        if rows.size < 2 or genes.size == 0:
            scores[i] = np.nan
            fits[str(label)] = {
                "step": "none",
                "span": float("nan"),
                "min_cells": 0,
                "n_cells": int(rows.size),
                "n_genes": 0,
                "failed": "fewer than 2 cells or no detected gene",
            }
            continue
        scores[i], fits[str(label)] = _fit_batch(
            counts[rows] if rows.size < counts.shape[0] else counts,
            totals[rows],
            where=f"{name} cells of {batch_key} {label}" if use_batch else f"{name} cells",
            span=span,
            fallback_span=fallback_span,
            fallback_min_cells=fallback_min_cells,
        )
    n_ranked = int(np.isfinite(scores).any(axis=0).sum()) if genes.size else 0
    return {
        "scores": scores,
        "genes": genes,
        "n_ranked": n_ranked,
        "fits": fits,
        "batch_key": batch_key if use_batch else "",
    }


def _fit_batch(
    counts: sp.csr_matrix,
    totals: np.ndarray,
    *,
    where: str,
    span: float,
    fallback_span: float,
    fallback_min_cells: int,
) -> tuple[np.ndarray, dict]:
    """One batch through the fallback chain; its scores (NaN = not ranked) and a record."""
    n_cells = np.bincount(counts.indices[counts.data > 0], minlength=counts.shape[1])
    detected = n_cells >= 1
    frequent = n_cells >= fallback_min_cells
    plan = [
        (HVG_STEPS[0], span, 1, None),
        (HVG_STEPS[1], fallback_span, 1, None),
        (HVG_STEPS[2], fallback_span, fallback_min_cells, frequent),
        (HVG_STEPS[3], float("nan"), 1, detected),
        (HVG_STEPS[4], float("nan"), 1, detected),
    ]
    failed: list[str] = []
    for step, step_span, min_cells, genes in plan:
        try:
            score = _step_score(step, counts, totals, genes, span=step_span)
        except _FIT_ERRORS as exc:
            reason = str(exc.args[0] if exc.args else exc)
            if isinstance(exc.args[0] if exc.args else None, bytes):
                reason = exc.args[0].decode(errors="replace")
            failed.append(f"{step}: {reason}")
            nxt = plan[len(failed)][0] if len(failed) < len(plan) else "none"
            logger.warning(
                "HVG fit for %s: step %s failed (%s); trying %s", where, step, reason, nxt
            )
            continue
        n_fit = int(np.isfinite(score).sum()) if genes is not None else int(detected.sum())
        if failed:
            logger.warning(
                "HVG fit for %s: fallback step %s used (%d genes, %d cells)",
                where,
                step,
                n_fit,
                counts.shape[0],
            )
        return score, {
            "step": step,
            "span": float(step_span),
            "min_cells": int(min_cells),
            "n_cells": int(counts.shape[0]),
            "n_genes": n_fit,
            "failed": "; ".join(failed),
        }
    raise AssertionError("unreachable: the log_variance step cannot fail")  # pragma: no cover


def _step_score(
    step: str,
    counts: sp.csr_matrix,
    totals: np.ndarray,
    genes: np.ndarray | None,
    *,
    span: float,
) -> np.ndarray:
    """One step's per-gene score for a batch; NaN for genes outside ``genes`` (a mask)."""
    score = np.full(counts.shape[1], np.nan, dtype=np.float64)
    cols = np.arange(counts.shape[1]) if genes is None else np.flatnonzero(genes)
    if cols.size < 2:
        raise ValueError(f"only {cols.size} genes to fit")
    x = counts if genes is None else counts[:, cols]
    if step.startswith("seurat_v3"):
        # one scanpy call per batch: the same loess fit and normalised variance it computes
        # for each batch with batch_key, so the first step reproduces scanpy exactly
        sub = AnnData(X=x, var=pd.DataFrame(index=[str(c) for c in cols]))
        df = sc.pp.highly_variable_genes(
            sub,
            flavor="seurat_v3",
            n_top_genes=min(cols.size, 2000),
            span=span,
            inplace=False,
        )
        values = df["variances_norm"].to_numpy(dtype=np.float64)
    elif step == "pearson_residuals":
        sub = AnnData(X=x, var=pd.DataFrame(index=[str(c) for c in cols]))
        df = sc.experimental.pp.highly_variable_genes(
            sub, flavor="pearson_residuals", n_top_genes=min(cols.size, 2000), inplace=False
        )
        values = df["residual_variances"].to_numpy(dtype=np.float64)
    else:  # log_variance: variance of log1p(CP10k), no fit
        scale = np.divide(TARGET_SUM, totals, out=np.zeros_like(totals), where=totals > 0)
        logx = sp.csr_matrix(sp.diags(scale) @ sp.csr_matrix(x, dtype=np.float64))
        logx.data = np.log1p(logx.data)
        mean = np.asarray(logx.mean(axis=0)).ravel()
        sq = np.asarray(logx.multiply(logx).mean(axis=0)).ravel()
        values = np.maximum(sq - mean**2, 0) * logx.shape[0] / max(logx.shape[0] - 1, 1)
    if step != "log_variance":
        bad = ~np.isfinite(values)
        if step.startswith("seurat_v3") and bad.any():
            raise ValueError(f"the fit gave {int(bad.sum())} non-finite normalised variances")
        if bad.all():
            raise ValueError("no finite residual variance")
    score[cols] = values
    return score


def _combine_ranks(scores: np.ndarray, n_top: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combine per-batch scores as scanpy's seurat_v3 does; NaN scores are not ranked.

    Returns the selected mask (``min(n_top, genes ranked in some batch)`` genes), the median
    rank among the batches' top ``n_top`` and the number of batches ranking each gene there.
    """
    n_genes = scores.shape[1]
    ranked = np.argsort(np.argsort(-scores, axis=1), axis=1).astype(np.float32)
    ranked[np.isnan(scores)] = np.nan
    nbatches = np.sum((ranked < n_top).astype(int), axis=0)
    ranked[ranked >= n_top] = np.nan
    median = np.ma.median(np.ma.masked_invalid(ranked), axis=0).filled(np.nan)
    median = np.asarray(median, dtype=np.float32).reshape(n_genes)
    has_rank = np.isfinite(scores).any(axis=0)
    df = pd.DataFrame({"rank": median, "nbatches": nbatches})
    order = (
        df[["rank", "nbatches"]]
        .sort_values(["rank", "nbatches"], ascending=[True, False], na_position="last")
        .index.to_numpy()
    )
    order = order[has_rank[order]]
    selected = np.zeros(n_genes, dtype=bool)
    selected[order[: max(int(n_top), 0)]] = True
    return selected, median, nbatches


def default_max_epochs(n_cells: int) -> int:
    """scvi-tools' heuristic: min(400, round(20000 / n_cells * 400))."""
    return int(min(400, round(20000 / max(n_cells, 1) * 400)))


#: Below this many cells scVI trains on all of them: no validation split, no early stopping.
MIN_CELLS_VALIDATION = 20
#: Samples with fewer cells than this are named in a WARNING (their batch term rests on them).
MIN_CELLS_PER_SAMPLE = 3


def _tiny_data_plan(
    obs: pd.DataFrame, *, batch_key: str, batch_size: int, early_stopping: bool
) -> tuple[dict, int, bool, list[str]]:
    """Training adjustments for data sets too small for scVI's defaults.

    Returns extra ``model.train`` keywords, the batch size and early stopping to use and the
    notes explaining each change (all empty / unchanged for normal data). On normal data
    scvi-tools itself moves a final training minibatch of 1-2 cells (BatchNorm fails on one
    cell) to the validation set; it cannot when there is no validation set, so below
    :data:`MIN_CELLS_VALIDATION` cells every cell is trained on, early stopping (which needs a
    validation set) is off, and the batch size is raised if a minibatch would hold one cell.
    """
    n_cells = len(obs)
    sizes = obs[batch_key].astype(str).value_counts()
    if n_cells < 2:
        msg = (
            f"scVI needs at least 2 cells and the merged data has {n_cells} (cells per "
            f"sample: {sizes.to_dict()}); relax the QC thresholds (config 'qc') or add samples"
        )
        raise ValueError(msg)
    extra: dict = {}
    notes: list[str] = []
    small = sizes[sizes < MIN_CELLS_PER_SAMPLE]
    if len(small) and len(sizes) > 1:
        notes.append(
            f"sample(s) with fewer than {MIN_CELLS_PER_SAMPLE} cells after QC: "
            f"{small.to_dict()}; their batch correction rests on these cells alone "
            "(drop them from the sample sheet if their QC failed)"
        )
    if n_cells < MIN_CELLS_VALIDATION:
        extra["train_size"] = 1.0
        notes.append(
            f"trained on all {n_cells} cells: fewer than {MIN_CELLS_VALIDATION} leave no "
            "useful validation set"
            + ("; early stopping (which monitors it) turned off" if early_stopping else "")
        )
        early_stopping = False
        used = int(batch_size)
        while n_cells % used == 1:  # one cell alone in a minibatch breaks BatchNorm
            used += 1
        if used != batch_size:
            notes.append(
                f"batch_size {batch_size} raised to {used} so that no minibatch of the "
                f"{n_cells} cells holds a single cell"
            )
        batch_size = used
    return extra, int(batch_size), bool(early_stopping), notes


def train_scvi(
    adata: AnnData,
    *,
    batch_key: str = "sample",
    n_latent: int = 10,
    n_hidden: int = 128,
    n_layers: int = 1,
    max_epochs: int | None = None,
    early_stopping: bool = True,
    patience: int = 10,
    batch_size: int = 128,
    accelerator: str = "auto",
    seed: int = 0,
    threads: int = 1,
    model_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Train scVI on the highly variable genes' raw counts with ``batch = sample``.

    Writes ``obsm["X_scVI"]`` (float32) and ``uns["scvi"]`` (parameters, epochs run, device).
    Returns the training history (epoch, train/validation ELBO). Every epoch is logged (INFO,
    :class:`tmeflow.epochlog.EpochLog`: losses, seconds, time left); the logging neither draws
    random numbers nor changes the training.

    With ``model_dir`` the trained model is saved there (``model.save``, without the AnnData):
    :func:`load_scvi` reloads it against the integrated object (the training input is rebuilt
    by :func:`scvi_input`), to map new samples or to start scANVI.

    Small data (:func:`_tiny_data_plan`): under 20 cells scVI trains on every cell without
    early stopping, with a batch size that leaves no minibatch of one cell; samples of fewer
    than 3 cells are named. Each adjustment is a WARNING and, with the configured values, is
    recorded in ``uns["scvi"]["notes"]``; normal data get no such key and unchanged training.
    Fewer than 2 cells in all is a ``ValueError`` naming the fix.
    """
    import scvi
    import torch

    from tmeflow.epochlog import EpochLog

    set_threads(threads)
    scvi.settings.seed = seed
    scvi.settings.num_threads = max(1, int(threads))
    scvi.settings.dl_num_workers = 0
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    sub = scvi_input(adata, batch_key=batch_key)
    genes = sub.var_names
    configured = {"batch_size": int(batch_size), "early_stopping": bool(early_stopping)}
    extra, batch_size, early_stopping, notes = _tiny_data_plan(
        sub.obs, batch_key=batch_key, batch_size=batch_size, early_stopping=early_stopping
    )
    for note in notes:
        logger.warning("scVI: %s", note)
    _setup_scvi(sub, batch_key=batch_key)
    model = scvi.model.SCVI(sub, n_latent=n_latent, n_hidden=n_hidden, n_layers=n_layers)
    epochs = int(max_epochs) if max_epochs else default_max_epochs(sub.n_obs)
    logger.info(
        "scVI: training on %d cells x %d genes, up to %d epochs%s, on %s",
        sub.n_obs,
        sub.n_vars,
        epochs,
        f" (early stopping, patience {patience})" if early_stopping else "",
        accelerator,
    )
    model.train(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=1,
        batch_size=batch_size,
        early_stopping=early_stopping,
        early_stopping_patience=patience,
        check_val_every_n_epoch=1 if early_stopping else None,
        enable_progress_bar=False,
        deterministic=accelerator == "cpu",
        callbacks=[EpochLog(epochs, early_stopping=early_stopping)],
        **extra,
    )
    if model_dir is not None:
        model.save(str(model_dir), save_anndata=False, overwrite=True)
        logger.info("scVI: model saved to %s", model_dir)
    adata.obsm["X_scVI"] = np.asarray(model.get_latent_representation(), dtype=np.float32)
    history = _history_table(model.history)
    adata.uns["scvi"] = {
        "n_latent": n_latent,
        "n_hidden": n_hidden,
        "n_layers": n_layers,
        "max_epochs": epochs,
        "epochs_run": len(history),
        "early_stopping": bool(early_stopping),
        "patience": patience,
        "batch_size": batch_size,
        "batch_key": batch_key,
        "accelerator": accelerator,
        "seed": seed,
        "n_genes": len(genes),
        "scvi_version": scvi.__version__,
    }
    if notes:  # only small data: normal runs keep exactly the keys above
        adata.uns["scvi"].update({f"{k}_configured": v for k, v in configured.items()})
        adata.uns["scvi"].update(extra, notes=notes)
    return history


def scvi_input(adata: AnnData, *, batch_key: str = "sample") -> AnnData:
    """The AnnData scVI is trained on: raw counts of the highly variable genes, the batches.

    Used by :func:`train_scvi` and by :func:`load_scvi`, so that a saved model is reloaded
    against exactly the object it was trained on.

    Parameters
    ----------
    adata
        Raw integer counts in ``layers["counts"]``, ``obs[batch_key]`` and, when present,
        ``var["highly_variable"]`` (all genes without it), e.g. the merged or the integrated
        object.
    batch_key
        ``obs`` column naming the batches (samples).

    Returns
    -------
    AnnData
        Cells x highly variable genes, no ``X``; ``layers["counts"]`` float32 CSR; ``obs``
        holds only ``batch_key``.
    """
    if "highly_variable" in adata.var.columns:
        genes = adata.var_names[adata.var["highly_variable"].to_numpy(dtype=bool)]
    else:
        genes = adata.var_names
    return AnnData(
        X=None,
        obs=adata.obs[[batch_key]].copy(),
        var=pd.DataFrame(index=genes),
        layers={
            "counts": _float_counts(adata.layers["counts"], adata.var_names.get_indexer(genes))
        },
    )


def _setup_scvi(sub: AnnData, *, batch_key: str) -> None:
    """``SCVI.setup_anndata`` as training uses it (no batch covariate for a single batch)."""
    import scvi

    n_batches = sub.obs[batch_key].nunique()
    scvi.model.SCVI.setup_anndata(
        sub, layer="counts", batch_key=batch_key if n_batches > 1 else None
    )


def load_scvi(model_dir: str | os.PathLike[str], adata: AnnData, *, accelerator: str = "cpu"):
    """Reload the scVI model :func:`train_scvi` saved, against the object it was trained on.

    Parameters
    ----------
    model_dir
        The ``model_dir`` given to :func:`train_scvi` (``results/integrate/scvi_model``).
    adata
        The integrated object (``results/integrate/integrated.h5ad``) or any object with the
        same raw counts, ``var["highly_variable"]`` and batch column; the batch column is
        read from ``uns["scvi"]["batch_key"]`` when present (``sample`` otherwise).
    accelerator
        Where to put the model (``cpu``, ``gpu`` or ``auto``).

    Returns
    -------
    scvi.model.SCVI
        The trained model, set up on :func:`scvi_input` of ``adata``:
        ``model.get_latent_representation()`` gives back ``obsm["X_scVI"]``.
    """
    import scvi

    batch_key = str(adata.uns.get("scvi", {}).get("batch_key", "sample"))
    sub = scvi_input(adata, batch_key=batch_key)
    return scvi.model.SCVI.load(str(model_dir), adata=sub, accelerator=accelerator)


def _float_counts(counts, columns: np.ndarray) -> sp.csr_matrix:
    """float32 CSR of ``counts[:, columns]`` (scVI's input) with one copy of the non-zeros."""
    counts = sp.csr_matrix(counts)
    sub = (
        counts
        if len(columns) == counts.shape[1] and np.all(columns == np.arange(len(columns)))
        else counts[:, columns]
    )
    return sp.csr_matrix((sub.data.astype(np.float32), sub.indices, sub.indptr), shape=sub.shape)


def _history_table(history: dict) -> pd.DataFrame:
    cols = {}
    for key in ("elbo_train", "elbo_validation", "reconstruction_loss_train", "kl_local_train"):
        if key in history:
            cols[key] = history[key][key].astype(float)
    table = pd.DataFrame(cols)
    table.index.name = "epoch"
    return table.reset_index()


#: Columns of :func:`hvg_table`.
HVG_TABLE_COLUMNS = [
    "species",
    "batch",
    "step",
    "span",
    "min_cells",
    "n_cells",
    "n_genes",
    "failed",
]


def hvg_table(hvg: dict) -> pd.DataFrame:
    """One row per fit of :func:`select_hvgs`: which step of the fallback chain each took.

    Parameters
    ----------
    hvg
        ``uns["hvg"]`` as written by :func:`select_hvgs`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`HVG_TABLE_COLUMNS`; ``step`` is ``seurat_v3`` where the first fit
        worked, a later step of :data:`HVG_STEPS` where a fallback took over (``failed`` gives
        the earlier steps' errors), or ``none`` for a batch too small to fit.
    """
    rows = []
    for species, per in hvg.get("fits", {}).items():
        for batch, fit in per.items():
            failed = fit.get("failed", "")
            rows.append(
                {
                    "species": species,
                    "batch": batch,
                    **{k: fit.get(k) for k in ("step", "span", "min_cells", "n_cells", "n_genes")},
                    "failed": "; ".join(failed) if isinstance(failed, list | tuple) else failed,
                }
            )
    return pd.DataFrame(rows, columns=HVG_TABLE_COLUMNS)

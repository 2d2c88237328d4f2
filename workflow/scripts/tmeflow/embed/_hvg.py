"""Highly variable genes that cannot crash: per-sample seurat_v3 with a fallback chain.

Each sample (batch) is fitted on the genes it detected; when scanpy's loess fit fails (few
cells, many genes seen once), the next step of :data:`HVG_STEPS` is tried and the reason is
logged and recorded. In xenograft mode human genes are chosen on human cells and mouse genes
on mouse cells, so neither genome crowds the other out. :func:`hvg_table` lists every fit.
"""

import logging

import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData

from tmeflow._utils import cp10k

logger = logging.getLogger(__name__)


HVG_STEPS: tuple[str, ...] = (
    "seurat_v3",
    "seurat_v3_min_cells",
    "seurat_v3_span",
    "pearson_residuals",
    "log_variance",
)
"""The fallback chain of :func:`select_hvgs`, in the order tried for each batch."""

#: Fewest genes (with a variance) a seurat_v3 loess neighbourhood (span x genes) must hold;
#: below, the step fails like a singular fit and the next one is tried.
MIN_LOESS_POINTS = 10
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
    2. ``seurat_v3_min_cells``: ``span`` and only the genes detected in at least
       ``fallback_min_cells`` cells of the batch (the refit of earlier versions);
    3. ``seurat_v3_span``: the wider ``fallback_span`` on those genes;
    4. ``pearson_residuals``: variance of analytic Pearson residuals of the batch's raw counts
       (scanpy's ``pearson_residuals`` flavor, theta 100; no loess), genes detected in the
       batch;
    5. ``log_variance``: variance of the batch's log1p(CP10k) counts, genes detected in the
       batch (no fit: cannot fail).

    Each fallback is logged as a WARNING naming the species, the batch and the reason. In
    steps 2-5, genes outside the fitted set get no rank in that batch (in step 1, as in
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
        ``obs["species"]`` and ``var["species"]`` (:func:`tmeflow.cells.assign_species`).
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

    settings = {
        "n_top_genes": int(n_top_genes),
        "batch_key": batch_key,
        "span": float(span),
        "fallback_span": float(fallback_span),
        "fallback_min_cells": int(fallback_min_cells),
        "min_species_fraction": float(min_species_fraction),
    }
    _write_selection(adata, scored, shares, n_cells_group, mode=mode, settings=settings)


def _write_selection(
    adata: AnnData,
    scored: dict[str, dict],
    shares: dict[str, int],
    n_cells_group: dict[str, int],
    *,
    mode: str,
    settings: dict,
) -> None:
    """Write the selection of every group into ``var`` and ``uns["hvg"]``, and log it."""
    n_top_genes, batch_key = settings["n_top_genes"], settings["batch_key"]
    n_eligible = {name: int(s["n_ranked"]) for name, s in scored.items()}
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
        "span": settings["span"],
        "fallback_span": settings["fallback_span"],
        "fallback_min_cells": settings["fallback_min_cells"],
        "min_species_fraction": settings["min_species_fraction"],
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
    # genes seen in few cells first (the refit of earlier versions: on the Zilionis deposit it
    # works and keeps the published-label agreement at 0.96), then a wider loess span
    plan = [
        (HVG_STEPS[0], span, 1, None),
        (HVG_STEPS[1], span, fallback_min_cells, frequent),
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


def _variances(x: sp.spmatrix) -> np.ndarray:
    """Per-gene variance of the counts (columns of ``x``)."""
    x = sp.csr_matrix(x, dtype=np.float64)
    mean = np.asarray(x.mean(axis=0)).ravel()
    return np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean**2


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
        # skmisc's loess crashes the process (a segmentation fault, no exception) when a local
        # neighbourhood holds too few points: measured on a 3-gene species of a test xenograft
        n_points = int(np.count_nonzero(_variances(x) > 0))
        if int(n_points * span) < MIN_LOESS_POINTS:
            raise ValueError(
                f"{n_points} genes with a variance: a loess neighbourhood of span {span:g} "
                f"would hold fewer than {MIN_LOESS_POINTS}"
            )
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
        logx = cp10k(x, totals)
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
    # ranks among each batch's scored genes only, in gene order: the array scanpy ranks when
    # it is run on those genes, so ties fall the same way (a NaN-padded row would not)
    ranked = np.full(scores.shape, np.nan, dtype=np.float32)
    for i, row in enumerate(scores):
        fin = np.flatnonzero(np.isfinite(row))
        ranked[i, fin] = np.argsort(np.argsort(-row[fin]))
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

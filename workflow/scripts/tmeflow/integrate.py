"""Merge per-sample objects, normalise, select highly variable genes and integrate with scVI."""

import logging
import os

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData

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
        ``{sample: {"n_missing": int, "examples": [name, ...]}}`` for the samples that lack at
        least one feature measured in another sample; empty when all share their features.
        Examples follow the order of the first sample that has them.
    """
    union: dict[str, None] = {}
    for a in adatas:
        union.update(dict.fromkeys(a.var_names.astype(str)))
    out: dict[str, dict] = {}
    for i, a in enumerate(adatas):
        have = set(a.var_names.astype(str))
        if len(have) == len(union):
            continue
        lacking = [f for f in union if f not in have]
        name = str(a.obs["sample"].iat[0]) if "sample" in a.obs.columns and a.n_obs else f"#{i}"
        out[name] = {"n_missing": len(lacking), "examples": lacking[:MAX_EXAMPLES]}
    return out


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
    """Keep raw counts in ``layers["counts"]`` and put log1p(CP10k) in ``X`` (float32)."""
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


def select_hvgs(
    adata: AnnData, *, n_top_genes: int, batch_key: str = "sample", fallback_min_cells: int = 3
) -> None:
    """Flag highly variable genes (seurat_v3 on raw counts, batch-aware) in ``var``.

    Writes ``var["highly_variable"]`` (and scanpy's ranking columns) and ``uns["hvg"]``.
    Mitochondrial genes are never selected. Batches with fewer than 2 cells are ignored.
    seurat_v3's loess fit of variance on mean can fail (singular fit) when thousands of genes
    share one (mean, variance) point, as genes seen once in a small data set do (800 inDrops
    cells of Zilionis et al. 2019); the fit is then repeated without the genes detected in
    fewer than ``fallback_min_cells`` cells, which cannot be variable features anyway, and
    ``uns["hvg"]["min_cells"]`` records it (1 when the first fit worked).
    """
    n_top = int(min(n_top_genes, adata.n_vars))
    counts = sp.csr_matrix(adata.layers["counts"])
    # cells per gene, without a boolean copy of the matrix
    n_cells = np.bincount(counts.indices[counts.data > 0], minlength=adata.n_vars)
    is_mito = np.asarray(adata.var_names.str.lower().str.startswith("mt-"))
    sizes = adata.obs[batch_key].value_counts()
    use_batch = batch_key if (sizes.size > 1 and sizes.min() >= 2) else None
    for min_cells in (1, fallback_min_cells):
        candidates = (n_cells >= min_cells) & ~is_mito
        # only the candidate genes' counts are copied (not X); nothing when every gene qualifies
        sub = AnnData(
            obs=adata.obs[[batch_key]].copy(),
            var=pd.DataFrame(index=adata.var_names[candidates]),
            layers={
                "counts": counts if candidates.all() else counts[:, np.flatnonzero(candidates)]
            },
        )
        try:
            sc.pp.highly_variable_genes(
                sub,
                n_top_genes=min(n_top, sub.n_vars),
                flavor="seurat_v3",
                layer="counts",
                batch_key=use_batch,
                subset=False,
                span=0.3,
            )
            break
        except ValueError as exc:
            if min_cells >= fallback_min_cells:
                raise
            logger.warning(
                "seurat_v3 HVG loess fit failed (%s); repeating it without the %d genes "
                "detected in fewer than %d cells",
                exc,
                int(((n_cells > 0) & (n_cells < fallback_min_cells)).sum()),
                fallback_min_cells,
            )
    hv = pd.Series(False, index=adata.var_names)
    hv[sub.var_names] = sub.var["highly_variable"].to_numpy()
    adata.var["highly_variable"] = hv.to_numpy()
    adata.uns["hvg"] = {
        "flavor": "seurat_v3",
        "n_top_genes": int(n_top),
        "batch_key": use_batch or "",
        "n_selected": int(hv.sum()),
        "min_cells": int(min_cells),
    }


def default_max_epochs(n_cells: int) -> int:
    """scvi-tools' heuristic: min(400, round(20000 / n_cells * 400))."""
    return int(min(400, round(20000 / max(n_cells, 1) * 400)))


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
) -> pd.DataFrame:
    """Train scVI on the highly variable genes' raw counts with ``batch = sample``.

    Writes ``obsm["X_scVI"]`` (float32) and ``uns["scvi"]`` (parameters, epochs run, device).
    Returns the training history (epoch, train/validation ELBO).
    """
    import scvi
    import torch

    set_threads(threads)
    scvi.settings.seed = seed
    scvi.settings.num_threads = max(1, int(threads))
    scvi.settings.dl_num_workers = 0
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if "highly_variable" in adata.var.columns:
        genes = adata.var_names[adata.var["highly_variable"].to_numpy()]
    else:
        genes = adata.var_names
    sub = AnnData(
        X=None,
        obs=adata.obs[[batch_key]].copy(),
        var=pd.DataFrame(index=genes),
        layers={
            "counts": _float_counts(adata.layers["counts"], adata.var_names.get_indexer(genes))
        },
    )
    n_batches = sub.obs[batch_key].nunique()
    scvi.model.SCVI.setup_anndata(
        sub, layer="counts", batch_key=batch_key if n_batches > 1 else None
    )
    model = scvi.model.SCVI(sub, n_latent=n_latent, n_hidden=n_hidden, n_layers=n_layers)
    epochs = int(max_epochs) if max_epochs else default_max_epochs(sub.n_obs)
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
    )
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
    return history


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

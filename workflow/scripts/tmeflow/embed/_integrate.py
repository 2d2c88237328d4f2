"""Merge per-sample objects, normalise, select highly variable genes and integrate with scVI."""

import logging
import os

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData

from tmeflow._utils import TARGET_SUM, cp10k, missing_from_union, row_sums

logger = logging.getLogger(__name__)


def set_threads(threads: int) -> None:
    """Pin BLAS (one thread), numba, scanpy's ``n_jobs`` and torch to ``threads``.

    See :func:`tmeflow.core.pin_threads`; call before heavy work.
    """
    from tmeflow.core._runtime import pin_threads

    threads = max(1, int(threads))
    sc.settings.n_jobs = threads
    pin_threads(threads)


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
    is dropped. The empty droplets' UMIs of the samples whose raw matrix was cell-called
    (``var["ambient_umis"]``) go to ``varm["ambient_umis"]`` (features x those samples), for
    :func:`tmeflow.cells.soup_profiles`.

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
    empty = _empty_droplet_umis(adatas)
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
    if "ambient_umis" in merged.var.columns:  # one sample: kept by merge="same"
        del merged.var["ambient_umis"]
    if empty:
        merged.varm["ambient_umis"] = pd.DataFrame(empty).reindex(merged.var_names).fillna(0)
    merged.uns["merge"] = {
        "join": "inner",
        "n_features_union": int(n_union),
        "n_features": int(merged.n_vars),
        "n_features_dropped": int(n_union - merged.n_vars),
        "missing": missing,
    }
    return merged


def _empty_droplet_umis(adatas: list[AnnData]) -> dict[str, pd.Series]:
    """Sample -> ``var["ambient_umis"]`` (the empty droplets' UMIs per feature, at ingest)."""
    out = {}
    for a in adatas:
        if "ambient_umis" in a.var.columns and "sample" in a.obs.columns and a.n_obs:
            s = str(a.obs["sample"].iat[0])
            out[s] = pd.Series(a.var["ambient_umis"].to_numpy(np.int64), index=a.var_names)
    return out


def normalise(adata: AnnData) -> None:
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
    adata.X = cp10k(counts, row_sums(counts).astype(np.float32), dtype=np.float32)
    adata.uns["normalisation"] = {"target_sum": TARGET_SUM, "log1p": True}
    adata.uns["log1p"] = {"base": None}


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
    progress: str | None = None,
) -> pd.DataFrame:
    """Train scVI on the highly variable genes' raw counts with ``batch = sample``.

    Writes ``obsm["X_scVI"]`` (float32) and ``uns["scvi"]`` (parameters, epochs run, device).
    Returns the training history (epoch, train/validation ELBO). Every epoch is logged (INFO,
    :class:`tmeflow.embed.EpochLog`: losses, seconds, time left); the logging neither draws
    random numbers nor changes the training. With ``progress`` (a label, e.g. the rule's name)
    a short progress line also goes to stderr every ~10 % of the epochs or 30 s, for the
    terminal that runs Snakemake.

    With ``model_dir`` the trained model is saved there (``model.save``, without the AnnData),
    with the names of the genes it was trained on, one a line, in :data:`TRAINING_GENES`:
    :func:`load_scvi` reloads it against the integrated or the annotated object (the training
    input is rebuilt on those genes), to map new samples or to start scANVI.

    Small data (:func:`_tiny_data_plan`): under 20 cells scVI trains on every cell without
    early stopping, with a batch size that leaves no minibatch of one cell; samples of fewer
    than 3 cells are named. Each adjustment is a WARNING and, with the configured values, is
    recorded in ``uns["scvi"]["notes"]``; normal data get no such key and unchanged training.
    Fewer than 2 cells in all is a ``ValueError`` naming the fix.

    ``threads`` is torch's thread count on the CPU (config ``scvi.threads``, recorded in
    ``uns["scvi"]``). It changes the order of torch's sums, hence ``X_scVI`` bit-wise: the
    workflow takes it from the config, not from the CPUs ``--cores`` gives the job, so that a
    laptop and a workstation train the same model from the same data.
    """
    import scvi
    import torch

    # torch's threads only: launching numba's pool (set_threads) slows every torch epoch
    from tmeflow.core._runtime import pin_threads
    from tmeflow.embed._epoch_log import EpochLog

    pin_threads(threads, numba=False)
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
        callbacks=[EpochLog(epochs, early_stopping=early_stopping, progress=progress)],
        **extra,
    )
    if model_dir is not None:
        model.save(str(model_dir), save_anndata=False, overwrite=True)
        genes_file = os.path.join(os.fspath(model_dir), TRAINING_GENES)
        pd.Series(sub.var_names, dtype=str).to_csv(genes_file, index=False, header=False)
        logger.info("scVI: model and its %d training genes saved to %s", sub.n_vars, model_dir)
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
        "threads": max(1, int(threads)),
        "n_genes": len(genes),
        "scvi_version": scvi.__version__,
    }
    if notes:  # only small data: normal runs keep exactly the keys above
        adata.uns["scvi"].update({f"{k}_configured": v for k, v in configured.items()})
        adata.uns["scvi"].update(extra, notes=notes)
    return history


#: The file of a saved model's folder naming its training genes, one a line (:func:`load_scvi`).
TRAINING_GENES = "training_genes.txt"


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


def training_genes(model_dir: str | os.PathLike[str]) -> pd.Index | None:
    """The genes a saved scVI model was trained on (:data:`TRAINING_GENES`), or None.

    Models saved before the file was written have none; :func:`load_scvi` then falls back
    to ``var["highly_variable"]``.
    """
    path = os.path.join(os.fspath(model_dir), TRAINING_GENES)
    if not os.path.isfile(path):
        return None
    return pd.Index(pd.read_csv(path, header=None, dtype=str).iloc[:, 0])


def load_scvi(
    model_dir: str | os.PathLike[str],
    adata: AnnData | str | os.PathLike[str],
    *,
    accelerator: str = "cpu",
):
    """Reload the scVI model :func:`train_scvi` saved, on the genes it was trained on.

    ``scvi.model.SCVI.load(model_dir, adata)`` on a workflow output fails ("Expected 2000
    Received 3000"): the model saw the highly variable genes only. This rebuilds that input:
    the raw counts of the model's training genes (:func:`training_genes`, else
    ``var["highly_variable"]``), in the training order, and the batch column.

    Parameters
    ----------
    model_dir
        The ``model_dir`` given to :func:`train_scvi` (``results/integrate/scvi_model``).
    adata
        The integrated or annotated object (``results/integrate/integrated.h5ad``,
        ``results/annotate/annotated.h5ad``), or its path: any object with raw counts in
        ``layers["counts"]`` for every training gene and the batch column, read from
        ``uns["scvi"]["batch_key"]`` when present (``sample`` otherwise).
    accelerator
        Where to put the model (``cpu``, ``gpu`` or ``auto``).

    Returns
    -------
    scvi.model.SCVI
        The trained model, set up on the rebuilt input (its ``adata``):
        ``model.get_latent_representation()`` gives back ``obsm["X_scVI"]``.

    Raises
    ------
    ValueError
        A training gene missing from ``adata`` (the first ones are named).
    """
    import scvi

    if not isinstance(adata, AnnData):
        adata = ad.read_h5ad(adata)
    batch_key = str(adata.uns.get("scvi", {}).get("batch_key", "sample"))
    genes = training_genes(model_dir)
    if genes is None:
        sub = scvi_input(adata, batch_key=batch_key)
    else:
        missing = genes.difference(adata.var_names)
        if len(missing):
            raise ValueError(
                f"{len(missing)} of the {len(genes)} genes the scVI model in {model_dir} was "
                f"trained on are not in the object (e.g. {list(missing[:5])}); load it with "
                "the integrated or annotated object of the same run."
            )
        sub = AnnData(
            X=None,
            obs=adata.obs[[batch_key]].copy(),
            var=pd.DataFrame(index=genes),
            layers={
                "counts": _float_counts(adata.layers["counts"], adata.var_names.get_indexer(genes))
            },
        )
    return scvi.model.SCVI.load(str(model_dir), adata=sub, accelerator=accelerator)


def encode_cells(
    model_dir: str | os.PathLike[str],
    adata: AnnData,
    *,
    accelerator: str = "cpu",
    threads: int = 1,
) -> np.ndarray:
    """Cells the model was not trained on, embedded by the trained scVI encoder.

    The cells QC removed (doublets, mixed species) get the latent mean of the model
    :func:`train_scvi` saved, with their own sample as the batch: the same space as the kept
    cells' ``obsm["X_scVI"]``, no retraining (issue 28: the sensitivity's "doublets off"). The
    input is rebuilt as :func:`load_scvi` does (raw counts of the training genes).

    Parameters
    ----------
    model_dir
        The saved model (``results/integrate/scvi_model``).
    adata
        Raw counts in ``layers["counts"]`` (else ``X``) for every training gene; the batch
        column the model was set up with (``sample``).
    accelerator
        Where to run the encoder.
    threads
        torch's CPU threads.

    Returns
    -------
    numpy.ndarray
        ``(n_obs, n_latent)`` float32; the rows of cells whose batch the model never saw (a
        sample none of whose cells was kept) are NaN (logged); no column when no cell's batch
        is known.
    """
    import scvi

    from tmeflow.core._runtime import pin_threads

    pin_threads(threads, numba=False)  # torch is imported now
    registry = scvi.model.SCVI.load_registry(str(model_dir))
    state = registry["field_registries"]["batch"]["state_registry"]
    batch_key = str(state["original_key"])
    # a one-batch model is trained without a batch covariate (scVI's own constant column)
    one_batch = batch_key not in adata.obs.columns
    if one_batch and len(state["categorical_mapping"]) != 1:
        raise ValueError(
            f"the scVI model in {model_dir} was set up with the batch column {batch_key!r}, "
            "which the cells to embed lack"
        )
    if one_batch:
        known = np.ones(adata.n_obs, dtype=bool)
    else:
        batches = adata.obs[batch_key].astype(str).to_numpy()
        known = np.isin(batches, state["categorical_mapping"])
        if (~known).any():
            logger.warning(
                "%d cell(s) of batch(es) %s the scVI model never saw: not embedded",
                int((~known).sum()),
                sorted(pd.unique(batches[~known])),
            )
    if not known.any():
        return np.full((adata.n_obs, 0), np.nan, dtype=np.float32)
    sub = adata[known].copy()
    if one_batch:
        batch_key = "_one_batch"
        sub.obs[batch_key] = "0"
    if "counts" not in sub.layers:  # the species stage's objects hold the counts in X
        sub.layers["counts"] = sub.X
    sub.obs[batch_key] = sub.obs[batch_key].astype(str)
    sub.uns["scvi"] = {"batch_key": batch_key}
    latent = load_scvi(model_dir, sub, accelerator=accelerator).get_latent_representation()
    out = np.full((adata.n_obs, latent.shape[1]), np.nan, dtype=np.float32)
    out[known] = latent
    return out


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

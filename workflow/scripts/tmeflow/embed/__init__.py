"""Stage 3, embedding: the samples merged, integrated and clustered.

Merge and normalisation (:mod:`._integrate`), highly variable genes (:mod:`._hvg`), scVI and its
epoch log (:mod:`._integrate`, :mod:`._epoch_log`), the neighbour graph (:mod:`._graph`), Leiden
and UMAP (:mod:`._cluster`) and integration metrics (:mod:`._metrics`).
"""

from tmeflow._lazy import attach

_NAMES = {
    "_cluster": [
        "MIN_CELLS_TO_CLUSTER",
        "MIN_CELLS_SPECTRAL",
        "FINAL_ITERATIONS",
        "SWEEP_ITERATIONS",
        "leiden",
        "resolution_sweep",
        "choose_resolution",
        "embed_and_cluster",
    ],
    "_epoch_log": [
        "PREFIX",
        "PROGRESS_SHARE",
        "PROGRESS_SECONDS",
        "EpochLog",
    ],
    "_graph": [
        "SMOOTH_K_TOLERANCE",
        "MIN_K_DIST_SCALE",
        "N_ITER",
        "neighbors",
        "knn",
        "smooth_knn_dist",
        "umap_connectivities",
    ],
    "_hvg": [
        "HVG_STEPS",
        "select_hvgs",
        "split_hvg_budget",
        "HVG_TABLE_COLUMNS",
        "hvg_table",
    ],
    "_integrate": [
        "set_threads",
        "merge_samples",
        "MAX_EXAMPLES",
        "missing_features",
        "concat_samples",
        "normalise",
        "default_max_epochs",
        "MIN_CELLS_VALIDATION",
        "MIN_CELLS_PER_SAMPLE",
        "train_scvi",
        "TRAINING_GENES",
        "scvi_input",
        "training_genes",
        "load_scvi",
        "encode_cells",
    ],
    "_metrics": [
        "BATCH_METRICS",
        "BIO_METRICS",
        "unintegrated_pca",
        "subsample",
        "scib_scores",
        "condition_signal",
        "integration_metrics",
    ],
}
__getattr__, __dir__, __all__ = attach(__name__, _NAMES)

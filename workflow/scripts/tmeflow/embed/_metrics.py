"""Integration quality: scib-metrics on the scVI embedding versus unintegrated PCA.

Batch = sample, label = the annotated cell type. Metrics are those of scib-metrics'
``Benchmarker`` defaults (Luecken et al. 2022 Nat Methods 19:41), computed here one by one on an
exact, deterministic kNN graph (scikit-learn) instead of pynndescent:

- batch correction: BRAS (batch-removal adapted silhouette), iLISI (90 neighbours), kBET per
  label (50), graph connectivity (15), PCR comparison (variance explained by batch, before vs
  after);
- bio conservation: isolated labels, NMI/ARI of k-means clusters vs labels, label silhouette,
  cLISI (90).

Aggregates as in scib: ``batch_correction`` and ``bio_conservation`` are the means of their
metrics, ``total = 0.4 * batch_correction + 0.6 * bio_conservation``. Values are not min-max
scaled across embeddings (with two embeddings that would only say which is larger).

Labels come from our own annotation, which was made on the scVI clusters: bio conservation is
therefore biased towards scVI and is a consistency check, not an independent benchmark.

Condition signal: integration with batch = sample can also remove a treatment effect, because
condition is constant within a sample. For each cell type with at least ``min_samples`` samples
of ``min_cells`` cells in each condition, a nearest-centroid classifier predicts the condition of
the cells of each sample from the other samples (leave one sample out, so sample-specific batch
effects cannot help), in PCA and in scVI space; ``condition_signal = max(0, 2 * balanced
accuracy - 1)`` (0 = chance, 1 = perfectly separable). When PCA carries a signal of at least
``min_signal`` and scVI keeps less than a fraction ``min_retained`` of it, the cell type is
flagged: the embedding-level view (clusters, subclusters, UMAP) no longer shows the condition
difference, though counts-based DE (pseudobulk on raw counts) still sees it.
"""

import logging
import warnings

import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import NearestCentroid, NearestNeighbors

logger = logging.getLogger(__name__)

BATCH_METRICS = ("bras", "ilisi", "kbet", "graph_connectivity", "pcr_comparison")
BIO_METRICS = ("isolated_labels", "nmi_kmeans", "ari_kmeans", "silhouette_label", "clisi")


def unintegrated_pca(adata: AnnData, *, n_comps: int = 50, seed: int = 0) -> np.ndarray:
    """PCA of log-normalised ``X`` on the highly variable genes (all genes without the flag)."""
    genes = (
        adata.var["highly_variable"].to_numpy(dtype=bool)
        if "highly_variable" in adata.var
        else np.ones(adata.n_vars, dtype=bool)
    )
    x = adata.X[:, np.flatnonzero(genes)]
    # sparse input stays sparse: scanpy's arpack PCA centres implicitly (no dense cells x genes)
    x = sp.csr_matrix(x, dtype=np.float32) if sp.issparse(x) else np.asarray(x, dtype=np.float32)
    n_comps = int(min(n_comps, x.shape[0] - 1, x.shape[1] - 1))
    return sc.pp.pca(x, n_comps=n_comps, random_state=seed, svd_solver="arpack").astype(np.float32)


def subsample(batch: np.ndarray, *, max_cells: int | None, seed: int = 0) -> np.ndarray:
    """Indices (sorted) of at most ``max_cells`` cells, drawn per batch in proportion to its size.

    ``None`` or a number >= the cells keeps every cell. Each batch keeps at least one cell.
    """
    n = len(batch)
    if not max_cells or max_cells >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    batch = np.asarray(batch).astype(str)
    keep = []
    for b in sorted(set(batch)):
        idx = np.flatnonzero(batch == b)
        k = max(1, round(len(idx) * max_cells / n))
        keep.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(keep))


def _scib():
    """Import scib-metrics; its umap import warns that TensorFlow (ParametricUMAP) is absent."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Tensorflow not installed", category=ImportWarning
        )
        import scib_metrics

    return scib_metrics


def _neighbors(x: np.ndarray, k: int):
    NeighborsResults = _scib().nearest_neighbors.NeighborsResults

    k = int(min(k, x.shape[0] - 1))
    dist, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    # drop the cell itself (first column for distinct points)
    return NeighborsResults(indices=idx[:, 1:], distances=dist[:, 1:].astype(np.float32))


def scib_scores(
    x: np.ndarray,
    x_pre: np.ndarray,
    *,
    batch: np.ndarray,
    labels: np.ndarray,
    kbet: bool = True,
    name: str = "embedding",
) -> dict[str, float]:
    """The scib-metrics batch and bio metrics of one embedding (NaN where undefined).

    ``kbet=False`` skips kBET (NaN), by far the slowest metric (minutes on a few thousand cells).
    Each metric is logged before it runs (``<name>: metric 3/10: kbet``).
    """
    sm = _scib()
    x = np.asarray(x, dtype=np.float32)
    batch = np.asarray(batch).astype(str)
    labels = np.asarray(labels).astype(str)
    n_batch, n_label = len(set(batch)), len(set(labels))
    out = dict.fromkeys(BATCH_METRICS + BIO_METRICS, np.nan)
    planned = ["neighbours"]
    if n_batch >= 2:
        planned += ["bras", "ilisi", *(["kbet"] if kbet else []), "pcr_comparison"]
    if n_label >= 2:
        planned += [
            "graph_connectivity",
            "isolated_labels",
            "nmi_ari_kmeans",
            "silhouette_label",
            "clisi",
        ]

    def step(metric: str) -> None:
        logger.info("%s: metric %d/%d: %s", name, planned.index(metric) + 1, len(planned), metric)

    step("neighbours")
    nn = _neighbors(x, 90)
    if n_batch >= 2:
        step("bras")
        out["bras"] = float(sm.bras(x, labels, batch))
        step("ilisi")
        out["ilisi"] = float(sm.ilisi_knn(nn, batch))
        if kbet:
            step("kbet")
            out["kbet"] = float(
                sm.kbet_per_label(nn.subset_neighbors(min(50, nn.n_neighbors)), batch, labels)
            )
        step("pcr_comparison")
        out["pcr_comparison"] = float(sm.pcr_comparison(x_pre, x, batch, categorical=True))
    else:
        logger.warning("one batch only: batch-correction metrics are undefined (NaN)")
    if n_label >= 2:
        step("graph_connectivity")
        out["graph_connectivity"] = float(
            sm.graph_connectivity(nn.subset_neighbors(min(15, nn.n_neighbors)), labels)
        )
        step("isolated_labels")
        out["isolated_labels"] = float(sm.isolated_labels(x, labels, batch))
        step("nmi_ari_kmeans")
        nmi_ari = sm.nmi_ari_cluster_labels_kmeans(x, labels)
        out["nmi_kmeans"], out["ari_kmeans"] = float(nmi_ari["nmi"]), float(nmi_ari["ari"])
        step("silhouette_label")
        out["silhouette_label"] = float(sm.silhouette_label(x, labels))
        step("clisi")
        out["clisi"] = float(sm.clisi_knn(nn, labels))
    else:
        logger.warning("one label only: bio-conservation metrics are undefined (NaN)")
    return out


def condition_signal(
    embeddings: dict[str, np.ndarray],
    obs: pd.DataFrame,
    *,
    label_key: str,
    batch_key: str,
    condition_key: str,
    min_cells: int = 10,
    min_samples: int = 2,
) -> pd.DataFrame:
    """Leave-one-sample-out condition separability per cell type and embedding.

    Returns one row per cell type: ``cell_type``, ``n_cells``, ``n_samples``, and per embedding
    ``balanced_accuracy_<emb>`` and ``condition_signal_<emb>``. Cell types with fewer than
    ``min_samples`` samples (of ``min_cells`` cells) in some condition get NaN.
    """
    rows = []
    labels = sorted(obs[label_key].astype(str).unique())
    for k, label in enumerate(labels, start=1):
        logger.info("condition signal %d/%d: %s", k, len(labels), label)
        in_label = (obs[label_key].astype(str) == label).to_numpy()
        sub = obs.loc[in_label, [batch_key, condition_key]].astype(str)
        counts = sub.groupby(batch_key).size()
        ok_samples = counts.index[counts >= min_cells]
        keep = sub[batch_key].isin(ok_samples).to_numpy()
        per_cond = sub[keep].groupby(condition_key)[batch_key].nunique()
        row = {"cell_type": label, "n_cells": int(keep.sum()), "n_samples": len(ok_samples)}
        estimable = len(per_cond) >= 2 and per_cond.min() >= min_samples
        for name, emb in embeddings.items():
            acc = np.nan
            if estimable:
                x = np.asarray(emb)[in_label][keep]
                y = sub[condition_key].to_numpy()[keep]
                groups = sub[batch_key].to_numpy()[keep]
                pred = np.empty(len(y), dtype=object)
                for g in np.unique(groups):
                    test = groups == g
                    pred[test] = NearestCentroid().fit(x[~test], y[~test]).predict(x[test])
                acc = float(balanced_accuracy_score(y, pred))
            row[f"balanced_accuracy_{name}"] = acc
            row[f"condition_signal_{name}"] = max(0.0, 2 * acc - 1) if np.isfinite(acc) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def integration_metrics(
    adata: AnnData,
    *,
    batch_key: str = "sample",
    label_key: str = "cell_type",
    condition_key: str = "condition",
    integrated_key: str = "X_scVI",
    n_comps: int = 50,
    seed: int = 0,
    min_cells: int = 10,
    min_samples: int = 2,
    min_signal: float = 0.2,
    min_retained: float = 0.5,
    kbet: bool = True,
    max_cells: int | None = 20000,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scib metrics and condition signal of unintegrated PCA and the integrated embedding.

    The scib metrics are computed on at most ``max_cells`` cells (stratified by batch, seeded;
    kNN-based metrics and silhouettes grow quadratically); the condition signal on all cells.

    Returns ``(metrics, per_cell_type)``. ``metrics`` has one row per embedding (``PCA``,
    ``scVI``): the metrics, ``batch_correction``, ``bio_conservation``, ``total``,
    ``condition_signal_mean`` (over estimable cell types), ``condition_signal_retained``
    (integrated / PCA of the means), ``condition_signal_lost`` (cell types flagged, ``;``
    joined) and ``n_batches``, ``n_labels``. ``per_cell_type`` is :func:`condition_signal`
    with ``retained`` and a boolean ``flagged`` column. Writes ``obsm["X_pca_unintegrated"]``.
    """
    for key in (batch_key, label_key):
        if key not in adata.obs:
            raise ValueError(f"obs[{key!r}] is missing; integration metrics need it")
    if integrated_key not in adata.obsm:
        raise ValueError(f"obsm[{integrated_key!r}] is missing; run the integration step first")
    pca = unintegrated_pca(adata, n_comps=n_comps, seed=seed)
    adata.obsm["X_pca_unintegrated"] = pca
    name = integrated_key.removeprefix("X_")
    embeddings = {"PCA": pca, name: np.asarray(adata.obsm[integrated_key], dtype=np.float32)}
    batch = adata.obs[batch_key].astype(str).to_numpy()
    labels = adata.obs[label_key].astype(str).to_numpy()
    table, cells = _scib_table(
        embeddings, pca, batch=batch, labels=labels, max_cells=max_cells, seed=seed, kbet=kbet
    )
    cond = (
        condition_signal(
            embeddings,
            adata.obs,
            label_key=label_key,
            batch_key=batch_key,
            condition_key=condition_key,
            min_cells=min_cells,
            min_samples=min_samples,
        )
        if condition_key in adata.obs
        else pd.DataFrame({"cell_type": []})
    )
    lost = _flag_lost_signal(
        cond,
        name,
        min_signal=min_signal,
        min_retained=min_retained,
        min_cells=min_cells,
        min_samples=min_samples,
    )
    means = {
        emb: float(cond[f"condition_signal_{emb}"].mean()) if len(cond) else np.nan
        for emb in embeddings
    }
    table["condition_signal_mean"] = table["embedding"].map(means)
    base = means["PCA"]
    table["condition_signal_retained"] = [
        m / base if np.isfinite(base) and base > 0 and np.isfinite(m) else np.nan
        for m in table["embedding"].map(means)
    ]
    table["condition_signal_lost"] = [
        "" if emb == "PCA" else ";".join(lost) for emb in table["embedding"]
    ]
    adata.uns["integration_metrics"] = {
        "batch_key": batch_key,
        "label_key": label_key,
        "condition_key": condition_key,
        "n_comps": int(pca.shape[1]),
        "min_signal": float(min_signal),
        "min_retained": float(min_retained),
        "max_cells": int(max_cells or 0),
        "n_cells_scored": len(cells),
        "condition_signal_lost": lost,
    }
    return table, cond


def _scib_table(
    embeddings: dict[str, np.ndarray],
    pca: np.ndarray,
    *,
    batch: np.ndarray,
    labels: np.ndarray,
    max_cells: int | None,
    seed: int,
    kbet: bool,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The scib rows of :func:`integration_metrics` and the cells they were computed on."""
    rows = []
    cells = subsample(batch, max_cells=max_cells, seed=seed)
    if len(cells) < len(batch):
        logger.info("scib metrics on %d of %d cells (max_cells)", len(cells), len(batch))
    for k, (emb, x) in enumerate(embeddings.items(), start=1):
        logger.info(
            "scib metrics %d/%d: %s (%d dims, %d cells)",
            k,
            len(embeddings),
            emb,
            x.shape[1],
            len(cells),
        )
        scores = scib_scores(
            x[cells], pca[cells], batch=batch[cells], labels=labels[cells], kbet=kbet, name=emb
        )
        rows.append({"embedding": emb, **scores})
    table = pd.DataFrame(rows)
    table["n_cells_scored"] = len(cells)
    table["batch_correction"] = table[list(BATCH_METRICS)].mean(axis=1, skipna=True)
    table["bio_conservation"] = table[list(BIO_METRICS)].mean(axis=1, skipna=True)
    table["total"] = 0.4 * table["batch_correction"] + 0.6 * table["bio_conservation"]
    table["n_batches"] = len(set(batch))
    table["n_labels"] = len(set(labels))
    return table, cells


def _flag_lost_signal(
    cond: pd.DataFrame,
    name: str,
    *,
    min_signal: float,
    min_retained: float,
    min_cells: int,
    min_samples: int,
) -> list[str]:
    """Add ``retained`` and ``flagged`` to ``cond`` (in place); the flagged cell types, logged."""
    before = cond.get("condition_signal_PCA", pd.Series(dtype=float))
    after = cond.get(f"condition_signal_{name}", pd.Series(dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        cond["retained"] = np.where(before > 0, after / before, np.nan)
    cond["flagged"] = (before >= min_signal) & (cond["retained"] < min_retained)
    lost = cond.loc[cond["flagged"], "cell_type"].tolist()
    for row in cond.loc[cond["flagged"]].itertuples(index=False):
        logger.warning(
            "integration removed most of the condition signal in %s: %.2f in PCA, %.2f in %s; "
            "embedding-based views of this cell type (subclusters, UMAP) hide the condition "
            "difference",
            row.cell_type,
            row.condition_signal_PCA,
            getattr(row, f"condition_signal_{name}"),
            name,
        )
    if cond.empty or before.isna().all():
        logger.warning(
            "condition signal not estimable: needs >= %d samples of >= %d cells per condition "
            "in a cell type",
            min_samples,
            min_cells,
        )
    return lost

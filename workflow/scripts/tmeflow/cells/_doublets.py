"""Doublet detection within one sample: Scrublet, a cluster-aware caller per species, a consensus.

Scrublet (``scanpy.pp.scrublet``) scores every droplet against simulated doublets of the
sample's own cells; :func:`threshold_minimum` finds the valley between the singlet and doublet
modes of the simulated scores when Scrublet's own threshold is missing.
:func:`cluster_doublets` (in the spirit of scDblFinder) scores each species' cells against
artificial doublets of two distinct clusters of that species; :func:`consensus` combines the
two calls and :func:`call_doublets` runs it all as QC does.
"""

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from tmeflow.cells._qc_metrics import passes_floors, sample_name

#: scikit-learn's working memory (MB) for Scrublet's exact kNN: the brute-force distances are
#: computed in chunks of at most this size (its default, 1 GB, would be a transient GB per job).
SCRUBLET_KNN_MEMORY_MB = 256

logger = logging.getLogger(__name__)


def detect_doublets(
    adata: AnnData,
    *,
    seed: int,
    expected_rate: float | None = None,
    min_cells: int = 100,
) -> None:
    """Score doublets with Scrublet (``scanpy.pp.scrublet``) on one sample's raw counts.

    Works on a copy of the counts. ``expected_rate`` defaults to the 10x rule of thumb of
    0.8% per 1,000 cells, clipped to [0.05, 0.25]: Scrublet's own default (0.05) is the floor,
    since the call threshold comes from the simulated scores and a low expected rate mostly
    costs sensitivity (on the simulated demo, 0.012 found 19 of 74 planted doublets, 0.05
    found 42, with no false calls either way). Samples with fewer than ``min_cells`` cells
    are skipped (a warning is logged; all cells get score 0 and no doublet call).

    Scrublet's kNN classifier is exact at every size (``use_approx_neighbors=False``:
    scikit-learn, brute force in chunks of :data:`SCRUBLET_KNN_MEMORY_MB`). scanpy is exact
    below 8,192 observed + simulated cells and switches to pynndescent above, which on a
    16,666-cell sample (50k points, 195 neighbours) took 185 s and 2.8 GB against 20 s and
    1.5 GB exact; on its planted doublets the exact scores called 537 of 664 with 11 false
    calls, pynndescent's 518 with 10 (the same AUC, 0.982). Below that size nothing changes.

    Writes ``obs["doublet_score"]`` (float), ``obs["predicted_doublet"]`` (bool) and
    ``uns["doublets"]`` (``seed``, ``expected_rate``, ``threshold``, ``skipped``). The score
    threshold is the minimum between the two modes of the simulated doublets' scores (as
    Scrublet does, see :func:`threshold_minimum`); when those are not bimodal, the top
    ``expected_rate`` fraction of observed scores is called (logged).
    """
    import scanpy as sc
    import sklearn

    sample = sample_name(adata)
    n = adata.n_obs
    rate = (
        float(expected_rate)
        if expected_rate is not None
        else float(np.clip(0.008 * n / 1000.0, 0.05, 0.25))
    )
    info: dict[str, Any] = {
        "seed": int(seed),
        "expected_rate": rate,
        "method": "scrublet",
        "pca": "implicitly centred (sparse)",
        "knn": "exact",
    }
    if n < min_cells:
        logger.warning(
            "sample %s: only %d cells (< %d); doublet detection skipped, no cell flagged",
            sample,
            n,
            min_cells,
        )
        _skip(adata, info)
        return
    X = sp.csr_matrix(adata.X, dtype=np.float32, copy=True)
    tmp = AnnData(X=X)
    tmp.obs_names = adata.obs_names.copy()
    tmp.var_names = [f"f{i}" for i in range(adata.n_vars)]
    n_pcs = int(min(30, n - 1, max(2, int((X.getnnz(axis=0) > 0).sum()) - 1)))
    # threshold=1.0 calls nothing (scores are <= 1); scanpy's automatic threshold needs
    # scikit-image, which is not in the lock, so the same method is applied here.
    try:
        with warnings.catch_warnings():
            # expected with threshold=1.0 (0/0 detectable rate) and HVG-subset cells without
            # counts
            warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
            warnings.filterwarnings("ignore", "Some cells have zero counts", UserWarning)
            with (
                _sparse_zscore_pca(),
                sklearn.config_context(working_memory=SCRUBLET_KNN_MEMORY_MB),
            ):
                sc.pp.scrublet(
                    tmp,
                    expected_doublet_rate=rate,
                    n_prin_comps=n_pcs,
                    use_approx_neighbors=False,
                    threshold=1.0,
                    random_state=seed,
                    verbose=False,
                )
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
        # e.g. too few variable genes for its PCA in a small or shallow sample
        why = f"Scrublet failed ({type(exc).__name__}: {exc})"
        logger.warning(
            "sample %s: %s; doublet detection skipped, no cell flagged (set qc.doublets: "
            "false to skip it on purpose)",
            sample,
            why,
        )
        _skip(adata, {**info, "reason": why})
        return
    scores = tmp.obs["doublet_score"].reindex(adata.obs_names).fillna(0.0).to_numpy(dtype=float)
    sim = np.asarray(tmp.uns["scrublet"]["doublet_scores_sim"], dtype=float)
    try:
        threshold = threshold_minimum(sim)
        how = "minimum between the modes of the simulated doublet scores"
    except RuntimeError:
        threshold = float(np.quantile(scores, 1.0 - rate))
        how = f"top {rate:.1%} of observed scores (simulated scores not bimodal)"
        logger.warning("sample %s: doublet threshold fallback: %s", sample, how)
    pred = scores > threshold
    adata.obs["doublet_score"] = scores
    adata.obs["predicted_doublet"] = pred
    adata.uns["doublets"] = {
        **info,
        "threshold": float(threshold),
        "threshold_method": how,
        "skipped": False,
        "n_predicted": int(pred.sum()),
    }
    logger.info(
        "sample %s: scrublet flagged %d / %d cells (rate %.3f, threshold %.3f: %s)",
        sample,
        pred.sum(),
        n,
        rate,
        threshold,
        how,
    )


@contextlib.contextmanager
def _sparse_zscore_pca() -> Iterator[None]:
    """Scrublet's z-score + PCA without the dense z-scored matrices.

    ``scanpy.pp.scrublet`` (mean_center and normalize_variance, its defaults) z-scores the
    observed and the simulated cells (twice as many) into dense matrices before its PCA: the
    QC job's memory then grows with cells x variable genes x 3 (about 8 GB for a 50,000-cell
    sample). Inside this context the two steps are swapped for their sparse equivalent: genes
    are scaled to unit variance (sparse, same zeros) and the PCA centres implicitly (scikit-
    learn's ARPACK PCA on sparse input subtracts the same gene means inside its matrix
    products). The embedding is the same up to ARPACK's numerics; the neighbour scores follow.
    """
    from scanpy.preprocessing._scrublet import pipeline
    from scanpy.preprocessing._utils import _get_mean_var
    from sklearn.decomposition import PCA

    def zscore(scrub) -> None:
        _, var = _get_mean_var(scrub._counts_obs_norm, axis=0)
        sd = np.sqrt(np.asarray(var, dtype=np.float64))
        scale = sp.diags(np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > 0))
        scrub._counts_obs_norm = sp.csr_matrix(scrub._counts_obs_norm @ scale)
        scrub._counts_sim_norm = sp.csr_matrix(scrub._counts_sim_norm @ scale)

    def pca(scrub, n_prin_comps: int = 50, *, random_state=0, svd_solver="arpack") -> None:
        fit = PCA(n_components=n_prin_comps, random_state=random_state, svd_solver=svd_solver)
        fit.fit(scrub._counts_obs_norm)
        scrub.set_manifold(
            fit.transform(scrub._counts_obs_norm), fit.transform(scrub._counts_sim_norm)
        )

    saved = pipeline.zscore, pipeline.pca
    pipeline.zscore, pipeline.pca = zscore, pca
    try:
        yield
    finally:
        pipeline.zscore, pipeline.pca = saved


def _skip(adata: AnnData, info: dict[str, Any]) -> None:
    """No doublet call: every cell scores 0, none is flagged; ``uns["doublets"]`` says so."""
    adata.obs["doublet_score"] = np.zeros(adata.n_obs)
    adata.obs["predicted_doublet"] = np.zeros(adata.n_obs, dtype=bool)
    adata.uns["doublets"] = {**info, "threshold": float("nan"), "skipped": True}


def threshold_minimum(values: np.ndarray, *, nbins: int = 256, max_iter: int = 10_000) -> float:
    """Threshold at the minimum between the two modes of a histogram.

    A port of ``skimage.filters.threshold_minimum`` (the method Scrublet uses on simulated
    doublet scores): the ``nbins`` histogram is smoothed with a 3-bin running mean until it has
    at most two local maxima; the threshold is the centre of the lowest bin between them.

    Raises
    ------
    RuntimeError
        When the histogram does not have exactly two modes.
    """
    from scipy.ndimage import uniform_filter1d

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0 or v.min() == v.max():
        msg = "threshold_minimum: no spread in the values"
        raise RuntimeError(msg)
    counts, edges = np.histogram(v, bins=nbins, range=(v.min(), v.max()))
    centers = (edges[:-1] + edges[1:]) / 2
    smooth = counts.astype(np.float64)
    maxima: list[int] = []
    for _ in range(max_iter):
        smooth = uniform_filter1d(smooth, 3)
        maxima = _local_maxima(smooth)
        if len(maxima) < 3:
            break
    if len(maxima) != 2:
        msg = "threshold_minimum: unable to find two maxima in the histogram"
        raise RuntimeError(msg)
    idx = int(np.argmin(smooth[maxima[0] : maxima[1] + 1]))
    return float(centers[maxima[0] + idx])


def _local_maxima(hist: np.ndarray) -> list[int]:
    out: list[int] = []
    direction = 1
    for i in range(hist.shape[0] - 1):
        if direction > 0:
            if hist[i + 1] < hist[i]:
                direction = -1
                out.append(i)
        elif hist[i + 1] > hist[i]:
            direction = 1
    return out


# --- the cluster-aware caller (scDblFinder-like), per species ----------------------------------
CLUSTER_MIN_CELLS = 50
"""A species with fewer cells than this gets no cluster-aware call (recorded, logged)."""
CLUSTER_KS: tuple[int, ...] = (5, 10, 25)
"""Neighbourhood sizes of the doublet-neighbour fractions (clipped to a quarter of the cells)."""


def cluster_doublets(
    adata: AnnData,
    *,
    seed: int,
    species_key: str = "species",
    min_cells: int = CLUSTER_MIN_CELLS,
    n_top_genes: int = 1000,
    n_pcs: int = 10,
    resolution: float = 0.5,
    min_separation: float = 2.0,
    eligible: np.ndarray | None = None,
) -> None:
    """Cluster-aware doublet scores per species, in the spirit of scDblFinder.

    Run per species on that species' cells and features only (``obs[species_key]`` ``human``
    / ``mouse``; every cell and feature together when the column is absent), so the other
    species never sets the principal axes (Scrublet, on the two-genome matrix, found 2 of
    the simulated demo's 41 within-species doublets; this caller 40). Only ``eligible``
    cells are scored (default all; QC passes the cells within its hard floors, see
    :func:`tmeflow.cells.passes_floors`). For each species:

    1. log1p(CP10k) of the ``n_top_genes`` most variable genes (of those in >= 3 cells);
       a PCA (``n_pcs``, implicitly centred, seeded) fitted on the real cells;
    2. coarse clusters: Leiden (``resolution``, seeded) on the 10-nearest-neighbour graph;
       only pairs of clusters at least ``min_separation`` x their radius apart count as
       distinct cell types (:func:`_separated`);
    3. as many artificial doublets as cells (at least 300): the summed raw counts of two
       random cells of two distinct clusters (heterotypic doublets), projected on the PCs;
    4. per real and artificial droplet: the fraction of artificial doublets among its
       ``k`` nearest neighbours (k of :data:`CLUSTER_KS`), log library size, log genes
       detected and the first 5 PCs feed a gradient-boosted classifier (scikit-learn's
       ``HistGradientBoostingClassifier``, seeded) trained real vs artificial; every
       droplet's score is its out-of-fold probability (5 folds). A second round retrains
       without the real cells the first called (they are scored by the fold models);
    5. the call threshold minimises ``FNR(artificial) + fraction of real droplets called``
       (:func:`_threshold`; no expected doublet rate, which would set the number called).

    Writes ``obs["doublet_score_cluster"]`` (float; NaN for cells not scored: ``mixed``
    ones, cells not ``eligible``, a species that fell back),
    ``obs["predicted_doublet_cluster"]`` (bool) and ``uns["doublets_cluster"]``: the
    parameters, ``n_not_eligible``
    and, per species, ``n_cells``, ``n_clusters``, ``n_cluster_pairs_apart``,
    ``n_simulated``, ``threshold``, ``n_predicted``, ``simulated_detected``
    — or ``skipped`` with its ``reason`` (fewer than ``min_cells`` cells, one cell type, too
    few variable genes): such a species gets no call, logged as a warning.
    """
    sample = sample_name(adata)
    n = adata.n_obs
    X = sp.csr_matrix(adata.X)
    groups = _species_groups(adata, species_key)
    ok = np.ones(n, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    groups = {k: (rows[ok[rows]], cols) for k, (rows, cols) in groups.items()}
    scores = np.full(n, np.nan)
    calls = np.zeros(n, dtype=bool)
    per_species: dict[str, dict[str, Any]] = {}
    for name, (rows, cols) in groups.items():
        sub = X[rows][:, cols] if cols is not None else X[rows]
        try:
            s, c, info = _cluster_scores(
                sp.csr_matrix(sub, dtype=np.float32),
                seed=seed,
                min_cells=min_cells,
                n_top_genes=n_top_genes,
                n_pcs=n_pcs,
                resolution=resolution,
                min_separation=min_separation,
            )
        except _Fallback as exc:
            logger.warning(
                "sample %s species %s: cluster-aware doublet caller skipped (%s); its cells "
                "keep Scrublet's call alone",
                sample,
                name,
                exc,
            )
            per_species[name] = {"n_cells": int(rows.size), "skipped": True, "reason": str(exc)}
            continue
        scores[rows] = s
        calls[rows] = c
        per_species[name] = {"n_cells": int(rows.size), "skipped": False, **info}
        logger.info(
            "sample %s species %s: cluster-aware caller flagged %d / %d cells (%s)",
            sample,
            name,
            int(c.sum()),
            rows.size,
            info,
        )
    adata.obs["doublet_score_cluster"] = scores
    adata.obs["predicted_doublet_cluster"] = calls
    adata.uns["doublets_cluster"] = {
        "method": "cluster-aware simulation (scDblFinder-like), per species",
        "seed": int(seed),
        "min_cells": int(min_cells),
        "n_top_genes": int(n_top_genes),
        "n_pcs": int(n_pcs),
        "resolution": float(resolution),
        "min_separation": float(min_separation),
        "ks": list(CLUSTER_KS),
        "n_not_eligible": int((~ok).sum()),
        "species": per_species,
    }


class _Fallback(Exception):
    """A species the cluster-aware caller cannot score (the message is the recorded reason)."""


def _species_groups(
    adata: AnnData, species_key: str
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Per species: its cells and (when ``var["species"]`` tells) its features."""
    if species_key not in adata.obs:
        return {"all": (np.arange(adata.n_obs), None)}
    cell_sp = adata.obs[species_key].astype(str).to_numpy()
    var_sp = adata.var["species"].astype(str).to_numpy() if "species" in adata.var else None
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name in ("human", "mouse"):
        rows = np.flatnonzero(cell_sp == name)
        if not rows.size:
            continue
        cols = None
        if var_sp is not None and (var_sp == name).any() and len(set(var_sp)) > 1:
            cols = np.flatnonzero(var_sp == name)
        out[name] = (rows, cols)
    return out


def _lognorm(X: sp.csr_matrix, lib: np.ndarray, genes: np.ndarray) -> sp.csr_matrix:
    scale = np.divide(1e4, lib, out=np.zeros_like(lib), where=lib > 0)
    out = sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ X[:, genes])
    out.data = np.log1p(out.data)
    return out


def _cluster_scores(
    X: sp.csr_matrix,
    *,
    seed: int,
    min_cells: int,
    n_top_genes: int,
    n_pcs: int,
    resolution: float,
    min_separation: float,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Scores, calls and facts of one species' cells (raw counts ``X``, cells x its genes)."""
    from sklearn.decomposition import PCA

    n = X.shape[0]
    if n < min_cells:
        msg = f"{n} cells (< {min_cells})"
        raise _Fallback(msg)
    rng = np.random.default_rng(seed)
    lib = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
    detected = np.diff((X > 0).tocsr().indptr)
    norm = _lognorm(X, lib, np.arange(X.shape[1]))
    mean = np.asarray(norm.mean(axis=0)).ravel()
    var = np.asarray(norm.multiply(norm).mean(axis=0)).ravel() - mean**2
    ok = np.flatnonzero(np.diff(X.tocsc().indptr) >= 3)
    genes = ok[np.argsort(-var[ok], kind="stable")][:n_top_genes]
    n_comp = int(min(n_pcs, n - 1, genes.size - 1))
    if n_comp < 2:
        msg = f"{genes.size} genes detected in >= 3 cells (too few for a PCA)"
        raise _Fallback(msg)
    genes = np.sort(genes)
    pca = PCA(n_components=n_comp, svd_solver="arpack", random_state=seed)
    pcs = pca.fit_transform(norm[:, genes])
    clusters = _coarse_clusters(pcs, seed=seed, resolution=resolution)
    apart = _separated(pcs, clusters, min_separation=min_separation)
    if not apart.any():
        msg = (
            f"one cell type ({apart.shape[0]} cluster(s), none {min_separation} x their "
            "radius apart): no heterotypic doublets to simulate"
        )
        raise _Fallback(msg)
    n_sim = int(min(max(n, 300), 25_000))
    first, second = _pairs(rng, clusters, apart, n_sim)
    sim = sp.csr_matrix(X[first] + X[second])
    sim_lib = lib[first] + lib[second]
    sim_pcs = pca.transform(_lognorm(sim, sim_lib, genes))
    feats = _features(
        np.vstack([pcs, sim_pcs]),
        n_real=n,
        lib=np.r_[lib, sim_lib],
        detected=np.r_[detected, np.diff(sim.indptr)],
    )
    y = np.r_[np.zeros(n, dtype=bool), np.ones(n_sim, dtype=bool)]
    score = _classify(feats, y, seed=seed, exclude=None)
    threshold = _threshold(score[:n], score[n:])
    called = score[:n] >= threshold
    if called.any():
        score = _classify(feats, y, seed=seed, exclude=np.r_[called, np.zeros(n_sim, bool)])
        threshold = _threshold(score[:n], score[n:])
    calls = score[:n] >= threshold
    info = {
        "n_clusters": int(apart.shape[0]),
        "n_cluster_pairs_apart": int(np.triu(apart, k=1).sum()),
        "n_simulated": n_sim,
        "n_genes": int(genes.size),
        "n_pcs": n_comp,
        "threshold": float(threshold),
        "n_predicted": int(calls.sum()),
        "simulated_detected": float(np.mean(score[n:] >= threshold)),
    }
    return score[:n], calls, info


def _coarse_clusters(pcs: np.ndarray, *, seed: int, resolution: float) -> np.ndarray:
    """Leiden (igraph, seeded) on the symmetric 10-nearest-neighbour graph of ``pcs``."""
    import scanpy as sc
    from sklearn.neighbors import NearestNeighbors

    k = int(min(10, pcs.shape[0] - 1))
    graph = NearestNeighbors(n_neighbors=k).fit(pcs).kneighbors_graph(mode="connectivity")
    graph = ((graph + graph.T) > 0).astype(np.float64)
    tmp = AnnData(obs={"i": np.arange(pcs.shape[0])})
    sc.tl.leiden(
        tmp,
        adjacency=sp.csr_matrix(graph),
        resolution=resolution,
        random_state=seed,
        flavor="igraph",
        n_iterations=-1,
        directed=False,
    )
    return tmp.obs["leiden"].astype(int).to_numpy()


def _separated(pcs: np.ndarray, clusters: np.ndarray, *, min_separation: float) -> np.ndarray:
    """Which pairs of clusters lie at least ``min_separation`` x their mean radius apart.

    A cluster's radius is the root-mean-square distance of its cells to its centroid (in
    ``pcs``). Leiden splits one homogeneous population (a tumour's cells) into parts whose
    centroids are about one radius apart (0.7-1.4 on the simulated demo's tumour); distinct
    cell types lie further apart (2.5-5.5 for the demo's mouse types, 1.5-8.4 in the Tabula
    Muris lung). Doublets of two parts of one population are homotypic: undetectable, and
    simulating them teaches the classifier that a large library is a doublet. Pairs are judged
    one by one (not merged transitively: a chain of close clusters links distinct types).
    Returns the boolean cluster x cluster matrix (clusters numbered 0..k-1).
    """
    k = int(clusters.max()) + 1
    cent = np.array([pcs[clusters == i].mean(axis=0) for i in range(k)])
    rad = np.array(
        [np.sqrt(((pcs[clusters == i] - cent[i]) ** 2).sum(axis=1).mean()) for i in range(k)]
    )
    dist = np.sqrt(((cent[:, None] - cent[None]) ** 2).sum(axis=-1))
    return dist >= min_separation * (rad[:, None] + rad[None]) / 2


def _pairs(
    rng: np.random.Generator, clusters: np.ndarray, apart: np.ndarray, n_sim: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n_sim`` pairs of cells from two clusters that are ``apart``.

    Cluster pairs are drawn in proportion to the product of their sizes (as doublets form),
    then a random cell of each.
    """
    sizes = np.bincount(clusters, minlength=apart.shape[0]).astype(np.float64)
    weight = np.triu(np.outer(sizes, sizes) * apart, k=1).ravel()
    pick = rng.choice(weight.size, size=n_sim, p=weight / weight.sum())
    ca, cb = np.divmod(pick, apart.shape[0])
    members = [np.flatnonzero(clusters == i) for i in range(apart.shape[0])]
    first = np.array([members[c][rng.integers(members[c].size)] for c in ca])
    second = np.array([members[c][rng.integers(members[c].size)] for c in cb])
    return first, second


def _features(emb: np.ndarray, *, n_real: int, lib: np.ndarray, detected: np.ndarray) -> np.ndarray:
    """Doublet-neighbour fractions at :data:`CLUSTER_KS`, log library, log genes, 5 PCs."""
    from sklearn.neighbors import NearestNeighbors

    n_all = emb.shape[0]
    ks = sorted({int(max(2, min(k, n_real // 4))) for k in CLUSTER_KS})
    _, idx = NearestNeighbors(n_neighbors=ks[-1] + 1).fit(emb).kneighbors(emb)
    is_sim = np.arange(n_all) >= n_real
    nb = is_sim[idx[:, 1:]]
    fracs = [nb[:, :k].mean(axis=1) for k in ks]
    return np.column_stack([*fracs, np.log1p(lib), np.log1p(detected), emb[:, :5]])


def _classify(
    feats: np.ndarray, y: np.ndarray, *, seed: int, exclude: np.ndarray | None
) -> np.ndarray:
    """Out-of-fold probabilities of being artificial; ``exclude``d rows are not trained on."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold

    train = np.ones(y.size, dtype=bool) if exclude is None else ~exclude
    out = np.zeros(y.size)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    for tr, te in folds.split(feats, y):
        fit = HistGradientBoostingClassifier(
            max_iter=100,
            learning_rate=0.1,
            max_leaf_nodes=15,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        )
        tr = tr[train[tr]]
        fit.fit(feats[tr], y[tr])
        te = te[train[te]]
        out[te] = fit.predict_proba(feats[te])[:, 1]
        if exclude is not None and exclude.any():
            # rows never trained on: the mean of the 5 fold models
            out[exclude] += fit.predict_proba(feats[exclude])[:, 1] / folds.n_splits
    return out


def _threshold(real: np.ndarray, sim: np.ndarray) -> float:
    """The score minimising FNR(artificial) + the fraction of real droplets called.

    The balanced error, real droplets counted as singlets (their doublets are few). Tying the
    calls to an expected doublet rate instead (``|n_called - n_expected| / n`` in place of
    the second term) made the caller call that rate whatever the scores: 119 of 9,601
    singlets of a 10,000-cell demo sample at the 10x rate of 8% (10 with this rule, and 274
    of its 276 within-species doublets either way); penalising only calls beyond the rate
    (+1.5%) found 3 of 25 planted doublets in the lung (625 cells, rate 0.5%; 23-25 here).
    """
    cand = np.unique(np.r_[real, sim])
    fnr = np.searchsorted(np.sort(sim), cand, side="left") / sim.size
    called = real.size - np.searchsorted(np.sort(real), cand, side="left")
    return float(cand[int(np.argmin(fnr + called / real.size))])


# --- the consensus ------------------------------------------------------------------------------
# --- the registry of callers -------------------------------------------------------------------
def score_column(caller: str) -> str:
    """The ``obs`` column of a registered caller's score (NaN where it did not score a cell)."""
    return f"doublet_score_{caller}"


def call_column(caller: str) -> str:
    """The ``obs`` column of a registered caller's own call (before the consensus)."""
    return f"predicted_doublet_{caller}"


def _run_scrublet(adata: AnnData, *, seed: int, floors: dict[str, float]) -> None:
    detect_doublets(adata, seed=seed)
    adata.obs[score_column("scrublet")] = adata.obs["doublet_score"].to_numpy(dtype=float)
    adata.obs[call_column("scrublet")] = adata.obs["predicted_doublet"].to_numpy(bool)


def _skip_scrublet(adata: AnnData) -> None:
    n = adata.n_obs
    adata.obs["doublet_score"] = np.full(n, np.nan)
    adata.obs[score_column("scrublet")] = np.full(n, np.nan)
    adata.obs[call_column("scrublet")] = np.zeros(n, dtype=bool)


def _run_cluster(adata: AnnData, *, seed: int, floors: dict[str, float]) -> None:
    cluster_doublets(adata, seed=seed, eligible=passes_floors(adata.obs, **floors))


def _skip_nothing(adata: AnnData) -> None:
    """A caller whose columns are simply absent when it does not run (the consensus knows)."""


@dataclass(frozen=True)
class DoubletCaller:
    """A registered doublet caller.

    ``run(adata, *, seed, floors)`` writes ``obs[score_column(name)]`` and
    ``obs[call_column(name)]`` (``floors``: QC's hard floors ``min_counts``, ``min_genes``,
    ``max_pct_mito``, for a caller that scores only the cells within them); ``skip(adata)``
    writes what a sample gets when the method leaves the caller out.
    """

    run: Callable[..., None]
    skip: Callable[[AnnData], None] = _skip_nothing


#: The registry of doublet callers, in the order they run: a new caller is its function and one
#: line here (and its name in the config schema's ``qc.doublet_method`` and
#: ``qc.doublet_consensus`` enums, checked by a test). Its columns follow :func:`score_column` /
#: :func:`call_column`; the QC table, the annotation's doublet summary and the sensitivity
#: settings read them from this table.
DOUBLET_CALLERS: dict[str, DoubletCaller] = {
    "scrublet": DoubletCaller(run=_run_scrublet, skip=_skip_scrublet),
    "cluster": DoubletCaller(run=_run_cluster),
}

DOUBLET_METHODS: tuple[str, ...] = ("both", *DOUBLET_CALLERS)
"""Values of ``qc.doublet_method`` (:func:`call_doublets`): every registered caller, or one."""

CONSENSUS_RULES: tuple[str, ...] = ("both_or_confident", "either", "both", *DOUBLET_CALLERS)
"""Values of ``qc.doublet_consensus`` (:func:`consensus`)."""


MULTIPLET_RATE_PER_1000 = 0.008
"""The 10x rule of thumb: about 0.8% of the cells recovered are multiplets per 1,000 cells."""


def expected_multiplet_rate(n_cells: int) -> float:
    """The multiplet share a sample's size implies: 0.8% per 1,000 cells recovered (at most 1).

    ``n_cells`` droplets recovered give ``0.008 * n_cells / 1000`` (1,000 cells: 0.8%;
    10,000: 8%; 20,000: 16%), and ``n_cells`` times that many multiplets.
    """
    return float(min(MULTIPLET_RATE_PER_1000 * max(int(n_cells), 0) / 1000.0, 1.0))


#: Under ``both_or_confident`` the cluster-aware caller alone removes at most the multiplet
#: share the sample's size implies (:func:`expected_multiplet_rate`), or this fraction of a
#: sample's scored droplets where that is more: a floor for small samples (config
#: ``qc.doublet_cluster_cap``).
CLUSTER_CAP = 0.03


def cluster_alone_cap(n_scored: int, cap: float = CLUSTER_CAP) -> int:
    """Most droplets the cluster-aware caller may remove on its own among ``n_scored``.

    The loading-implied multiplet count, ``ceil(max(expected_multiplet_rate(n), cap) * n)``
    with ``n = n_scored``: ``cap`` (``qc.doublet_cluster_cap``) is the floor that binds below
    ``cap / 0.008 * 1000`` cells (3,750 at the default 3%); above it the 10x rate does
    (20,000 droplets: 16%, 3,200; before issue 27 it was twice that rate, 32%).
    """
    rate = max(expected_multiplet_rate(n_scored), float(cap))
    return int(np.ceil(min(rate, 1.0) * n_scored))


def consensus(
    adata: AnnData,
    *,
    rule: str = "both_or_confident",
    confident: float = 0.9,
    cap: float = CLUSTER_CAP,
) -> None:
    """Combine Scrublet's and the cluster-aware caller's calls into ``obs["predicted_doublet"]``.

    Rules: ``both_or_confident`` (default) — a doublet when both callers call it, or when the
    cluster-aware caller calls it with a score of at least ``confident`` (a Scrublet-only
    call needs the other caller's agreement: Scrublet runs on the two-genome matrix, where
    species and ambient RNA shape its principal axes); ``either``; ``both``; ``scrublet``
    or ``cluster`` alone. A cell the cluster-aware caller did not score (``mixed`` cells, a
    species that fell back: NaN score) keeps Scrublet's call under every rule but
    ``cluster``, where it is not called.

    Under ``both_or_confident`` the calls of the cluster-aware caller alone are capped at
    :func:`cluster_alone_cap` (the multiplet count the sample's size implies, ``cap`` its
    floor; the highest scores are removed, the others kept and counted in
    ``n_cluster_alone_kept``, with a warning). Its classifier also scores real
    large cells highly: on the 10x heart_1k_v2 sample (712 droplets, ~0.6% doublets
    expected) it removed 59 cells uncapped, 8 of its 14 macrophages among them, 19 with the
    cap; on the simulated demo (4.3% planted doublets) the cap keeps 80% of the
    within-species doublets caught (94% uncapped).

    Reads ``obs["predicted_doublet_scrublet"]`` (all False when Scrublet did not run) and
    ``obs["doublet_score_cluster"]`` / ``obs["predicted_doublet_cluster"]`` (absent: the
    rule falls back to Scrublet's call, recorded). Writes ``obs["predicted_doublet"]`` and
    ``uns["doublets_consensus"]`` (``rule``, ``confident``, counts per caller, ``fallback``).
    """
    if rule not in CONSENSUS_RULES:
        msg = f"doublet consensus rule {rule!r}; use one of {', '.join(CONSENSUS_RULES)}"
        raise ValueError(msg)
    n = adata.n_obs
    obs = adata.obs
    # each caller's own call (all False where it did not run); either/both/a caller alone
    # combine them as they are, both_or_confident weighs the cluster-aware caller's score
    own = {
        name: obs[call_column(name)].to_numpy(dtype=bool)
        if call_column(name) in obs
        else np.zeros(n, dtype=bool)
        for name in DOUBLET_CALLERS
    }
    scr, clu = own["scrublet"], own["cluster"]
    fallback = ""
    if score_column("cluster") in obs:
        score = obs[score_column("cluster")].to_numpy(dtype=float)
    else:
        score = np.full(n, np.nan)
        fallback = "no cluster-aware scores: Scrublet's call"
    scored = np.isfinite(score)
    alone = clu & (score >= confident) & ~scr
    limit = cluster_alone_cap(int(np.isfinite(score).sum()), cap)
    ranked = np.flatnonzero(alone)
    ranked = ranked[np.argsort(-score[ranked], kind="stable")]
    confident_alone = np.zeros(n, dtype=bool)
    confident_alone[ranked[:limit]] = True
    n_kept_alone = int(max(ranked.size - limit, 0))
    if rule == "both_or_confident" and n_kept_alone:
        logger.warning(
            "sample %s: the cluster-aware caller alone called %d cells confidently; the %d "
            "highest-scoring are removed (cap %d, qc.doublet_cluster_cap), %d are kept",
            sample_name(adata),
            ranked.size,
            limit,
            limit,
            n_kept_alone,
        )
    if rule == "both_or_confident":
        calls = (scr & clu) | confident_alone
    elif rule == "either":
        calls = np.logical_or.reduce(list(own.values()))
    elif rule == "both":
        calls = np.logical_and.reduce(list(own.values()))
    else:
        calls = own[rule].copy()
    if rule != "cluster":
        calls[~scored] = scr[~scored]
    obs["predicted_doublet"] = calls
    adata.uns["doublets_consensus"] = {
        "rule": rule,
        "confident": float(confident),
        "cluster_cap": float(cap),
        "n_cluster_alone_cap": int(limit),
        "n_cluster_alone_kept": n_kept_alone if rule == "both_or_confident" else 0,
        **{f"n_{name}": int(call.sum()) for name, call in own.items()},
        "n_both": int(np.logical_and.reduce(list(own.values())).sum()),
        "n_predicted": int(calls.sum()),
        "n_not_scored_cluster": int((~scored).sum()),
        "fallback": fallback,
    }
    logger.info(
        "sample %s: doublet consensus %s", sample_name(adata), adata.uns["doublets_consensus"]
    )


def call_doublets(
    adata: AnnData,
    *,
    seed: int,
    method: str = "both",
    consensus_rule: str = "both_or_confident",
    confident: float = 0.9,
    cap: float = CLUSTER_CAP,
    min_counts: int = 500,
    min_genes: int = 200,
    max_pct_mito: float = 25.0,
) -> None:
    """Call doublets in one sample: Scrublet, the cluster-aware caller per species, a consensus.

    ``method`` ``both`` runs :func:`detect_doublets` (Scrublet, every feature) and
    :func:`cluster_doublets` (per species, on the cells within the hard QC floors
    ``min_counts`` / ``min_genes`` / ``max_pct_mito``: see :func:`tmeflow.cells.passes_floors`)
    and combines them with :func:`consensus` (``consensus_rule``, ``confident``);
    ``scrublet`` or ``cluster`` runs that caller alone (the rule is then that caller's).
    QC metrics (:func:`tmeflow.cells.qc_metrics`) must have been computed.

    Writes ``obs["doublet_score_scrublet"]`` / ``obs["predicted_doublet_scrublet"]`` (NaN /
    False when Scrublet did not run), ``obs["doublet_score"]`` (the same Scrublet score, the
    column's historical name), ``obs["doublet_score_cluster"]`` /
    ``obs["predicted_doublet_cluster"]`` (NaN / False for cells not scored),
    ``obs["predicted_doublet"]`` (the consensus call QC removes) and ``uns["doublets"]``
    (Scrublet), ``uns["doublets_cluster"]``, ``uns["doublets_consensus"]``.
    """
    if method not in DOUBLET_METHODS:
        msg = f"qc.doublet_method {method!r}; use one of {', '.join(DOUBLET_METHODS)}"
        raise ValueError(msg)
    floors = {"min_counts": min_counts, "min_genes": min_genes, "max_pct_mito": max_pct_mito}
    for name, caller in DOUBLET_CALLERS.items():
        if method in ("both", name):
            caller.run(adata, seed=seed, floors=floors)
        else:
            caller.skip(adata)
    rule = consensus_rule if method == "both" else method
    consensus(adata, rule=rule, confident=confident, cap=cap)
    adata.uns["doublets_consensus"]["method"] = method

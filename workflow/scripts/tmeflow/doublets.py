"""Doublet detection within one sample: Scrublet scores and a data-driven call threshold.

Scrublet (``scanpy.pp.scrublet``) scores every droplet against simulated doublets of the
sample's own cells; :func:`threshold_minimum` finds the valley between the singlet and doublet
modes of the simulated scores when Scrublet's own threshold is missing.
"""

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from tmeflow.qc import sample_name

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

    Writes ``obs["doublet_score"]`` (float), ``obs["predicted_doublet"]`` (bool) and
    ``uns["doublets"]`` (``seed``, ``expected_rate``, ``threshold``, ``skipped``). The score
    threshold is the minimum between the two modes of the simulated doublets' scores (as
    Scrublet does, see :func:`threshold_minimum`); when those are not bimodal, the top
    ``expected_rate`` fraction of observed scores is called (logged).
    """
    import scanpy as sc

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
            with _sparse_zscore_pca():
                sc.pp.scrublet(
                    tmp,
                    expected_doublet_rate=rate,
                    n_prin_comps=n_pcs,
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

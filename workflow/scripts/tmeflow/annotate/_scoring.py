"""Scores of cells and labels of groups of cells: the steps of :mod:`tmeflow.annotate._cell_types`.

:func:`score_cells` scores cells against marker sets, :func:`assign_groups` labels groups
(clusters, subclusters) from their mean scores, and :func:`refine_mixed` splits clusters that
hold a sizeable group of cells of another type.
"""

import logging

import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData

from tmeflow._utils import natural_key
from tmeflow.embed._cluster import leiden
from tmeflow.embed._graph import neighbors

logger = logging.getLogger("tmeflow.annotate._cell_types")  # the log lines of annotate, unchanged

UNASSIGNED = "unassigned"


def score_cells(
    adata: AnnData, markers: dict[str, list[str]], *, mask: np.ndarray | None = None
) -> pd.DataFrame:
    """Per-cell marker scores (mean z-score of log-normalised ``X`` over present markers).

    Only the cells in ``mask`` are scored (z-scores use their mean and SD); other cells get NaN.
    Labels with no marker in the data get NaN everywhere.
    """
    mask = np.ones(adata.n_obs, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    scores = pd.DataFrame(np.nan, index=adata.obs_names, columns=list(markers), dtype=float)
    genes = sorted({g for gs in markers.values() for g in gs if g in adata.var_names})
    if not genes or not mask.any():
        return scores
    x = adata[mask, genes].X
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    x = x.astype(np.float64)
    sd = x.std(axis=0)
    z = np.divide(x - x.mean(axis=0), sd, out=np.zeros_like(x), where=sd > 0)
    col = {g: i for i, g in enumerate(genes)}
    for label, gs in markers.items():
        idx = [col[g] for g in gs if g in col]
        if idx:
            scores.loc[mask, label] = z[:, idx].mean(axis=1)
    return scores


#: A label whose best-scoring clusters hold more than this share of the scored cells gets its
#: z-scores rescaled (:func:`abundance_correction`).
ABUNDANT_SHARE = 0.5


def abundance_correction(
    scores: pd.DataFrame, groups: pd.Series, *, parent: dict[str, str] | None = None
) -> dict[str, float]:
    """Divisors that undo the ceiling z-scores put on an abundant cell type's score.

    Marker z-scores are taken across all scored cells. A marker expressed only by a type that
    makes up a share ``p`` of the cells has z-score at most ``sqrt((1 - p) / p)`` in those
    cells: 1 at ``p = 0.5``, 0.5 at ``p = 0.8``, 0.33 at ``p = 0.9``. A macrophage-rich
    nude-mouse tumour (80% TAMs) would leave its TAM clusters below ``min_score`` and
    ``unassigned``. For each reported label whose clusters (by best mean score) hold a share
    ``q > 0.5`` of the cells, its entries' scores are divided by ``sqrt((1 - q) / q)``, so the
    label is judged as if it were at the 50% mark. Labels at or below half the cells (every
    label of a balanced sample) are untouched.

    Parameters
    ----------
    scores
        Per-cell scores (:func:`score_cells`) of the cells being labelled.
    groups
        Their cluster per cell.
    parent
        Entry -> reported label (as in :func:`assign_groups`).

    Returns
    -------
    dict
        Entry (score column) -> divisor, only for the entries of abundant labels.
    """
    parent = parent or {}
    usable = scores.dropna(axis=1, how="all")
    if usable.shape[1] == 0 or not len(groups):
        return {}
    means = usable.groupby(groups.astype(str).to_numpy()).mean()
    sizes = groups.astype(str).value_counts()
    best = means.idxmax(axis=1).map(lambda c: parent.get(c, c))
    share = sizes.reindex(best.index).groupby(best.to_numpy()).sum() / sizes.sum()
    out = {}
    for label, q in share.items():
        if q > ABUNDANT_SHARE and q < 1:
            factor = float(np.sqrt((1 - q) / q))
            out.update({c: factor for c in usable.columns if parent.get(c, c) == label})
    return out


def assign_groups(
    scores: pd.DataFrame,
    groups: pd.Series,
    *,
    min_score: float,
    min_margin: float,
    parent: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Label each group (cluster) from the mean of its cells' scores.

    ``parent`` maps a scored entry to the label it is reported as (an entry with a panel
    ``parent``, e.g. alveolar macrophages -> TAM); the runner-up is then the best entry of
    another label, so two forms of one cell type do not compete.

    A label is confident when its mean score is at least ``min_score``, beats the runner-up by
    ``min_margin``, and is also the most common per-cell label of the group
    (:func:`cell_best_labels`; cells with no label above ``min_score`` are not counted): a mean
    is pulled up by a few cells with very high scores, so a small minority (six macrophages in
    a cluster of 45 thymocytes) cannot label the group.

    Returns one row per group: group, n_cells, label (reported), best_label (best entry),
    score, runner_up, runner_up_score, margin, support (the fraction of the group's cells whose
    own best label is the reported one), plurality, confident, and the mean score of every
    entry (``score_<label>``).
    """
    parent = parent or {}
    rows = []
    usable = scores.dropna(axis=1, how="all")
    per_cell = cell_best_labels(usable, min_score=min_score, parent=parent)
    for group in sorted(groups.dropna().unique(), key=natural_key):
        members = groups.index[groups == group]
        means = usable.loc[members].mean(axis=0).sort_values(ascending=False, kind="stable")
        best, best_score = (means.index[0], float(means.iloc[0])) if len(means) else ("", np.nan)
        reported = parent.get(best, best)
        others = means[[parent.get(k, k) != reported for k in means.index]]
        second, second_score = (
            (others.index[0], float(others.iloc[0])) if len(others) else ("", -np.inf)
        )
        margin = best_score - second_score
        votes = per_cell.loc[members].value_counts()
        plurality = bool(len(votes) and votes.get(reported, 0) == votes.max())
        confident = bool(
            len(means) and best_score >= min_score and margin >= min_margin and plurality
        )
        row = {
            "group": str(group),
            "n_cells": len(members),
            "label": reported if confident else UNASSIGNED,
            "best_label": best,
            "score": best_score,
            "runner_up": second,
            "runner_up_score": second_score if np.isfinite(second_score) else np.nan,
            "margin": margin if np.isfinite(margin) else np.nan,
            "support": float(votes.get(reported, 0)) / len(members) if len(members) else np.nan,
            "plurality": plurality,
            "confident": confident,
        }
        row.update({f"score_{k}": float(v) for k, v in means.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def recluster(
    adata: AnnData, cells: np.ndarray, *, resolution: float, n_neighbors: int, seed: int
) -> np.ndarray:
    """Leiden clusters (str) of ``cells`` (a boolean mask) on their own neighbour graph.

    The graph is built on ``obsm["X_scVI"]`` when present, copying only that embedding;
    otherwise as scanpy would: on ``X`` itself with at most ``sc.settings.N_PCS`` (50) genes,
    else on a PCA of the cells' ``X``.
    """
    rows = np.flatnonzero(cells)
    if "X_scVI" in adata.obsm:
        sub = AnnData(
            obs=pd.DataFrame(index=adata.obs_names[rows]),
            obsm={"X_scVI": np.asarray(adata.obsm["X_scVI"])[rows]},
        )
        rep = "X_scVI"
    else:
        sub = adata[rows].copy()
        rep = "X"
        if sub.n_vars > sc.settings.N_PCS:  # scanpy's own rule (_get_pca_or_small_x)
            sc.pp.pca(sub, random_state=seed)
            rep = "X_pca"
    k = int(min(n_neighbors, len(rows) - 1))
    neighbors(sub, use_rep=rep, n_neighbors=k, seed=seed)
    leiden(sub, resolution=resolution, seed=seed, key_added="_recluster")
    return sub.obs["_recluster"].astype(str).to_numpy()


def cell_best_labels(
    scores: pd.DataFrame, *, min_score: float, parent: dict[str, str] | None = None
) -> pd.Series:
    """Per cell, the best-scoring label (entries mapped to ``parent``); NaN below ``min_score``."""
    parent = parent or {}
    usable = scores.dropna(axis=1, how="all")
    if usable.shape[1] == 0:
        return pd.Series(np.nan, index=scores.index, dtype=object)
    values = usable.fillna(-np.inf).to_numpy()
    best = values.argmax(axis=1)
    top = values[np.arange(len(values)), best]
    labels = np.array([parent.get(c, c) for c in usable.columns], dtype=object)[best]
    return pd.Series(np.where(top >= min_score, labels, np.nan), index=scores.index, dtype=object)


def refine_mixed(
    adata: AnnData,
    scores: pd.DataFrame,
    clusters: pd.Series,
    label_of: dict[str, str],
    *,
    parent: dict[str, str] | None = None,
    min_score: float,
    min_margin: float,
    fraction: float = 0.2,
    resolution: float = 1.0,
    n_neighbors: int = 15,
    seed: int = 0,
    min_cells: int = 5,
    max_p: float = 0.01,
    n_perm: int = 999,
) -> tuple[pd.Series, pd.DataFrame]:
    """Split clusters that hold a sizeable group of cells of another type.

    A cluster is *mixed* when at least ``fraction`` of its cells, and at least ``min_cells``,
    have a per-cell best label (:func:`cell_best_labels`) other than the cluster's label. A mixed
    cluster is re-clustered on its own neighbour graph (``obsm["X_scVI"]`` when present) at
    ``resolution``; each part is labelled from its mean scores like a cluster
    (:func:`assign_groups`); a part labelled another type must also stand out from random cell
    sets of the cluster (:func:`_part_pvalue` <= ``max_p``, column ``p_perm``). A part that is
    confidently no type, whose cells mostly do not score best for the cluster's label, and
    whose mean score for it is below ``min_score`` and lower than that of random cell sets of
    the cluster (``p_own`` <= ``max_p``) is unassigned. Other parts keep the cluster's label.

    Returns the refined group of every cell (``"<cluster>"`` or ``"<cluster>:<part>"``) and the
    score table of the parts (empty when nothing was refined), with ``label`` already
    resolved (the cluster's label for parts that keep it).
    """
    parent = parent or {}
    best = cell_best_labels(scores, min_score=min_score, parent=parent)
    groups = clusters.astype(str).copy()
    tables = []
    for cluster in sorted(groups.unique(), key=natural_key):
        in_cluster = (groups == cluster).to_numpy()
        own = label_of.get(cluster, UNASSIGNED)
        other = best[in_cluster].notna() & (best[in_cluster] != own)
        n_other = int(other.sum())
        if n_other < min_cells or n_other < fraction * in_cluster.sum():
            continue
        part = recluster(
            adata, in_cluster, resolution=resolution, n_neighbors=n_neighbors, seed=seed
        )
        parts = pd.Series(cluster + ":" + part, index=scores.index[in_cluster])
        if parts.nunique() < 2:
            continue
        table = assign_groups(
            scores.loc[in_cluster],
            parts,
            min_score=min_score,
            min_margin=min_margin,
            parent=parent,
        )
        _test_parts(
            table,
            parts,
            scores.loc[in_cluster],
            best[in_cluster],
            own,
            parent=parent,
            min_score=min_score,
            max_p=max_p,
            seed=seed,
            n_perm=n_perm,
        )
        lost = (table["p_own"] <= max_p).to_numpy()
        moved = (table["confident"] & (table["label"] != own)).to_numpy()
        if not (moved | lost).any():
            continue  # re-clustering found no part of another (or of no) type: keep as is
        table["label"] = np.where(
            table["confident"], table["label"], np.where(lost, UNASSIGNED, own)
        )
        logger.info(
            "cluster %s (%s) is mixed: %d of %d cells score best as another type; parts: %s",
            cluster,
            own,
            n_other,
            int(in_cluster.sum()),
            dict(zip(table["group"], table["label"], strict=True)),
        )
        groups[in_cluster] = parts.to_numpy()
        tables.append(table)
    return groups, (pd.concat(tables, ignore_index=True) if tables else pd.DataFrame())


def _test_parts(
    table: pd.DataFrame,
    parts: pd.Series,
    cluster_scores: pd.DataFrame,
    best: pd.Series,
    own: str,
    *,
    parent: dict[str, str],
    min_score: float,
    max_p: float,
    seed: int,
    n_perm: int,
) -> None:
    """The permutation tests of :func:`refine_mixed` on one mixed cluster's parts.

    Adds ``p_perm`` (a part labelled another type against random cell sets of the cluster;
    ``confident`` is withdrawn when ``p_perm > max_p``) and ``p_own`` (a part not confidently
    any type against the cluster's own label) to ``table`` in place; ``best`` is the per-cell
    best label of the cluster's cells. One random generator seeded ``seed`` serves both tests,
    in this order.
    """
    # a part takes another label only when it is confident and its cells are not a chance
    # draw from the cluster: the part's mean of (score of its label - score of the
    # cluster's label) must exceed that of random cell sets of the same size
    # (permutation p <= max_p), so arbitrary partitions of an inseparable mixture keep
    # the cluster's label
    rng = np.random.default_rng(seed)
    own_entry = _best_entry_of(cluster_scores, own, parent)
    own_values = (
        cluster_scores[own_entry].to_numpy(dtype=float) if own_entry else np.zeros(len(parts))
    )
    in_parts = {g: (parts == g).to_numpy() for g in table["group"]}
    pvals = []
    for row in table.itertuples(index=False):
        in_part = in_parts[row.group]
        if row.confident and row.label != own:
            excess = cluster_scores[row.best_label].to_numpy(dtype=float)
            if own_entry != row.best_label:
                excess = excess - own_values
            pvals.append(_part_pvalue(excess, in_part, rng=rng, n_perm=n_perm))
        else:
            pvals.append(np.nan)
    table["p_perm"] = pvals
    table["confident"] = table["confident"] & ~(table["p_perm"] > max_p)
    # a part that is not confidently any type keeps the cluster's label only when it is
    # consistent with it: when that label is not the most common per-cell label of the
    # part, the part's mean score for it is below min_score and lower than that of random
    # cell sets of the cluster (p <= max_p), the part is unassigned (e.g. T cells that a
    # few very high-scoring macrophages pulled into a cluster labelled TAM)
    p_own = []
    for row in table.itertuples(index=False):
        in_part = in_parts[row.group]
        votes = best[in_part].value_counts()
        weak = (
            own_entry is not None
            and not (len(votes) and votes.get(own, 0) == votes.max())
            and np.nanmean(own_values[in_part]) < min_score
        )
        p_own.append(
            _part_pvalue(-own_values, in_part, rng=rng, n_perm=n_perm)
            if weak and not row.confident
            else np.nan
        )
    table["p_own"] = p_own


def _best_entry_of(scores: pd.DataFrame, label: str, parent: dict[str, str]) -> str | None:
    """The scored entry standing for ``label`` in these cells (itself or its best child)."""
    entries = [c for c in scores.columns if parent.get(c, c) == label and scores[c].notna().any()]
    if not entries:
        return None
    return str(scores[entries].mean().idxmax())


def _part_pvalue(
    values: np.ndarray, in_part: np.ndarray, *, rng: np.random.Generator, n_perm: int = 999
) -> float:
    """Permutation p-value that the part's mean of a per-cell statistic is unusually high.

    ``values`` holds the statistic of every cell of the cluster (NaN counts as 0); the null is
    the mean over random cell sets of the part's size drawn from the cluster.
    """
    diff = np.nan_to_num(np.asarray(values, dtype=float))
    k = int(in_part.sum())
    observed = diff[in_part].mean()
    null = np.array([rng.choice(diff, size=k, replace=False).mean() for _ in range(n_perm)])
    return float((1 + np.sum(null >= observed)) / (1 + n_perm))

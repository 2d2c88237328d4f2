"""Marker-based annotation: clusters scored against a shipped panel, subtypes by re-clustering.

Scoring: for each label, a cell's score is the mean over the label's markers (those present in
the data) of the z-scored log-normalised expression, z-scores taken within the cells of the
label's species. A cluster's score is the mean of its cells' scores; the best label is kept
when it reaches ``min_score`` and beats the runner-up by ``min_margin``, otherwise the cluster
is ``unassigned``. In xenograft mode every human cell is tumour (species is measured, not
inferred) and the mouse cells of each cluster are labelled from the mouse entries.

A cell-type entry can be a *form* of another (panel key ``parent``): alveolar macrophages are
macrophages low in the C1q genes that define most TAMs, so they get their own marker set
(``alveolar_macrophage``, ``parent: TAM``). A cluster that entry wins is labelled with the
parent (``cell_type`` TAM; the entry stays in the score table as ``best_label``), and the
runner-up of the margin is the best entry of a *different* label, so two forms of one cell type
never make each other unconfident.

Subtypes come in two kinds. *Identity* subtypes (myCAF/iCAF, TAM_Mrc1/TAM_Spp1) are mutually
exclusive and label a re-clustered subcluster. *State* subtypes (``state: true``, e.g.
interferon-high TAMs) are programmes a cell of any identity can switch on: they are reported in
``obs["cell_state"]`` and only name a subcluster in ``cell_subtype`` when no identity subtype is
confident there. A treatment-induced programme (the demo plants interferon genes in every TAM of
one arm) then marks cells without stealing them from their identity.
"""

import logging

import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData

from tmeflow._utils import natural_key
from tmeflow.cluster import leiden
from tmeflow.panel import marker_sources, panel_markers, parent_of, subtype_markers

logger = logging.getLogger(__name__)

UNASSIGNED = "unassigned"
TUMOR = "tumor"
NO_STATE = "none"


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


def annotate(
    adata: AnnData,
    panel: dict,
    *,
    species_mode: str,
    cluster_key: str = "leiden",
    min_score: float = 0.5,
    min_margin: float = 0.1,
    subcluster_resolution: float = 0.5,
    n_neighbors: int = 15,
    seed: int = 0,
    min_subcluster_cells: int = 20,
    refine_fraction: float = 0.2,
    refine_resolution: float = 1.0,
) -> pd.DataFrame:
    """Label cells with ``obs["cell_type"]`` and ``obs["cell_subtype"]``.

    Mixed clusters are refined: when at least ``refine_fraction`` of a cluster's cells (and at
    least 5) score best, above ``min_score``, for another cell type than the cluster's label,
    the cluster is re-clustered on its own (``refine_resolution``) and each part that is
    confidently another type takes that label, and a part that is significantly not of the
    cluster's type becomes ``unassigned`` (see :func:`refine_mixed`); 0 turns this off.

    Also writes per-cell ``obs["score_<label>"]`` (cell types, subtypes and states),
    ``obs["annotation_confident"]``, ``obs["subcluster"]``, ``obs["cell_state"]`` (the state
    programmes of a cell's subcluster joined by ``+``, or ``none``) and ``uns["annotation"]``
    (parameters and the source of every marker set). Returns the per-cluster score table (one
    row per cluster and species group, then one per subcluster and level).
    """
    species = _cell_species(adata, species_mode)
    cell_type = pd.Series(UNASSIGNED, index=adata.obs_names, dtype=object)
    confident = pd.Series(False, index=adata.obs_names)
    annotation_group = adata.obs[cluster_key].astype(str).astype(object)
    tables = []
    for sp_name in ("mouse", "human"):
        mask = (species == sp_name).to_numpy()
        if not mask.any():
            continue
        if species_mode == "xenograft" and sp_name == "human":
            cell_type[mask] = TUMOR
            confident[mask] = True
            continue
        labelled = _label_clusters(
            adata,
            panel,
            sp_name,
            mask,
            cluster_key=cluster_key,
            min_score=min_score,
            min_margin=min_margin,
            refine_fraction=refine_fraction,
            refine_resolution=refine_resolution,
            n_neighbors=n_neighbors,
            seed=seed,
        )
        if labelled is None:
            continue
        groups, label_of, conf_of, sp_tables = labelled
        tables.extend(sp_tables)
        annotation_group.loc[mask] = groups.to_numpy()
        cell_type[mask] = groups.map(label_of).to_numpy()
        confident[mask] = groups.map(conf_of).astype(bool).to_numpy()

    adata.obs["cell_type"] = pd.Categorical(cell_type)
    adata.obs["annotation_confident"] = confident.to_numpy()
    adata.obs["annotation_group"] = pd.Categorical(annotation_group.to_numpy())
    subtype, state = _label_subtypes(
        adata,
        panel,
        cell_type,
        tables,
        resolution=subcluster_resolution,
        n_neighbors=n_neighbors,
        seed=seed,
        min_score=min_score,
        min_margin=min_margin,
        min_cells=min_subcluster_cells,
    )
    adata.obs["cell_subtype"] = pd.Categorical(subtype)
    adata.obs["cell_state"] = pd.Categorical(state)
    adata.uns["annotation"] = {
        "panel": panel.get("name", ""),
        "species_mode": species_mode,
        "cluster_key": cluster_key,
        "min_score": min_score,
        "min_margin": min_margin,
        "subcluster_resolution": subcluster_resolution,
        "refine_fraction": refine_fraction,
        "refine_resolution": refine_resolution,
        "refined_clusters": sorted(
            {g.split(":")[0] for g in annotation_group.astype(str) if ":" in g}, key=natural_key
        ),
        "seed": seed,
        "sources": marker_sources(panel),
    }
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _label_clusters(
    adata: AnnData,
    panel: dict,
    sp_name: str,
    mask: np.ndarray,
    *,
    cluster_key: str,
    min_score: float,
    min_margin: float,
    refine_fraction: float,
    refine_resolution: float,
    n_neighbors: int,
    seed: int,
) -> tuple[pd.Series, dict[str, str], dict[str, bool], list[pd.DataFrame]] | None:
    """Score the cells of one species (``mask``) against its entries and label their clusters.

    Writes ``obs["score_<label>"]`` of the species' entries. Mixed clusters are refined
    (:func:`refine_mixed`) when ``refine_fraction`` > 0. Returns the annotation group of each
    cell of the species (its cluster, or ``<cluster>:<part>``), group -> label, group ->
    confident, and the score tables (levels ``cell_type`` and ``refined``); ``None`` when the
    panel has no entry of the species (its cells stay unassigned).
    """
    markers = panel_markers(panel, species=sp_name)
    if not markers:
        logger.warning(
            "panel has no %s entries: %d %s cells left unassigned", sp_name, mask.sum(), sp_name
        )
        return None
    scores = score_cells(adata, markers, mask=mask)
    for label in scores.columns:
        adata.obs[f"score_{label}"] = scores[label].to_numpy()
    clusters = adata.obs.loc[mask, cluster_key].astype(str)
    table = assign_groups(
        scores.loc[mask],
        clusters,
        min_score=min_score,
        min_margin=min_margin,
        parent=parent_of(panel),
    )
    table.insert(0, "level", "cell_type")
    table.insert(1, "species", sp_name)
    tables = [table]
    label_of = dict(zip(table["group"], table["label"], strict=True))
    conf_of = dict(zip(table["group"], table["confident"], strict=True))
    groups = clusters.copy()
    if refine_fraction > 0:
        groups, refined = refine_mixed(
            adata[mask],
            scores.loc[mask],
            clusters,
            label_of,
            parent=parent_of(panel),
            min_score=min_score,
            min_margin=min_margin,
            fraction=refine_fraction,
            resolution=refine_resolution,
            n_neighbors=n_neighbors,
            seed=seed,
        )
        if len(refined):
            refined.insert(0, "level", "refined")
            refined.insert(1, "species", sp_name)
            tables.append(refined)
            # a part that keeps its cluster's label keeps that label's confidence
            conf_of.update(
                (g, bool(c) or (lab == label_of[g.split(":")[0]] and conf_of[g.split(":")[0]]))
                for g, c, lab in zip(
                    refined["group"], refined["confident"], refined["label"], strict=True
                )
            )
            label_of.update(zip(refined["group"], refined["label"], strict=True))
    return groups, label_of, conf_of, tables


def _label_subtypes(
    adata: AnnData,
    panel: dict,
    cell_type: pd.Series,
    tables: list[pd.DataFrame],
    **subtype_params,
) -> tuple[pd.Series, pd.Series]:
    """Subtype and state of every cell: each cell type with subtypes re-clustered on its own.

    Cells of a cell type without subtypes keep the cell type as subtype and state ``none``.
    The subtype score tables are appended to ``tables``; ``subtype_params`` go to
    :func:`_subtypes`.
    """
    subtype = cell_type.copy()
    state = pd.Series(NO_STATE, index=adata.obs_names, dtype=object)
    for parent in panel["cell_types"]:
        identity = subtype_markers(panel, parent, kind="identity")
        states = subtype_markers(panel, parent, kind="state")
        members = (cell_type == parent).to_numpy()
        if not (identity or states) or members.sum() == 0:
            continue
        sub_labels, sub_states, sub_tables = _subtypes(
            adata, members, identity, states, parent=parent, **subtype_params
        )
        subtype[members] = sub_labels
        state[members] = sub_states
        tables.extend(sub_tables)
    return subtype, state


def _recluster(
    adata: AnnData, cells: np.ndarray, *, resolution: float, n_neighbors: int, seed: int
) -> np.ndarray:
    """Leiden clusters (str) of ``cells`` (a boolean mask) on their own neighbour graph.

    The graph is built on ``obsm["X_scVI"]`` when present, copying only that embedding;
    otherwise on a PCA of the cells' ``X`` (scanpy's default).
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
        rep = None
    k = int(min(n_neighbors, len(rows) - 1))
    sc.pp.neighbors(sub, use_rep=rep, n_neighbors=k, random_state=seed)
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
        part = _recluster(
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
        # a part takes another label only when it is confident and its cells are not a chance
        # draw from the cluster: the part's mean of (score of its label - score of the
        # cluster's label) must exceed that of random cell sets of the same size
        # (permutation p <= max_p), so arbitrary partitions of an inseparable mixture keep
        # the cluster's label
        rng = np.random.default_rng(seed)
        cluster_scores = scores.loc[in_cluster]
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
            votes = best[in_cluster][in_part].value_counts()
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


def _cell_species(adata: AnnData, species_mode: str) -> pd.Series:
    if species_mode == "xenograft":
        if "species" not in adata.obs:
            raise ValueError("xenograft annotation needs obs['species']; run species assignment")
        return adata.obs["species"].astype(str)
    return pd.Series(species_mode, index=adata.obs_names)


def _subtypes(
    adata: AnnData,
    members: np.ndarray,
    identity: dict[str, list[str]],
    states: dict[str, list[str]],
    *,
    parent: str,
    resolution: float,
    n_neighbors: int,
    seed: int,
    min_score: float,
    min_margin: float,
    min_cells: int,
) -> tuple[np.ndarray, np.ndarray, list[pd.DataFrame]]:
    """Re-cluster one cell type on its own neighbour graph and label the subclusters.

    Identity subtypes label a subcluster when confident; otherwise a confident state does;
    otherwise ``<parent>_unassigned``. States reaching ``min_score`` in a subcluster are
    returned per cell (joined by ``+``) whatever its identity.
    """
    n = int(members.sum())
    fallback = np.full(n, f"{parent}_{UNASSIGNED}", dtype=object)
    no_state = np.full(n, NO_STATE, dtype=object)
    if n < min_cells:
        logger.info("%s: %d cells, too few to re-cluster for subtypes", parent, n)
        return fallback, no_state, []
    groups = pd.Series(
        _recluster(adata, members, resolution=resolution, n_neighbors=n_neighbors, seed=seed),
        index=adata.obs_names[members],
    )
    # z-scores within the members only, as for a subset of its own
    scores = score_cells(adata, {**identity, **states}, mask=members).loc[members]
    tables = []
    label_of: dict[str, str] = {}
    if identity and scores[list(identity)].notna().any().any():
        table = assign_groups(
            scores[list(identity)], groups, min_score=min_score, min_margin=min_margin
        )
        table.insert(0, "level", f"subtype:{parent}")
        tables.append(table)
        label_of = {g: lab for g, lab in zip(table["group"], table["label"], strict=True)}
    state_of: dict[str, str] = {}
    if states and scores[list(states)].notna().any().any():
        table = assign_groups(
            scores[list(states)], groups, min_score=min_score, min_margin=min_margin
        )
        table.insert(0, "level", f"state:{parent}")
        tables.append(table)
        means = scores[list(states)].groupby(groups.to_numpy()).mean()
        for group, row in zip(table["group"], table.itertuples(index=False), strict=True):
            on = [
                k
                for k in states
                if np.isfinite(means.loc[group, k]) and means.loc[group, k] >= min_score
            ]
            state_of[group] = "+".join(on) if on else NO_STATE
            if label_of.get(group, UNASSIGNED) == UNASSIGNED and row.label != UNASSIGNED:
                label_of[group] = row.label
    labels_of = {
        g: (f"{parent}_{UNASSIGNED}" if label_of.get(g, UNASSIGNED) == UNASSIGNED else label_of[g])
        for g in groups.unique()
    }
    for table in tables:
        table.insert(1, "species", "")
        if table["level"].iat[0].startswith("subtype:"):
            table["label"] = table["group"].map(labels_of)
    labels = groups.map(labels_of).to_numpy(dtype=object)
    cell_states = groups.map(lambda g: state_of.get(g, NO_STATE)).to_numpy(dtype=object)
    for label in scores.columns:
        col = np.full(adata.n_obs, np.nan)
        if f"score_{label}" in adata.obs:
            col = adata.obs[f"score_{label}"].to_numpy(dtype=float).copy()
        col[members] = scores[label].to_numpy()
        adata.obs[f"score_{label}"] = col
    adata.obs.loc[members, "subcluster"] = (parent + ":" + groups).to_numpy()
    return labels, cell_states, tables

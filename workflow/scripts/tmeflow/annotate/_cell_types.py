"""Marker-based annotation: clusters scored against a shipped panel, subtypes by re-clustering.

Scoring: for each label, a cell's score is the mean over the label's markers (those present in
the data) of the z-scored log-normalised expression, z-scores taken within the cells of the
label's species. A cluster's score is the mean of its cells' scores; the best label is kept
when it reaches ``min_score`` and beats the runner-up by ``min_margin``, otherwise the cluster
is ``unassigned``. Each species' cells are scored against the panel's entries of that species
(:func:`tmeflow.core.panel_markers`): in a human-only run with a human panel
(``config/markers/human_tme.yaml``) the human cells get the whole panel. In xenograft mode
every human cell is tumour (species is measured, not inferred) while the panel's only human
cell type is ``tumor`` (the shipped panels; see :func:`human_cells_are_tumour`), and the mouse
cells of each cluster are labelled from the mouse entries.

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
from anndata import AnnData

from tmeflow._utils import adjust_pvalues, natural_key
from tmeflow.annotate._scoring import (
    UNASSIGNED,
    abundance_correction,
    assign_groups,
    recluster,
    refine_mixed,
    score_cells,
)
from tmeflow.cells._doublets import DOUBLET_CALLERS, call_column, score_column
from tmeflow.core._panel import (
    marker_sources,
    panel_markers,
    parent_of,
    species_labels,
    subtype_markers,
)

logger = logging.getLogger(__name__)

TUMOR = "tumor"
NO_STATE = "none"

LABEL_COLUMNS: tuple[str, ...] = (
    "sample",
    "barcode",
    "species",
    "leiden",
    "annotation_group",
    "cell_type",
    "cell_subtype",
    "cell_state",
)
"""The columns of ``results/annotate/labels.tsv.gz`` (:func:`label_table`)."""


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
        if sp_name == "human" and human_cells_are_tumour(panel, species_mode):
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
    # an annotated object annotated again (the sensitivity settings) starts without its old
    # subclusters: stale ones would stay on cells no longer subclustered, and a categorical
    # column read from h5ad refuses a subcluster it has not seen
    if "subcluster" in adata.obs:
        del adata.obs["subcluster"]
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


def human_cells_are_tumour(panel: dict, species_mode: str) -> bool:
    """Whether every human cell is labelled ``tumor`` without scoring.

    In a xenograft the human cells are the graft. While the panel gives human cells no cell
    type but ``tumor`` (``mouse_tme.yaml``, with or without ``human_tumor_states.yaml``) they
    are all tumour, as before; a panel with further human cell types (a patient-derived graft
    that still carries human stroma, under labels of its own) has them scored against the
    human entries like any other species. Human-only and mouse-only runs always score.

    Parameters
    ----------
    panel
        A panel from :func:`tmeflow.core.load_panels`.
    species_mode
        Config ``species``: ``xenograft``, ``human`` or ``mouse``.
    """
    return species_mode == "xenograft" and species_labels(panel, "human") <= {TUMOR}


def label_table(adata: AnnData) -> pd.DataFrame:
    """The per-cell labels of an annotated ``adata`` (``results/annotate/labels.tsv.gz``).

    Parameters
    ----------
    adata
        Annotated by :func:`annotate`.

    Returns
    -------
    pandas.DataFrame
        ``adata.obs[LABEL_COLUMNS]`` (one row per cell, indexed by cell).
    """
    return adata.obs[list(LABEL_COLUMNS)]


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
    clusters = adata.obs.loc[mask, cluster_key].astype(str)
    divisors = abundance_correction(scores.loc[mask], clusters, parent=parent_of(panel))
    for entry, factor in divisors.items():
        logger.warning(
            "%s cells: %s makes up over half of the cells; its marker z-scores are capped by "
            "its share and are divided by %.3f before labelling (tmeflow.annotate._scoring."
            "abundance_correction)",
            sp_name,
            entry,
            factor,
        )
        scores[entry] = scores[entry] / factor
    if divisors:  # recorded only where it applied
        adata.uns.setdefault("annotation_abundance_correction", {})[sp_name] = dict(divisors)
    for label in scores.columns:
        adata.obs[f"score_{label}"] = scores[label].to_numpy()
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
        recluster(adata, members, resolution=resolution, n_neighbors=n_neighbors, seed=seed),
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


# --- doublet scores of the kept cells, per cluster and label -----------------------------------

CLUSTER_DOUBLET_LIKE = 0.5
"""A kept cell is doublet-like for the cluster-aware caller at this score (its classifier finds
it more likely an artificial doublet than a real cell); for Scrublet when Scrublet called it
(kept because the consensus needs the other caller's agreement)."""
DOUBLET_ENRICHED = {"min_fraction": 0.2, "fold": 2.0, "q": 0.05}
"""A group is flagged when, for either caller, at least ``min_fraction`` of its cells and
``fold`` x the species' rate are doublet-like, and a one-sided binomial test against the
species' rate gives a BH q-value below ``q``. On the small demo (no doublet cluster left after
QC) the highest doublet-like fraction was 9.7% (pericytes, cluster-aware caller), where a
rule on the fraction above the species' 90th score percentile flagged four of ten mouse
clusters: scores rise for a cell type lying between two others, whatever its doublets."""


def doublet_summary(obs: pd.DataFrame, *, cluster_key: str = "leiden") -> pd.DataFrame:
    """Doublet scores of the cells QC kept, summarised per final cluster and per cell type.

    QC removed the cells the doublet consensus called; the kept cells' scores can still show a group
    made of doublet-like cells (a CAF-TAM doublet cluster passing as "Gas6-high TAM"). Per caller of
    :data:`tmeflow.cells.DOUBLET_CALLERS` present in ``obs`` a kept cell is doublet-like as
    :data:`CLUSTER_DOUBLET_LIKE` says; groups are ``cluster`` (``obs[cluster_key]``) and
    ``cell_type``, within species, each compared with its species' rate (:data:`DOUBLET_ENRICHED`).

    Returns
    -------
    pandas.DataFrame
        One row per ``level``, ``species`` and ``group``: ``n_cells``, per caller
        ``doublet_mean_<caller>`` (mean score), ``doublet_high_<caller>`` (doublet-like
        fraction), ``doublet_rate_<caller>`` (the species' doublet-like fraction) and
        ``doublet_q_<caller>`` (one-sided binomial test, BH over all groups and callers; NaN
        where the caller scored no cell of the group), and ``doublet_enriched``. No rows
        without doublet scores (``qc.doublets: false``).
    """
    like = _doublet_like(obs)
    if not like:
        return pd.DataFrame(columns=["level", "species", "group", "n_cells", "doublet_enriched"])
    species = obs["species"].astype(str).to_numpy() if "species" in obs else np.full(len(obs), "")
    rows = []
    for level, key in {"cluster": cluster_key, "cell_type": "cell_type"}.items():
        if key not in obs:
            continue
        groups = obs[key].astype(str).to_numpy()
        for sp_name in pd.unique(species):
            in_sp = species == sp_name
            for g in sorted(pd.unique(groups[in_sp]), key=natural_key):
                m = in_sp & (groups == g)
                row: dict[str, object] = {"level": level, "species": sp_name, "group": g}
                row["n_cells"] = int(m.sum())
                for caller, (score, high) in like.items():
                    ok = m & np.isfinite(high)
                    scored = in_sp & np.isfinite(high)
                    rate = float(high[scored].mean()) if scored.any() else np.nan
                    row[f"doublet_mean_{caller}"] = float(score[ok].mean()) if ok.any() else np.nan
                    row[f"doublet_high_{caller}"] = float(high[ok].mean()) if ok.any() else np.nan
                    row[f"doublet_rate_{caller}"] = rate
                    row[f"doublet_p_{caller}"] = _binom_p(high[ok], rate)
                rows.append(row)
    table = pd.DataFrame(rows)
    pcols = [f"doublet_p_{c}" for c in like]
    p = table[pcols].to_numpy(dtype=float)
    q = adjust_pvalues(p.ravel(), "fdr_bh").reshape(p.shape)
    enriched = np.zeros(len(table), dtype=bool)
    for j, caller in enumerate(like):
        table[f"doublet_q_{caller}"] = q[:, j]
        frac = table[f"doublet_high_{caller}"].to_numpy(dtype=float)
        rate = table[f"doublet_rate_{caller}"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            enriched |= (
                (frac >= DOUBLET_ENRICHED["min_fraction"])
                & (frac >= DOUBLET_ENRICHED["fold"] * rate)
                & (q[:, j] < DOUBLET_ENRICHED["q"])
            )
    table = table.drop(columns=pcols)
    table["doublet_enriched"] = enriched
    for _, r in table[enriched].iterrows():
        logger.warning(
            "%s %s (%s, %d cells) is enriched for doublet-like cells (fractions %s); check "
            "its markers before trusting its label",
            r["level"],
            r["group"],
            r["species"],
            r["n_cells"],
            {c: round(float(r[f"doublet_high_{c}"]), 3) for c in like},
        )
    return table


def _doublet_like(obs: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per caller present in ``obs``: its scores and doublet-like flags (NaN: not scored)."""
    out = {}
    for caller in DOUBLET_CALLERS:
        score_col, call_col = score_column(caller), call_column(caller)
        if score_col not in obs or call_col not in obs:
            continue
        score = obs[score_col].to_numpy(dtype=float)
        if not np.isfinite(score).any():
            continue
        if caller == "cluster":
            high = (score >= CLUSTER_DOUBLET_LIKE).astype(float)
        else:
            high = obs[call_col].to_numpy(dtype=bool).astype(float)
        high[~np.isfinite(score)] = np.nan
        out[caller] = (score, high)
    return out


def _binom_p(high: np.ndarray, rate: float) -> float:
    """One-sided binomial p-value of the doublet-like fraction against the species' rate."""
    from scipy.stats import binomtest

    if not high.size or not np.isfinite(rate):
        return float("nan")
    if rate <= 0:
        return 0.0 if high.any() else 1.0
    test = binomtest(int(high.sum()), int(high.size), min(rate, 1.0), alternative="greater")
    return float(test.pvalue)


def add_doublet_columns(scores: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """The cluster score table with the cluster-level doublet columns of ``summary``.

    Joined on the score table's ``cell_type``-level rows (``species``, and ``group``: the
    Leiden cluster); other rows (subclusters) get NaN.
    """
    if scores.empty or summary.empty:
        return scores
    clusters = summary[summary["level"] == "cluster"].drop(columns=["level", "n_cells"])
    clusters = clusters.assign(level="cell_type")
    out = scores.copy()
    out["group"] = out["group"].astype(str)
    return out.merge(clusters, on=["level", "species", "group"], how="left", validate="m:1")

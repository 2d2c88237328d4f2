"""Every removed cell accounted for: the label of its nearest kept cells, by sample, arm, label.

QC (low counts/genes, high mitochondrial share), the species call (``mixed``) and the doublet
callers remove cells before annotation, so a removal that hits one cell type in one arm more
than in the other (a drug that stresses tumour cells raises their mitochondrial share) shifts
composition and expression unseen. :func:`label_removed` gives each removed cell the majority
label of its nearest kept cells in the scVI latent (the trained encoder embeds the removed
cells, :func:`tmeflow.embed.encode_cells`) or, without one, a PCA fitted on the kept cells;
:func:`removed_table` tabulates the removed cells by sample, condition and label, with the
removal reasons, and flags a label whose removal rate differs between arms more than
:data:`FLAG_FOLD` x (with at least :data:`FLAG_MIN_REMOVED` removed cells).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from tmeflow._utils import cp10k
from tmeflow.cells._qc import REASONS

logger = logging.getLogger(__name__)

UNASSIGNED = "unassigned"
"""The label of a removed cell without kept cells of its species to vote."""
FLAG_FOLD = 2.0
"""A label is flagged when its removal rate in one arm exceeds this many times another's."""
FLAG_MIN_REMOVED = 10
"""... and at least this many of its cells were removed (all arms together)."""
REMOVED_REASONS: tuple[str, ...] = (*REASONS, "not_annotated")
"""QC's reasons (:data:`tmeflow.cells.REASONS`) and ``not_annotated``: passed QC but absent
from the annotated object (a sample left out downstream). A cell may count under several."""
LABEL_COLUMNS: tuple[str, ...] = (
    "label", "vote_share", "neighbours_from", "species_space", "space",
)  # fmt: skip
"""Columns of :func:`label_removed`."""
TABLE_COLUMNS: tuple[str, ...] = (
    "sample", "condition", "label", "n_removed", *(f"removed_{r}" for r in REMOVED_REASONS),
    "n_kept", "removal_rate", "label_rate_ratio", "flagged",
)  # fmt: skip
"""Columns of :func:`removed_table`."""
FLAG_COLUMNS: tuple[str, ...] = (
    "label", "n_removed", "n_kept", "rates", "label_rate_ratio", "flagged", "note",
)  # fmt: skip
"""Columns of :func:`removed_flags` (``rates``: ``arm=rate`` per arm, reference first)."""


def removed_obs(cells: pd.DataFrame, kept_names: pd.Index) -> pd.DataFrame:
    """The removed cells of per-cell QC tables, with one boolean column per reason.

    Parameters
    ----------
    cells
        Per-cell QC tables (:func:`tmeflow.cells.cell_table`) indexed by cell name, with
        ``sample``, ``qc_pass`` and the ``qc_<reason>`` flags (``species`` if present).
    kept_names
        The cells of the annotated object.

    Returns
    -------
    pandas.DataFrame
        The cells that failed QC or are absent from ``kept_names``: ``sample``, ``species``
        and ``removed_<reason>`` for each of :data:`REMOVED_REASONS`.
    """
    qc_pass = cells["qc_pass"].astype(bool).to_numpy()
    annotated = cells.index.isin(kept_names)
    drop = ~qc_pass | ~annotated
    sub = cells.loc[drop]
    out = pd.DataFrame(index=sub.index)
    out["sample"] = sub["sample"].astype(str)
    out["species"] = sub["species"].astype(str) if "species" in sub else "all"
    for r in REASONS:
        col = f"qc_{r}"
        out[f"removed_{r}"] = sub[col].astype(bool).to_numpy() if col in sub else False
    out["removed_not_annotated"] = qc_pass[drop] & ~annotated[drop]
    return out


def _space_species(obs: pd.DataFrame, species_key: str) -> np.ndarray:
    """Each cell's species space: its species; a ``mixed`` one its dominant species."""
    if species_key not in obs:
        return np.full(len(obs), "all", dtype=object)
    out = obs[species_key].astype(str).to_numpy(dtype=object).copy()
    mixed = out == "mixed"
    if mixed.any() and "dominant_species" in obs:
        out[mixed] = obs.loc[mixed, "dominant_species"].astype(str).to_numpy()
    elif mixed.any() and {"n_counts_human", "n_counts_mouse"} <= set(obs.columns):
        h = obs.loc[mixed, "n_counts_human"].to_numpy(dtype=float)
        m = obs.loc[mixed, "n_counts_mouse"].to_numpy(dtype=float)
        out[mixed] = np.where(h >= m, "human", "mouse")
    return out


def _counts(adata: AnnData, layer: str | None, genes: pd.Index) -> sp.csr_matrix:
    X = adata.layers[layer] if layer is not None and layer in adata.layers else adata.X
    idx = adata.var_names.get_indexer(genes)
    return sp.csr_matrix(X)[:, idx].astype(np.float64)


def _lognorm(X: sp.csr_matrix) -> sp.csr_matrix:
    """log1p CP10k over the space's genes (the library size of those genes)."""
    return cp10k(X, np.asarray(X.sum(axis=1)).ravel())


def _species_genes(kept: AnnData, removed: AnnData, species: str) -> pd.Index:
    """The genes both objects measure, of ``species`` where ``var['species']`` says so."""
    shared = kept.var_names.intersection(removed.var_names, sort=False)
    if species != "all" and "species" in kept.var:
        own = kept.var.loc[shared, "species"].astype(str).to_numpy() == species
        if own.any():
            shared = shared[own]
    return shared


def label_removed(
    kept: AnnData,
    removed: AnnData,
    *,
    label_key: str = "cell_type",
    species_key: str = "species",
    sample_key: str = "sample",
    layer: str | None = "counts",
    n_pcs: int = 30,
    n_top_genes: int = 2000,
    k: int = 15,
    seed: int = 0,
    embedding: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """The label of each removed cell: the majority label of its ``k`` nearest kept cells.

    With ``embedding`` (the kept cells' ``obsm["X_scVI"]`` and the removed cells' latent from
    the same trained encoder, :func:`tmeflow.embed.encode_cells`) the neighbours are found in
    that space, per species as below; a removed cell without a latent (NaN row: its sample
    was not in the model) falls back to the PCA below. ``space`` says which was used.

    Per species (``obs[species_key]``; a ``mixed`` removed cell goes to its dominant
    species, ``obs['dominant_species']``), on the genes both objects measure of that species
    (``var['species']``): log1p CP10k (:func:`tmeflow._utils.cp10k`, the library size of
    those genes), the ``n_top_genes`` most variable genes of the kept cells, a PCA
    (``n_pcs``, seeded, implicitly centred) fitted on the kept cells only, the removed cells
    projected on it, and their ``k`` nearest kept cells (Euclidean) of the same sample, or of
    every sample where that sample has fewer than ``k`` kept cells of the species. Ties go to
    the label of the nearest neighbour among the tied ones.

    Parameters
    ----------
    kept
        The kept (annotated) cells: counts in ``layers[layer]`` (else ``X``),
        ``obs[label_key]``, ``obs[sample_key]``, ``obs[species_key]``.
    removed
        The removed cells, raw counts in ``X`` (``layers[layer]`` if present),
        ``obs[sample_key]`` and ``obs[species_key]``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``removed.obs_names``: ``label``, ``vote_share`` (the share of the ``k``
        votes the label got; NaN when unassigned), ``neighbours_from`` (``sample``,
        ``all samples`` or a note of why the cell is :data:`UNASSIGNED`),
        ``species_space`` and ``space`` (``scVI`` or ``PCA``; empty when unassigned). A
        species without kept cells leaves its removed cells :data:`UNASSIGNED` (logged).
    """
    out = pd.DataFrame(
        {
            "label": UNASSIGNED,
            "vote_share": np.nan,
            "neighbours_from": "",
            "species_space": _space_species(removed.obs, species_key),
            "space": "",
        },
        index=removed.obs_names.copy(),
    )
    if removed.n_obs == 0:
        return out[list(LABEL_COLUMNS)]
    if embedding is not None:
        ek_all, er_all = (np.asarray(e, dtype=float) for e in embedding)
        if ek_all.shape[0] != kept.n_obs or er_all.shape[0] != removed.n_obs:
            raise ValueError(
                f"embedding rows ({ek_all.shape[0]}, {er_all.shape[0]}) do not match the kept "
                f"and removed cells ({kept.n_obs}, {removed.n_obs})"
            )
        has = np.isfinite(er_all).all(axis=1) & (er_all.shape[1] > 0)
    else:
        has = np.zeros(removed.n_obs, dtype=bool)
    kept_space = _space_species(kept.obs, species_key)
    vote = _Vote(kept, removed, out, label_key=label_key, sample_key=sample_key, k=k)
    for species in pd.unique(out["species_space"]):
        rm = np.flatnonzero(out["species_space"].to_numpy() == species)
        kp = np.flatnonzero(kept_space == species)
        if kp.size < 2:
            why = f"no kept {species} cells"
            out.iloc[rm, out.columns.get_loc("neighbours_from")] = why
            logger.warning("%d removed %s cell(s) left %s: %s", rm.size, species, UNASSIGNED, why)
            continue
        in_latent = rm[has[rm]]
        if in_latent.size:
            vote(kp, in_latent, ek_all[kp], er_all[in_latent], "scVI")
        rest = rm[~has[rm]]
        if not rest.size:
            continue
        genes = _species_genes(kept, removed, species)
        if genes.size < 2:
            why = f"no shared {species} genes"
            out.iloc[rest, out.columns.get_loc("neighbours_from")] = why
            logger.warning("%d removed %s cell(s) left %s: %s", rest.size, species, UNASSIGNED, why)
            continue
        ek, er = _pca_space(kept[kp], removed[rest], layer, genes, n_pcs, n_top_genes, seed)
        vote(kp, rest, ek, er, "PCA")
    return out[list(LABEL_COLUMNS)]


def _pca_space(
    kept: AnnData,
    removed: AnnData,
    layer: str | None,
    genes: pd.Index,
    n_pcs: int,
    n_top_genes: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A PCA of the kept cells' log1p CP10k (most variable genes), the removed projected on it."""
    from sklearn.decomposition import PCA

    xk = _lognorm(_counts(kept, layer, genes))
    xr = _lognorm(_counts(removed, layer, genes))
    if genes.size > n_top_genes:
        mean = np.asarray(xk.mean(axis=0)).ravel()
        var = np.asarray(xk.multiply(xk).mean(axis=0)).ravel() - mean**2
        top = np.sort(np.argsort(-var, kind="stable")[:n_top_genes])
        xk, xr = xk[:, top], xr[:, top]
    n_comp = int(max(1, min(n_pcs, kept.n_obs - 1, xk.shape[1] - 1)))
    pca = PCA(n_components=n_comp, svd_solver="arpack", random_state=seed)
    return pca.fit_transform(xk), pca.transform(xr)


class _Vote:
    """The majority label of each removed cell's nearest kept cells, written into ``out``."""

    def __init__(self, kept, removed, out, *, label_key, sample_key, k):
        self.labels = kept.obs[label_key].astype(str).to_numpy()
        self.kept_samples = kept.obs[sample_key].astype(str).to_numpy()
        self.rm_samples = removed.obs[sample_key].astype(str).to_numpy()
        self.out, self.k = out, k

    def __call__(self, kp, rm, ek, er, space: str) -> None:
        """Kept cells ``kp`` at ``ek``, removed cells ``rm`` at ``er`` (same rows)."""
        from sklearn.neighbors import NearestNeighbors

        labels, kept_samples = self.labels[kp], self.kept_samples[kp]
        rm_samples = self.rm_samples[rm]
        for s in pd.unique(rm_samples):
            sel = rm_samples == s
            rows = rm[sel]
            pool = np.flatnonzero(kept_samples == s)
            where = "sample"
            if pool.size < self.k:
                pool, where = np.arange(kp.size), "all samples"
            kk = int(min(self.k, pool.size))
            nn = NearestNeighbors(n_neighbors=kk).fit(ek[pool])
            _, idx = nn.kneighbors(er[sel])
            lab, share = _majority(labels[pool][idx])
            index = self.out.index[rows]
            self.out.loc[index, "label"] = lab
            self.out.loc[index, "vote_share"] = share
            self.out.loc[index, "neighbours_from"] = where
            self.out.loc[index, "space"] = space


def _majority(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of neighbour labels (nearest first): the most frequent, its share of the votes.

    Ties go to the tied label met first, i.e. nearest.
    """
    lab = np.empty(votes.shape[0], dtype=object)
    share = np.empty(votes.shape[0], dtype=float)
    for i, row in enumerate(votes):
        names, first, counts = np.unique(row, return_index=True, return_counts=True)
        best = np.flatnonzero(counts == counts.max())
        pick = best[np.argmin(first[best])]
        lab[i], share[i] = names[pick], counts[pick] / row.size
    return lab, share


def removed_table(
    removed: pd.DataFrame,
    kept: pd.DataFrame,
    conditions: Mapping[str, str],
    *,
    fold: float = FLAG_FOLD,
    min_removed: int = FLAG_MIN_REMOVED,
) -> pd.DataFrame:
    """Removed cells by sample, condition and label, with their reasons and the arm flag.

    Parameters
    ----------
    removed
        One row per removed cell: ``sample``, ``label`` and ``removed_<reason>`` flags
        (:func:`removed_obs` joined with :func:`label_removed`).
    kept
        One row per kept cell: ``sample`` and ``label``.
    conditions
        ``{sample: condition}``.

    Returns
    -------
    pandas.DataFrame
        :data:`TABLE_COLUMNS`, one row per sample x label with removed cells (an empty table
        with these columns when nothing was removed): ``n_removed`` (its total equals the
        removed cells), ``removed_<reason>`` (a cell failing several counts under each),
        ``n_kept`` (that sample's kept cells of the label), ``removal_rate``
        (removed / (removed + kept)), and the label's ``label_rate_ratio`` and ``flagged``
        from :func:`removed_flags`.
    """
    flags = removed_flags(removed, kept, conditions, fold=fold, min_removed=min_removed)
    if removed.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TABLE_COLUMNS})
    cond = {str(k): str(v) for k, v in conditions.items()}
    rm = removed.assign(sample=removed["sample"].astype(str), label=removed["label"].astype(str))
    reason_cols = [f"removed_{r}" for r in REMOVED_REASONS]
    for c in reason_cols:
        if c not in rm:
            rm[c] = False
    grouped = rm.groupby(["sample", "label"], sort=False)
    out = grouped[reason_cols].sum().astype(int)
    out.insert(0, "n_removed", grouped.size().astype(int))
    out = out.reset_index()
    n_kept = kept.assign(sample=kept["sample"].astype(str), label=kept["label"].astype(str))
    n_kept = n_kept.groupby(["sample", "label"]).size().rename("n_kept").reset_index()
    out = out.merge(n_kept, on=["sample", "label"], how="left")
    out["n_kept"] = out["n_kept"].fillna(0).astype(int)
    out["removal_rate"] = out["n_removed"] / (out["n_removed"] + out["n_kept"])
    out["condition"] = out["sample"].map(cond).fillna("")
    by_label = flags.set_index("label")
    out["label_rate_ratio"] = out["label"].map(by_label["label_rate_ratio"])
    out["flagged"] = out["label"].map(by_label["flagged"]).fillna(False).astype(bool)
    out = out.sort_values(["condition", "sample", "label"], kind="stable")
    if int(out["n_removed"].sum()) != len(removed):  # never drop a cell silently
        msg = f"removed table holds {out['n_removed'].sum()} cells of {len(removed)} removed"
        raise AssertionError(msg)
    return out[list(TABLE_COLUMNS)].reset_index(drop=True)


def removed_flags(
    removed: pd.DataFrame,
    kept: pd.DataFrame,
    conditions: Mapping[str, str],
    *,
    fold: float = FLAG_FOLD,
    min_removed: int = FLAG_MIN_REMOVED,
) -> pd.DataFrame:
    """Per label: its removal rate in each arm and whether the arms differ.

    The rate of an arm is the label's removed cells over its removed + kept cells in that
    arm's samples. ``label_rate_ratio`` is the highest arm rate over the lowest (``inf``
    when the lowest is 0) among the arms that hold cells of the label; ``flagged`` when it
    exceeds ``fold`` and at least ``min_removed`` cells of the label were removed. A label
    found in one arm only has no ratio (NaN, not flagged; ``note`` says so).

    Returns
    -------
    pandas.DataFrame
        :data:`FLAG_COLUMNS`, one row per label with removed cells, flagged ones first;
        each flag is logged as a warning.
    """
    if removed.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in FLAG_COLUMNS})
    cond = {str(k): str(v) for k, v in conditions.items()}
    arms = list(dict.fromkeys(cond.values()))
    rm_arm = removed["sample"].astype(str).map(cond).fillna("")
    kp_arm = kept["sample"].astype(str).map(cond).fillna("")
    rm_n = pd.crosstab(removed["label"].astype(str), rm_arm)
    kp_n = pd.crosstab(kept["label"].astype(str), kp_arm)
    rows = []
    for label in sorted(rm_n.index):
        r = rm_n.loc[label].reindex(arms, fill_value=0)
        kk = kp_n.loc[label].reindex(arms, fill_value=0) if label in kp_n.index else r * 0
        tot = r + kk
        rates = (r / tot)[tot > 0]
        note = ""
        if len(rates) < 2:
            ratio = np.nan
            note = f"cells of this label in {', '.join(rates.index) or 'no arm'} only"
        else:
            ratio = np.inf if rates.min() == 0 else float(rates.max() / rates.min())
        n_removed = int(r.sum())
        flagged = bool(ratio > fold) and n_removed >= min_removed  # NaN > fold is False
        if flagged:
            note = (
                f"removal rate differs between arms more than {fold:g}x "
                f"({rates.idxmax()} {rates.max():.1%} vs {rates.idxmin()} {rates.min():.1%})"
            )
            logger.warning("label %s: %s; %d removed", label, note, n_removed)
        rows.append(
            {
                "label": label,
                "n_removed": n_removed,
                "n_kept": int(kk.sum()),
                "rates": "; ".join(f"{a}={v:.6g}" for a, v in rates.items()),
                "label_rate_ratio": ratio,
                "flagged": flagged,
                "note": note,
            }
        )
    out = pd.DataFrame(rows, columns=list(FLAG_COLUMNS))
    return out.sort_values(
        ["flagged", "label"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


#: Removal reasons a sensitivity setting can undo (``doublets off``, a looser ``min_fraction``);
#: a cell removed for any other reason (low counts or genes, high mitochondrial share, not
#: annotated) stays out of :func:`recomputable_removed`.
UNDOABLE_REASONS: tuple[str, ...] = ("doublet", "mixed_species")


def recomputable_removed(
    kept: AnnData,
    removed: AnnData,
    per_cell: pd.DataFrame,
    *,
    subtype_labels: pd.Series | None = None,
    layer: str | None = "counts",
    sample_key: str = "sample",
) -> AnnData:
    """The removed cells that a doublet or species setting would keep, ready to be tested.

    Cells removed only as doublets and/or mixed species (:data:`UNDOABLE_REASONS`), with
    their raw counts on ``kept``'s genes (a gene ``removed`` lacks is zero), the label their
    nearest kept cells gave them (``per_cell['label']`` as ``cell_type``; ``subtype_labels``
    as ``cell_subtype``, else the type), the sample-level columns of ``kept.obs`` (condition,
    covariates: one value per sample) by sample, and from ``removed.obs`` the species call's
    columns (``species``, ``human_fraction``, ``crossspecies_doublet``) where present.
    ``obs['removed_doublet']`` and ``obs['removed_mixed_species']`` say why each was removed.
    This is how :func:`tmeflow.stats.sensitivity` makes ``doublets off`` and a looser
    ``min_fraction`` ordinary settings: the cells are labelled without retraining anything.

    Parameters
    ----------
    kept
        The annotated cells (``obs[sample_key]``; the genes define the output's).
    removed
        The removed droplets' objects (raw counts in ``layers[layer]`` or ``X``).
    per_cell
        :func:`removed_obs` joined with :func:`label_removed`, indexed by cell.
    subtype_labels
        The cells' ``cell_subtype`` by their nearest kept cells (``label_removed`` with
        ``label_key='cell_subtype'``), indexed by cell.
    """
    other = [f"removed_{r}" for r in REMOVED_REASONS if r not in UNDOABLE_REASONS]
    undo = per_cell[[f"removed_{r}" for r in UNDOABLE_REASONS]].any(axis=1)
    keep = undo & ~per_cell[[c for c in other if c in per_cell]].any(axis=1)
    names = per_cell.index[keep.to_numpy()].intersection(removed.obs_names, sort=False)
    sub = removed[removed.obs_names.isin(names)]
    mat = sub.layers[layer] if layer is not None and layer in sub.layers else sub.X
    mat = sp.csr_matrix(mat)
    cols = sub.var_names.get_indexer(kept.var_names)
    present = cols >= 0
    counts = sp.csr_matrix((sub.n_obs, kept.n_vars), dtype=mat.dtype)
    if present.any():
        picked = mat[:, cols[present]]
        counts = sp.csr_matrix(picked) if present.all() else _spread(picked, present, kept.n_vars)
    obs = pd.DataFrame(index=sub.obs_names.copy())
    obs[sample_key] = sub.obs[sample_key].astype(str).to_numpy()
    per_sample = kept.obs.groupby(kept.obs[sample_key].astype(str), observed=True)
    for col in kept.obs.columns:
        if col == sample_key:
            continue
        if (per_sample[col].nunique(dropna=False) <= 1).all():
            obs[col] = obs[sample_key].map(per_sample[col].first()).to_numpy()
    for col in ("species", "human_fraction", "crossspecies_doublet"):
        if col in sub.obs:
            obs[col] = sub.obs[col].to_numpy()
    info = per_cell.loc[obs.index]
    obs["cell_type"] = info["label"].astype(str).to_numpy()
    obs["cell_subtype"] = (
        subtype_labels.reindex(obs.index).fillna(obs["cell_type"]).astype(str).to_numpy()
        if subtype_labels is not None
        else obs["cell_type"].to_numpy()
    )
    for r in UNDOABLE_REASONS:
        obs[f"removed_{r}"] = info[f"removed_{r}"].astype(bool).to_numpy()
    obs.index.name = None
    var = pd.DataFrame(index=kept.var_names.copy())
    return AnnData(obs=obs, var=var, layers={"counts": counts})


def _spread(picked: sp.spmatrix, present: np.ndarray, n_vars: int) -> sp.csr_matrix:
    """Columns of ``picked`` placed at the ``present`` positions of an ``n_vars`` matrix."""
    where = np.flatnonzero(present)
    coo = picked.tocoo()
    return sp.csr_matrix(
        (coo.data, (coo.row, where[coo.col])), shape=(picked.shape[0], n_vars), dtype=picked.dtype
    )


def account_removed(
    kept: AnnData,
    removed: AnnData,
    removed_cells: pd.DataFrame,
    *,
    k: int = 15,
    seed: int = 0,
    embedding: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[pd.DataFrame, AnnData]:
    """Label every removed cell and collect those a sensitivity setting can bring back.

    ``removed_cells`` is :func:`removed_obs`; ``removed`` holds their droplets (a cell it
    lacks stays :data:`UNASSIGNED`); ``embedding`` as in :func:`label_removed` (the scVI
    latent of the kept and of the removed cells). Returns the per-cell table (reasons,
    ``label``, ``vote_share``, ``space``...) and :func:`recomputable_removed` (with
    ``cell_subtype`` labels when the kept cells have subtypes).
    """
    kw = dict(k=k, seed=seed, embedding=embedding)
    labels = label_removed(kept, removed, label_key="cell_type", **kw)
    per_cell = removed_cells.join(labels)
    per_cell["label"] = per_cell["label"].fillna(UNASSIGNED)
    subtypes = None
    if "cell_subtype" in kept.obs:
        subtypes = label_removed(kept, removed, label_key="cell_subtype", **kw)["label"]
    back = recomputable_removed(kept, removed, per_cell, subtype_labels=subtypes)
    return per_cell, back

"""Cell-cell communication: ligand-receptor scores per animal, compared between the arms.

The ligand-receptor pairs are LIANA+'s ``consensus`` resource (human symbols; complexes are
``_``-joined subunits), read from the CSV shipped in the ``liana`` wheel
(:func:`consensus_resource`; nothing is downloaded). A mouse side is spelled through the
shipped HGNC HCOP human-mouse ortholog table (``config/genesets/``): one-to-one orthologs only,
and a complex is kept only when every subunit has one (:func:`map_resource`, whose report
counts the pairs kept and dropped). In a xenograft the senders of one species talk to the
receivers of the other (mouse stroma -> human tumour and back): a mouse ligand (``Gas6``) meets
a human receptor (``AXL``); in a one-species run, every group talks to every group.

Scores (:func:`interaction_scores`), per animal, sender group and receiver group (a group is a
cell type or a subtype label, ``CAF`` or ``TAM_Mrc1``): the ligand's expression ``L`` in the
sender = mean over its cells of log1p(CP10k) (a complex: its lowest subunit), the receptor's
``R`` in the receiver the same; ``score = sqrt(L * R)``, the geometric mean (zero when either
side is silent). Counts are ambient-corrected: ``layers['counts_ambient_corrected']`` when the
object has it, else the raw ``layers['counts']`` minus :func:`tmeflow.cells.gene_ambient`'s
other-species and soup UMIs per gene, floored at 0 (:func:`corrected_columns`). A ligand whose
raw UMIs in the sender are mostly soup (> :data:`MAX_AMBIENT_EXPLAINED` explained) is flagged
``ligand_mostly_soup``: its score is ambient, not signalling.

Comparison (:func:`compare_arms`): each sender -> receiver pair, with the animals as the unit:
Welch's t on the per-animal scores (test minus reference; 2-6 animals per arm), BH across every
compared pair (:func:`tmeflow._utils.adjust_pvalues`), ranked within each sender -> receiver.
"""

import logging
from collections.abc import Sequence
from os import PathLike

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scipy import stats

from tmeflow._utils import adjust_pvalues, cp10k_scale, observed_levels, row_sums
from tmeflow.cells import _ambient as ambient
from tmeflow.stats._pseudobulk import select_arms

logger = logging.getLogger(__name__)

#: The corrected counts layer read when present.
CORRECTED_LAYER = "counts_ambient_corrected"
#: Above this share of a ligand's raw sender UMIs explained by soup, the ligand is flagged.
MAX_AMBIENT_EXPLAINED = 0.5
#: Columns of :func:`map_resource`'s mapped pairs.
PAIR_COLUMNS: list[str] = [
    "sender_species",
    "receiver_species",
    "interaction",
    "ligand",
    "receptor",
    "ligand_human",
    "receptor_human",
]
#: Columns of :func:`map_resource`'s report.
MAPPING_COLUMNS: list[str] = [
    "sender_species",
    "receiver_species",
    "n_resource",
    "n_kept",
    "n_dropped",
    "dropped_ligand",
    "dropped_receptor",
    "dropped_both",
    "share_kept",
    "n_in_data",
]
#: Columns of :func:`interaction_scores` (one row per animal x sender x receiver x pair).
SCORE_COLUMNS: list[str] = [
    "sample",
    "condition",
    "sender",
    "receiver",
    "interaction",
    "ligand",
    "receptor",
    "ligand_expr",
    "receptor_expr",
    "ligand_frac",
    "receptor_frac",
    "score",
    "n_cells_sender",
    "n_cells_receiver",
]
#: Columns of :func:`compare_arms` (one row per sender x receiver x pair).
COMPARISON_COLUMNS: list[str] = [
    "sender",
    "receiver",
    "interaction",
    "ligand",
    "receptor",
    "n_animals_reference",
    "n_animals_test",
    "mean_reference",
    "mean_test",
    "effect",
    "log2_ratio",
    "ci_low",
    "ci_high",
    "stat",
    "df",
    "pvalue",
    "padj",
    "rank",
    "ligand_ambient_explained",
    "ligand_mostly_soup",
    "note",
]


# --- the resource ----------------------------------------------------------------------------


def consensus_resource() -> pd.DataFrame:
    """LIANA+'s ``consensus`` ligand-receptor pairs (human symbols), unique, in its order.

    ``liana.resource.select_resource`` reads ``liana/resource/omni_resource.csv`` from the
    installed wheel: no network.
    """
    import liana  # the communication jobs only; imported on use

    res = liana.resource.select_resource("consensus")
    return res[["ligand", "receptor"]].drop_duplicates().reset_index(drop=True)


def one_to_one(orthologs: pd.DataFrame) -> dict[str, str]:
    """Human symbol -> mouse symbol, for the pairs where each maps to the other only.

    ``orthologs`` has ``human_symbol`` and ``mouse_symbol`` (one row per pair, as the HCOP
    table); a symbol with two partners on the other side is left out, with its partners.
    """
    o = orthologs[["human_symbol", "mouse_symbol"]].dropna().astype(str).drop_duplicates()
    n_h = o.groupby("human_symbol")["mouse_symbol"].transform("size")
    n_m = o.groupby("mouse_symbol")["human_symbol"].transform("size")
    o = o[(n_h == 1) & (n_m == 1)]
    return dict(zip(o["human_symbol"], o["mouse_symbol"], strict=True))


def read_orthologs(path: str | PathLike[str]) -> dict[str, str]:
    """:func:`one_to_one` of a TSV (gzipped or not) with ``human_symbol``, ``mouse_symbol``."""
    return one_to_one(pd.read_csv(path, sep="\t", dtype=str))


def _spell(complex_: str, species: str, o2o: dict[str, str]) -> str | None:
    """A human (complex) symbol in ``species``; None when a subunit has no 1:1 ortholog."""
    if species != "mouse":
        return complex_
    subunits = [o2o.get(s) for s in complex_.split("_")]
    return None if any(s is None for s in subunits) else "_".join(subunits)


def map_resource(
    resource: pd.DataFrame,
    o2o: dict[str, str],
    directions: Sequence[tuple[str, str]],
    var_names: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The resource spelled for each sender -> receiver species, with the mapping report.

    Parameters
    ----------
    resource
        ``ligand``, ``receptor`` in human symbols (:func:`consensus_resource`).
    o2o
        One-to-one human -> mouse symbols (:func:`one_to_one`).
    directions
        ``(sender species, receiver species)``, e.g. ``[("mouse", "human"), ("human",
        "mouse")]``; a ``mouse`` side is translated, a ``human`` one kept.
    var_names
        The data's features: ``n_in_data`` counts the kept pairs whose every subunit is there.

    Returns
    -------
    pairs
        Columns :data:`PAIR_COLUMNS` (``interaction`` = ``ligand-receptor`` as the data spell
        them, e.g. ``Gas6-AXL``).
    report
        Columns :data:`MAPPING_COLUMNS`, one row per direction.
    """
    res = resource[["ligand", "receptor"]].drop_duplicates()
    names = None if var_names is None else set(map(str, var_names))
    parts, rows = [], []
    for s_sp, r_sp in directions:
        lig = res["ligand"].map(lambda x, sp_=s_sp: _spell(x, sp_, o2o))
        rec = res["receptor"].map(lambda x, sp_=r_sp: _spell(x, sp_, o2o))
        ok_l, ok_r = lig.notna(), rec.notna()
        kept = pd.DataFrame(
            {
                "sender_species": s_sp,
                "receiver_species": r_sp,
                "ligand": lig[ok_l & ok_r],
                "receptor": rec[ok_l & ok_r],
                "ligand_human": res["ligand"][ok_l & ok_r],
                "receptor_human": res["receptor"][ok_l & ok_r],
            }
        )
        kept["interaction"] = kept["ligand"] + "-" + kept["receptor"]
        kept = kept.drop_duplicates(["ligand", "receptor"])
        in_data = (
            kept.apply(
                lambda r: all(g in names for g in f"{r.ligand}_{r.receptor}".split("_")), axis=1
            )
            if names is not None and len(kept)
            else pd.Series(False, index=kept.index)
        )
        n = len(res)
        rows.append(
            {
                "sender_species": s_sp,
                "receiver_species": r_sp,
                "n_resource": n,
                "n_kept": int((ok_l & ok_r).sum()),
                "n_dropped": int((~(ok_l & ok_r)).sum()),
                "dropped_ligand": int((~ok_l & ok_r).sum()),
                "dropped_receptor": int((ok_l & ~ok_r).sum()),
                "dropped_both": int((~ok_l & ~ok_r).sum()),
                "share_kept": float((ok_l & ok_r).mean()) if n else np.nan,
                "n_in_data": int(in_data.sum()) if names is not None else pd.NA,
            }
        )
        parts.append(kept[PAIR_COLUMNS])
    pairs = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PAIR_COLUMNS)
    return pairs, pd.DataFrame(rows, columns=MAPPING_COLUMNS)


def directions(species: str) -> list[tuple[str, str]]:
    """Sender -> receiver species of a run: across species in a xenograft, else the one."""
    if species == "xenograft":
        return [("mouse", "human"), ("human", "mouse")]
    return [(species, species)]


# --- expression ------------------------------------------------------------------------------


def corrected_columns(
    adata: AnnData, genes: Sequence[str], cache: dict | None = None
) -> tuple[sp.csc_matrix, np.ndarray]:
    """Ambient-corrected counts of ``genes`` (cells x genes) and every cell's total.

    ``layers['counts_ambient_corrected']`` when present; else ``layers['counts']`` minus each
    gene's other-species and expected soup UMIs (:func:`tmeflow.cells.gene_ambient`), floored
    at 0, with the raw totals. ``cache``: a dict the caller keeps for this one cell set (e.g.
    the confirmatory family's interaction rows over the sensitivity's relabelling settings);
    the result is kept there per gene list and layer, beside the ambient accounting's
    per-sample contamination (shared with :func:`ligand_ambient` given the same dict).
    """
    if cache is None:
        return _corrected_columns(adata, genes, {})
    key = ("corrected_columns", tuple(genes), CORRECTED_LAYER in adata.layers)
    if key not in cache:
        cache[key] = _corrected_columns(adata, genes, cache)
    return cache[key]


def _corrected_columns(
    adata: AnnData, genes: Sequence[str], cache: dict
) -> tuple[sp.csc_matrix, np.ndarray]:
    """The computation of :func:`corrected_columns`.

    ``cache`` is :func:`tmeflow.cells.gene_ambient`'s: the per-sample contamination and the
    totals once, not per gene.
    """
    if CORRECTED_LAYER in adata.layers:
        mat = adata.layers[CORRECTED_LAYER]
        mat = sp.csr_matrix(mat) if not sp.issparse(mat) else mat.tocsr()
        idx = adata.var_names.get_indexer(list(genes))
        return sp.csc_matrix(mat[:, idx], dtype=np.float64), row_sums(mat)
    mat = adata.layers["counts"]
    mat = sp.csr_matrix(mat) if not sp.issparse(mat) else mat.tocsr()
    totals = row_sums(mat)
    cols = sp.csc_matrix(mat[:, adata.var_names.get_indexer(list(genes))], dtype=np.float64)
    out = []
    for j, gene in enumerate(genes):
        raw = cols[:, [j]].toarray().ravel()
        other, expected = ambient.gene_ambient(adata, raw, gene, layer="counts", cache=cache)
        out.append(sp.csc_matrix(np.maximum(raw - other - expected, 0.0)[:, None]))
    return (sp.hstack(out, format="csc") if out else cols), totals


def ligand_ambient(
    adata: AnnData, gene: str, cells: np.ndarray, cache: dict | None = None
) -> float:
    """Share of ``gene``'s raw UMIs in ``cells`` that soup or the other species explain.

    ``cells`` is a bool mask; the accounting is :func:`tmeflow.cells.gene_ambient`'s. NaN
    without UMIs; a complex: its highest subunit. ``cache`` (subunit -> raw and explained
    UMIs per cell) lets many senders of one ligand share its accounting.
    """
    cache = {} if cache is None else cache
    worst = np.nan
    for sub in gene.split("_"):
        if sub not in adata.var_names:
            continue
        if sub not in cache:
            mat = adata.layers["counts"]
            j = adata.var_names.get_loc(sub)
            col = mat[:, [j]].toarray() if sp.issparse(mat) else mat[:, [j]]
            raw = np.asarray(col, dtype=np.float64).ravel()
            other, expected = ambient.gene_ambient(adata, raw, sub, layer="counts", cache=cache)
            cache[sub] = (raw, other + expected)
        raw, explained = cache[sub]
        total = float(raw[cells].sum())
        if total > 0:
            share = float(min(explained[cells].sum(), total) / total)
            worst = share if not np.isfinite(worst) else max(worst, share)
    return worst


def groups_of(adata: AnnData, levels: Sequence[str] = ("cell_type", "cell_subtype")) -> dict:
    """Group label -> bool mask of its cells, over the annotation levels present.

    A subtype named like its type (``tumor``) counts once.
    """
    out: dict[str, np.ndarray] = {}
    for key in levels:
        if key not in adata.obs.columns:
            continue
        col = adata.obs[key].astype(str)
        for label in observed_levels(adata.obs[key]):
            out.setdefault(str(label), (col == str(label)).to_numpy())
    return out


def group_species(adata: AnnData, mask: np.ndarray, default: str) -> str:
    """The majority ``obs['species']`` of a group's cells (``default`` without the column)."""
    if "species" not in adata.obs.columns or not mask.any():
        return default
    return str(adata.obs["species"].astype(str)[mask].value_counts().index[0])


def _unit_expression(
    adata: AnnData,
    genes: list[str],
    groups: dict[str, np.ndarray],
    sample_key: str,
    cache: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Per (sample, group): mean log1p CP10k and fraction expressing of each gene, cells."""
    counts, totals = corrected_columns(adata, genes, cache)
    norm = sp.csr_matrix(counts.multiply(cp10k_scale(totals)[:, None]))
    norm.data = np.log1p(norm.data)
    expressing = sp.csr_matrix((counts > 0).astype(np.float64))
    samples = adata.obs[sample_key].astype(str).to_numpy()
    keys, cols = [], []
    for s in observed_levels(adata.obs[sample_key]):
        in_s = samples == str(s)
        for g, mask in groups.items():
            keys.append((str(s), g))
            cols.append(np.flatnonzero(in_s & mask))
    n = np.array([c.size for c in cols], dtype=np.int64)
    rows = np.concatenate(cols) if cols else np.array([], dtype=np.int64)
    owner = np.repeat(np.arange(len(cols)), n)
    ind = sp.csr_matrix(
        (np.ones(rows.size), (owner, rows)), shape=(len(cols), adata.n_obs), dtype=np.float64
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = np.where(n > 0, 1.0 / np.maximum(n, 1), np.nan)[:, None]
        mean = np.asarray((ind @ norm).todense()) * inv
        frac = np.asarray((ind @ expressing).todense()) * inv
    index = pd.MultiIndex.from_tuples(keys, names=["sample", "group"])
    return (
        pd.DataFrame(mean, index=index, columns=genes),
        pd.DataFrame(frac, index=index, columns=genes),
        pd.Series(n, index=index),
    )


def _complexes(table: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Each complex's value per unit (row of ``table``): its lowest subunit.

    A single gene is itself. Every unit's row is wholly NaN or wholly finite (an empty unit),
    so the plain minimum equals pandas' NaN-skipping one.
    """
    names = list(dict.fromkeys(names))
    values = table.to_numpy(dtype=np.float64)
    cols = table.columns
    out = np.empty((len(table), len(names)))
    for k, name in enumerate(names):
        idx = cols.get_indexer(name.split("_"))
        out[:, k] = values[:, idx[0]] if idx.size == 1 else values[:, idx].min(axis=1)
    return pd.DataFrame(out, index=table.index, columns=names)


def interaction_scores(
    adata: AnnData,
    pairs: pd.DataFrame,
    *,
    condition_key: str = "condition",
    sample_key: str = "sample",
    species: str = "xenograft",
    senders: Sequence[str] | None = None,
    receivers: Sequence[str] | None = None,
    min_cells: int = 10,
    expr_prop: float = 0.1,
) -> pd.DataFrame:
    """Per-animal scores of every expressed pair between every sender and receiver group.

    Parameters
    ----------
    adata
        Annotated cells with ``layers['counts']`` (and ``counts_ambient_corrected`` when
        computed), ``obs`` ``sample``, the condition, ``cell_type``/``cell_subtype`` and, in
        a xenograft, ``species``.
    pairs
        :func:`map_resource`'s pairs; a pair enters a sender -> receiver of its species.
    species
        ``xenograft`` (groups talk across species), ``mouse`` or ``human``.
    senders, receivers
        Group labels to keep (None: every group).
    min_cells
        An animal's group with fewer cells has no score (NaN) there.
    expr_prop
        A pair is kept for a sender -> receiver when, in at least one arm, the animals' mean
        fraction of sender cells expressing the ligand and of receiver cells expressing the
        receptor both reach it (every subunit of a complex).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SCORE_COLUMNS`, ordered by sender, receiver, pair, sample.
    """
    groups = groups_of(adata)
    g_species = {g: group_species(adata, m, species) for g, m in groups.items()}
    names = set(map(str, adata.var_names))
    present = (
        pairs[
            pairs.apply(
                lambda r: all(x in names for x in f"{r.ligand}_{r.receptor}".split("_")), axis=1
            )
        ]
        if len(pairs)
        else pairs
    )
    if present.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    genes = sorted({x for v in (*present["ligand"], *present["receptor"]) for x in v.split("_")})
    mean, frac, n = _unit_expression(adata, genes, groups, sample_key)
    names = [*present["ligand"], *present["receptor"]]
    mean, frac = _complexes(mean, names), _complexes(frac, names)
    cond = adata.obs[condition_key].astype(str).groupby(adata.obs[sample_key].astype(str)).first()
    parts = []
    for s_g in groups:
        if senders is not None and s_g not in senders:
            continue
        for r_g in groups:
            if receivers is not None and r_g not in receivers:
                continue
            sub = present[
                (present["sender_species"] == g_species[s_g])
                & (present["receiver_species"] == g_species[r_g])
            ]
            if species == "xenograft" and g_species[s_g] == g_species[r_g]:
                continue
            if sub.empty:
                continue
            part = _pair_scores(sub, mean, frac, n, cond, s_g, r_g, min_cells, expr_prop)
            if part is not None:
                parts.append(part)
    if not parts:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    return pd.concat(parts, ignore_index=True)[SCORE_COLUMNS]


def _pair_scores(sub, mean, frac, n, cond, s_g, r_g, min_cells, expr_prop):
    s_units = mean.xs(s_g, level="group")
    r_units = mean.xs(r_g, level="group")
    s_frac, r_frac = frac.xs(s_g, level="group"), frac.xs(r_g, level="group")
    n_s, n_r = n.xs(s_g, level="group"), n.xs(r_g, level="group")
    ok = ((n_s >= min_cells) & (n_r >= min_cells)).to_numpy()
    if not ok.any():
        return None
    samples = s_units.index.astype(str)
    # complexes' values, one column per pair (mean and frac hold every complex's column)
    l_idx = s_units.columns.get_indexer(sub["ligand"])
    r_idx = r_units.columns.get_indexer(sub["receptor"])
    lig, lf = s_units.to_numpy()[:, l_idx], s_frac.to_numpy()[:, l_idx]
    rec, rf = r_units.to_numpy()[:, r_idx], r_frac.to_numpy()[:, r_idx]
    lig[~ok], rec[~ok], lf[~ok], rf[~ok] = np.nan, np.nan, np.nan, np.nan
    arm = cond.reindex(samples).to_numpy()
    keep = np.zeros(len(sub), dtype=bool)
    for a in pd.unique(arm[ok]):
        rows = ok & (arm == a)
        keep |= (np.nanmean(lf[rows], axis=0) >= expr_prop) & (
            np.nanmean(rf[rows], axis=0) >= expr_prop
        )
    if not keep.any():
        return None
    sub = sub[keep]
    lig, rec, lf, rf = lig[:, keep], rec[:, keep], lf[:, keep], rf[:, keep]
    n_p, n_a = len(sub), len(samples)
    return pd.DataFrame(
        {
            "sample": np.tile(samples, n_p),
            "condition": np.tile(arm, n_p),
            "sender": s_g,
            "receiver": r_g,
            "interaction": np.repeat(sub["interaction"].to_numpy(), n_a),
            "ligand": np.repeat(sub["ligand"].to_numpy(), n_a),
            "receptor": np.repeat(sub["receptor"].to_numpy(), n_a),
            "ligand_expr": lig.T.ravel(),
            "receptor_expr": rec.T.ravel(),
            "ligand_frac": lf.T.ravel(),
            "receptor_frac": rf.T.ravel(),
            "score": np.sqrt(lig * rec).T.ravel(),
            "n_cells_sender": np.tile(n_s.to_numpy(), n_p),
            "n_cells_receiver": np.tile(n_r.to_numpy(), n_p),
        }
    )


def animal_scores(
    adata: AnnData,
    ligand: str,
    receptor: str,
    sender: str,
    receiver: str,
    *,
    condition_key: str = "condition",
    sample_key: str = "sample",
    min_cells: int = 10,
    cache: dict | None = None,
) -> pd.DataFrame:
    """Per-animal score of one named pair from one sender to one receiver (the hypothesis).

    As :func:`interaction_scores` without the expression filter: rows of
    :data:`SCORE_COLUMNS` for every animal whose sender and receiver have ``min_cells``
    cells. Raises ``KeyError`` for a subunit absent from the data or an unknown group.
    ``cache``: see :func:`corrected_columns` (one dict per cell set).
    """
    missing = [g for g in f"{ligand}_{receptor}".split("_") if g not in adata.var_names]
    if missing:
        raise KeyError(f"gene(s) {missing} absent from the data (symbols are case-sensitive)")
    groups = groups_of(adata)
    for g in (sender, receiver):
        if g not in groups:
            raise KeyError(f"no cell labelled {g!r} (cell_type or cell_subtype)")
    pair = pd.DataFrame(
        {"interaction": [f"{ligand}-{receptor}"], "ligand": [ligand], "receptor": [receptor]}
    )
    genes = sorted(set(f"{ligand}_{receptor}".split("_")))
    two = {sender: groups[sender], receiver: groups[receiver]}
    mean, frac, n = _unit_expression(adata, genes, two, sample_key, cache)
    mean, frac = _complexes(mean, [ligand, receptor]), _complexes(frac, [ligand, receptor])
    cond = adata.obs[condition_key].astype(str).groupby(adata.obs[sample_key].astype(str)).first()
    part = _pair_scores(pair, mean, frac, n, cond, sender, receiver, min_cells, -1.0)
    if part is None:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    return part[np.isfinite(part["score"].to_numpy(float))][SCORE_COLUMNS].reset_index(drop=True)


def split_interaction(name: str, var_names: Sequence[str]) -> tuple[str, str] | None:
    """``Gas6-AXL`` -> ``("Gas6", "AXL")``, split on the data's symbols.

    The first ``-`` split whose every subunit is a
    feature (symbols may hold ``-`` themselves, ``H2-K1``); None when no split fits.
    """
    names = set(map(str, var_names))
    for i, ch in enumerate(name):
        if ch != "-":
            continue
        lig, rec = name[:i], name[i + 1 :]
        if lig and rec and all(g in names for g in f"{lig}_{rec}".split("_")):
            return lig, rec
    return None


# --- the comparison --------------------------------------------------------------------------


def welch(ref: np.ndarray, tst: np.ndarray) -> dict:
    """Welch's t of ``tst - ref`` (two-sided p, 95% interval); NaN fields when untestable."""
    ref, tst = np.asarray(ref, dtype=np.float64), np.asarray(tst, dtype=np.float64)
    # one group each: the comparison's own per-group moments
    moments = [_arm_moments(np.zeros(x.size, dtype=np.int64), x, 1) for x in (ref, tst)]
    out = welch_arrays(*moments[0], *moments[1])
    return {k: (str(v[0]) if k == "note" else float(v[0])) for k, v in out.items()}


def welch_arrays(
    n_r: np.ndarray,
    m_r: np.ndarray,
    s2_r: np.ndarray,
    n_t: np.ndarray,
    m_t: np.ndarray,
    s2_t: np.ndarray,
) -> dict[str, np.ndarray]:
    """:func:`welch` of many pairs at once, from each arm's count, mean and sample variance.

    Returns ``effect``, ``se``, ``df``, ``stat``, ``pvalue``, ``ci_low``, ``ci_high`` (float
    arrays) and ``note`` (object array): fewer than 2 animals in an arm leaves the effect (when
    both arms have one) and a note; equal scores in every animal (``se`` 0) the same.
    """
    n_r, n_t = np.asarray(n_r, dtype=np.float64), np.asarray(n_t, dtype=np.float64)
    nan = np.full(n_r.shape, np.nan)
    out = {k: nan.copy() for k in ("effect", "se", "df", "stat", "pvalue", "ci_low", "ci_high")}
    note = np.full(n_r.shape, "", dtype=object)
    with np.errstate(invalid="ignore", divide="ignore"):
        both = (n_r > 0) & (n_t > 0)
        out["effect"][both] = (np.asarray(m_t) - np.asarray(m_r))[both]
        few = (n_r < 2) | (n_t < 2)
        for k in np.flatnonzero(few):
            note[k] = f"fewer than 2 animals in an arm ({int(n_r[k])} vs {int(n_t[k])})"
        v_r, v_t = np.asarray(s2_r) / n_r, np.asarray(s2_t) / n_t
        se = np.sqrt(v_r + v_t)
        flat = ~few & (se == 0)
        note[flat] = "the same score in every animal"
        ok = ~few & ~flat
        den = np.where(v_r > 0, v_r**2 / (n_r - 1), 0.0) + np.where(
            v_t > 0, v_t**2 / (n_t - 1), 0.0
        )
        df = (v_r + v_t) ** 2 / den
    if ok.any():
        eff, s_ok, d_ok = out["effect"][ok], se[ok], df[ok]
        q = stats.t.ppf(0.975, d_ok)
        out["se"][ok], out["df"][ok], out["stat"][ok] = s_ok, d_ok, eff / s_ok
        out["pvalue"][ok] = 2 * stats.t.sf(np.abs(eff / s_ok), d_ok)
        out["ci_low"][ok], out["ci_high"][ok] = eff - q * s_ok, eff + q * s_ok
    out["note"] = note
    return out


def _arm_moments(codes: np.ndarray, x: np.ndarray, n_groups: int) -> tuple[np.ndarray, ...]:
    """Per group code: count, mean and sample variance (ddof 1) of ``x``."""
    n = np.bincount(codes, minlength=n_groups).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(codes, weights=x, minlength=n_groups) / n
        dev = x - mean[codes]
        s2 = np.bincount(codes, weights=dev * dev, minlength=n_groups) / (n - 1)
    return n, mean, s2


def compare_arms(
    scores: pd.DataFrame,
    *,
    reference: str,
    test: str,
    ambient_explained: dict[tuple[str, str], float] | None = None,
) -> pd.DataFrame:
    """Each sender -> receiver pair compared between the arms, animals as the unit.

    Parameters
    ----------
    scores
        :func:`interaction_scores`.
    reference, test
        The arms.
    ambient_explained
        ``(ligand, sender)`` -> :func:`ligand_ambient`; flags ``ligand_mostly_soup``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COMPARISON_COLUMNS`: ``effect`` = mean test score - mean reference
        score (Welch's t, two-sided ``pvalue``, 95% interval), ``log2_ratio`` of the means,
        ``padj`` = BH over every compared row, ``rank`` within the sender -> receiver (1 =
        smallest p, ties by the larger ``|effect|``; untestable rows last).
    """
    if scores.empty:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    amb = ambient_explained or {}
    # one group per sender x receiver x pair, in order of first appearance (as groupby(sort=False))
    codes, keys = pd.MultiIndex.from_frame(
        scores[["sender", "receiver", "interaction"]]
    ).factorize()
    codes = np.asarray(codes, dtype=np.int64)
    n_groups = len(keys)
    score = scores["score"].to_numpy(np.float64)
    fin = np.isfinite(score)
    cond = scores["condition"].astype(str).to_numpy()
    n_r, m_r, s2_r = _arm_moments(
        codes[fin & (cond == reference)], score[fin & (cond == reference)], n_groups
    )
    n_t, m_t, s2_t = _arm_moments(
        codes[fin & (cond == test)], score[fin & (cond == test)], n_groups
    )
    w = welch_arrays(n_r, m_r, s2_r, n_t, m_t, s2_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((m_r > 0) & (m_t > 0), np.log2(m_t / m_r), np.nan)
    # each group's first finite row names its ligand and receptor
    first = np.full(n_groups, -1, dtype=np.int64)
    rows_fin = np.flatnonzero(fin)
    first[codes[rows_fin][::-1]] = rows_fin[::-1]
    lig_col = scores["ligand"].astype(str).to_numpy()
    rec_col = scores["receptor"].astype(str).to_numpy()
    senders = keys.get_level_values(0).astype(str).to_numpy()
    names = keys.get_level_values(2).astype(str).to_numpy()
    has = first >= 0
    ligand = np.where(has, lig_col[np.maximum(first, 0)], [n.split("-")[0] for n in names])
    receptor = np.where(has, rec_col[np.maximum(first, 0)], "")
    a = np.array(
        [amb.get((lg, sg), np.nan) for lg, sg in zip(ligand, senders, strict=True)], dtype=float
    )
    out = pd.DataFrame(
        {
            "sender": senders,
            "receiver": keys.get_level_values(1).astype(str).to_numpy(),
            "interaction": names,
            "ligand": ligand,
            "receptor": receptor,
            "n_animals_reference": n_r.astype(int),
            "n_animals_test": n_t.astype(int),
            "mean_reference": m_r,
            "mean_test": m_t,
            "effect": w["effect"],
            "log2_ratio": ratio,
            "ci_low": w["ci_low"],
            "ci_high": w["ci_high"],
            "stat": w["stat"],
            "df": w["df"],
            "pvalue": w["pvalue"],
            "ligand_ambient_explained": a,
            "ligand_mostly_soup": np.isfinite(a) & (a > MAX_AMBIENT_EXPLAINED),
            "note": w["note"],
        }
    )
    out["padj"] = adjust_pvalues(out["pvalue"].to_numpy(float), "fdr_bh")
    out["_p"] = out["pvalue"].fillna(np.inf)
    out["_e"] = -out["effect"].abs().fillna(0.0)
    out = out.sort_values(["sender", "receiver", "_p", "_e"], kind="mergesort")
    out["rank"] = out.groupby(["sender", "receiver"], sort=False).cumcount() + 1
    return out[COMPARISON_COLUMNS].reset_index(drop=True)


def soup_flags(adata: AnnData, comparison_keys: pd.DataFrame) -> dict[tuple[str, str], float]:
    """:func:`ligand_ambient` of every distinct (ligand, sender) of ``comparison_keys``."""
    groups = groups_of(adata)
    out: dict[tuple[str, str], float] = {}
    cache: dict = {}  # one ambient accounting per ligand subunit, whatever its senders
    work = adata
    if sp.issparse(adata.layers["counts"]) and not sp.isspmatrix_csc(adata.layers["counts"]):
        work = AnnData(obs=adata.obs, var=adata.var, uns=adata.uns)  # columns read fast
        work.layers["counts"] = sp.csc_matrix(adata.layers["counts"])
    for lig, s_g in comparison_keys[["ligand", "sender"]].drop_duplicates().itertuples(index=False):
        out[(lig, s_g)] = ligand_ambient(work, lig, groups[s_g], cache)
    return out


def communication(
    adata: AnnData,
    resource: pd.DataFrame,
    o2o: dict[str, str],
    *,
    species: str,
    reference: str,
    test: str,
    condition_key: str = "condition",
    min_cells: int = 10,
    expr_prop: float = 0.1,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The communication rule: (per-animal scores, arm comparison, mapping report).

    Only the cells of ``reference`` and ``test`` are scored (other arms of the study are left
    out, :func:`~tmeflow.stats.select_arms`).
    """
    adata = select_arms(adata, condition_key, reference, test)
    pairs, report = map_resource(resource, o2o, directions(species), adata.var_names)
    for r in report.itertuples():
        logger.info(
            "%s -> %s: %d of %d resource pairs kept by the 1:1 orthologs (%.1f%%), %d in the data",
            r.sender_species,
            r.receiver_species,
            r.n_kept,
            r.n_resource,
            100 * r.share_kept,
            r.n_in_data,
        )
    scores = interaction_scores(
        adata,
        pairs,
        condition_key=condition_key,
        species=species,
        min_cells=min_cells,
        expr_prop=expr_prop,
    )
    comparison = compare_arms(scores, reference=reference, test=test)
    flags = soup_flags(adata, comparison) if len(comparison) else {}
    comparison = compare_arms(scores, reference=reference, test=test, ambient_explained=flags)
    return scores, comparison, report

"""Per-cell quality control: metrics, MAD-based thresholds per sample and species, doublets.

Thresholds are computed per sample and per species group, because human tumour cells and
mouse stroma in a xenograft have very different library sizes. Each MAD threshold is combined
with a hard floor/cap: the stricter one applies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy.stats import median_abs_deviation

from tmeflow._utils import missing_from_union
from tmeflow.cells._doublets import (
    DOUBLET_CALLERS,
    call_column,
    expected_multiplet_rate,
    score_column,
)
from tmeflow.cells._qc_metrics import (
    qc_metrics,
    sample_name,
)

logger = logging.getLogger(__name__)

MAD_SCALE = "normal"
"""``scipy.stats.median_abs_deviation`` scale: ``"normal"`` (x1.4826, a consistent estimate of
the standard deviation for normal data, as R's ``mad()`` and scater's ``isOutlier``)."""

REASONS: tuple[str, ...] = ("low_counts", "low_genes", "high_mito", "doublet", "mixed_species")
CONFIG_KEYS: dict[str, str] = {
    "low_counts": "qc.min_counts / qc.nmads_counts",
    "low_genes": "qc.min_genes / qc.nmads_genes",
    "high_mito": "qc.max_pct_mito / qc.nmads_mito",
    "doublet": "qc.doublets",
    "mixed_species": "species_calling.min_fraction / species_calling.crossspecies_fdr",
}
"""Config keys to relax, per removal reason (named in the zero-cells error)."""

DOUBLET_EXCESS_FACTOR = 1.5
"""A sample whose doublet removal exceeds this many times the multiplet share its size implies
(:func:`tmeflow.cells.expected_multiplet_rate`, 0.8% per 1,000 cells) gets a warning. The 10x
rate is a rule of thumb (loading varies by ~1.5x between runs), so removal up to 1.5x of it is
taken as normal; beyond it the callers likely remove real cells (large ones first) or the
sample was overloaded: either deserves a look."""
DOUBLET_EXCESS_MIN_CELLS = 5
"""... and by at least this many cells over the expected count, so that a small sample (300
cells expect 0.7 multiplets) removing 2 doublets is not flagged."""


def mad_thresholds(
    values: np.ndarray | pd.Series, *, nmads: float, side: str, scale: str | float = MAD_SCALE
) -> float:
    """Outlier threshold ``median -/+ nmads * MAD`` of ``values``.

    Parameters
    ----------
    values
        One value per cell (already on the scale to threshold: pass ``log1p`` counts/genes).
    nmads
        Number of MADs.
    side
        ``"lower"`` (``median - nmads * MAD``) or ``"upper"`` (``median + nmads * MAD``).
    scale
        Passed to :func:`scipy.stats.median_abs_deviation`; default ``"normal"`` (the MAD is
        multiplied by 1.4826 so that it estimates the standard deviation of normal data).

    Returns
    -------
    float
        The threshold; ``-inf`` (lower) / ``+inf`` (upper) when the MAD is 0 or there are no
        values, since a zero MAD would flag every cell that differs from the median.
    """
    if side not in ("lower", "upper"):
        msg = f"side={side!r}; use 'lower' or 'upper'."
        raise ValueError(msg)
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    none = -np.inf if side == "lower" else np.inf
    if v.size == 0:
        return float(none)
    mad = float(median_abs_deviation(v, scale=scale))
    if mad == 0:
        return float(none)
    med = float(np.median(v))
    return med - nmads * mad if side == "lower" else med + nmads * mad


def _group_thresholds(
    obs: pd.DataFrame, *, nmads_counts: float, nmads_genes: float, nmads_mito: float
) -> dict[str, float]:
    lc = mad_thresholds(np.log1p(obs["total_counts"]), nmads=nmads_counts, side="lower")
    lg = mad_thresholds(np.log1p(obs["n_genes_by_counts"]), nmads=nmads_genes, side="lower")
    um = mad_thresholds(obs["pct_counts_mt"], nmads=nmads_mito, side="upper")
    return {
        "mad_min_counts": float(np.expm1(lc)) if np.isfinite(lc) else 0.0,
        "mad_min_genes": float(np.expm1(lg)) if np.isfinite(lg) else 0.0,
        "mad_max_pct_mito": float(um) if np.isfinite(um) else 100.0,
    }


def filter_cells(
    adata: AnnData,
    *,
    nmads_counts: float = 5.0,
    nmads_genes: float = 5.0,
    nmads_mito: float = 3.0,
    min_counts: int = 500,
    min_genes: int = 200,
    max_pct_mito: float = 25.0,
    remove_doublets: bool = True,
    remove_mixed: bool = True,
    group_key: str | None = "species",
    min_group_cells: int = 30,
    warn_fraction: float = 0.5,
    allow_empty: bool = False,
) -> tuple[AnnData, dict[str, Any]]:
    """Flag and remove low-quality cells with per-sample, per-species MAD thresholds.

    For each sample (``obs["sample"]``) and group (``obs[group_key]``, e.g. ``human``/
    ``mouse``/``mixed``), thresholds are ``median -/+ nmads * MAD`` (scaled MAD, see
    :func:`mad_thresholds`) of ``log1p(total_counts)`` and ``log1p(n_genes_by_counts)`` (lower
    side, back-transformed to counts) and of ``pct_counts_mt`` (upper side). The effective
    thresholds are ``max(min_counts, MAD bound)``, ``max(min_genes, MAD bound)`` and
    ``min(max_pct_mito, MAD bound)``. A group with fewer than ``min_group_cells`` cells is too
    small for its own MADs and gets the hard floors alone: never the MAD bounds of its whole
    sample, which are set by the other species (a tumour left with 6 human cells among 100
    mouse cells of mito-poor lung would get the mouse cells' mitochondrial cut-off). A group
    that loses more than ``warn_fraction`` of its cells is logged as a warning and listed in
    ``metrics["qc_warnings"]``. QC metrics are computed if absent.

    Writes into ``adata`` (all cells) and the returned object (kept cells): ``obs`` boolean
    flags ``qc_low_counts`` (total_counts < threshold), ``qc_low_genes``, ``qc_high_mito``
    (pct > threshold), ``qc_doublet`` (``predicted_doublet`` and ``remove_doublets``),
    ``qc_mixed_species`` (``species == "mixed"`` and ``remove_mixed``), ``qc_pass``; and
    ``uns["qc"]`` = ``{"params": ..., "thresholds": {group: {...}}, "metrics": ...}``.

    Returns
    -------
    kept, metrics
        The kept cells (a copy) and a flat dict: ``sample``, ``n_cells_in``,
        ``removed_<reason>`` for each reason (a cell failing several reasons counts in each),
        ``n_removed``, ``n_kept``, ``n_human_kept``, ``n_mouse_kept``, ``n_mixed_kept``, per
        group ``threshold_min_counts_<group>``, ``threshold_min_genes_<group>``,
        ``threshold_max_pct_mito_<group>`` (the thresholds applied) and ``n_cells_<group>``
        (group = the species, prefixed by ``<sample>.`` when ``adata`` holds several samples),
        ``qc_warnings`` (groups that lost more than ``warn_fraction`` of their cells, with
        the counts per reason, and a doublet removal beyond :data:`DOUBLET_EXCESS_FACTOR` x
        the multiplet share the sample's size implies; empty when none), the doublet shares
        (``doublet_share_expected``, ``doublet_share_<caller>``, ``doublet_share_consensus``,
        ``doublet_share_removed``) and ``doublet_excess`` (bool), and ``note``: empty, or
        the zero-cells message when ``allow_empty``.

    Raises
    ------
    ValueError
        ``remove_doublets`` without ``obs["predicted_doublet"]`` (run :func:`detect_doublets`
        first), or no cell kept and not ``allow_empty`` (names the reason that removed most
        and the config key). With ``allow_empty`` the message is logged as a warning, stored
        in ``metrics["note"]`` and an empty AnnData is returned.
    """
    sample = sample_name(adata)
    if remove_doublets and "predicted_doublet" not in adata.obs:
        msg = (
            f"sample {sample!r}: remove_doublets=True but obs['predicted_doublet'] is missing; "
            "run tmeflow.cells.detect_doublets first or set the config key qc.doublets: false."
        )
        raise ValueError(msg)
    if not {"total_counts", "n_genes_by_counts", "pct_counts_mt"} <= set(adata.obs.columns):
        qc_metrics(adata)
    flags, thresholds = _threshold_flags(
        adata.obs,
        _cell_groups(adata, group_key),
        nmads={"nmads_counts": nmads_counts, "nmads_genes": nmads_genes, "nmads_mito": nmads_mito},
        floors={"min_counts": min_counts, "min_genes": min_genes, "max_pct_mito": max_pct_mito},
        min_group_cells=min_group_cells,
    )
    flags.update(
        _other_flags(adata.obs, remove_doublets=remove_doublets, remove_mixed=remove_mixed)
    )
    fail = np.zeros(adata.n_obs, dtype=bool)
    for reason, f in flags.items():
        adata.obs[f"qc_{reason}"] = f
        fail |= f
    adata.obs["qc_pass"] = ~fail
    metrics = _filter_metrics(adata, sample, flags, fail, thresholds)
    metrics["qc_warnings"] = _group_loss_warnings(
        _cell_groups(adata, group_key), flags, fail, warn_fraction=warn_fraction
    )
    excess = _doublet_excess(sample, metrics)
    metrics["doublet_excess"] = bool(excess)
    metrics["qc_warnings"] = "; ".join(w for w in (metrics["qc_warnings"], excess) if w)
    params = _params(
        nmads=(nmads_counts, nmads_genes, nmads_mito),
        floors=(min_counts, min_genes, max_pct_mito),
        removal=(remove_doublets, remove_mixed),
        group_key=group_key,
        min_group_cells=min_group_cells,
        warn_fraction=warn_fraction,
    )
    if metrics["n_kept"] == 0:
        msg = _all_removed_message(adata, sample, metrics, thresholds)
        if not allow_empty:
            raise ValueError(msg)
        logger.warning("%s The sample is left out of the analysis.", msg)
        metrics["note"] = msg
    adata.uns["qc"] = {"params": params, "thresholds": thresholds, "metrics": dict(metrics)}
    logger.info("sample %s: QC %s", sample, metrics)
    kept = adata[~fail].copy()
    return kept, metrics


def _params(
    *,
    nmads: tuple[float, float, float],
    floors: tuple[int, int, float],
    removal: tuple[bool, bool],
    group_key: str | None,
    min_group_cells: int,
    warn_fraction: float,
) -> dict[str, Any]:
    """The parameters of :func:`filter_cells` as recorded in ``uns["qc"]["params"]``."""
    return {
        "nmads_counts": float(nmads[0]),
        "nmads_genes": float(nmads[1]),
        "nmads_mito": float(nmads[2]),
        "min_counts": int(floors[0]),
        "min_genes": int(floors[1]),
        "max_pct_mito": float(floors[2]),
        "remove_doublets": bool(removal[0]),
        "remove_mixed": bool(removal[1]),
        "group_key": group_key if group_key is not None else "",
        "min_group_cells": int(min_group_cells),
        "small_group_thresholds": "floors",
        "warn_fraction": float(warn_fraction),
        "mad_scale": MAD_SCALE,
    }


def _cell_groups(adata: AnnData, group_key: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, its sample (``"sample"`` without ``obs["sample"]``) and its QC group."""
    obs = adata.obs
    samples = (
        obs["sample"].astype(str).to_numpy() if "sample" in obs else np.full(adata.n_obs, "sample")
    )
    groups = (
        obs[group_key].astype(str).to_numpy()
        if group_key is not None and group_key in obs
        else np.full(adata.n_obs, "all")
    )
    return samples, groups


def _threshold_flags(
    obs: pd.DataFrame,
    cell_groups: tuple[np.ndarray, np.ndarray],
    *,
    nmads: dict[str, float],
    floors: dict[str, float],
    min_group_cells: int,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, float]]]:
    """The low_counts/low_genes/high_mito flags and the thresholds of every sample and group.

    A group's MAD bounds are combined with the hard ``floors`` (the stricter one applies); a
    group of fewer than ``min_group_cells`` cells gets the floors alone (``mad_source``
    ``"floors"``), never bounds taken from cells of another group.
    Thresholds are keyed by the group, prefixed by ``<sample>.`` when there are several samples.
    """
    samples, groups = cell_groups
    multi = len(pd.unique(samples)) > 1
    flags = {k: np.zeros(len(obs), dtype=bool) for k in ("low_counts", "low_genes", "high_mito")}
    thresholds: dict[str, dict[str, float]] = {}
    for s in pd.unique(samples):
        in_s = samples == s
        for g in pd.unique(groups[in_s]):
            idx = in_s & (groups == g)
            n_g = int(idx.sum())
            small = n_g < min_group_cells
            mad = _NO_MAD if small else _group_thresholds(obs.loc[idx], **nmads)
            th = {
                "min_counts": max(float(floors["min_counts"]), mad["mad_min_counts"]),
                "min_genes": max(float(floors["min_genes"]), mad["mad_min_genes"]),
                "max_pct_mito": min(float(floors["max_pct_mito"]), mad["mad_max_pct_mito"]),
                "n_cells": n_g,
                "mad_source": "floors" if small else "group",
                **mad,
            }
            if small and n_g:
                logger.warning(
                    "sample %s group %s: %d cell(s) (< qc min_group_cells %d) are too few for "
                    "MAD thresholds; the hard floors apply (qc.min_counts, qc.min_genes, "
                    "qc.max_pct_mito)",
                    s,
                    g,
                    n_g,
                    min_group_cells,
                )
            label = f"{s}.{g}" if multi else str(g)
            thresholds[label] = th
            flags["low_counts"][idx] = obs.loc[idx, "total_counts"].to_numpy() < th["min_counts"]
            flags["low_genes"][idx] = obs.loc[idx, "n_genes_by_counts"].to_numpy() < th["min_genes"]
            flags["high_mito"][idx] = obs.loc[idx, "pct_counts_mt"].to_numpy() > th["max_pct_mito"]
            logger.info("sample %s group %s: thresholds %s", s, g, th)
    return flags, thresholds


#: MAD bounds that never bind: a group too small for MADs gets the hard floors alone.
_NO_MAD = {"mad_min_counts": 0.0, "mad_min_genes": 0.0, "mad_max_pct_mito": 100.0}


def _group_loss_warnings(
    cell_groups: tuple[np.ndarray, np.ndarray],
    flags: dict[str, np.ndarray],
    fail: np.ndarray,
    *,
    warn_fraction: float,
) -> str:
    """Describe every group that QC would mostly remove; log each as a warning.

    Parameters
    ----------
    cell_groups
        Per cell, its sample and QC group (:func:`_cell_groups`).
    flags
        Per reason, the cells it removes.
    fail
        Cells removed for any reason.
    warn_fraction
        A group losing more than this fraction of its cells is reported.

    Returns
    -------
    str
        ``"<sample>.<group>: removed R of N (reason k, ...)"`` entries joined by ``"; "``, or
        ``""``.
    """
    samples, groups = cell_groups
    out = []
    for s in pd.unique(samples):
        for g in pd.unique(groups[samples == s]):
            idx = (samples == s) & (groups == g)
            n, removed = int(idx.sum()), int(fail[idx].sum())
            if g == "mixed" or not n or removed <= warn_fraction * n:
                continue
            why = ", ".join(f"{r} {int(f[idx].sum())}" for r, f in flags.items() if f[idx].any())
            out.append(f"{s}.{g}: removed {removed} of {n} ({why})")
            logger.warning(
                "sample %s group %s: QC removes %d of %d cells (%s); check the thresholds "
                "in the QC summary before trusting this group",
                s,
                g,
                removed,
                n,
                why,
            )
    return "; ".join(out)


def _other_flags(
    obs: pd.DataFrame, *, remove_doublets: bool, remove_mixed: bool
) -> dict[str, np.ndarray]:
    """The doublet and mixed_species flags (all False when that removal is off)."""
    doublet = (
        obs["predicted_doublet"].fillna(False).to_numpy(dtype=bool)
        if remove_doublets
        else np.zeros(len(obs), dtype=bool)
    )
    mixed = (
        (obs["species"].astype(str).to_numpy() == "mixed")
        if remove_mixed and "species" in obs
        else np.zeros(len(obs), dtype=bool)
    )
    return {"doublet": doublet, "mixed_species": mixed}


def _filter_metrics(
    adata: AnnData,
    sample: str,
    flags: dict[str, np.ndarray],
    fail: np.ndarray,
    thresholds: dict[str, dict[str, float]],
) -> dict[str, Any]:
    """The flat metrics dict of :func:`filter_cells` (``note`` empty)."""
    obs = adata.obs
    metrics: dict[str, Any] = {"sample": sample, "n_cells_in": int(adata.n_obs)}
    for reason, f in flags.items():
        metrics[f"removed_{reason}"] = int(f.sum())
    metrics["n_removed"] = int(fail.sum())
    metrics["n_kept"] = int((~fail).sum())
    sp_kept = obs.loc[~fail, "species"].astype(str) if "species" in obs else pd.Series(dtype=str)
    metrics["n_human_kept"] = int((sp_kept == "human").sum())
    metrics["n_mouse_kept"] = int((sp_kept == "mouse").sum())
    metrics["n_mixed_kept"] = int((sp_kept == "mixed").sum())
    for label, th in thresholds.items():
        for key in ("min_counts", "min_genes", "max_pct_mito"):
            metrics[f"threshold_{key}_{label}"] = th[key]
        metrics[f"n_cells_{label}"] = th["n_cells"]
    metrics.update(_doublet_metrics(adata))
    metrics["note"] = ""
    return metrics


def _doublet_metrics(adata: AnnData) -> dict[str, Any]:
    """QC summary columns of the doublet callers (empty when :func:`call_doublets` did not run).

    ``doublet_share_expected`` (always: the multiplet share the sample's size implies,
    :func:`tmeflow.cells.expected_multiplet_rate` of its droplets), ``doublet_share_<caller>``
    and ``doublet_share_consensus`` (the share of the sample's droplets each caller / the
    consensus called, before the other QC reasons), ``doublets_<caller>`` for each
    registered caller (``doublets_scrublet``, ``doublets_cluster``), ``doublets_both`` (cells
    each caller / every caller called), ``doublet_rule`` and ``doublet_cluster_fallback``
    (per species that the cluster-aware caller skipped: the reason; empty when none).
    """
    n = int(adata.n_obs)
    shares = {"doublet_share_expected": expected_multiplet_rate(n)}
    info = adata.uns.get("doublets_consensus")
    if info is None:
        return shares
    skipped = adata.uns.get("doublets_cluster", {}).get("species", {})
    for c in DOUBLET_CALLERS:
        shares[f"doublet_share_{c}"] = int(info[f"n_{c}"]) / n if n else 0.0
    shares["doublet_share_consensus"] = int(info["n_predicted"]) / n if n else 0.0
    return {
        **shares,
        **{f"doublets_{c}": int(info[f"n_{c}"]) for c in DOUBLET_CALLERS},
        "doublets_both": int(info["n_both"]),
        "doublet_rule": str(info["rule"]),
        "doublet_cluster_fallback": "; ".join(
            f"{k}: {v['reason']}" for k, v in skipped.items() if v.get("skipped")
        ),
    }


def _doublet_excess(sample: str, metrics: dict[str, Any]) -> str:
    """The warning of a sample whose doublet removal exceeds the loading's expectation.

    Writes ``metrics["doublet_share_removed"]`` (``removed_doublet`` over the droplets in).
    Removal beyond :data:`DOUBLET_EXCESS_FACTOR` x the expected multiplet share and by at
    least :data:`DOUBLET_EXCESS_MIN_CELLS` cells is logged as a warning and returned (empty
    otherwise).
    """
    n = int(metrics["n_cells_in"])
    removed = int(metrics.get("removed_doublet", 0))
    metrics["doublet_share_removed"] = removed / n if n else 0.0
    expected = expected_multiplet_rate(n)
    if removed <= DOUBLET_EXCESS_FACTOR * expected * n or removed - expected * n < (
        DOUBLET_EXCESS_MIN_CELLS
    ):
        return ""
    callers = ", ".join(
        f"{k.removeprefix('doublet_share_')} {v:.1%}"
        for k, v in metrics.items()
        if k.startswith("doublet_share_")
        and k not in ("doublet_share_expected", "doublet_share_removed")
    )
    msg = (
        f"{sample}: doublet removal {removed} of {n} ({removed / n:.1%}) exceeds "
        f"{DOUBLET_EXCESS_FACTOR:g}x the {expected:.1%} multiplets its size implies "
        f"(0.8% per 1,000 cells; called: {callers})"
    )
    logger.warning(
        "sample %s: doublet removal exceeds the loading's expectation: %s; check the "
        "doublet callers (qc.doublet_consensus, qc.doublet_cluster_cap) before trusting "
        "rare or large cell types",
        sample,
        msg,
    )
    return msg


def _all_removed_message(
    adata: AnnData, sample: str, metrics: dict[str, Any], thresholds: dict[str, dict[str, float]]
) -> str:
    """The zero-cells message: the reason that removed most cells and the config key to relax."""
    worst = max(REASONS, key=lambda r: metrics[f"removed_{r}"])
    source = adata.uns.get("ingest", {}).get("path", "")
    where = f" (input {source!r})" if source else ""
    return (
        f"sample {sample!r}{where}: QC removed all {adata.n_obs} cells; most were removed "
        f"for {worst} ({metrics[f'removed_{worst}']} cells). Relax {CONFIG_KEYS[worst]} in "
        f"the config, or check the input (thresholds: {_fmt_thresholds(thresholds)})."
    )


def _fmt_thresholds(thresholds: dict[str, dict[str, float]]) -> str:
    keys = ("min_counts", "min_genes", "max_pct_mito")
    return "; ".join(
        f"{g}: " + ", ".join(f"{k} {th[k]:.4g}" for k in keys) for g, th in thresholds.items()
    )


def check_conditions(summary: pd.DataFrame, conditions: dict[str, str]) -> None:
    """Fail before integration when every sample of a condition lost all its cells.

    Only the conditions that have samples in ``conditions`` (the sample sheet) are checked: a
    one-condition sheet (e.g. a single sample) passes as long as that condition keeps cells;
    the missing contrast arm is reported at parse time (``tmeflow.inputs.design_warnings``).

    Parameters
    ----------
    summary
        One row per sample with ``sample`` and ``n_kept`` (the QC summary).
    conditions
        ``{sample: condition}``.

    Raises
    ------
    ValueError
        Naming the condition, its samples with their QC notes, and what to do.
    """
    kept = summary.set_index("sample")["n_kept"].astype(int)
    notes = (
        summary.set_index("sample")["note"].fillna("").astype(str)
        if "note" in summary
        else pd.Series("", index=kept.index)
    )
    by_cond: dict[str, list[str]] = {}
    for s, c in conditions.items():
        by_cond.setdefault(str(c), []).append(str(s))
    for cond in sorted(by_cond):
        samples = by_cond[cond]
        if all(int(kept.get(s, 0)) == 0 for s in samples):
            detail = " | ".join(notes.get(s, "") or f"sample {s!r}: no cells" for s in samples)
            msg = (
                f"condition {cond!r} has no cells after QC in any of its samples "
                f"({', '.join(samples)}); integration and the comparison need both conditions. "
                f"Relax the QC thresholds named below or check these inputs. {detail}"
            )
            raise ValueError(msg)


def summary_table(
    *,
    ingest: pd.DataFrame,
    species: pd.DataFrame,
    metrics: pd.DataFrame,
    conditions: dict[str, str],
    features: Mapping[str, Iterable[str]] | None = None,
) -> pd.DataFrame:
    """The QC summary: one row per sample, explaining where every barcode went.

    Joins the per-sample ingest rows (:func:`tmeflow.inputs.ingest_report`), species rows
    (:func:`tmeflow.cells.species_report`) and QC metrics (:func:`filter_cells`) on
    ``sample``. Columns, in order: ``sample``, ``condition``; ingest (``format``,
    ``orientation``, ``n_barcodes``, ``looks_raw``, ``cells_called``,
    ``cell_calling_cutoff_umi``, ``n_features``, ``symbols_recased``); ``n_cells_in``; one
    ``removed_<reason>`` column per reason of :data:`REASONS`; ``n_removed``, ``n_kept`` and
    kept cells per species; species composition and prefixes; contamination; thresholds
    (``threshold_*``) and group sizes; ``qc_warnings``; ``note`` (non-empty for a sample left
    without cells). With ``features`` (sample -> the features its matrix measured), also
    ``n_features_missing`` and ``features_missing_examples``: the features other samples
    measured and this one did not (the merge keeps only features measured in every sample).
    """
    ing = ingest.drop(columns=["n_cells"], errors="ignore")
    if features is not None:
        ing = ing.merge(_missing_columns(features), on="sample", how="left")
    out = metrics.merge(ing, on="sample", how="left", validate="one_to_one")
    out = out.merge(species, on="sample", how="left", validate="one_to_one")
    out.insert(1, "condition", out["sample"].map({str(k): str(v) for k, v in conditions.items()}))
    first = ["sample", "condition"]
    first += [c for c in ing.columns if c != "sample"]
    first += ["n_cells_in"] + [f"removed_{r}" for r in REASONS]
    first += ["n_removed", "n_kept", "n_human_kept", "n_mouse_kept", "n_mixed_kept"]
    first += [c for c in species.columns if c != "sample"]
    first = [c for c in first if c in out.columns]
    last = [c for c in out.columns if c.startswith(("threshold_", "n_cells_")) and c not in first]
    last += ["qc_warnings", "note"]
    middle = [c for c in out.columns if c not in first and c not in last]
    cols = first + middle + [c for c in last if c in out.columns]
    return out[cols].sort_values("sample", kind="stable").reset_index(drop=True)


CELL_COLUMNS: tuple[str, ...] = (
    "sample", "barcode", "species", "total_counts", "n_genes_by_counts", "pct_counts_mt",
    "doublet_score_*", "doublet_score", "predicted_doublet", "qc_pass",
)  # fmt: skip
"""The leading columns of the per-cell QC table (:func:`cell_table`), where present.

``doublet_score_*`` stands for each registered doublet caller's score and own call
(``doublet_score_<caller>``, ``predicted_doublet_<caller>``), in the registry's order.
"""


def _caller_columns() -> list[str]:
    """Each registered doublet caller's score and call columns, in the registry's order."""
    return [col for c in DOUBLET_CALLERS for col in (score_column(c), call_column(c))]


def _missing_columns(features: Mapping[str, Iterable[str]]) -> pd.DataFrame:
    """Per sample: features measured elsewhere but not here (count, examples); logged."""
    missing = missing_from_union(features)
    for name, info in missing.items():
        logger.warning(
            "sample %s lacks %d feature(s) that other samples measured (e.g. %s); the merge "
            "keeps only features measured in every sample",
            name,
            info["n_missing"],
            ", ".join(info["examples"]),
        )
    return pd.DataFrame(
        {
            "sample": [str(s) for s in features],
            "n_features_missing": [missing.get(s, {}).get("n_missing", 0) for s in features],
            "features_missing_examples": [
                ";".join(missing.get(s, {}).get("examples", [])) for s in features
            ],
        }
    )


def cell_table(obs: pd.DataFrame) -> pd.DataFrame:
    """The per-cell QC table (``results/qc/{sample}.cells.tsv.gz``) of a sample's ``obs``.

    Parameters
    ----------
    obs
        ``adata.obs`` after :func:`qc_metrics`, :func:`detect_doublets` and
        :func:`filter_cells` (every cell, kept or not).

    Returns
    -------
    pandas.DataFrame
        The :data:`CELL_COLUMNS` present in ``obs``, then its other ``qc_*`` columns sorted.
    """
    leading = []
    for c in CELL_COLUMNS:
        leading += _caller_columns() if c == "doublet_score_*" else [c]
    cols = [c for c in leading if c in obs.columns]
    cols += sorted(c for c in obs.columns if c.startswith("qc_") and c not in cols)
    return obs[cols].copy()

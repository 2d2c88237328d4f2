"""Species of features and cells in mouse, human and xenograft (mixed-reference) libraries.

A xenograft library is counted against a combined human + mouse reference whose features
carry a genome prefix (``GRCh38_AXL``, ``mm10_Axl``, ``hg19_``...). Each cell's species is
called from the fraction of its UMIs on human features; the prefixes are then stripped so that
downstream stages see plain symbols.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

logger = logging.getLogger(__name__)

SPECIES: tuple[str, ...] = ("human", "mouse")
MODES: tuple[str, ...] = ("mouse", "human", "xenograft")

PREFIXES: dict[str, tuple[str, ...]] = {
    "human": ("GRCh38_", "GRCh38-", "hg19_", "hg19-", "hg38_", "hg38-", "GRCh37_", "GRCh37-"),
    "mouse": ("mm10_", "mm10-", "mm39_", "mm39-", "GRCm39_", "GRCm39-", "GRCm38_", "GRCm38-"),
}
"""Genome prefixes of mixed-reference feature names, per species (extend here)."""


def _prefix_table(
    prefixes: Mapping[str, Iterable[str]] | None = None,
) -> list[tuple[str, str]]:
    """(prefix, species) pairs, longest prefix first so the most specific one wins."""
    table = prefixes if prefixes is not None else PREFIXES
    pairs = [(p, sp_) for sp_, ps in table.items() for p in ps]
    return sorted(pairs, key=lambda x: -len(x[0]))


def split_prefix(
    name: str, *, prefixes: Mapping[str, Iterable[str]] | None = None
) -> tuple[str, str | None, str]:
    """Split a feature name into ``(prefix, species, symbol)``.

    ``("", None, name)`` when the name carries no known prefix.
    """
    for p, sp_ in _prefix_table(prefixes):
        if name.startswith(p) and len(name) > len(p):
            return p, sp_, name[len(p) :]
    return "", None, name


def strip_prefix(name: str, *, prefixes: Mapping[str, Iterable[str]] | None = None) -> str:
    """The feature name without a known genome prefix (unchanged when it has none)."""
    return split_prefix(name, prefixes=prefixes)[2]


def genome_species(
    genome: str, *, prefixes: Mapping[str, Iterable[str]] | None = None
) -> str | None:
    """Species of a genome label such as ``"hg19"`` or ``"GRCm39"`` (``None`` if unknown)."""
    g = str(genome).lower()
    for p, sp_ in _prefix_table(prefixes):
        if g == p.rstrip("_-").lower():
            return sp_
    return None


def detect_prefixes(
    var_names: Iterable[str], *, prefixes: Mapping[str, Iterable[str]] | None = None
) -> dict[str, list[str]]:
    """Which known genome prefixes occur in ``var_names``.

    Returns
    -------
    dict
        ``{"human": [...], "mouse": [...]}``: the prefixes found per species, sorted (empty
        lists when none).
    """
    table = prefixes if prefixes is not None else PREFIXES
    found: dict[str, set[str]] = {s: set() for s in table}
    for name in var_names:
        p, sp_, _ = split_prefix(str(name), prefixes=table)
        if sp_ is not None:
            found[sp_].add(p)
    return {s: sorted(v) for s, v in found.items()}


def _feature_species(adata: AnnData) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Per feature: species (or ""), prefix (or "") and symbol; and where species came from.

    Looks at, in order, the feature name, ``var["gene_ids"]`` and ``var["genome"]``; the first
    that carries a recognised prefix for any feature is used for all features.
    """
    names = adata.var_names.astype(str).to_numpy()
    symbols = (
        adata.var["gene_symbols"].astype(str).to_numpy() if "gene_symbols" in adata.var else names
    )
    n = len(names)
    species = np.full(n, "", dtype=object)
    prefix = np.full(n, "", dtype=object)
    symbol = names.astype(object).copy()

    split = [split_prefix(x) for x in names]
    if any(s is not None for _, s, _ in split):
        for i, (p, s, rest) in enumerate(split):
            if s is not None:
                species[i], prefix[i], symbol[i] = s, p, rest
        return species, prefix, symbol, "var_names"

    if "gene_ids" in adata.var:
        split = [split_prefix(x) for x in adata.var["gene_ids"].astype(str)]
        if any(s is not None for _, s, _ in split):
            for i, (p, s, _) in enumerate(split):
                if s is not None:
                    species[i], prefix[i], symbol[i] = s, p, symbols[i]
            return species, prefix, symbol, "gene_ids"

    if "genome" in adata.var:
        genomes = adata.var["genome"].astype(str).to_numpy()
        gs = {g: genome_species(g) for g in pd.unique(genomes)}
        if any(v is not None for v in gs.values()):
            for i, g in enumerate(genomes):
                if gs[g] is not None:
                    species[i], prefix[i], symbol[i] = gs[g], f"{g}_", symbols[i]
            return species, prefix, symbol, "genome"
    return species, prefix, symbol, "none"


def _new_names(prefix: np.ndarray, symbol: np.ndarray) -> tuple[list[str], int]:
    """Stripped names; a symbol found under several prefixes keeps ``prefix + symbol``.

    Symbols repeated under one prefix (or none) are made unique with ``-N`` suffixes.
    """
    from tmeflow.inputs._gene_names import make_unique

    df = pd.DataFrame({"prefix": prefix.astype(str), "symbol": symbol.astype(str)})
    n_prefixes = df.groupby("symbol", sort=False)["prefix"].transform("nunique").to_numpy()
    collide = (n_prefixes > 1) & (df["prefix"].to_numpy() != "")
    out = np.where(collide, df["prefix"] + df["symbol"], df["symbol"])
    return make_unique(out.tolist()), int(collide.sum())


def _row_sums(X: Any, mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return np.zeros(X.shape[0], dtype=np.float64)
    sub = X[:, np.flatnonzero(mask)]
    return np.asarray(sub.sum(axis=1), dtype=np.float64).ravel()


def assign_species(
    adata: AnnData,
    *,
    mode: str,
    min_fraction: float = 0.8,
    crossspecies_fdr: float | None = None,
) -> AnnData:
    """Call each cell's species and strip genome prefixes from the feature names.

    Parameters
    ----------
    adata
        Raw counts as written by ingest (prefixed ``var_names``), modified in place.
    mode
        ``"xenograft"`` (mixed human + mouse reference), ``"mouse"`` or ``"human"``.
    min_fraction
        Xenograft mode: a cell is ``human`` if ``human_fraction >= min_fraction``, ``mouse`` if
        ``human_fraction <= 1 - min_fraction``, else ``mixed``. Must be in (0.5, 1].
        With ``crossspecies_fdr`` it also selects the cells the ambient model is estimated
        on (:func:`tmeflow.cells.estimate_ambient`).
    crossspecies_fdr
        Xenograft mode: also call ``mixed`` every droplet whose other-species UMIs exceed what
        ambient RNA explains (:func:`tmeflow.cells.call_crossspecies`; BH FDR below
        this value). This catches the doublets one cell dominates, which pass
        ``min_fraction``. ``None`` (the library default): the fraction rule only.

    Returns
    -------
    AnnData
        The same object, with

        - ``obs["n_counts_human"]``, ``obs["n_counts_mouse"]``: UMIs on features of each
          species; ``obs["human_fraction"]`` = human / (human + mouse) (NaN for a cell with
          neither, which is called ``mixed``); ``obs["species"]`` (categorical
          ``human``/``mouse``/``mixed``). In single-species mode every cell and feature gets
          that species and all its UMIs count for it.
        - ``var["species"]``: ``human``/``mouse`` per feature (``unknown`` for a feature
          without a recognised prefix in xenograft mode, e.g. a transgene; it counts for
          neither species), ``var["feature_name"]``: the name before stripping.
        - with ``crossspecies_fdr``: ``obs`` columns
          :data:`tmeflow.cells.TEST_COLUMNS` (dominant species, other-species UMIs,
          ambient expectation, p, q), ``obs["crossspecies_doublet"]`` and
          ``obs["species_reason"]`` (``fraction`` for a cell ``mixed`` by ``min_fraction``,
          ``ambient_test`` for one ``mixed`` only by the count test, else empty); the
          ambient model in ``uns["species"]["ambient"]``. The empty droplets' soup
          (``var["ambient_umis"]``, written at ingest for a raw matrix) gives its species
          composition.
        - ``var_names`` without prefixes. Where stripping would make features of different
          genomes collide (e.g. ``hg19_DHRSX`` and ``mm10_DHRSX``), *all* features sharing
          that stripped name keep their prefixed name; names still duplicated (a symbol
          repeated within one genome) get ``-N`` suffixes, as at ingest.
        - ``uns["species"]``: ``mode``, ``min_fraction``, ``prefixes`` found per species,
          ``source`` of the species of features (``var_names``, ``gene_ids``, ``genome``),
          and cell counts per call.

        Species come from the feature names' prefixes; when the names carry none (symbols
        repeated across genomes) from the prefixes of ``var["gene_ids"]``, else from
        ``var["genome"]`` (``hg19``, ``mm10``...).

    Raises
    ------
    ValueError
        Unknown ``mode``, ``min_fraction`` out of range, or xenograft mode with no human or no
        mouse features recognised.
    """
    if mode not in MODES:
        msg = f"species mode {mode!r} unknown; set `species:` to one of {', '.join(MODES)}."
        raise ValueError(msg)
    if not 0.5 < min_fraction <= 1.0:
        msg = f"min_fraction={min_fraction} must be in (0.5, 1]; 0.8 is a common choice."
        raise ValueError(msg)
    sample = (
        str(adata.obs["sample"].iat[0]) if "sample" in adata.obs and adata.n_obs else "<unknown>"
    )
    feat_sp, prefix, symbol, source = _feature_species(adata)
    found: dict[str, list[str]] = {s: [] for s in PREFIXES}
    for s in SPECIES:
        found[s] = sorted(set(prefix[feat_sp == s].tolist()))

    X = adata.X
    if not sp.issparse(X):
        X = np.asarray(X)
    if mode == "xenograft":
        n_h, n_m, frac, call, var_sp = _call_xenograft(X, feat_sp, sample, min_fraction)
    else:
        n_h, n_m, frac, call, var_sp = _call_single(X, feat_sp, sample, mode, adata.shape)
    ambient: dict[str, Any] | None = None
    if mode == "xenograft" and crossspecies_fdr is not None:
        ambient = _call_ambient(adata, feat_sp, n_h, n_m, call, min_fraction, crossspecies_fdr)

    adata.obs["n_counts_human"] = n_h
    adata.obs["n_counts_mouse"] = n_m
    adata.obs["human_fraction"] = frac
    adata.obs["species"] = pd.Categorical(call, categories=["human", "mouse", "mixed"])

    original = adata.var_names.astype(str).to_numpy()
    new_names, n_kept_prefixed = _new_names(prefix, symbol)
    adata.var["species"] = pd.Categorical(var_sp.astype(str))
    adata.var["feature_name"] = original
    adata.var_names = pd.Index(new_names)
    counts = adata.obs["species"].value_counts()
    adata.uns["species"] = {
        "mode": mode,
        "min_fraction": float(min_fraction),
        "prefixes": {s: list(v) for s, v in found.items()},
        "source": source,
        "n_features_kept_prefixed": n_kept_prefixed,
        "n_cells": {k: int(counts.get(k, 0)) for k in ("human", "mouse", "mixed")},
    }
    if ambient is not None:
        adata.uns["species"]["ambient"] = ambient
    logger.info(
        "sample %s: species mode %s (features from %s, prefixes %s): %s; "
        "%d features kept their prefix to avoid collisions",
        sample,
        mode,
        source,
        found,
        adata.uns["species"]["n_cells"],
        n_kept_prefixed,
    )
    return adata


def _call_xenograft(
    X: Any, feat_sp: np.ndarray, sample: str, min_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Xenograft calls of :func:`assign_species`: UMIs per species, fraction, call, var species."""
    missing = [s for s in SPECIES if not (feat_sp == s).any()]
    if missing:
        msg = (
            f"sample {sample!r}: species mode 'xenograft' but no {' or '.join(missing)} "
            f"features were recognised (looked for prefixes {PREFIXES} in var_names, "
            "var['gene_ids'] and var['genome']). If the library was counted against a "
            "single-species reference set `species: mouse` or `species: human` in the "
            "config; otherwise check the reference (a combined human+mouse one is needed) "
            "or extend tmeflow.cells.PREFIXES."
        )
        raise ValueError(msg)
    n_h = _row_sums(X, feat_sp == "human")
    n_m = _row_sums(X, feat_sp == "mouse")
    tot = n_h + n_m
    safe = np.where(tot > 0, tot, 1)
    frac = np.where(tot > 0, n_h / safe, np.nan)
    mouse_frac = np.where(tot > 0, n_m / safe, np.nan)
    call = np.full(X.shape[0], "mixed", dtype=object)
    call[frac >= min_fraction] = "human"
    # compare the mouse fraction itself: 1 - min_fraction is inexact in floating point
    call[mouse_frac >= min_fraction] = "mouse"
    var_sp = np.where(feat_sp == "", "unknown", feat_sp)
    n_unknown = int((feat_sp == "").sum())
    if n_unknown:
        logger.info(
            "sample %s: %d features without a species prefix count for neither species",
            sample,
            n_unknown,
        )
    return n_h, n_m, frac, call, var_sp


def _call_ambient(
    adata: AnnData,
    feat_sp: np.ndarray,
    n_h: np.ndarray,
    n_m: np.ndarray,
    call: np.ndarray,
    min_fraction: float,
    fdr: float,
) -> dict[str, Any]:
    """The count test of :func:`assign_species`: writes its ``obs`` columns, updates ``call``."""
    from tmeflow.cells import _cross_species as crossspecies

    soup = None
    if "ambient_umis" in adata.var:
        amb = adata.var["ambient_umis"].to_numpy(dtype=np.float64)
        soup = {s: float(amb[feat_sp == s].sum()) for s in SPECIES}
    table, model = crossspecies.call_crossspecies(
        n_h, n_m, fdr=fdr, soup=soup, min_fraction=min_fraction
    )
    by_fraction = call == "mixed"
    by_test = table["crossspecies_doublet"].to_numpy() & ~by_fraction
    call[by_test] = "mixed"
    for col in crossspecies.TEST_COLUMNS:
        adata.obs[col] = table[col].to_numpy()
    adata.obs["crossspecies_doublet"] = table["crossspecies_doublet"].to_numpy()
    reason = np.full(call.size, "", dtype=object)
    reason[by_fraction] = "fraction"
    reason[by_test] = "ambient_test"
    adata.obs["species_reason"] = reason.astype(str)
    return {
        "fdr": float(fdr),
        **model.as_dict(),
        "n_mixed_fraction": int(by_fraction.sum()),
        "n_mixed_ambient_test": int(by_test.sum()),
    }


def _call_single(
    X: Any, feat_sp: np.ndarray, sample: str, mode: str, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Single-species calls of :func:`assign_species` (every cell and feature is ``mode``)."""
    n_obs, n_vars = shape
    other = "human" if mode == "mouse" else "mouse"
    if (feat_sp == other).any():
        logger.warning(
            "sample %s: species mode %r but %d %s-prefixed features found; "
            "is this a xenograft (`species: xenograft`)?",
            sample,
            mode,
            int((feat_sp == other).sum()),
            other,
        )
    total = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
    zeros = np.zeros(n_obs)
    n_h, n_m = (total, zeros) if mode == "human" else (zeros, total)
    frac = np.full(n_obs, 1.0 if mode == "human" else 0.0)
    call = np.full(n_obs, mode, dtype=object)
    var_sp = np.full(n_vars, mode, dtype=object)
    return n_h, n_m, frac, call, var_sp


def contamination(adata: AnnData) -> dict[str, float | int]:
    """Estimate ambient (cross-species) contamination; for reporting only.

    In a xenograft, human tumour cells cannot express mouse genes nor the reverse, so the other
    species' UMIs in a cell called human (mouse) are ambient RNA (or barcode swapping). The fraction
    measures the contamination of *that* cell by the other species' ambient pool; the total ambient
    fraction is larger (ambient RNA of the cell's own species cannot be told apart). It is reported
    per sample in ``results/qc/summary.tsv`` and plotted in ``results/figures/qc_contamination``;
    the counts are **not corrected**. Species calls already tolerate it
    (``species_calling.min_fraction``), the count test of :mod:`tmeflow.cells._cross_species`
    (``species_calling.crossspecies_fdr``) models it per droplet, and the mixed cells it cannot
    explain are removed as cross-species doublets. A sample whose median exceeds a few percent
    deserves SoupX/CellBender-style correction before this workflow (the expression sources subtract
    the expected ambient UMIs, see :mod:`tmeflow.cells._ambient`; the counts matrix is not
    corrected).

    Needs the ``obs`` columns written by :func:`assign_species`.

    Returns
    -------
    dict
        ``mouse_in_human_median``/``_mean``: fraction of mouse UMIs in cells called human;
        ``human_in_mouse_median``/``_mean``: fraction of human UMIs in mouse cells (NaN when
        there are no such cells); ``n_human``, ``n_mouse``, ``n_mixed``.
    """
    need = ("species", "human_fraction")
    if any(c not in adata.obs for c in need):
        msg = "contamination() needs obs 'species' and 'human_fraction'; run assign_species first."
        raise ValueError(msg)
    sp_ = adata.obs["species"].astype(str).to_numpy()
    frac = adata.obs["human_fraction"].to_numpy(dtype=float)
    h, m = sp_ == "human", sp_ == "mouse"

    def _stat(x: np.ndarray, f: Any) -> float:
        return float(f(x)) if x.size else float("nan")

    return {
        "mouse_in_human_median": _stat(1 - frac[h], np.median),
        "mouse_in_human_mean": _stat(1 - frac[h], np.mean),
        "human_in_mouse_median": _stat(frac[m], np.median),
        "human_in_mouse_mean": _stat(frac[m], np.mean),
        "n_human": int(h.sum()),
        "n_mouse": int(m.sum()),
        "n_mixed": int((sp_ == "mixed").sum()),
    }


def species_report(
    adata: AnnData, *, mode: str, min_soup_umis: int | None = None
) -> dict[str, Any]:
    """One row per sample: species composition, prefixes found and contamination.

    Needs :func:`assign_species` to have run. Columns: ``species_mode``, ``n_human``,
    ``n_mouse``, ``n_mixed``, ``pct_human``/``pct_mouse``/``pct_mixed`` (of the cells before
    QC), ``prefixes`` (``human:hg19_;mouse:mm10_``; empty without prefixes) and, in xenograft
    mode, ``contamination_<stat>`` (the ``*_in_*`` statistics of :func:`contamination`) and,
    when the cross-species count test ran, ``n_mixed_fraction`` (mixed by
    ``min_fraction``), ``n_mixed_ambient_test`` (mixed only because their other-species UMIs
    exceed the ambient expectation), ``crossspecies_fdr``, ``ambient_mouse_in_human`` /
    ``ambient_human_in_mouse`` (the modelled ambient fractions ``a_S``), their sources
    (``cells``, ``empty_droplets``, or ``floor``: no estimate, that species' droplets were not
    tested and the rate shown is the unused floor) and ``soup_mouse_fraction`` (mouse share of
    the empty droplets' UMIs; NaN without a raw matrix) and, in xenograft mode,
    ``soup_source_human`` / ``soup_source_mouse``: where the sample's soup profile of each
    species comes from (:func:`tmeflow.cells.soup_profiles` with ``min_soup_umis``, on the
    pure cells; the merged object records the same per sample in ``uns["ambient"]``).
    """
    calls = adata.obs["species"].astype(str).value_counts()
    n = max(int(adata.n_obs), 1)
    row: dict[str, Any] = {"species_mode": mode}
    for s in ("human", "mouse", "mixed"):
        row[f"n_{s}"] = int(calls.get(s, 0))
    for s in ("human", "mouse", "mixed"):
        row[f"pct_{s}"] = 100.0 * row[f"n_{s}"] / n
    found = adata.uns.get("species", {}).get("prefixes", {})
    row["prefixes"] = ";".join(f"{k}:{','.join(v)}" for k, v in sorted(found.items()) if len(v))
    if mode == "xenograft":
        cont = contamination(adata)
        row.update({f"contamination_{k}": v for k, v in cont.items() if "_in_" in k})
    amb = adata.uns.get("species", {}).get("ambient")
    if mode == "xenograft" and amb:
        row["n_mixed_fraction"] = int(amb["n_mixed_fraction"])
        row["n_mixed_ambient_test"] = int(amb["n_mixed_ambient_test"])
        row["crossspecies_fdr"] = float(amb["fdr"])
        row["ambient_mouse_in_human"] = float(amb["rate"]["human"])
        row["ambient_human_in_mouse"] = float(amb["rate"]["mouse"])
        row["ambient_source_human"] = str(amb["source"]["human"])
        row["ambient_source_mouse"] = str(amb["source"]["mouse"])
        row["soup_mouse_fraction"] = float(amb["soup_fraction"].get("mouse", float("nan")))
    if mode == "xenograft" and adata.n_obs:
        row.update(_soup_sources(adata, min_soup_umis))
    return row


def _soup_sources(adata: AnnData, min_soup_umis: int | None) -> dict[str, str]:
    """``soup_source_<species>`` of the sample (:func:`tmeflow.cells.soup_profiles`)."""
    from tmeflow.cells import _ambient as ambient

    pure = adata[adata.obs["species"].astype(str).isin(SPECIES).to_numpy()]
    if not pure.n_obs:
        return {}
    sample = "sample"
    obs = pd.DataFrame({sample: "s", "species": pure.obs["species"].astype(str)})
    one = AnnData(X=pure.X, obs=obs, var=pd.DataFrame({"species": adata.var["species"]}))
    empty = None
    if "ambient_umis" in adata.var:
        empty = pd.DataFrame({"s": adata.var["ambient_umis"].to_numpy(np.float64)},
                             index=adata.var_names)  # fmt: skip
    kw = {} if min_soup_umis is None else {"min_soup_umis": int(min_soup_umis)}
    _, table = ambient.soup_profiles(one, layer=None, empty_umis=empty, **kw)
    return {f"soup_source_{s}": str(table.at["s", f"soup_source_{s}"]) for s in SPECIES}

"""Gene-set enrichment of each cell type's pseudobulk statistic, fully offline.

Genes of a cell type's DE table (:func:`tmeflow.stats.run_de`) are ranked by their test
statistic (PyDESeq2's Wald statistic; the Wilcoxon z of an exploratory table) and tested with
gseapy's preranked GSEA against gene sets read from files shipped with the workflow: GMT files
(the mouse MSigDB Hallmark collection by default) and the marker panel of the annotation,
whose cell types and subtypes become sets ``MARKERS_<label>``. Gene sets always reach gseapy
as a dict: a string would be read as the name of an Enrichr library and downloaded, which a
workflow run must never do (:func:`load_gene_sets` refuses anything that is not a file).

The table of a group holds gseapy's columns (``Term``, ``ES``, ``NES``, ``NOM p-val``,
``FDR q-val``, ``FWER p-val``, ``Tag %``, ``Gene %``, ``Lead_genes``) plus ``cell_type``,
``collection``, ``set_size``, ``de_method``, ``n_ranked`` and ``note`` (:data:`GSEA_COLUMNS`):
positive NES means the set's genes are shifted up in the test arm. Tables of exploratory DE
(``wilcoxon_exploratory``) rank by a statistic that ignores animal-to-animal variation; their
rows say so in ``de_method`` and ``note``.
"""

import logging
from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from tmeflow.core._genesets import marker_sets, read_gmt

logger = logging.getLogger(__name__)

GSEAPY_COLUMNS: list[str] = [
    "Term",
    "ES",
    "NES",
    "NOM p-val",
    "FDR q-val",
    "FWER p-val",
    "Tag %",
    "Gene %",
    "Lead_genes",
]
#: Columns of every table returned by :func:`prerank`, in order.
GSEA_COLUMNS: list[str] = [
    "cell_type",
    "Term",
    "collection",
    *GSEAPY_COLUMNS[1:],
    "set_size",
    "de_method",
    "n_ranked",
    "note",
]
#: Columns of :func:`gsea_summary`, in order.
GSEA_SUMMARY_COLUMNS: list[str] = [
    "cell_type",
    "de_method",
    "n_ranked",
    "n_sets",
    "n_fdr_below",
    "fdr_threshold",
    "note",
]
_NUMERIC = ("ES", "NES", "NOM p-val", "FDR q-val", "FWER p-val")


def load_gene_sets(
    gmts: Iterable[str | PathLike[str]] = (), panel: str | PathLike[str] | None = None
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Gene sets from GMT files and a marker panel, with the collection each came from.

    Returns
    -------
    sets
        Name -> genes (a later duplicate name replaces an earlier one, with a warning).
    collection
        Name -> file name of its source (or ``marker_panel``).
    """
    sets: dict[str, list[str]] = {}
    collection: dict[str, str] = {}
    sources = [(Path(g).name, read_gmt(g)) for g in gmts]
    if panel is not None:
        sources.append(("marker_panel", marker_sets(panel)))
    for source, part in sources:
        for name, genes in part.items():
            if name in sets:
                logger.warning("gene set %s defined twice; keeping the one from %s", name, source)
            sets[name] = genes
            collection[name] = source
    if not sets:
        msg = "no gene sets: give at least one GMT file or a marker panel"
        raise ValueError(msg)
    return sets, collection


def ranking(de_table: pd.DataFrame) -> pd.Series:
    """Gene -> ranking statistic (``stat``) of a DE table, finite values only, descending."""
    missing = [c for c in ("gene", "stat") if c not in de_table.columns]
    if missing:
        msg = f"DE table lacks column(s) {missing}; pass a table of tmeflow.stats.run_de"
        raise KeyError(msg)
    stat = pd.to_numeric(de_table["stat"], errors="coerce").to_numpy(float)
    genes = de_table["gene"].astype(str).to_numpy()
    keep = np.isfinite(stat)
    rnk = pd.Series(stat[keep], index=pd.Index(genes[keep], name="gene"), name="stat")
    rnk = rnk[~rnk.index.duplicated()]
    # descending by statistic, ties by name, so the input order never matters
    order = np.lexsort((rnk.index.to_numpy(), -rnk.to_numpy()))
    return rnk.iloc[order]


def _empty(cell_type: str, note: str, de_method: str, n_ranked: int) -> pd.DataFrame:
    table = pd.DataFrame({c: pd.Series(dtype=object) for c in GSEA_COLUMNS})
    table.attrs.update(note=note, cell_type=cell_type, de_method=de_method, n_ranked=n_ranked)
    return table


def prerank(
    de_table: pd.DataFrame,
    gene_sets: Mapping[str, Sequence[str]],
    *,
    cell_type: str,
    collection: Mapping[str, str] | None = None,
    permutations: int = 1000,
    min_size: int = 5,
    max_size: int = 500,
    seed: int = 0,
    threads: int = 1,
) -> pd.DataFrame:
    """Preranked GSEA of one DE table against in-memory gene sets.

    Parameters
    ----------
    de_table
        A table of :func:`tmeflow.stats.run_de` (``gene``, ``stat``, ``method``).
    gene_sets
        Name -> genes, e.g. from :func:`load_gene_sets`. Must be a mapping: gseapy reads a
        string as an Enrichr library name and downloads it.
    cell_type
        Group the table belongs to (written in ``cell_type``).
    collection
        Set name -> source collection (``collection`` column).
    permutations
        Gene-set permutations of gseapy (``permutation_num``); the smallest nominal p-value
        is about ``1 / permutations``.
    min_size, max_size
        Sets with fewer / more genes among the ranked ones are skipped.
    seed
        gseapy's random seed.
    threads
        gseapy threads.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`GSEA_COLUMNS`, sorted by FDR, then p-value, then ``|NES|``
        (descending), then term. Empty (with ``attrs["note"]``) when the DE table is empty
        (DE did not test the group, e.g. a one-condition design), has fewer than
        ``max(min_size, 10)`` ranked genes, gives every gene the same statistic (no ranking),
        or no set has ``min_size`` of them (e.g. a human tumour table against mouse sets);
        each of these is also logged as a WARNING naming the cell type.
    """
    if not isinstance(gene_sets, Mapping):
        msg = (
            "gene_sets must be a mapping name -> genes (see load_gene_sets); a string would "
            "make gseapy download an Enrichr library"
        )
        raise TypeError(msg)
    if permutations < 1:
        msg = f"permutations={permutations} must be at least 1"
        raise ValueError(msg)
    de_method = (
        str(de_table["method"].iat[0])
        if "method" in de_table.columns and len(de_table)
        else str(de_table.attrs.get("method", "not_tested"))
    )
    # an empty table is checked before ranking, so one without even a header is not a
    # missing-column error
    rnk = ranking(de_table) if not de_table.empty else pd.Series(dtype=float)
    sets = _testable_sets(gene_sets, rnk, min_size=min_size, max_size=max_size)
    note = _untestable(de_table, rnk, sets, min_size=min_size, max_size=max_size)
    if note:
        logger.warning("GSEA %s: %s", cell_type, note)
        return _empty(cell_type, note, de_method, len(rnk))
    res = _run_gseapy(
        rnk,
        sets,
        cell_type=cell_type,
        permutations=permutations,
        min_size=min_size,
        max_size=max_size,
        seed=seed,
        threads=threads,
    )
    return _result_table(
        res,
        sets,
        cell_type=cell_type,
        collection=collection,
        de_method=de_method,
        n_ranked=len(rnk),
    )


def _testable_sets(
    gene_sets: Mapping[str, Iterable[str]], rnk: pd.Series, *, min_size: int, max_size: int
) -> dict[str, list[str]]:
    """The sets restricted to ranked genes, keeping those of ``min_size``..``max_size``."""
    ranked = set(rnk.index)
    sets = {}
    for name, genes in gene_sets.items():
        hit = [g for g in dict.fromkeys(genes) if g in ranked]
        if min_size <= len(hit) <= max_size and len(hit) < len(rnk):
            sets[str(name)] = hit
    return sets


def _untestable(
    de_table: pd.DataFrame,
    rnk: pd.Series,
    sets: Mapping[str, list[str]],
    *,
    min_size: int,
    max_size: int,
) -> str:
    """Why this ranking cannot be tested (``""`` when it can), first reason first."""
    if de_table.empty:
        # DE did not test this group (e.g. a one-condition design: nothing to compare)
        why = str(de_table.attrs.get("note") or "see the DE summary for why")
        return f"not tested: empty DE table ({why})"
    if len(rnk) < max(min_size, 10):
        return f"not tested: {len(rnk)} genes with a statistic"
    if rnk.nunique() < 2:
        # no ranking at all: gseapy would order the genes arbitrarily (and report strong
        # enrichments) or, when every statistic is 0, panic inside its Rust core
        return (
            f"not tested: all {len(rnk)} genes have the same statistic ({float(rnk.iat[0]):g}), "
            "so there is no ranking"
        )
    if not sets:
        return (
            f"not tested: no gene set has between {min_size} and {max_size} of the "
            f"{len(rnk)} ranked genes (different species or symbols?)"
        )
    return ""


def _run_gseapy(
    rnk: pd.Series,
    sets: dict[str, list[str]],
    *,
    cell_type: str,
    permutations: int,
    min_size: int,
    max_size: int,
    seed: int,
    threads: int,
):
    """Run ``gseapy.prerank`` offline; a failure inside it names the cell type."""
    import gseapy

    try:
        res = gseapy.prerank(
            rnk=rnk,
            gene_sets=sets,  # a dict: gseapy never looks a name up online
            outdir=None,
            permutation_num=int(permutations),
            min_size=int(min_size),
            max_size=int(max_size),
            seed=int(seed),
            threads=int(threads),
            no_plot=True,
            verbose=False,
        )
    except BaseException as exc:
        # gseapy's Rust core fails with pyo3's PanicException, a BaseException
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        msg = (
            f"GSEA of cell type {cell_type!r} failed inside gseapy ({type(exc).__name__}: "
            f"{exc}) on {len(rnk)} ranked genes ({rnk.nunique()} distinct statistics) and "
            f"{len(sets)} gene sets; check this cell type's DE table, or raise gsea.min_size "
            "in the config to skip small sets"
        )
        raise RuntimeError(msg) from exc
    return res


def _result_table(
    res,
    sets: Mapping[str, list[str]],
    *,
    cell_type: str,
    collection: Mapping[str, str] | None,
    de_method: str,
    n_ranked: int,
) -> pd.DataFrame:
    """Turn the results of gseapy into :data:`GSEA_COLUMNS`, sorted, with their provenance."""
    out = res.res2d.copy()
    for col in _NUMERIC:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    out["Term"] = out["Term"].astype(str)
    out["cell_type"] = cell_type
    out["collection"] = out["Term"].map(dict(collection or {})).fillna("")
    out["set_size"] = out["Term"].map({k: len(v) for k, v in sets.items()}).astype(np.int64)
    out["de_method"] = de_method
    out["n_ranked"] = n_ranked
    out["note"] = (
        "exploratory: genes ranked by a cell-level Wilcoxon statistic (too few animals)"
        if de_method == "wilcoxon_exploratory"
        else ""
    )
    out["_abs"] = out["NES"].abs()
    out = out.sort_values(
        ["FDR q-val", "NOM p-val", "_abs", "Term"],
        ascending=[True, True, False, True],
        kind="mergesort",
    )
    out = out[GSEA_COLUMNS].reset_index(drop=True)
    out.attrs.update(note="", cell_type=cell_type, de_method=de_method, n_ranked=n_ranked)
    return out


def gsea_summary(tables: Mapping[str, pd.DataFrame], *, fdr: float = 0.25) -> pd.DataFrame:
    """One row per cell type: method, genes ranked, sets tested and with FDR < ``fdr``, note."""
    rows = []
    for cell_type, table in tables.items():
        tested = len(table)
        rows.append(
            {
                "cell_type": cell_type,
                "de_method": table.attrs.get("de_method", ""),
                "n_ranked": table.attrs.get("n_ranked", 0),
                "n_sets": tested,
                "n_fdr_below": int((pd.to_numeric(table["FDR q-val"]) < fdr).sum())
                if tested
                else 0,
                "fdr_threshold": fdr,
                "note": table.attrs.get("note", "")
                or (str(table["note"].iat[0]) if tested else ""),
            }
        )
    return pd.DataFrame(
        rows,
        columns=GSEA_SUMMARY_COLUMNS,
    )


def prerank_files(
    de_tables: Iterable[str | PathLike[str]],
    gene_sets: Mapping[str, Iterable[str]],
    *,
    collection: Mapping[str, str] | None = None,
    permutations: int = 1000,
    min_size: int = 5,
    max_size: int = 500,
    seed: int = 0,
    threads: int = 1,
) -> dict[str, pd.DataFrame]:
    """Run :func:`prerank` on every DE table file, the cell type being the file's stem.

    Parameters
    ----------
    de_tables
        DE table files (TSV, as written by the DE step), one per cell type.
    gene_sets, collection, permutations, min_size, max_size, seed, threads
        As for :func:`prerank`.

    Returns
    -------
    dict
        Cell type -> its GSEA table, in file-name order; each is logged with its note.
    """
    results = {}
    for path in sorted(Path(p) for p in de_tables):
        res = prerank(
            pd.read_csv(path, sep="\t"),
            gene_sets,
            cell_type=path.stem,
            collection=collection,
            permutations=permutations,
            min_size=min_size,
            max_size=max_size,
            seed=seed,
            threads=threads,
        )
        logger.info("%s: %d sets tested, %s", path.stem, len(res), res.attrs.get("note", ""))
        results[path.stem] = res
    return results

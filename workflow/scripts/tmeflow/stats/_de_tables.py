"""DE at the workflow's two levels, cell type and subtype, with its summary and GOI report.

:func:`run_levels` is what the ``de_pseudobulk`` rule runs: :func:`tmeflow.stats.run_de` by
``cell_type`` and, when asked, by the subtypes worth a test of their own
(:func:`subtype_groups`); one :func:`de_summary` row per group saying which test ran and why
(with a warning when a group fell back to the exploratory Wilcoxon); and the
genes-of-interest report (:func:`tmeflow.stats.genes_of_interest`) at both levels.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import pandas as pd
from anndata import AnnData

from tmeflow._utils import observed_levels
from tmeflow.core import _tables as tables
from tmeflow.stats._de import METHOD_NOT_TESTED, METHOD_WILCOXON, DESettings, empty_table
from tmeflow.stats._genes_of_interest import GOI_COLUMNS, GOI_SAMPLE_COLUMNS, genes_of_interest
from tmeflow.stats._pseudobulk import check_obs, select_arms

__all__ = ["DE_SUMMARY_COLUMNS", "DELevels", "de_summary", "run_levels", "subtype_groups"]

logger = logging.getLogger(__name__)

#: Columns of :func:`de_summary`, in order.
DE_SUMMARY_COLUMNS: list[str] = [
    "level",
    "cell_type",
    "method",
    "exploratory",
    "species",
    "n_genes",
    "n_significant",
    "n_samples_reference",
    "n_samples_test",
    "note",
]


def subtype_groups(
    adata: AnnData,
    *,
    type_key: str = "cell_type",
    subtype_key: str = "cell_subtype",
    unassigned_suffix: str = "_unassigned",
) -> tuple[list[str], dict[str, str]]:
    """Subtypes worth a DE test of their own: those of cell types that were split.

    A type without subtypes has ``cell_subtype == cell_type``; testing it again would repeat
    the type-level test, so only labels that differ from their type are returned (in the
    order of ``obs[subtype_key]``). Labels ending in ``unassigned_suffix`` (cells of a split
    type matching no subtype) are not a biological group: they are returned in ``skipped``
    with the reason, so the summary can list them.

    Parameters
    ----------
    adata
        Annotated object.
    type_key, subtype_key
        ``obs`` columns of the cell types and their subtypes.
    unassigned_suffix
        Suffix of the labels of a split type's cells that match no subtype.

    Returns
    -------
    tested
        Subtype labels to test.
    skipped
        Label -> reason it is not tested.
    """
    check_obs(adata, [type_key, subtype_key])
    obs = adata.obs
    pairs = pd.DataFrame(
        {"type": obs[type_key].astype(str).to_numpy(), "sub": obs[subtype_key].astype(str)}
    ).drop_duplicates()
    tested: list[str] = []
    skipped: dict[str, str] = {}
    for sub in observed_levels(obs[subtype_key]):
        parents = sorted(set(pairs.loc[pairs["sub"] == sub, "type"]))
        if parents == [sub]:
            continue
        if sub.endswith(unassigned_suffix):
            skipped[sub] = (
                f"not tested: {sub!r} holds cells of {'/'.join(parents)} matching no subtype "
                "(not a biological group)"
            )
            continue
        tested.append(sub)
    return tested, skipped


def de_summary(
    de_tables: dict[str, pd.DataFrame], *, alpha: float = 0.05, level: str | None = None
) -> pd.DataFrame:
    """Summarise :func:`tmeflow.stats.run_de` output, one row per group.

    Columns :data:`DE_SUMMARY_COLUMNS`: ``level`` (the ``level`` given, e.g. ``cell_type`` or
    ``cell_subtype``), ``cell_type`` (the group), ``method``, ``exploratory`` (True for
    ``wilcoxon_exploratory`` rows, whose p-values ignore animal-to-animal variation),
    ``species`` (genes tested), ``n_genes``, ``n_significant`` (``padj < alpha``), animals per
    arm and ``note``. Write this table next to the DE tables: the note of an empty (not
    tested) table lives only in its ``attrs``.

    Parameters
    ----------
    de_tables
        Group -> DE table, as returned by :func:`tmeflow.stats.run_de`.
    alpha
        Significance threshold on ``padj``.
    level
        Value of the ``level`` column.

    Returns
    -------
    pandas.DataFrame
        One row per group, in the order of ``de_tables``.
    """
    rows = []
    for group, table in de_tables.items():
        method = table.attrs.get(
            "method", table["method"].iat[0] if len(table) else METHOD_NOT_TESTED
        )
        rows.append(
            {
                "level": level,
                "cell_type": group,
                "method": method,
                "exploratory": method == METHOD_WILCOXON,
                "species": table.attrs.get("species"),
                "n_genes": len(table),
                "n_significant": int((table["padj"] < alpha).sum()),
                "n_samples_reference": (
                    int(table["n_samples_reference"].iat[0]) if len(table) else pd.NA
                ),
                "n_samples_test": int(table["n_samples_test"].iat[0]) if len(table) else pd.NA,
                "note": table.attrs.get("note", ""),
            }
        )
    out = pd.DataFrame(rows, columns=DE_SUMMARY_COLUMNS)
    for col in ("n_samples_reference", "n_samples_test"):
        out[col] = pd.to_numeric(out[col]).astype("Int64")
    out["exploratory"] = out["exploratory"].astype(bool)
    return out


@dataclass(frozen=True)
class DELevels:
    """The tables of :func:`run_levels`, as the ``de_pseudobulk`` rule writes them.

    Attributes
    ----------
    by_type
        Cell type -> DE table (columns :data:`tmeflow.stats.DE_COLUMNS`).
    by_subtype
        Tested subtype -> DE table; empty when subtypes are off or no type was split.
    summary
        :func:`de_summary` of both levels, skipped subtypes included.
    goi
        Genes-of-interest report of both levels: ``level``, then
        :data:`tmeflow.GOI_COLUMNS`.
    values
        Its per-animal pseudobulk: ``level``, then :data:`tmeflow.GOI_SAMPLE_COLUMNS`.
    """

    by_type: dict[str, pd.DataFrame]
    by_subtype: dict[str, pd.DataFrame]
    summary: pd.DataFrame
    goi: pd.DataFrame
    values: pd.DataFrame

    def write(
        self,
        *,
        tables_dir: str | PathLike[str],
        subtypes_dir: str | PathLike[str],
        summary: str | PathLike[str],
        goi: str | PathLike[str],
        values: str | PathLike[str],
    ) -> None:
        """Write every table: one TSV per group in each directory (created even when empty).

        Parameters
        ----------
        tables_dir, subtypes_dir
            Directories of the cell-type and subtype DE tables (``<group>.tsv``).
        summary, goi, values
            Paths of :attr:`summary`, :attr:`goi` and :attr:`values`.
        """
        for by_group, outdir in ((self.by_type, tables_dir), (self.by_subtype, subtypes_dir)):
            Path(outdir).mkdir(parents=True, exist_ok=True)
            for group, table in sorted(by_group.items()):
                tables.write_tsv(table, Path(outdir) / f"{group}.tsv")
        tables.write_tsv(self.summary, summary)
        tables.write_tsv(self.goi, goi)
        tables.write_tsv(self.values, values)


def run_levels(
    adata: AnnData,
    settings: DESettings,
    *,
    genes: Sequence[str],
    subtypes: bool = True,
    summary_path: str = "the DE summary",
) -> DELevels:
    """Run DE by cell type and by subtype, summarise both and report the genes of interest.

    Subtypes are tested when ``subtypes`` and ``obs`` has ``cell_subtype``: those of split
    types (:func:`subtype_groups`); the unassigned remainder is logged and listed in the
    summary as not tested. Each level's tables are logged (genes tested, ``padj < alpha``),
    and a WARNING counts the groups tested with the exploratory Wilcoxon fallback.

    Parameters
    ----------
    adata
        Annotated object with raw counts in ``layers['counts']`` and ``obs`` columns
        ``sample``, ``cell_type``, ``condition_key`` (``cell_subtype`` for subtypes); cells of
        other arms than the contrast's two are left out (:func:`~tmeflow.stats.select_arms`).
    settings
        The contrast, DE settings and the layer of integer counts tested and reported
        (``counts_ambient_corrected`` for the ambient-corrected counts of
        :func:`tmeflow.cells.corrected_counts`).
    genes
        Genes of interest, as in :func:`tmeflow.stats.genes_of_interest`.
    subtypes
        Also test the subtypes of split cell types.
    summary_path
        Where the summary is written, named in the exploratory warning.

    Returns
    -------
    DELevels
        The tables to write; ``adata`` is not modified.
    """
    adata = select_arms(adata, settings.condition_key, settings.reference, settings.test)
    alpha = settings.alpha
    by_type = settings.run(adata, group_key="cell_type")
    _log_tested(by_type, alpha, "cell_type")

    by_sub: dict[str, pd.DataFrame] = {}
    skipped: dict[str, str] = {}
    if subtypes and "cell_subtype" in adata.obs.columns:
        wanted, skipped = subtype_groups(adata)
        if wanted:
            by_sub = settings.run(adata, group_key="cell_subtype", groups=wanted)
        for label, note in skipped.items():
            logger.warning("cell_subtype %s: %s", label, note)
    _log_tested(by_sub, alpha, "cell_subtype")

    summary = pd.concat(
        [
            de_summary(by_type, alpha=alpha, level="cell_type"),
            de_summary(
                {**by_sub, **{k: empty_table(v) for k, v in skipped.items()}},
                alpha=alpha,
                level="cell_subtype",
            ),
        ],
        ignore_index=True,
    )
    n_expl = int(summary["exploratory"].sum())
    if n_expl:
        logger.warning(
            "%d group(s) tested with the cell-level Wilcoxon fallback (method "
            "wilcoxon_exploratory): too few animals per arm; their p-values ignore "
            "animal-to-animal variation and are NOT evidence (see %s)",
            n_expl,
            summary_path,
        )
    report, values = _goi_levels(
        adata, by_type, by_sub, genes=genes, condition_key=settings.condition_key,
        arms=(settings.reference, settings.test), layer=settings.layer,
    )  # fmt: skip
    return DELevels(by_type, by_sub, summary, report, values)


def _log_tested(results: dict[str, pd.DataFrame], alpha: float, level: str) -> None:
    for group, table in sorted(results.items()):
        n_sig = int((table["padj"] < alpha).sum())
        logger.info(
            "%s %s: %d genes tested, %d with padj < %s", level, group, len(table), n_sig, alpha
        )


def _goi_levels(
    adata: AnnData,
    by_type: dict[str, pd.DataFrame],
    by_sub: dict[str, pd.DataFrame],
    *,
    genes: Sequence[str],
    condition_key: str,
    arms: tuple[str, str],
    layer: str = "counts",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Genes-of-interest report and per-animal values of both levels, ``level`` first."""
    goi_args = dict(
        genes=list(genes), condition_key=condition_key, reference=arms[0], test=arms[1],
        layer=layer,
    )  # fmt: skip
    report, values = genes_of_interest(adata, by_type, group_key="cell_type", **goi_args)
    parts_goi, parts_val = [report.assign(level="cell_type")], [values.assign(level="cell_type")]
    if by_sub:
        goi_s, values_s = genes_of_interest(
            adata, by_sub, group_key="cell_subtype", groups=list(by_sub), **goi_args
        )
        parts_goi.append(goi_s.assign(level="cell_subtype"))
        parts_val.append(values_s.assign(level="cell_subtype"))
    report = pd.concat(parts_goi, ignore_index=True)
    values = pd.concat(parts_val, ignore_index=True)
    return report[["level", *GOI_COLUMNS]], values[["level", *GOI_SAMPLE_COLUMNS]]

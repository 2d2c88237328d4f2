"""The genes-of-interest report: DE result and descriptive expression of named genes per group.

For every gene of the config's ``genes_of_interest`` and every group (cell type or subtype),
:func:`genes_of_interest` copies the row of the :func:`tmeflow.stats.run_de` table (or says why
there is none) and adds the fraction of expressing cells and the mean log1p CP10k per arm,
plus a per-animal pseudobulk table (counts and CPM) for the figures.
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from tmeflow._utils import observed_levels, row_sums
from tmeflow.stats._de import METHOD_NOT_TESTED
from tmeflow.stats._pseudobulk import check_obs, counts_matrix, cp10k_log, pair_indicator

__all__ = ["GOI_COLUMNS", "GOI_SAMPLE_COLUMNS", "genes_of_interest"]

_DE_FIELDS: tuple[str, ...] = (
    "log2FoldChange",
    "ci_low",
    "ci_high",
    "pvalue",
    "padj",
    "method",
    "n_samples_reference",
    "n_samples_test",
)
"""The columns of the report copied from the gene's row of the DE table."""

#: Columns of the per-gene report of :func:`genes_of_interest`, in order.
GOI_COLUMNS: list[str] = [
    "gene",
    "cell_type",
    "present",
    *_DE_FIELDS,
    "frac_expressing_reference",
    "frac_expressing_test",
    "mean_norm_reference",
    "mean_norm_test",
    "note",
]

#: Columns of the per-sample table of :func:`genes_of_interest`, in order.
GOI_SAMPLE_COLUMNS: list[str] = [
    "gene",
    "cell_type",
    "sample",
    "condition",
    "n_cells",
    "counts",
    "cpm",
]


def _not_tested_note(
    gene: str, gene_species: str | None, table: pd.DataFrame | None, group: str
) -> str:
    if table is None:
        return f"not tested: no DE table for {group!r}"
    if len(table) == 0:
        return str(table.attrs.get("note") or "not tested: empty DE table")
    tsp = table.attrs.get("species")
    if tsp is not None and gene_species is not None and gene_species != tsp:
        return f"not tested: {gene_species} gene; the {group} table holds {tsp} genes only"
    if "species" not in table.attrs:
        return "not tested: gene not in the DE table (other species, or no counts)"
    return "not tested: no counts in this group's samples"


def genes_of_interest(
    adata: AnnData,
    de_tables: dict[str, pd.DataFrame],
    *,
    genes: Sequence[str],
    group_key: str = "cell_type",
    condition_key: str = "condition",
    reference: str,
    test: str,
    sample_key: str = "sample",
    layer: str | None = "counts",
    groups: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Report the named genes in every group: DE result plus descriptive expression.

    Symbols match case-sensitively (mouse ``Axl`` and human ``AXL`` are different genes).
    A gene absent from ``var_names`` is reported with ``present=False`` and a note, not an
    error.

    Parameters
    ----------
    adata
        The object :func:`tmeflow.stats.run_de` was run on.
    de_tables
        Output of :func:`tmeflow.stats.run_de` (``attrs`` are used for the notes when present).
    genes
        Symbols to report, in the order given.
    group_key, condition_key, sample_key, layer
        As in :func:`tmeflow.stats.run_de`.
    reference, test
        The contrast's levels.
    groups
        Groups to report (default: every observed level of ``group_key`` and every key of
        ``de_tables``), e.g. only the subtypes that were tested.

    Returns
    -------
    report
        One row per gene x group (columns :data:`GOI_COLUMNS`): DE statistics, and over every
        cell of the group in each arm the fraction with count > 0 and the mean log1p CP10k.
    per_sample
        Pseudobulk per gene x group x animal of the two arms (columns
        :data:`GOI_SAMPLE_COLUMNS`); ``cpm`` is relative to all genes of that profile.
    """
    check_obs(adata, [sample_key, group_key, condition_key])
    mat = counts_matrix(adata, layer)
    var_names = pd.Index(adata.var_names.astype(str))
    genes = [str(g) for g in dict.fromkeys(genes)]
    present = [g for g in genes if g in var_names]
    idx = var_names.get_indexer(present)

    totals = row_sums(mat)
    sub = mat[:, idx] if len(idx) else sp.csr_matrix((adata.n_obs, 0), dtype=mat.dtype)
    sub = sp.csr_matrix(sub)

    cond = adata.obs[condition_key].astype(str).to_numpy()
    grp = adata.obs[group_key].astype(str).to_numpy()
    groups = (
        list(dict.fromkeys([*observed_levels(adata.obs[group_key]), *de_tables]))
        if groups is None
        else [str(g) for g in groups]
    )
    report = _report(
        adata,
        de_tables,
        genes=genes,
        present=present,
        sub=sub,
        totals=totals,
        cond=cond,
        grp=grp,
        groups=groups,
        arms=(reference, test),
    )
    per_sample = _per_sample(
        adata,
        sub=sub,
        totals=totals,
        present=present,
        in_arms=np.isin(cond, [reference, test]),
        groups=groups,
        keys=(sample_key, group_key, condition_key),
        arms=(reference, test),
    )
    return report, per_sample


def _report(
    adata: AnnData,
    de_tables: dict[str, pd.DataFrame],
    *,
    genes: list[str],
    present: list[str],
    sub: sp.csr_matrix,
    totals: np.ndarray,
    cond: np.ndarray,
    grp: np.ndarray,
    groups: list[str],
    arms: tuple[str, str],
) -> pd.DataFrame:
    """One row per gene x group: DE statistics and descriptive expression per arm."""
    var_names = pd.Index(adata.var_names.astype(str))
    gene_species = adata.var["species"].astype(str) if "species" in adata.var.columns else None
    lognorm = cp10k_log(sub, totals)
    expressed = sp.csr_matrix(sub > 0).astype(np.float64)
    rows = []
    for gene in genes:
        is_present = gene in var_names
        gsp = (
            str(gene_species.iat[var_names.get_loc(gene)])
            if is_present and (gene_species is not None)
            else None
        )
        j = present.index(gene) if is_present else None
        for group in groups:
            row: dict[str, object] = {c: np.nan for c in GOI_COLUMNS}
            row.update(gene=gene, cell_type=group, present=is_present, method=METHOD_NOT_TESTED)
            if not is_present:
                row["note"] = "gene absent from the data"
                rows.append(row)
                continue
            for arm_name, level in zip(("reference", "test"), arms, strict=True):
                cells = np.flatnonzero((grp == group) & (cond == level))
                if cells.size:
                    row[f"frac_expressing_{arm_name}"] = float(expressed[cells, j].mean())
                    row[f"mean_norm_{arm_name}"] = float(lognorm[cells, j].mean())
            _copy_de(row, de_tables.get(group), gene=gene, gene_species=gsp, group=group)
            rows.append(row)
    report = pd.DataFrame(rows, columns=GOI_COLUMNS)
    report["present"] = report["present"].astype(bool)
    for col in ("n_samples_reference", "n_samples_test"):
        report[col] = pd.to_numeric(report[col]).astype("Int64")
    return report


def _copy_de(
    row: dict[str, object],
    table: pd.DataFrame | None,
    *,
    gene: str,
    gene_species: str | None,
    group: str,
) -> None:
    """Fill ``row`` from the gene's row of the group's DE table, or note why there is none."""
    hit = table[table["gene"] == gene] if table is not None and len(table) else None
    if hit is not None and len(hit):
        rec = hit.iloc[0]
        for col in _DE_FIELDS:
            row[col] = rec[col]
        row["note"] = rec.get("note", "") if isinstance(rec.get("note", ""), str) else ""
    else:
        row["note"] = _not_tested_note(gene, gene_species, table, group)


def _per_sample(
    adata: AnnData,
    *,
    sub: sp.csr_matrix,
    totals: np.ndarray,
    present: list[str],
    in_arms: np.ndarray,
    groups: list[str],
    keys: tuple[str, str, str],
    arms: tuple[str, str],
) -> pd.DataFrame:
    """Pseudobulk counts and CPM of the present genes per group x animal of the two arms."""
    sample_key, group_key, condition_key = keys
    reference, test = arms
    view = adata[in_arms]
    ind, pairs = pair_indicator(view, sample_key, group_key)
    pb = (ind @ sub[in_arms]).toarray()
    libsize = ind @ totals[in_arms]
    sample_cond = (
        adata.obs.loc[in_arms]
        .groupby(adata.obs.loc[in_arms, sample_key].astype(str), observed=True)[condition_key]
        .first()
        .astype(str)
    )
    in_groups = np.isin(pairs["group"].to_numpy().astype(str), groups)
    pairs, pb, libsize = pairs[in_groups], pb[in_groups], libsize[in_groups]
    per = []
    for j, gene in enumerate(present):
        per.append(
            pd.DataFrame(
                {
                    "gene": gene,
                    "cell_type": pairs["group"].to_numpy(),
                    "sample": pairs["sample"].to_numpy(),
                    "condition": sample_cond.reindex(pairs["sample"]).to_numpy(),
                    "n_cells": pairs["n_cells"].to_numpy(),
                    "counts": pb[:, j].astype(np.int64),
                    "cpm": np.divide(
                        pb[:, j] * 1e6, libsize, out=np.zeros(len(libsize)), where=libsize > 0
                    ),
                }
            )
        )
    per_sample = (
        pd.concat(per, ignore_index=True)
        if per
        else pd.DataFrame({c: pd.Series(dtype=object) for c in GOI_SAMPLE_COLUMNS})
    )
    if len(per_sample):
        # genes in the order asked, groups as in the report, reference animals first
        rank = {
            "gene": {g: i for i, g in enumerate(present)},
            "cell_type": {g: i for i, g in enumerate(groups)},
            "condition": {reference: 0, test: 1},
        }
        per_sample = per_sample.sort_values(
            ["gene", "cell_type", "condition", "sample"],
            key=lambda s: s.map(rank[s.name]) if s.name in rank else s,
            kind="mergesort",
        ).reset_index(drop=True)
    return per_sample[GOI_SAMPLE_COLUMNS]

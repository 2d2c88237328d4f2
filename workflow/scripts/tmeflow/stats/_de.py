"""Differential expression per cell type with the animal (sample) as the unit of inference.

Counts are summed per (sample, cell type) into pseudobulk profiles
(:mod:`tmeflow.stats._pseudobulk`) and tested with PyDESeq2 (negative-binomial GLM, Wald test).
Where an arm has fewer than ``min_replicates`` animals with enough cells, a cell-level Wilcoxon test
is run instead and every row is labelled ``wilcoxon_exploratory``: cells of one animal are not
independent, so its p-values are anti-conservative and must not be read as evidence.

Output tables (one per group) have the columns of :data:`DE_COLUMNS`; the group column of the
reports is always named ``cell_type``, whatever ``group_key`` was used. The genes-of-interest report
is :mod:`tmeflow.stats._genes_of_interest`; the cell-type and subtype runs of the workflow's rule
are :mod:`tmeflow.stats._de_tables`.
"""

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scipy import stats

from tmeflow._utils import natural_key, observed_levels, row_sums
from tmeflow.stats import _de_methods as de_tests
from tmeflow.stats._pseudobulk import check_obs, counts_matrix, pseudobulk
from tmeflow.stats._voom import METHOD_VOOM, voom_limma_test

__all__ = [
    "DE_COLUMNS",
    "METHOD_NOT_TESTED",
    "METHOD_PYDESEQ2",
    "METHOD_VOOM",
    "METHOD_WILCOXON",
    "PSEUDOBULK_METHODS",
    "SHRUNK_COLUMNS",
    "empty_table",
    "pseudobulk",
    "run_de",
]

logger = logging.getLogger(__name__)

#: Columns of every table returned by :func:`run_de`, in order.
DE_COLUMNS: list[str] = [
    "gene",
    "baseMean",
    "log2FoldChange",
    "lfcSE",
    "stat",
    "pvalue",
    "padj",
    "ci_low",
    "ci_high",
    "method",
    "n_samples_reference",
    "n_samples_test",
    "n_cells_reference",
    "n_cells_test",
    "note",
]

METHOD_PYDESEQ2 = "pydeseq2"
METHOD_WILCOXON = "wilcoxon_exploratory"
METHOD_NOT_TESTED = "not_tested"
#: The pseudobulk tests :func:`run_de` can run (``method``).
PSEUDOBULK_METHODS: tuple[str, ...] = (METHOD_PYDESEQ2, METHOD_VOOM)

#: Extra columns of a PyDESeq2 table when :func:`run_de` is asked to ``shrink``.
SHRUNK_COLUMNS: list[str] = ["log2FoldChange_shrunk", "lfcSE_shrunk"]

#: z quantile of the two-sided 95% Wald interval.
_Z95 = 1.959963984540054


def empty_table(note: str, *, species: str | None = None) -> pd.DataFrame:
    """An empty DE table (columns :data:`DE_COLUMNS`) for a group that was not tested.

    ``attrs`` hold ``note``, ``method="not_tested"`` and ``species``, which
    :func:`tmeflow.stats.de_summary` reports.
    """
    table = pd.DataFrame(
        {
            c: pd.Series(dtype=object if c in {"gene", "method", "note"} else float)
            for c in DE_COLUMNS
        }
    )
    table.attrs["note"] = note
    table.attrs["method"] = METHOD_NOT_TESTED
    table.attrs["species"] = species
    return table


def _majority_species(adata: AnnData, mask: np.ndarray, counts: sp.csr_matrix) -> str | None:
    """Majority species of the cells in ``mask`` (obs['species'], else the UMIs' species)."""
    if "species" in adata.obs.columns:
        sp_cells = adata.obs["species"].to_numpy()[mask].astype(str)
        vc = pd.Series(sp_cells[np.isin(sp_cells, ["human", "mouse"])]).value_counts()
        if len(vc):
            # ties are broken alphabetically so the choice is deterministic
            top = vc[vc == vc.max()].index
            return str(sorted(top)[0])
    if "species" in adata.var.columns:
        sums = np.asarray(counts[mask].sum(axis=0)).ravel()
        by_sp = pd.Series(sums).groupby(adata.var["species"].astype(str).to_numpy()).sum()
        by_sp = by_sp[by_sp.index.isin(["human", "mouse"])]
        if len(by_sp) and by_sp.max() > 0:
            return str(by_sp.idxmax())
    return None


def _finish(table: pd.DataFrame, **constants: object) -> pd.DataFrame:
    for key, value in constants.items():
        table[key] = value
    table = table.sort_values(["pvalue", "gene"], na_position="last", kind="mergesort")
    table = table.reset_index(drop=True)
    return table[DE_COLUMNS + [c for c in SHRUNK_COLUMNS if c in table.columns]]


@dataclass(frozen=True)
class _Run:
    """What every group's test of one :func:`run_de` call shares: data, columns, settings."""

    adata: AnnData
    mat: sp.csr_matrix  # raw counts, cells x genes
    totals: np.ndarray  # each cell's total count
    cond: np.ndarray  # obs[condition_key] as str
    grp: np.ndarray  # obs[group_key] as str
    gene_species: np.ndarray | None  # var['species'] as str
    counts_pb: pd.DataFrame  # pseudobulk counts, (sample|group) x genes
    meta: pd.DataFrame  # pseudobulk metadata
    group_key: str
    condition_key: str
    sample_key: str
    reference: str
    test: str
    min_cells: int
    min_replicates: int
    covariates: list[str]
    threads: int
    alpha: float
    restrict_species: bool
    shrink: bool = False
    method: str = "pydeseq2"

    def species_of(self, in_group: np.ndarray) -> str | None:
        """Majority species of the group's cells, when genes are restricted by species."""
        if self.restrict_species and self.gene_species is not None and in_group.any():
            return _majority_species(self.adata, in_group, self.mat)
        return None


@dataclass(frozen=True)
class DESettings:
    """The contrast and DE settings (config ``contrast`` and ``de``) shared by every DE run.

    One object carries them from the rule's parameters to each :func:`run_de` call: the DE
    tables at both levels (:func:`tmeflow.stats.run_levels`) and the confirmatory family.
    """

    condition_key: str
    reference: str
    test: str
    min_cells: int = 10
    min_replicates: int = 2
    covariates: tuple[str, ...] = ()
    threads: int = 1
    alpha: float = 0.05
    layer: str | None = "counts"
    method: str = "pydeseq2"

    def run(
        self,
        adata: AnnData,
        *,
        group_key: str,
        groups: Sequence[str] | None = None,
        shrink: bool = False,
    ) -> dict[str, pd.DataFrame]:
        """:func:`run_de` of ``adata`` by ``group_key`` with these settings."""
        return run_de(
            adata, group_key=group_key, groups=groups, shrink=shrink, **dataclasses.asdict(self)
        )


def run_de(
    adata: AnnData,
    *,
    group_key: str = "cell_type",
    condition_key: str = "condition",
    reference: str,
    test: str,
    sample_key: str = "sample",
    layer: str | None = "counts",
    min_cells: int = 10,
    min_replicates: int = 2,
    covariates: Sequence[str] = (),
    threads: int = 1,
    alpha: float = 0.05,
    restrict_species: bool = True,
    groups: Sequence[str] | None = None,
    shrink: bool = False,
    method: str = "pydeseq2",
) -> dict[str, pd.DataFrame]:
    """Test ``test`` vs ``reference`` within each group, animals as replicates.

    Per group: pseudobulk profiles from at least ``min_cells`` cells are kept; genes are
    restricted to the group's majority species (``obs['species']`` of its cells, else the
    species of most of its UMIs) when ``restrict_species`` and ``var['species']`` exists, so a
    CAF table holds mouse genes and a tumour table human genes; genes without counts are
    dropped. With at least ``min_replicates`` kept animals per arm, PyDESeq2 fits
    ``~ covariates + condition`` and runs a Wald test (``method="pydeseq2"``; 95% Wald interval
    ``log2FoldChange ± 1.96 lfcSE``; ``padj`` from PyDESeq2's independent filtering, so it is
    NaN for filtered low-count genes). Otherwise a cell-level Wilcoxon test on log1p CP10k of
    every cell of the group in each arm (``scanpy.tl.rank_genes_groups``,
    ``method="wilcoxon_exploratory"``; ``log2FoldChange`` = log2 of the ratio of mean CP10k
    plus a pseudocount of 1, ``baseMean`` = mean CP10k, ``stat`` = Wilcoxon z, no ``lfcSE``
    or interval) is returned with a logged WARNING: treat it as hypothesis-generating only.
    A group with fewer than 2 cells in an arm, or whose design is not full rank, gets an empty
    table (``note`` in ``table.attrs["note"]``, also logged); see
    :func:`tmeflow.stats.de_summary`. When one contrast level has no cells at all (a
    one-condition design, e.g. a single sample), every group gets an empty table noting
    "condition 'alectinib' has no samples: nothing to compare"; only a data set with neither
    level raises.

    Parameters
    ----------
    adata
        Annotated object with raw counts in ``layers[layer]`` and ``obs`` columns
        ``sample_key``, ``group_key``, ``condition_key`` (and the covariates, which must be
        constant within each sample).
    group_key, condition_key, sample_key
        ``obs`` columns.
    reference, test
        Levels of ``condition_key``; positive log2 fold changes mean higher in ``test``.
    layer
        Layer of raw counts.
    min_cells
        Minimum cells for a pseudobulk profile to be used.
    min_replicates
        Minimum kept animals per arm for PyDESeq2 (below: the Wilcoxon fallback).
    covariates
        Sample-level ``obs`` columns added before the condition in the design.
    threads
        CPUs for PyDESeq2 (joblib); results do not depend on it.
    alpha
        Target FDR of PyDESeq2's independent filtering.
    restrict_species
        Restrict each group's genes to its majority species.
    groups
        Groups to test (default: every observed level of ``group_key``).
    shrink
        Add :data:`SHRUNK_COLUMNS` to PyDESeq2 tables (apeGLM-shrunk log2 fold change and its
        standard error, :func:`tmeflow.stats.pydeseq2_test`); slower, used by
        :mod:`tmeflow.stats._confirmatory`.
    method
        The pseudobulk test: ``"pydeseq2"``, or ``"limma_voom"``
        (:func:`tmeflow.stats._voom.voom_limma_test`: genes chosen by edgeR's filterByExpr,
        moderated t, 95% interval on its degrees of freedom, no shrinkage; the sensitivity
        table's second DE method).

    Returns
    -------
    dict
        Group -> table with the columns of :data:`DE_COLUMNS`, sorted by ``pvalue`` then
        ``gene``; ``attrs`` hold ``method``, ``note`` and ``species``. ``adata`` is not
        modified.
    """
    _check_contrast(
        adata,
        keys=[sample_key, group_key, condition_key, *covariates],
        condition_key=condition_key,
        reference=reference,
        test=test,
        min_replicates=min_replicates,
    )
    mat = counts_matrix(adata, layer)
    counts_pb, meta = pseudobulk(
        adata, group_key=group_key, sample_key=sample_key, layer=layer, min_cells=min_cells
    )
    for col in [condition_key, *covariates]:
        if col not in meta.columns:
            msg = (
                f"obs[{col!r}] varies within a sample; condition and covariates must be "
                "sample-level (one value per animal)"
            )
            raise ValueError(msg)
    run = _Run(
        adata=adata,
        mat=mat,
        totals=row_sums(mat),
        cond=adata.obs[condition_key].astype(str).to_numpy(),
        grp=adata.obs[group_key].astype(str).to_numpy(),
        gene_species=(
            adata.var["species"].astype(str).to_numpy() if "species" in adata.var.columns else None
        ),
        counts_pb=counts_pb,
        meta=meta,
        group_key=group_key,
        condition_key=condition_key,
        sample_key=sample_key,
        reference=reference,
        test=test,
        min_cells=min_cells,
        min_replicates=min_replicates,
        covariates=list(covariates),
        threads=threads,
        alpha=alpha,
        restrict_species=restrict_species,
        shrink=shrink,
        method=method,
    )
    if method not in PSEUDOBULK_METHODS:
        msg = f"unknown DE method {method!r}; choose one of {list(PSEUDOBULK_METHODS)}"
        raise ValueError(msg)
    wanted = observed_levels(adata.obs[group_key]) if groups is None else [str(g) for g in groups]
    conditions = set(run.cond)
    missing = [level for level in (reference, test) if level not in conditions]
    if missing:
        # a one-condition design (e.g. a single sample): describe, do not test
        note = "; ".join(
            f"not tested: {condition_key} {level!r} has no samples: nothing to compare"
            for level in missing
        )
        logger.warning("DE (%s vs %s): %s", test, reference, note)
        return {
            group: empty_table(note, species=run.species_of(run.grp == group)) for group in wanted
        }
    return {
        group: _test_group(run, group, position=(k, len(wanted)))
        for k, group in enumerate(wanted, start=1)
    }


def _check_contrast(
    adata: AnnData,
    *,
    keys: Sequence[str],
    condition_key: str,
    reference: str,
    test: str,
    min_replicates: int,
) -> None:
    """Raise on missing ``obs`` columns or a contrast that cannot be run at all."""
    check_obs(adata, keys)
    conditions = set(adata.obs[condition_key].astype(str))
    if reference not in conditions and test not in conditions:
        msg = (
            f"neither contrast level ({reference!r}, {test!r}) is found in "
            f"obs[{condition_key!r}] (levels: {sorted(conditions)}); check the contrast in the "
            "config"
        )
        raise ValueError(msg)
    if reference == test:
        msg = f"reference and test are both {reference!r}; choose two different conditions"
        raise ValueError(msg)
    if min_replicates < 2:
        msg = f"min_replicates={min_replicates}: PyDESeq2 needs at least 2 animals per arm"
        raise ValueError(msg)


def _not_tested(label: str, note: str, species: str | None) -> pd.DataFrame:
    """Log why a group is not tested and return its empty table."""
    logger.warning("%s: %s", label, note)
    return empty_table(note, species=species)


def _test_group(run: _Run, group: str, *, position: tuple[int, int] = (1, 1)) -> pd.DataFrame:
    """One group: PyDESeq2 with enough animals per arm, else the Wilcoxon fallback.

    Logs ``DE k/n: <group_key> <group>, a vs b animals (test vs reference), c vs d cells``
    first (``position`` is ``(k, n)``; animals with at least ``min_cells`` cells of the group).
    """
    label = f"DE {run.group_key}={group!r} ({run.test} vs {run.reference})"
    in_group = run.grp == group
    in_arms = in_group & np.isin(run.cond, [run.reference, run.test])
    n_cells = (
        int((in_arms & (run.cond == run.reference)).sum()),
        int((in_arms & (run.cond == run.test)).sum()),
    )
    arm_of = run.meta[run.condition_key].astype(str)
    m = run.meta[(run.meta["group"] == group) & arm_of.isin([run.reference, run.test])]
    kept = m[m["kept"]]
    n_rep = kept[run.condition_key].astype(str).value_counts()
    n_samples = (int(n_rep.get(run.reference, 0)), int(n_rep.get(run.test, 0)))
    logger.info(
        "DE %d/%d: %s %s, %d vs %d animals (%s vs %s), %d vs %d cells",
        *position,
        run.group_key,
        group,
        n_samples[1],
        n_samples[0],
        run.test,
        run.reference,
        n_cells[1],
        n_cells[0],
    )
    species = run.species_of(in_group)
    if n_cells[0] < 2 or n_cells[1] < 2:
        note = (
            f"not tested: {n_cells[0]} cells in {run.reference!r} and {n_cells[1]} in "
            f"{run.test!r} (at least 2 per arm needed)"
        )
        return _not_tested(label, note, species)
    gene_mask = np.ones(run.adata.n_vars, dtype=bool)
    if species is not None:
        gene_mask &= run.gene_species == species

    if min(n_samples) >= run.min_replicates:
        return _test_pseudobulk(
            run, kept, gene_mask, label=label, species=species, n_samples=n_samples
        )
    return _test_cells(
        run,
        np.flatnonzero(in_arms),
        gene_mask,
        label=label,
        species=species,
        n_samples=n_samples,
        n_cells=n_cells,
        short=_short_animals(run, m),
    )


def _short_animals(run: _Run, pairs: pd.DataFrame) -> str:
    """Name the animals of both arms with fewer than ``min_cells`` cells of the group.

    ``pairs`` holds the group's observed (animal, group) rows; an animal of an arm without any
    cell of the group is listed with 0 cells.
    """
    cells = pairs.set_index("sample")["n_cells"].astype(int)
    samples = run.adata.obs[run.sample_key].astype(str).to_numpy()
    parts = []
    for arm in (run.reference, run.test):
        animals = sorted(pd.unique(samples[run.cond == arm]), key=natural_key)
        short = [
            f"{a} ({int(cells.get(a, 0))})" for a in animals if cells.get(a, 0) < run.min_cells
        ]
        if short:
            parts.append(f"{arm!r}: " + ", ".join(short))
    return "; ".join(parts)


def _test_pseudobulk(
    run: _Run,
    kept: pd.DataFrame,
    gene_mask: np.ndarray,
    *,
    label: str,
    species: str | None,
    n_samples: tuple[int, int],
) -> pd.DataFrame:
    """PyDESeq2 (or limma-voom) on the kept pseudobulk profiles (``kept``: their metadata rows)."""
    sub = run.counts_pb.loc[kept.index].iloc[:, np.flatnonzero(gene_mask)]
    sub = sub.loc[:, sub.sum(axis=0) > 0]
    if sub.shape[1] == 0:
        return _not_tested(label, "not tested: no counts in the kept pseudobulk samples", species)
    if run.method == METHOD_VOOM:
        return _test_voom(run, kept, sub, label=label, species=species, n_samples=n_samples)
    res, note = de_tests.pydeseq2_test(
        sub,
        kept,
        condition_key=run.condition_key,
        reference=run.reference,
        test=run.test,
        covariates=run.covariates,
        threads=run.threads,
        alpha=run.alpha,
        label=label,
        shrink=run.shrink,
    )
    if res is None:
        return empty_table(note, species=species)  # de_tests.pydeseq2_test logged the note
    res = res.reindex(sub.columns)
    table = pd.DataFrame(
        {
            "gene": sub.columns.astype(str),
            "baseMean": res["baseMean"].to_numpy(float),
            "log2FoldChange": res["log2FoldChange"].to_numpy(float),
            "lfcSE": res["lfcSE"].to_numpy(float),
            "stat": res["stat"].to_numpy(float),
            "pvalue": res["pvalue"].to_numpy(float),
            "padj": res["padj"].to_numpy(float),
            **{c: res[c].to_numpy(float) for c in SHRUNK_COLUMNS if c in res.columns},
        }
    )
    table["ci_low"] = table["log2FoldChange"] - _Z95 * table["lfcSE"]
    table["ci_high"] = table["log2FoldChange"] + _Z95 * table["lfcSE"]
    table = _finish_pseudobulk(table, run, kept, METHOD_PYDESEQ2, n_samples, species)
    if "dispersion" in res.columns:  # gene -> PyDESeq2's MAP dispersion (confirmatory LOO)
        table.attrs["dispersion"] = pd.Series(
            res["dispersion"].to_numpy(float), index=sub.columns.astype(str)
        )
    logger.info("%s: PyDESeq2 on %d + %d animals, %d genes", label, *n_samples, len(table))
    return table


def _finish_pseudobulk(
    table: pd.DataFrame,
    run: _Run,
    kept: pd.DataFrame,
    method: str,
    n_samples: tuple[int, int],
    species: str | None,
) -> pd.DataFrame:
    """A pseudobulk test's table with the animals and cells per arm, sorted; ``attrs`` set."""
    is_ref = kept[run.condition_key].astype(str) == run.reference
    table = _finish(
        table,
        method=method,
        n_samples_reference=n_samples[0],
        n_samples_test=n_samples[1],
        n_cells_reference=int(kept.loc[is_ref, "n_cells"].sum()),
        n_cells_test=int(kept.loc[~is_ref, "n_cells"].sum()),
        note="",
    )
    table.attrs.update(method=method, note="", species=species)
    return table


def _test_voom(
    run: _Run,
    kept: pd.DataFrame,
    sub: pd.DataFrame,
    *,
    label: str,
    species: str | None,
    n_samples: tuple[int, int],
) -> pd.DataFrame:
    """limma-voom on the kept pseudobulk profiles ``sub`` (genes with counts)."""
    res, note = voom_limma_test(
        sub,
        kept,
        condition_key=run.condition_key,
        reference=run.reference,
        test=run.test,
        covariates=run.covariates,
    )
    if res is None:
        logger.warning("%s: %s", label, note)
        return empty_table(note, species=species)
    half = stats.t.ppf(0.975, res["df_total"].to_numpy(float)) * res["lfcSE"].to_numpy(float)
    table = res.drop(columns="df_total").rename_axis("gene").reset_index()
    table["ci_low"] = table["log2FoldChange"] - half
    table["ci_high"] = table["log2FoldChange"] + half
    table = _finish_pseudobulk(table, run, kept, METHOD_VOOM, n_samples, species)
    table.attrs["df_total"] = res["df_total"]
    logger.info("%s: limma-voom on %d + %d animals, %d genes", label, *n_samples, len(table))
    return table


def _test_cells(
    run: _Run,
    cells: np.ndarray,
    gene_mask: np.ndarray,
    *,
    label: str,
    species: str | None,
    n_samples: tuple[int, int],
    n_cells: tuple[int, int],
    short: str = "",
) -> pd.DataFrame:
    """The exploratory cell-level Wilcoxon on ``cells`` (the group's cells of both arms).

    ``short`` names the animals that fell short of ``min_cells`` cells (with their counts); the
    note carries it so the DE summary and the genes-of-interest report show it.
    """
    sub_mat = run.mat[cells]
    col_sums = np.asarray(sub_mat.sum(axis=0)).ravel()
    genes_idx = np.flatnonzero(gene_mask & (col_sums > 0))
    if genes_idx.size == 0:
        return _not_tested(label, "not tested: no counts in this group", species)
    arm = run.cond[cells]
    samples = run.adata.obs[run.sample_key].astype(str).to_numpy()[cells]
    note = (
        f"exploratory: {n_samples[0]} {run.reference!r} and {n_samples[1]} {run.test!r} "
        f"animals with >= {run.min_cells} cells (< {run.min_replicates} per arm); cell-level "
        "Wilcoxon, p-values ignore animal-to-animal variation"
        + (f"; animals short of {run.min_cells} cells (their cells): {short}" if short else "")
    )
    logger.warning("%s: %s", label, note)
    table = de_tests.wilcoxon_test(
        sub_mat[:, genes_idx],
        run.totals[cells],
        arm,
        run.adata.var_names[genes_idx],
        reference=run.reference,
        test=run.test,
    )
    table = _finish(
        table,
        method=METHOD_WILCOXON,
        n_samples_reference=int(pd.unique(samples[arm == run.reference]).size),
        n_samples_test=int(pd.unique(samples[arm == run.test]).size),
        n_cells_reference=n_cells[0],
        n_cells_test=n_cells[1],
        note=note,
    )
    table.attrs.update(method=METHOD_WILCOXON, note=note, species=species)
    return table

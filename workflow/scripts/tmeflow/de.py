"""Differential expression per cell type with the animal (sample) as the unit of inference.

Counts are summed per (sample, cell type) into pseudobulk profiles and tested with PyDESeq2
(negative-binomial GLM, Wald test). Where an arm has fewer than ``min_replicates`` animals
with enough cells, a cell-level Wilcoxon test is run instead and every row is labelled
``wilcoxon_exploratory``: cells of one animal are not independent, so its p-values are
anti-conservative and must not be read as evidence.

Output tables (one per group) have the columns of :data:`DE_COLUMNS`; the group column of the
reports is always named ``cell_type``, whatever ``group_key`` was used.
"""

import logging
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from tmeflow._utils import observed_levels

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

#: Columns of the per-gene report of :func:`genes_of_interest`, in order.
GOI_COLUMNS: list[str] = [
    "gene",
    "cell_type",
    "present",
    "log2FoldChange",
    "ci_low",
    "ci_high",
    "pvalue",
    "padj",
    "method",
    "n_samples_reference",
    "n_samples_test",
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

#: Columns of :func:`de_summary`, in order.
SUMMARY_COLUMNS: list[str] = [
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

METHOD_PYDESEQ2 = "pydeseq2"
METHOD_WILCOXON = "wilcoxon_exploratory"
METHOD_NOT_TESTED = "not_tested"

#: z quantile of the two-sided 95% Wald interval.
_Z95 = 1.959963984540054
#: Pseudocount (on the counts-per-10,000 scale) of the Wilcoxon fallback's log2 fold change.
_LFC_PSEUDOCOUNT = 1.0
_TARGET_SUM = 1e4


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _counts_matrix(adata: AnnData, layer: str | None) -> sp.csr_matrix:
    """Return the raw counts as CSR, checking they hold integers (no copy when already CSR)."""
    if layer is None:
        mat = adata.X
    else:
        if layer not in adata.layers:
            msg = (
                f"no layer {layer!r} in the AnnData (layers: {list(adata.layers)}); "
                "pass the layer holding raw integer counts (layers['counts'] in annotated.h5ad)"
            )
            raise KeyError(msg)
        mat = adata.layers[layer]
    if not isinstance(mat, sp.csr_matrix):
        mat = sp.csr_matrix(mat)  # dense, CSC or csr_array input
    if mat.dtype.kind == "f":
        data = mat.data
        if data.size and not np.array_equal(data, np.round(data)):
            msg = (
                f"layer {layer!r} holds non-integer values; pseudobulk tests need raw counts, "
                "not normalised expression"
            )
            raise ValueError(msg)
    return mat


def _check_obs(adata: AnnData, keys: Sequence[str]) -> None:
    missing = [k for k in keys if k not in adata.obs.columns]
    if missing:
        msg = f"obs lacks column(s) {missing}; available: {list(adata.obs.columns)}"
        raise KeyError(msg)


def _indicator(
    adata: AnnData, sample_key: str, group_key: str
) -> tuple[sp.csr_matrix, pd.DataFrame]:
    """Sparse (pair x cell) indicator of the observed (sample, group) pairs, deterministic order."""
    obs = adata.obs
    samples = observed_levels(obs[sample_key])
    groups = observed_levels(obs[group_key])
    s_code = pd.Categorical(obs[sample_key].astype(str), categories=samples).codes
    g_code = pd.Categorical(obs[group_key].astype(str), categories=groups).codes
    valid = (s_code >= 0) & (g_code >= 0)
    pair = np.where(valid, s_code.astype(np.int64) * len(groups) + g_code, -1)
    used, inverse = np.unique(pair[valid], return_inverse=True)
    cells = np.flatnonzero(valid)
    ind = sp.csr_matrix(
        (np.ones(cells.size, dtype=np.int64), (inverse, cells)),
        shape=(used.size, adata.n_obs),
    )
    s_of = np.asarray(samples, dtype=object)[used // len(groups)]
    g_of = np.asarray(groups, dtype=object)[used % len(groups)]
    pairs = pd.DataFrame({"sample": s_of, "group": g_of})
    pairs.index = pd.Index([f"{s}|{g}" for s, g in zip(s_of, g_of, strict=True)], dtype=object)
    pairs["n_cells"] = np.asarray(ind.sum(axis=1)).ravel().astype(np.int64)
    return ind, pairs


def _sample_level_columns(adata: AnnData, sample_key: str, exclude: Sequence[str]) -> list[str]:
    """Obs columns that take a single value within every sample."""
    obs = adata.obs
    cols = []
    for col in obs.columns:
        if col in exclude or col == sample_key:
            continue
        nun = obs.groupby(obs[sample_key].astype(str), observed=True)[col].nunique(dropna=False)
        if (nun <= 1).all():
            cols.append(col)
    return cols


def _sample_table(adata: AnnData, sample_key: str, columns: Sequence[str]) -> pd.DataFrame:
    first = adata.obs.groupby(adata.obs[sample_key].astype(str), observed=True)[list(columns)]
    table = first.first()
    for col in columns:
        if isinstance(adata.obs[col].dtype, pd.CategoricalDtype):
            table[col] = table[col].astype(str)
    return table


def empty_table(note: str, *, species: str | None = None) -> pd.DataFrame:
    """An empty DE table (columns :data:`DE_COLUMNS`) for a group that was not tested.

    ``attrs`` hold ``note``, ``method="not_tested"`` and ``species``, which
    :func:`de_summary` reports.
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


def _cp10k_log(counts: sp.csr_matrix, totals: np.ndarray) -> sp.csr_matrix:
    """log1p of counts per 10,000 (sparse, rows = cells)."""
    scale = np.divide(_TARGET_SUM, totals, out=np.zeros(totals.shape, float), where=totals > 0)
    out = sp.csr_matrix(sp.diags(scale) @ counts.astype(np.float64))
    out.data = np.log1p(out.data)
    return out


# --------------------------------------------------------------------------------------------
# pseudobulk
# --------------------------------------------------------------------------------------------
def pseudobulk(
    adata: AnnData,
    *,
    group_key: str = "cell_type",
    sample_key: str = "sample",
    layer: str | None = "counts",
    min_cells: int = 10,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sum raw counts per (sample, group) with a sparse indicator-matrix product.

    Parameters
    ----------
    adata
        Annotated object with raw integer counts in ``layers[layer]`` (``X`` when ``None``).
    group_key, sample_key
        ``obs`` columns defining the groups (cell types) and the animals.
    layer
        Layer of raw counts.
    min_cells
        Pseudobulk profiles from fewer cells are flagged ``kept=False`` (still returned).

    Returns
    -------
    counts
        Rows ``f"{sample}|{group}"`` (observed pairs only, ordered by sample then group),
        columns ``var_names``; int64 sums.
    metadata
        Same rows; columns ``sample``, ``group``, ``n_cells``, ``kept`` and every ``obs``
        column that is constant within each sample (``condition`` and sample-sheet columns).
        Nothing is written into ``adata``.
    """
    _check_obs(adata, [sample_key, group_key])
    mat = _counts_matrix(adata, layer)
    ind, pairs = _indicator(adata, sample_key, group_key)
    summed = (ind @ mat).toarray().astype(np.int64)
    counts = pd.DataFrame(summed, index=pairs.index, columns=adata.var_names.astype(str))

    extra = [
        c
        for c in _sample_level_columns(adata, sample_key, exclude=[group_key])
        if c not in {"sample", "group", "n_cells", "kept"}
    ]
    meta = pairs.copy()
    if extra:
        per_sample = _sample_table(adata, sample_key, extra)
        meta = meta.join(per_sample, on="sample")
    meta["kept"] = meta["n_cells"] >= min_cells
    lead = ["sample", "group", *extra, "n_cells", "kept"]
    return counts, meta[lead]


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

    Returns
    -------
    tested
        Subtype labels to test.
    skipped
        Label -> reason it is not tested.
    """
    _check_obs(adata, [type_key, subtype_key])
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


# --------------------------------------------------------------------------------------------
# run_de
# --------------------------------------------------------------------------------------------
def _run_pydeseq2(
    counts: pd.DataFrame,
    meta: pd.DataFrame,
    *,
    condition_key: str,
    reference: str,
    test: str,
    covariates: Sequence[str],
    threads: int,
    alpha: float,
    label: str,
) -> tuple[pd.DataFrame | None, str]:
    """Fit PyDESeq2; returns (results_df or None, note). Library warnings are logged."""
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.default_inference import DefaultInference
    from pydeseq2.ds import DeseqStats

    md = pd.DataFrame(index=counts.index)
    for cov in covariates:
        col = meta[cov]
        md[cov] = col.to_numpy() if pd.api.types.is_numeric_dtype(col) else col.astype(str)
    md[condition_key] = pd.Categorical(
        meta[condition_key].astype(str).to_numpy(), categories=[reference, test]
    )
    design = "~" + " + ".join([*covariates, condition_key])
    inference = DefaultInference(n_cpus=threads)
    note = ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dds = DeseqDataSet(
            counts=counts,
            metadata=md,
            design=design,
            refit_cooks=True,
            inference=inference,
            quiet=True,
        )
        full_rank = (
            np.linalg.matrix_rank(dds.obsm["design_matrix"].to_numpy(float))
            == (dds.obsm["design_matrix"].shape[1])
        )
        if full_rank:
            dds.deseq2()
            stats = DeseqStats(
                dds,
                contrast=[condition_key, test, reference],
                alpha=alpha,
                inference=inference,
                quiet=True,
            )
            stats.summary()
    for w in caught:
        logger.warning("%s: PyDESeq2: %s", label, w.message)
    if not full_rank:
        note = (
            f"not tested: design {design!r} is not full rank for the samples of this group; "
            "drop the covariate(s) confounded with the condition"
        )
        logger.warning("%s: %s", label, note)
        return None, note
    return stats.results_df.copy(), note


def _run_wilcoxon(
    mat: sp.csr_matrix,
    totals: np.ndarray,
    arm: np.ndarray,
    genes: pd.Index,
    *,
    reference: str,
    test: str,
) -> pd.DataFrame:
    """Cell-level Wilcoxon (scanpy) of test vs reference on log1p CP10k."""
    import scanpy as sc

    lognorm = _cp10k_log(mat, totals)
    small = AnnData(
        X=lognorm,
        obs=pd.DataFrame(
            {"_arm": pd.Categorical(arm, categories=[reference, test])},
            index=pd.Index([str(i) for i in range(mat.shape[0])]),
        ),
        var=pd.DataFrame(index=pd.Index(genes.astype(str))),
    )
    sc.tl.rank_genes_groups(
        small,
        "_arm",
        groups=[test],
        reference=reference,
        method="wilcoxon",
        use_raw=False,
        tie_correct=True,
        key_added="_rgg",
    )
    res = sc.get.rank_genes_groups_df(small, group=test, key="_rgg").set_index("names")
    res = res.reindex(genes.astype(str))

    scale = np.divide(_TARGET_SUM, totals, out=np.zeros(totals.shape, float), where=totals > 0)
    norm = sp.csr_matrix(sp.diags(scale) @ mat.astype(np.float64))
    is_ref = arm == reference
    mean_ref = np.asarray(norm[is_ref].mean(axis=0)).ravel()
    mean_test = np.asarray(norm[~is_ref].mean(axis=0)).ravel()
    lfc = np.log2((mean_test + _LFC_PSEUDOCOUNT) / (mean_ref + _LFC_PSEUDOCOUNT))
    return pd.DataFrame(
        {
            "gene": genes.astype(str),
            "baseMean": np.asarray(norm.mean(axis=0)).ravel(),
            "log2FoldChange": lfc,
            "lfcSE": np.nan,
            "stat": res["scores"].to_numpy(float),
            "pvalue": res["pvals"].to_numpy(float),
            "padj": res["pvals_adj"].to_numpy(float),
            "ci_low": np.nan,
            "ci_high": np.nan,
        }
    )


def _finish(table: pd.DataFrame, **constants: object) -> pd.DataFrame:
    for key, value in constants.items():
        table[key] = value
    table = table.sort_values(["pvalue", "gene"], na_position="last", kind="mergesort")
    table = table.reset_index(drop=True)
    return table[DE_COLUMNS]


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
    table (``note`` in ``table.attrs["note"]``, also logged); see :func:`de_summary`. When one
    contrast level has no cells at all (a one-condition design, e.g. a single sample), every
    group gets an empty table noting "condition 'alectinib' has no samples: nothing to
    compare"; only a data set with neither level raises.

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

    Returns
    -------
    dict
        Group -> table with the columns of :data:`DE_COLUMNS`, sorted by ``pvalue`` then
        ``gene``; ``attrs`` hold ``method``, ``note`` and ``species``. ``adata`` is not
        modified.
    """
    _check_obs(adata, [sample_key, group_key, condition_key, *covariates])
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

    mat = _counts_matrix(adata, layer)
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
    totals = np.asarray(mat.sum(axis=1)).ravel().astype(np.float64)
    gene_species = (
        adata.var["species"].astype(str).to_numpy() if "species" in adata.var.columns else None
    )
    cond = adata.obs[condition_key].astype(str).to_numpy()
    grp = adata.obs[group_key].astype(str).to_numpy()
    all_groups = observed_levels(adata.obs[group_key])
    wanted = all_groups if groups is None else [str(g) for g in groups]

    missing = [level for level in (reference, test) if level not in conditions]
    if missing:
        # a one-condition design (e.g. a single sample): describe, do not test
        note = "; ".join(
            f"not tested: {condition_key} {level!r} has no samples: nothing to compare"
            for level in missing
        )
        logger.warning("DE (%s vs %s): %s", test, reference, note)
        return {
            group: empty_table(
                note,
                species=(
                    _majority_species(adata, grp == group, mat)
                    if restrict_species and gene_species is not None and (grp == group).any()
                    else None
                ),
            )
            for group in wanted
        }

    tables: dict[str, pd.DataFrame] = {}
    for group in wanted:
        label = f"DE {group_key}={group!r} ({test} vs {reference})"
        in_group = grp == group
        in_arms = in_group & np.isin(cond, [reference, test])
        n_ref_cells = int((in_arms & (cond == reference)).sum())
        n_test_cells = int((in_arms & (cond == test)).sum())
        species = None
        if restrict_species and gene_species is not None and in_group.any():
            species = _majority_species(adata, in_group, mat)
        if n_ref_cells < 2 or n_test_cells < 2:
            note = (
                f"not tested: {n_ref_cells} cells in {reference!r} and {n_test_cells} in "
                f"{test!r} (at least 2 per arm needed)"
            )
            logger.warning("%s: %s", label, note)
            tables[group] = empty_table(note, species=species)
            continue
        gene_mask = np.ones(adata.n_vars, dtype=bool)
        if species is not None:
            gene_mask &= gene_species == species

        m = meta[(meta["group"] == group) & meta[condition_key].astype(str).isin([reference, test])]
        kept = m[m["kept"]]
        n_rep = kept[condition_key].astype(str).value_counts()
        n_ref_s, n_test_s = int(n_rep.get(reference, 0)), int(n_rep.get(test, 0))

        if n_ref_s >= min_replicates and n_test_s >= min_replicates:
            sub = counts_pb.loc[kept.index].iloc[:, np.flatnonzero(gene_mask)]
            sub = sub.loc[:, sub.sum(axis=0) > 0]
            if sub.shape[1] == 0:
                note = "not tested: no counts in the kept pseudobulk samples"
                logger.warning("%s: %s", label, note)
                tables[group] = empty_table(note, species=species)
                continue
            res, note = _run_pydeseq2(
                sub,
                kept,
                condition_key=condition_key,
                reference=reference,
                test=test,
                covariates=list(covariates),
                threads=threads,
                alpha=alpha,
                label=label,
            )
            if res is None:
                tables[group] = empty_table(note, species=species)
                continue
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
                }
            )
            table["ci_low"] = table["log2FoldChange"] - _Z95 * table["lfcSE"]
            table["ci_high"] = table["log2FoldChange"] + _Z95 * table["lfcSE"]
            is_ref = kept[condition_key].astype(str) == reference
            table = _finish(
                table,
                method=METHOD_PYDESEQ2,
                n_samples_reference=n_ref_s,
                n_samples_test=n_test_s,
                n_cells_reference=int(kept.loc[is_ref, "n_cells"].sum()),
                n_cells_test=int(kept.loc[~is_ref, "n_cells"].sum()),
                note="",
            )
            table.attrs.update(method=METHOD_PYDESEQ2, note="", species=species)
            logger.info(
                "%s: PyDESeq2 on %d + %d animals, %d genes",
                label,
                n_ref_s,
                n_test_s,
                len(table),
            )
        else:
            cells = np.flatnonzero(in_arms)
            sub_mat = mat[cells]
            col_sums = np.asarray(sub_mat.sum(axis=0)).ravel()
            genes_idx = np.flatnonzero(gene_mask & (col_sums > 0))
            if genes_idx.size == 0:
                note = "not tested: no counts in this group"
                logger.warning("%s: %s", label, note)
                tables[group] = empty_table(note, species=species)
                continue
            arm = cond[cells]
            samples = adata.obs[sample_key].astype(str).to_numpy()[cells]
            note = (
                f"exploratory: {n_ref_s} {reference!r} and {n_test_s} {test!r} animals with "
                f">= {min_cells} cells (< {min_replicates} per arm); cell-level Wilcoxon, "
                "p-values ignore animal-to-animal variation"
            )
            logger.warning("%s: %s", label, note)
            table = _run_wilcoxon(
                sub_mat[:, genes_idx],
                totals[cells],
                arm,
                adata.var_names[genes_idx],
                reference=reference,
                test=test,
            )
            table = _finish(
                table,
                method=METHOD_WILCOXON,
                n_samples_reference=int(pd.unique(samples[arm == reference]).size),
                n_samples_test=int(pd.unique(samples[arm == test]).size),
                n_cells_reference=n_ref_cells,
                n_cells_test=n_test_cells,
                note=note,
            )
            table.attrs.update(method=METHOD_WILCOXON, note=note, species=species)
        tables[group] = table
    return tables


def de_summary(
    de_tables: dict[str, pd.DataFrame], *, alpha: float = 0.05, level: str | None = None
) -> pd.DataFrame:
    """Summarise :func:`run_de` output, one row per group.

    Columns :data:`SUMMARY_COLUMNS`: ``level`` (the ``level`` given, e.g. ``cell_type`` or
    ``cell_subtype``), ``cell_type`` (the group), ``method``, ``exploratory`` (True for
    ``wilcoxon_exploratory`` rows, whose p-values ignore animal-to-animal variation),
    ``species`` (genes tested), ``n_genes``, ``n_significant`` (``padj < alpha``), animals per
    arm and ``note``. Write this table next to the DE tables: the note of an empty (not
    tested) table lives only in its ``attrs``.
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
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    for col in ("n_samples_reference", "n_samples_test"):
        out[col] = pd.to_numeric(out[col]).astype("Int64")
    out["exploratory"] = out["exploratory"].astype(bool)
    return out


# --------------------------------------------------------------------------------------------
# genes of interest
# --------------------------------------------------------------------------------------------
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
        The object :func:`run_de` was run on.
    de_tables
        Output of :func:`run_de` (``attrs`` are used for the notes when present).
    genes
        Symbols to report, in the order given.
    group_key, condition_key, sample_key, layer
        As in :func:`run_de`.
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
    _check_obs(adata, [sample_key, group_key, condition_key])
    mat = _counts_matrix(adata, layer)
    var_names = pd.Index(adata.var_names.astype(str))
    gene_species = adata.var["species"].astype(str) if "species" in adata.var.columns else None
    genes = [str(g) for g in dict.fromkeys(genes)]
    present = [g for g in genes if g in var_names]
    idx = var_names.get_indexer(present)

    totals = np.asarray(mat.sum(axis=1)).ravel().astype(np.float64)
    sub = mat[:, idx] if len(idx) else sp.csr_matrix((adata.n_obs, 0), dtype=mat.dtype)
    sub = sp.csr_matrix(sub)
    lognorm = _cp10k_log(sub, totals)
    expressed = sp.csr_matrix(sub > 0).astype(np.float64)

    cond = adata.obs[condition_key].astype(str).to_numpy()
    grp = adata.obs[group_key].astype(str).to_numpy()
    groups = (
        list(dict.fromkeys([*observed_levels(adata.obs[group_key]), *de_tables]))
        if groups is None
        else [str(g) for g in groups]
    )

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
            for arm_name, level in (("reference", reference), ("test", test)):
                cells = np.flatnonzero((grp == group) & (cond == level))
                if cells.size:
                    row[f"frac_expressing_{arm_name}"] = float(expressed[cells, j].mean())
                    row[f"mean_norm_{arm_name}"] = float(lognorm[cells, j].mean())
            table = de_tables.get(group)
            hit = table[table["gene"] == gene] if table is not None and len(table) else None
            if hit is not None and len(hit):
                rec = hit.iloc[0]
                for col in (
                    "log2FoldChange",
                    "ci_low",
                    "ci_high",
                    "pvalue",
                    "padj",
                    "method",
                    "n_samples_reference",
                    "n_samples_test",
                ):
                    row[col] = rec[col]
                row["note"] = rec.get("note", "") if isinstance(rec.get("note", ""), str) else ""
            else:
                row["note"] = _not_tested_note(gene, gsp, table, group)
            rows.append(row)
    report = pd.DataFrame(rows, columns=GOI_COLUMNS)
    report["present"] = report["present"].astype(bool)
    for col in ("n_samples_reference", "n_samples_test"):
        report[col] = pd.to_numeric(report[col]).astype("Int64")

    # per-sample pseudobulk of the present genes
    in_arms = np.isin(cond, [reference, test])
    view = adata[in_arms]
    ind, pairs = _indicator(view, sample_key, group_key)
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
    return report, per_sample[GOI_SAMPLE_COLUMNS]

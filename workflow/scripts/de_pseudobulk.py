"""Snakemake adapter: pseudobulk DE per cell type and per subtype, the genes-of-interest
report and the DE summary (which says, per group, which test ran and why).

The logic lives in tmeflow.de.
"""

from pathlib import Path

import pandas as pd

from tmeflow import de, h5ad, runtime, tables


def _write_tables(results: dict, outdir: Path, log, alpha: float, level: str) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    for group, table in sorted(results.items()):
        tables.write_tsv(table, outdir / f"{group}.tsv")
        n_sig = int((table["padj"] < alpha).sum())
        log.info(
            "%s %s: %d genes tested, %d with padj < %s", level, group, len(table), n_sig, alpha
        )


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    adata = h5ad.read_h5ad(smk.input[0], skip=("X", "obsp"))
    common = dict(
        condition_key=p.condition_key,
        reference=p.reference,
        test=p.test,
        min_cells=p.min_cells,
        min_replicates=p.min_replicates,
        covariates=list(p.covariates),
        threads=smk.threads,
        alpha=p.alpha,
    )
    by_type = de.run_de(adata, group_key="cell_type", **common)
    _write_tables(by_type, Path(smk.output.tables), log, p.alpha, "cell_type")

    by_sub: dict = {}
    skipped: dict = {}
    if p.subtypes and "cell_subtype" in adata.obs.columns:
        wanted, skipped = de.subtype_groups(adata)
        if wanted:
            by_sub = de.run_de(adata, group_key="cell_subtype", groups=wanted, **common)
        for label, note in skipped.items():
            log.warning("cell_subtype %s: %s", label, note)
    _write_tables(by_sub, Path(smk.output.subtypes), log, p.alpha, "cell_subtype")

    summary = pd.concat(
        [
            de.de_summary(by_type, alpha=p.alpha, level="cell_type"),
            de.de_summary(
                {**by_sub, **{k: de.empty_table(v) for k, v in skipped.items()}},
                alpha=p.alpha,
                level="cell_subtype",
            ),
        ],
        ignore_index=True,
    )
    n_expl = int(summary["exploratory"].sum())
    if n_expl:
        log.warning(
            "%d group(s) tested with the cell-level Wilcoxon fallback (method "
            "wilcoxon_exploratory): too few animals per arm; their p-values ignore "
            "animal-to-animal variation and are NOT evidence (see %s)",
            n_expl,
            smk.output.summary,
        )
    tables.write_tsv(summary, smk.output.summary)

    goi_args = dict(
        genes=list(p.genes), condition_key=p.condition_key, reference=p.reference, test=p.test
    )
    goi, values = de.genes_of_interest(adata, by_type, group_key="cell_type", **goi_args)
    parts_goi, parts_val = [goi.assign(level="cell_type")], [values.assign(level="cell_type")]
    if by_sub:
        goi_s, values_s = de.genes_of_interest(
            adata, by_sub, group_key="cell_subtype", groups=list(by_sub), **goi_args
        )
        parts_goi.append(goi_s.assign(level="cell_subtype"))
        parts_val.append(values_s.assign(level="cell_subtype"))
    goi = pd.concat(parts_goi, ignore_index=True)
    values = pd.concat(parts_val, ignore_index=True)
    tables.write_tsv(goi[["level", *de.GOI_COLUMNS]], smk.output.goi)
    tables.write_tsv(values[["level", *de.GOI_SAMPLE_COLUMNS]], smk.output.values)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

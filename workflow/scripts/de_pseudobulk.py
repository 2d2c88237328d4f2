"""Snakemake adapter: pseudobulk DE per cell type and the genes-of-interest report.

The logic lives in tmeflow.de.
"""

from pathlib import Path

from tmeflow import de, io, runtime, tables


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    adata = io.read_h5ad(smk.input[0])
    results = de.run_de(
        adata,
        group_key="cell_type",
        condition_key=p.condition_key,
        reference=p.reference,
        test=p.test,
        min_cells=p.min_cells,
        min_replicates=p.min_replicates,
        covariates=list(p.covariates),
        threads=smk.threads,
        alpha=p.alpha,
    )
    outdir = Path(smk.output.tables)
    outdir.mkdir(parents=True, exist_ok=True)
    for group, table in sorted(results.items()):
        tables.write_tsv(table, outdir / f"{group}.tsv")
        n_sig = int((table.get("padj") < p.alpha).sum()) if "padj" in table else 0
        log.info("%s: %d genes tested, %d with padj < %s", group, len(table), n_sig, p.alpha)
    goi, values = de.genes_of_interest(
        adata,
        results,
        genes=list(p.genes),
        group_key="cell_type",
        condition_key=p.condition_key,
        reference=p.reference,
        test=p.test,
    )
    tables.write_tsv(goi, smk.output.goi)
    tables.write_tsv(values, smk.output.values)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

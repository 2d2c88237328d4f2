"""Snakemake adapter: pseudobulk DE per cell type and subtype, the genes-of-interest report
and the DE summary (tmeflow.stats.run_levels), on raw or ambient-corrected counts."""

from tmeflow import core, stats


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)
    p, out = smk.params, smk.output
    adata = core.read_h5ad(smk.input[0], skip=("X", "obsp"), layers=(p.layer,))
    settings = stats.DESettings(
        condition_key=p.condition_key,
        reference=p.reference,
        test=p.test,
        min_cells=p.min_cells,
        min_replicates=p.min_replicates,
        covariates=tuple(p.covariates),
        threads=smk.threads,
        alpha=p.alpha,
        layer=p.layer,
    )
    result = stats.run_levels(
        adata, settings, genes=p.genes, subtypes=p.subtypes, summary_path=out.summary
    )
    result.write(
        tables_dir=out.tables,
        subtypes_dir=out.subtypes,
        summary=out.summary,
        goi=out.goi,
        values=out.values,
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

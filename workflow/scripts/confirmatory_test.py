"""Snakemake adapter: the pre-specified hypotheses as one Holm-adjusted family.

The logic lives in tmeflow.stats.
"""

from tmeflow import core, stats


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    adata = core.read_h5ad(smk.input[0], skip=("X", "obsp"), layers=("counts",))
    table, values = stats.confirm(
        adata,
        stats.parse_hypotheses(p.hypotheses),
        condition_key=p.condition_key,
        reference=p.reference,
        test=p.test,
        min_cells=p.min_cells,
        min_replicates=p.min_replicates,
        covariates=p.covariates,
        threads=smk.threads,
        alpha=p.alpha,
        min_share=p.min_share,
        immune_types=p.immune_types,
        de_method=p.de_method,
    )
    log.info("confirmatory table:\n%s", table.drop(columns="per_animal").to_string())
    core.write_tsv(table, smk.output.table)
    core.write_tsv(values, smk.output.values)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

"""Snakemake adapter: which cell types (and subtypes) contribute a gene's UMIs, pooled per
condition and per animal.

The logic lives in tmeflow.stats. A gene absent from the data gets tables with a note. The
counts layer is a parameter: raw counts, or the ambient-corrected ones.
"""

from tmeflow import core, stats


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)
    layer = smk.params.layer
    adata = core.read_h5ad(smk.input[0], skip=("X", "obsp"), layers=(layer,))
    levels, samples = stats.gene_sources(
        adata, smk.wildcards.gene, condition_key=smk.params.condition_key, layer=layer
    )
    core.write_tsv(levels["cell_type"], smk.output.table)
    core.write_tsv(levels["cell_subtype"], smk.output.subtypes)
    core.write_tsv(samples, smk.output.samples)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

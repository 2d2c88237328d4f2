"""Snakemake adapter: which cell types (and subtypes) contribute a gene's UMIs, pooled per
condition and per animal.

The logic lives in tmeflow.sources. A gene absent from the data gets tables with a note.
"""

import pandas as pd

from tmeflow import h5ad, runtime, sources, tables


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    gene = smk.wildcards.gene
    adata = h5ad.read_h5ad(smk.input[0], skip=("X", "obsp"))
    per_sample = []
    for key, out in (("cell_type", smk.output.table), ("cell_subtype", smk.output.subtypes)):
        try:
            table = sources.expression_sources(
                adata, gene, group_key=key, condition_key=smk.params.condition_key
            )
            per_sample.append(
                sources.sample_shares(
                    adata, gene, group_key=key, condition_key=smk.params.condition_key
                ).assign(level=key)
            )
        except ValueError as err:
            log.warning("%s", err)
            table = pd.DataFrame([{"gene": gene, "note": str(err)}])
        tables.write_tsv(table, out)
    samples = (
        pd.concat(per_sample, ignore_index=True)
        if per_sample
        else pd.DataFrame(
            {c: pd.Series(dtype=object) for c in sources.SAMPLE_SHARE_COLUMNS}
        ).assign(level=pd.Series(dtype=object))
    )
    tables.write_tsv(samples[["level", *sources.SAMPLE_SHARE_COLUMNS]], smk.output.samples)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

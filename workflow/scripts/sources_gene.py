"""Snakemake adapter: which cell types (and subtypes) contribute a gene's UMIs.

The logic lives in tmeflow.sources. A gene absent from the data gets a table with a note.
"""

import pandas as pd

from tmeflow import io, runtime, sources, tables


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    gene = smk.wildcards.gene
    adata = io.read_h5ad(smk.input[0])
    for key, out in (("cell_type", smk.output.table), ("cell_subtype", smk.output.subtypes)):
        try:
            table = sources.expression_sources(
                adata, gene, group_key=key, condition_key=smk.params.condition_key
            )
        except ValueError as err:
            log.warning("%s", err)
            table = pd.DataFrame([{"gene": gene, "note": str(err)}])
        tables.write_tsv(table, out)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

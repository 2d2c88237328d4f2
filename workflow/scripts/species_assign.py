"""Snakemake adapter: per-cell species calls; the logic lives in tmeflow.species."""

import pandas as pd

from tmeflow import h5ad, runtime, species, tables


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    adata = h5ad.read_h5ad(smk.input[0])
    species.assign_species(
        adata,
        mode=smk.params.mode,
        min_fraction=smk.params.min_fraction,
        crossspecies_fdr=smk.params.crossspecies_fdr,
    )
    report = species.species_report(
        adata, mode=smk.params.mode, min_soup_umis=smk.params.min_soup_umis
    )
    row = {"sample": smk.wildcards.sample, **report}
    log.info("species calls: %s", row)
    tables.write_tsv(pd.DataFrame([row]), smk.output.table)
    h5ad.write_h5ad(adata, smk.output.h5ad)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

"""Snakemake adapter: per-cell species calls; the logic lives in tmeflow.cells."""

import pandas as pd

from tmeflow import cells, core


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    adata = core.read_h5ad(smk.input[0])
    cells.assign_species(
        adata,
        mode=smk.params.mode,
        min_fraction=smk.params.min_fraction,
        crossspecies_fdr=smk.params.crossspecies_fdr,
    )
    report = cells.species_report(
        adata, mode=smk.params.mode, min_soup_umis=smk.params.min_soup_umis
    )
    row = {"sample": smk.wildcards.sample, **report}
    log.info("species calls: %s", row)
    core.write_tsv(pd.DataFrame([row]), smk.output.table)
    core.write_h5ad(adata, smk.output.h5ad)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

"""Snakemake adapter: one species' cells as plain files for R; logic in tmeflow.export."""

from tmeflow import core, export


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    adata = core.read_h5ad(smk.input[0])
    written = export.write_r_folder(adata, smk.output[0])
    log.info("%s: %d cells, %d features, %d files", smk.output[0], *adata.shape, len(written))


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

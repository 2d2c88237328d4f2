"""Snakemake adapter: merge samples, normalise, select HVGs; logic in tmeflow.integrate."""

from tmeflow import integrate, io, runtime


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    adatas = [io.read_h5ad(f) for f in smk.input.h5ads]
    merged = integrate.merge_samples(adatas)
    integrate.select_hvgs(merged, n_top_genes=smk.params.n_top_genes, batch_key="sample")
    log.info("merged %d cells x %d genes; %s", *merged.shape, merged.uns["hvg"])
    io.write_h5ad(merged, smk.output[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

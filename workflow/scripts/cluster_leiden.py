"""Snakemake adapter: neighbours, UMAP and Leiden on X_scVI; logic in tmeflow.cluster."""

from tmeflow import cluster, integrate, io, runtime


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    integrate.set_threads(smk.threads)
    adata = io.read_h5ad(smk.input[0])
    cluster.embed_and_cluster(
        adata,
        n_neighbors=smk.params.n_neighbors,
        resolution=smk.params.resolution,
        seed=smk.params.seed,
    )
    log.info("clustering: %s", adata.uns["cluster"])
    io.write_h5ad(adata, smk.output[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

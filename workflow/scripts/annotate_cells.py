"""Snakemake adapter: marker-based annotation; logic in tmeflow.annotate."""

from tmeflow import annotate, integrate, io, runtime, tables


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    integrate.set_threads(smk.threads)
    p = smk.params
    adata = io.read_h5ad(smk.input.h5ad)
    panel = annotate.load_panel(smk.input.panel)
    table = annotate.annotate(
        adata,
        panel,
        species_mode=p.species,
        min_score=p.min_score,
        min_margin=p.min_margin,
        subcluster_resolution=p.subcluster_resolution,
        n_neighbors=p.n_neighbors,
        seed=p.seed,
    )
    log.info("cell types: %s", adata.obs["cell_type"].value_counts().to_dict())
    tables.write_tsv(table, smk.output.scores)
    cols = ["sample", "barcode", "species", "leiden", "cell_type", "cell_subtype"]
    tables.write_tsv(adata.obs[cols], smk.output.labels, index=True, index_label="cell")
    io.write_h5ad(adata, smk.output.h5ad)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

"""Snakemake adapter: merge samples, select HVGs, correct ambient RNA, normalise; logic in
tmeflow.embed, tmeflow.embed and tmeflow.cells."""

from tmeflow import cells, core, embed


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    # the per-sample objects live only inside concat_samples, so they are freed on return;
    # HVGs come from the raw counts before X is written (peak about 2x the counts' size)
    merged = embed.concat_samples([core.read_h5ad(f) for f in smk.input.h5ads])
    embed.select_hvgs(
        merged,
        n_top_genes=smk.params.n_top_genes,
        batch_key="sample",
        fallback_span=smk.params.fallback_span,
        fallback_min_cells=smk.params.fallback_min_cells,
        min_species_fraction=smk.params.min_species_fraction,
    )
    # the soup per sample and the ambient-corrected counts, on every gene (SoupX subtraction)
    soup = cells.add_corrected_layer(merged, min_soup_umis=smk.params.min_soup_umis)
    core.write_tsv(soup, smk.output.ambient, index=True, index_label="sample")
    embed.normalise(merged)
    record = {k: v for k, v in merged.uns["hvg"].items() if k != "fits"}
    log.info("merged %d cells x %d genes; HVGs %s", *merged.shape, record)
    core.write_tsv(embed.hvg_table(merged.uns["hvg"]), smk.output.hvg)
    core.write_h5ad(merged, smk.output.h5ad)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

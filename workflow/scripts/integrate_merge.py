"""Snakemake adapter: merge samples, select HVGs, correct ambient RNA, normalise; logic in
tmeflow.integrate, tmeflow.hvg and tmeflow.ambient."""

from tmeflow import ambient, h5ad, hvg, integrate, runtime, tables


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    # the per-sample objects live only inside concat_samples, so they are freed on return;
    # HVGs come from the raw counts before X is written (peak about 2x the counts' size)
    merged = integrate.concat_samples([h5ad.read_h5ad(f) for f in smk.input.h5ads])
    hvg.select_hvgs(
        merged,
        n_top_genes=smk.params.n_top_genes,
        batch_key="sample",
        fallback_span=smk.params.fallback_span,
        fallback_min_cells=smk.params.fallback_min_cells,
        min_species_fraction=smk.params.min_species_fraction,
    )
    # the soup per sample and the ambient-corrected counts, on every gene (SoupX subtraction)
    soup = ambient.add_corrected_layer(merged, min_soup_umis=smk.params.min_soup_umis)
    tables.write_tsv(soup, smk.output.ambient, index=True, index_label="sample")
    integrate.normalise(merged)
    record = {k: v for k, v in merged.uns["hvg"].items() if k != "fits"}
    log.info("merged %d cells x %d genes; HVGs %s", *merged.shape, record)
    tables.write_tsv(hvg.hvg_table(merged.uns["hvg"]), smk.output.hvg)
    h5ad.write_h5ad(merged, smk.output.h5ad)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

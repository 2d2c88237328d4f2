"""Snakemake adapter: read one sample's count matrix; the logic lives in tmeflow.ingest."""

import pandas as pd

from tmeflow import downloads, errors, gsea, h5ad, ingest, runtime, tables


def reference_symbols(panels, gene_sets, genes):
    """Gene symbols in their canonical spelling: genes of interest, panels' markers, gene sets.

    A generator: the files are read only when ingest needs them (all-upper-case mouse names).
    """
    yield from genes
    for panel in panels:
        for markers in gsea.marker_sets(panel).values():
            yield from markers
    for gmt in gene_sets:
        for members in gsea.read_gmt(gmt).values():
            yield from members


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    path = smk.params.path
    if downloads.is_url(path):
        path = smk.input[0]  # the verified download (rule download_sample)
    p = smk.params
    try:
        adata = ingest.ingest_sample(
            path,
            sample=smk.wildcards.sample,
            condition=p.condition,
            extra=dict(p.meta),
            fmt=p.fmt,
            obs_column=p.obs_column or None,
            obs_value=p.obs_value or None,
            cell_calling=p.cell_calling,
            raw_min_barcodes=p.raw_min_barcodes,
            min_umi=p.min_umi,
            species=p.species,
            symbol_case=p.symbol_case,
            symbol_reference=(
                reference_symbols(p.symbol_panels, p.symbol_gene_sets, p.genes)
                if p.species == "mouse" and p.symbol_case == "auto"
                else ()
            ),
        )
    except errors.InputError as exc:
        log.error("%s", exc)  # the message in the rule's log, not only in Snakemake's output
        raise
    log.info("%s: %d cells x %d features from %s", smk.wildcards.sample, *adata.shape, path)
    tables.write_tsv(pd.DataFrame([ingest.ingest_report(adata)]), smk.output.table)
    h5ad.write_h5ad(adata, smk.output.h5ad)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

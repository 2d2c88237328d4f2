"""Snakemake adapter: read one sample's count matrix; the logic lives in tmeflow.inputs."""

import pandas as pd

from tmeflow import core, inputs


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    path = smk.input[0] if inputs.is_url(p.path) else p.path  # a URL: the verified download
    refs = inputs.symbol_reference(
        p.species, p.symbol_case, p.symbol_panels, p.symbol_gene_sets, p.genes
    )
    try:
        adata = inputs.ingest_sample(
            path, sample=smk.wildcards.sample, condition=p.condition, extra=dict(p.meta),
            fmt=p.fmt, obs_column=p.obs_column or None, obs_value=p.obs_value or None,
            cell_calling=p.cell_calling, raw_min_barcodes=p.raw_min_barcodes,
            min_umi=p.min_umi, species=p.species, symbol_case=p.symbol_case,
            symbol_reference=refs, member=p.member or None,
        )  # fmt: skip
    except core.InputError as exc:
        log.error("%s", exc)  # the message in the rule's log, not only in Snakemake's output
        raise
    log.info("%s: %d cells x %d features from %s", smk.wildcards.sample, *adata.shape, path)
    core.write_tsv(pd.DataFrame([inputs.ingest_report(adata)]), smk.output.table)
    core.write_h5ad(adata, smk.output.h5ad)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

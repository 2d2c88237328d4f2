"""Snakemake adapter: per-sample QC and doublet removal; the logic lives in tmeflow.qc."""

import pandas as pd

from tmeflow import doublets, h5ad, qc, runtime, tables


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    adata = h5ad.read_h5ad(smk.input[0])
    qc.qc_metrics(adata)
    if p.doublets:
        doublets.call_doublets(
            adata, seed=p.seed, method=p.doublet_method, consensus_rule=p.doublet_consensus,
            confident=p.doublet_confident, cap=p.doublet_cluster_cap, min_counts=p.min_counts,
            min_genes=p.min_genes, max_pct_mito=p.max_pct_mito,
        )  # fmt: skip
    # A sample that loses every cell is reported (metrics "note", warning) and left out;
    # qc_summary fails when a whole condition is left without cells.
    kept, metrics = qc.filter_cells(
        adata, nmads_counts=p.nmads_counts, nmads_genes=p.nmads_genes,
        nmads_mito=p.nmads_mito, min_counts=p.min_counts, min_genes=p.min_genes,
        max_pct_mito=p.max_pct_mito, remove_doublets=p.doublets, allow_empty=True,
    )  # fmt: skip
    cells = qc.cell_table(adata.obs)
    tables.write_tsv(cells, smk.output.cells, index=True, index_label="cell")
    tables.write_tsv(pd.DataFrame([metrics]), smk.output.metrics)
    log.info("QC %s: %s", smk.wildcards.sample, metrics)
    h5ad.write_h5ad(kept, smk.output.h5ad)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

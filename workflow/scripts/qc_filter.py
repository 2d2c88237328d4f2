"""Snakemake adapter: per-sample QC and doublet removal; the logic lives in tmeflow.cells."""

import pandas as pd

from tmeflow import cells, core


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    adata = core.read_h5ad(smk.input[0])
    cells.qc_metrics(adata)
    if p.doublets:
        cells.call_doublets(
            adata, seed=p.seed, method=p.doublet_method, consensus_rule=p.doublet_consensus,
            confident=p.doublet_confident, cap=p.doublet_cluster_cap, min_counts=p.min_counts,
            min_genes=p.min_genes, max_pct_mito=p.max_pct_mito,
        )  # fmt: skip
    # A sample that loses every cell is reported (metrics "note", warning) and left out;
    # qc_summary fails when a whole condition is left without cells.
    kept, metrics = cells.filter_cells(
        adata, nmads_counts=p.nmads_counts, nmads_genes=p.nmads_genes,
        nmads_mito=p.nmads_mito, min_counts=p.min_counts, min_genes=p.min_genes,
        max_pct_mito=p.max_pct_mito, remove_doublets=p.doublets, allow_empty=True,
    )  # fmt: skip
    per_cell = cells.cell_table(adata.obs)
    core.write_tsv(per_cell, smk.output.cells, index=True, index_label="cell")
    core.write_tsv(pd.DataFrame([metrics]), smk.output.metrics)
    log.info("QC %s: %s", smk.wildcards.sample, metrics)
    core.write_h5ad(kept, smk.output.h5ad)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

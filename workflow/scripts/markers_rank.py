"""Snakemake adapter: marker genes of each cluster and cell type; logic in tmeflow.annotate."""

from pathlib import Path

import anndata as ad
import pandas as pd

from tmeflow import annotate, core
from tmeflow.plots import atlas


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)
    adata = core.read_h5ad(smk.input.h5ad, skip=("layers", "obsp"))
    n_genes = smk.params.n_genes
    clusters, notes_c = annotate.rank_markers(adata, groupby="leiden", n_genes=n_genes)
    cell_types, notes_t = annotate.rank_markers(adata, groupby="cell_type", n_genes=n_genes)
    core.write_tsv(clusters, smk.output.clusters)
    core.write_tsv(cell_types, smk.output.cell_types)
    core.write_tsv(pd.concat([notes_c, notes_t], ignore_index=True), smk.output.notes)
    # scanpy's layout, beside the tables: annotated.uns.update(read_h5ad(...).uns)
    uns = {
        "rank_genes_groups": annotate.rank_genes_groups_uns(clusters, adata.obs, groupby="leiden"),
        "rank_genes_groups_cell_type": annotate.rank_genes_groups_uns(
            cell_types, adata.obs, groupby="cell_type"
        ),
    }
    core.write_h5ad(ad.AnnData(uns=uns), smk.output.scanpy)
    atlas.cluster_markers_dotplot(
        adata, clusters, stem=Path(smk.output.dotplot[0]).with_suffix(""), groupby="leiden"
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

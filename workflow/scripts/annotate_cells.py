"""Snakemake adapter: marker-based annotation; logic in tmeflow.annotate."""

from pathlib import Path

from tmeflow import annotate, core, embed
from tmeflow.plots import atlas


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    embed.set_threads(smk.threads)
    p = smk.params
    adata = core.read_h5ad(smk.input.h5ad, skip=("layers",))
    marker_panel = core.load_panels([smk.input.panel, *smk.input.extra_panels])
    table = annotate.annotate(
        adata, marker_panel, species_mode=p.species, min_score=p.min_score,
        min_margin=p.min_margin, subcluster_resolution=p.subcluster_resolution,
        n_neighbors=p.n_neighbors, seed=p.seed, min_subcluster_cells=p.min_subcluster_cells,
        refine_fraction=p.refine_fraction, refine_resolution=p.refine_resolution,
    )  # fmt: skip
    log.info("cell types: %s", adata.obs["cell_type"].value_counts().to_dict())
    log.info("subtypes: %s", adata.obs["cell_subtype"].value_counts().to_dict())
    atlas.score_heatmap(table, stem=Path(smk.output.heatmap[0]).with_suffix(""))
    doublet_table = annotate.doublet_summary(adata.obs)
    core.write_tsv(annotate.add_doublet_columns(table, doublet_table), smk.output.scores)
    core.write_tsv(doublet_table, smk.output.doublets)
    annotate.add_palettes(adata, conditions=p.conditions)  # scanpy's plots match the figures
    labels = annotate.label_table(adata)
    core.write_tsv(labels, smk.output.labels, index=True, index_label="cell")
    core.update_h5ad(adata, smk.input.h5ad, smk.output.h5ad)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

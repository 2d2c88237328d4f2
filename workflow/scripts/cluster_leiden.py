"""Snakemake adapter: neighbours, UMAP, resolution sweep and Leiden on X_scVI; logic in
tmeflow.embed."""

from pathlib import Path

from tmeflow import core, embed
from tmeflow.plots import atlas


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    embed.set_threads(smk.threads)
    p = smk.params
    adata = core.read_h5ad(smk.input[0], skip=("X", "layers"))
    sweep = embed.embed_and_cluster(
        adata,
        n_neighbors=p.n_neighbors,
        resolution=p.resolution,
        seed=p.seed,
        sweep_resolutions=p.sweep_resolutions,
        sweep_seeds=p.sweep_seeds,
        choice=p.resolution_choice,
        stability_tolerance=p.stability_tolerance,
    )
    log.info("clustering: %s", adata.uns["cluster"])
    core.write_tsv(sweep, smk.output.sweep)
    atlas.resolution_sweep_plot(sweep, stem=Path(smk.output.figure[0]).with_suffix(""))
    core.update_h5ad(adata, smk.input[0], smk.output.h5ad)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

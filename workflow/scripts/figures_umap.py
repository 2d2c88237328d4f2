"""Snakemake adapter: UMAPs coloured by cell type, subtype, condition, sample and species."""

from pathlib import Path

from tmeflow import core
from tmeflow.plots import atlas


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)
    adata = core.read_h5ad(smk.input[0], skip=("X", "layers", "obsp"))
    for key in smk.params.umap_keys:
        order = list(smk.params.conditions) if key == "condition" else None
        atlas.umap_plot(
            adata, color=key, stem=Path(smk.output[0]).parent / f"umap_{key}", order=order
        )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

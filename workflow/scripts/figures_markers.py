"""Snakemake adapter: marker dotplot of the panel's cell types over the annotated labels."""

from pathlib import Path

from tmeflow import core
from tmeflow.plots import atlas


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)
    adata = core.read_h5ad(smk.input.h5ad, skip=("layers", "obsp"))
    markers = core.panel_markers(core.load_panel(smk.input.panel))
    present = set(adata.obs["cell_type"].astype(str))
    markers = {k: v for k, v in markers.items() if k in present}
    atlas.marker_dotplot(
        adata, markers=markers, groupby="cell_type", stem=Path(smk.output[0]).with_suffix("")
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

"""Snakemake adapter: per-sample cross-species doublet figure; logic in tmeflow.plots.qc."""

from pathlib import Path

from tmeflow import core
from tmeflow.plots import qc


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)
    adata = core.read_h5ad(smk.input[0], skip=("X", "layers", "obsm", "obsp", "varm", "varp"))
    model = adata.uns.get("species", {}).get("ambient")
    stem = Path(smk.output[0]).with_suffix("")
    qc.crossspecies_plot(adata.obs, model, stem=stem, sample=smk.wildcards.sample)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

"""Snakemake adapter: figure of the primary sources of each gene of interest, with one point
per animal (results/figures/primary_sources.{pdf,png}).

The logic lives in tmeflow.plots.sources.
"""

import pandas as pd

from tmeflow import core
from tmeflow.plots import sources


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)
    primary = pd.read_csv(smk.input.primary, sep="\t")
    samples = pd.concat([pd.read_csv(f, sep="\t") for f in smk.input.samples], ignore_index=True)
    stem = str(smk.output[0]).rsplit(".", 1)[0]
    sources.primary_sources_plot(
        primary, samples, stem=stem, conditions=list(smk.params.conditions), seed=smk.params.seed
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

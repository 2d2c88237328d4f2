"""Snakemake adapter: one sample's QC figure; the logic lives in tmeflow.plots.qc."""

from pathlib import Path

import pandas as pd

from tmeflow import core
from tmeflow.plots import qc


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)
    cells = pd.read_csv(smk.input.cells, sep="\t")
    metrics = pd.read_csv(smk.input.metrics, sep="\t").iloc[0].to_dict()
    stem = Path(smk.output[0]).with_suffix("")
    qc.qc_sample_plot(cells, metrics, sample=smk.wildcards.sample, stem=stem)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

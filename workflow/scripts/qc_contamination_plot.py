"""Snakemake adapter: per-sample ambient contamination figure; logic in tmeflow.plots.qc."""

from pathlib import Path

import pandas as pd

from tmeflow import core
from tmeflow.plots import qc


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)
    summary = pd.read_csv(smk.input[0], sep="\t")
    stem = Path(smk.output[0]).with_suffix("")
    qc.contamination_plot(summary, stem=stem, conditions=list(smk.params.conditions))


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

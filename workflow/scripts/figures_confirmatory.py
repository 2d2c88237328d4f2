"""Snakemake adapter: one panel per pre-specified hypothesis (tmeflow.plots.confirmatory)."""

from pathlib import Path

import pandas as pd

from tmeflow import core
from tmeflow.plots import confirmatory


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)
    table = pd.read_csv(smk.input.table, sep="\t", keep_default_na=False, na_values=[""])
    values = pd.read_csv(smk.input.values, sep="\t")
    stem = Path(smk.output[0]).with_suffix("")
    confirmatory.confirmatory_plot(
        table, values, stem=stem, conditions=list(smk.params.conditions), seed=smk.params.seed
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

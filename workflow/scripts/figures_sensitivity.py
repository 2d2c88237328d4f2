"""Snakemake adapter: the verdict grid and specification curves (tmeflow.plots.sensitivity)."""

from pathlib import Path

import pandas as pd

from tmeflow import core
from tmeflow.plots import sensitivity


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)
    table = pd.read_csv(smk.input[0], sep="\t", keep_default_na=False, na_values=[""])
    sensitivity.sensitivity_plot(table, stem=Path(smk.output.grid[0]).with_suffix(""))
    sensitivity.specification_curve(table, stem=Path(smk.output.curve[0]).with_suffix(""))


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

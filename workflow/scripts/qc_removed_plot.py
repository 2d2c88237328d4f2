"""Snakemake adapter: the removed cells by label and arm; the figure lives in tmeflow.plots.qc."""

from pathlib import Path

import pandas as pd

from tmeflow import core
from tmeflow.plots import qc


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)

    def _read(path):
        return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])

    stem = Path(smk.output[0]).with_suffix("")
    qc.removed_by_label_plot(
        _read(smk.input.table), _read(smk.input.flags), stem=stem,
        conditions=list(smk.params.conditions),
    )  # fmt: skip


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

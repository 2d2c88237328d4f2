"""Snakemake adapter: the communication figures (tmeflow.plots.communication)."""

from pathlib import Path

import pandas as pd

from tmeflow import core
from tmeflow.plots import communication


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    scores = pd.read_csv(smk.input.scores, sep="\t")
    comparison = pd.read_csv(smk.input.comparison, sep="\t")
    table = pd.read_csv(smk.input.table, sep="\t", keep_default_na=False, na_values=[""])
    values = pd.read_csv(smk.input.values, sep="\t")
    stems = [Path(f).with_suffix("") for f in smk.output if f.endswith(".png")]
    conditions = list(p.conditions)
    communication.dotplot(scores, comparison, stem=stems[0], conditions=conditions, top_n=p.top_n)
    communication.summary(comparison, stem=stems[1])
    communication.hypotheses(table, values, stem=stems[2], conditions=conditions, seed=p.seed)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

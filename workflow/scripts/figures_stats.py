"""Snakemake adapter: figures of the condition statistics (GOI, sources, composition, volcano)."""

from pathlib import Path

import pandas as pd

from tmeflow import core
from tmeflow.plots import stats


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    out = Path(smk.output.composition[0]).parent
    conditions = list(p.conditions)
    values = pd.read_csv(smk.input.values, sep="\t")
    for gene, table in zip(p.genes, smk.input.sources, strict=True):
        sources = pd.read_csv(table, sep="\t")
        stats.gene_figures(values, sources, gene=gene, out=out, conditions=conditions)
    props = pd.read_csv(smk.input.proportions, sep="\t")
    stats.composition_plot(props, stem=out / "composition", conditions=conditions)
    de = {t.stem: pd.read_csv(t, sep="\t") for t in sorted(Path(smk.input.de).glob("*.tsv"))}
    stats.volcano_plots(de, out=smk.output.volcano, conditions=conditions, highlight=p.genes,
                        alpha=p.alpha)  # fmt: skip


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

"""Snakemake adapter: figures of the condition statistics (GOI, sources, composition, volcano)."""

from pathlib import Path

import pandas as pd

from tmeflow import figures, runtime


def main(smk) -> None:
    runtime.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    out = Path(smk.output.composition[0]).parent
    conditions = list(p.conditions)
    values = pd.read_csv(smk.input.values, sep="\t")
    if "level" in values.columns:  # cell types here; subtypes are in the same table
        values = values[values["level"] == "cell_type"]
    for gene, table in zip(p.genes, smk.input.sources, strict=True):
        figures.genes_of_interest_plot(
            values, gene=gene, stem=out / f"goi_{gene}", conditions=conditions
        )
        figures.sources_plot(pd.read_csv(table, sep="\t"), gene=gene, stem=out / f"sources_{gene}")
    props = pd.read_csv(smk.input.proportions, sep="\t")
    figures.composition_plot(props, stem=out / "composition", conditions=conditions)
    volcano_dir = Path(smk.output.volcano)
    volcano_dir.mkdir(parents=True, exist_ok=True)
    for table in sorted(Path(smk.input.de).glob("*.tsv")):
        de = pd.read_csv(table, sep="\t")
        figures.volcano_plot(
            de,
            title=f"{table.stem}: {conditions[1]} vs {conditions[0]}",
            stem=volcano_dir / table.stem,
            highlight=list(p.genes),
            alpha=p.alpha,
        )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

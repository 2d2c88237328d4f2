"""Snakemake adapter: dot plot of the top GSEA terms across cell types
(results/figures/gsea_dotplot.{pdf,png}).

The drawing lives in tmeflow.plots.stats.gsea_dotplot.
"""

from pathlib import Path

import pandas as pd

from tmeflow import core
from tmeflow.plots import stats


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)
    parts = [pd.read_csv(f, sep="\t") for f in sorted(Path(smk.input[0]).glob("*.tsv"))]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if table.empty:
        table = pd.DataFrame(columns=["cell_type", "Term", "NES", "FDR q-val"])
    stem = str(smk.output[0]).rsplit(".", 1)[0]
    stats.gsea_dotplot(table, stem=stem, top=smk.params.top)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

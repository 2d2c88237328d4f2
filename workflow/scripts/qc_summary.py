"""Snakemake adapter: one QC row per sample in results/qc/summary.tsv."""

import pandas as pd

from tmeflow import runtime, tables


def main(smk) -> None:
    runtime.setup(smk.log[0], threads=smk.threads)
    metrics = pd.concat([pd.read_csv(f, sep="\t") for f in smk.input.metrics], ignore_index=True)
    species = pd.concat([pd.read_csv(f, sep="\t") for f in smk.input.species], ignore_index=True)
    summary = metrics.merge(species, on="sample", how="left", validate="one_to_one")
    tables.write_tsv(summary, smk.output[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

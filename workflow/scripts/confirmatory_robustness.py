"""Snakemake adapter: the confirmatory table with how each verdict holds up across the
sensitivity settings; logic in tmeflow.stats."""

import pandas as pd

from tmeflow import core, stats


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    read = {"sep": "\t", "keep_default_na": False, "na_values": [""]}
    table = stats.robustness(
        pd.read_csv(smk.input.table, **read), pd.read_csv(smk.input.sensitivity, **read)
    )
    log.info("robustness:\n%s", table[["hypothesis", "verdict", *stats.ROBUSTNESS_COLUMNS]])
    core.write_tsv(table, smk.output[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

"""Snakemake adapter: the ranked primary sources of every gene of interest, per condition,
at the cell-type and the subtype level (results/sources/primary_sources.tsv).

The logic lives in tmeflow.stats.
"""

from tmeflow import core, stats


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    table = stats.primary_from_files(
        smk.input.types,
        smk.input.subtypes,
        smk.input.samples,
        min_share=smk.params.min_share,
        corrected=smk.params.ambient_correction,
    )
    log.info("primary sources:\n%s", table.to_string())
    core.write_tsv(table, smk.output[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

"""Snakemake adapter: one QC row per sample in results/qc/summary.tsv; the checks live in
tmeflow.cells (a condition without cells fails here, before integration)."""

import pandas as pd

from tmeflow import cells, core


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)

    def _read(files):
        return pd.concat([pd.read_csv(f, sep="\t") for f in files], ignore_index=True)

    summary = cells.summary_table(
        ingest=_read(smk.input.ingest),
        species=_read(smk.input.species),
        metrics=_read(smk.input.metrics),
        conditions=dict(smk.params.conditions),
        features={
            s: core.read_var_names(f)
            for s, f in zip(smk.params.samples, smk.input.h5ads, strict=True)
        },
    )
    for note in summary["note"].fillna("").astype(str):
        if note:
            log.warning(note)
    try:
        cells.check_conditions(summary, dict(smk.params.conditions))
    except ValueError as exc:
        log.error("%s", exc)  # the message in the rule's log, not only in Snakemake's output
        raise
    core.write_tsv(summary, smk.output[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

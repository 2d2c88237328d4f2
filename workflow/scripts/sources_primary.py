"""Snakemake adapter: the ranked primary sources of every gene of interest, per condition,
at the cell-type and the subtype level (results/sources/primary_sources.tsv).

The logic lives in tmeflow.sources.
"""

import pandas as pd

from tmeflow import runtime, sources, tables


def _read_all(paths) -> pd.DataFrame:
    parts = [pd.read_csv(p, sep="\t") for p in paths]
    parts = [t for t in parts if "share" in t.columns]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    per_sample = _read_all(smk.input.samples)
    samples = (
        {lvl: t for lvl, t in per_sample.groupby("level", sort=False)} if len(per_sample) else {}
    )
    table = sources.primary_summary(
        {"cell_type": _read_all(smk.input.types), "cell_subtype": _read_all(smk.input.subtypes)},
        samples,
        min_share=smk.params.min_share,
    )
    log.info("primary sources:\n%s", table.to_string())
    tables.write_tsv(table, smk.output[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

"""Snakemake adapter: per-cell species calls; the logic lives in tmeflow.species."""

import pandas as pd

from tmeflow import io, runtime, species, tables


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    adata = io.read_h5ad(smk.input[0])
    species.assign_species(adata, mode=smk.params.mode, min_fraction=smk.params.min_fraction)
    calls = adata.obs["species"].value_counts()
    row = {
        "sample": smk.wildcards.sample,
        "species_mode": smk.params.mode,
        "n_human": int(calls.get("human", 0)),
        "n_mouse": int(calls.get("mouse", 0)),
        "n_mixed": int(calls.get("mixed", 0)),
    }
    if smk.params.mode == "xenograft":
        row.update({f"contamination_{k}": v for k, v in species.contamination(adata).items()})
        found = adata.uns["species"].get("prefixes", {})
        row["prefixes"] = ";".join(f"{k}:{','.join(v)}" for k, v in sorted(found.items()))
    log.info("species calls: %s", row)
    tables.write_tsv(pd.DataFrame([row]), smk.output.table)
    io.write_h5ad(adata, smk.output.h5ad)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

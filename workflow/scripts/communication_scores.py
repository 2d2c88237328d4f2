"""Snakemake adapter: ligand-receptor scores per animal, compared between the arms.

The logic lives in tmeflow.stats (_communication).
"""

import h5py

from tmeflow import core, stats


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    with h5py.File(smk.input.h5ad, "r") as f:
        layers = [k for k in ("counts", "counts_ambient_corrected") if k in f.get("layers", {})]
    adata = core.read_h5ad(smk.input.h5ad, skip=("X", "obsp"), layers=layers)
    log.info("layers read: %s", layers)
    scores, comparison, mapping = stats.communication(
        adata,
        stats.consensus_resource(),
        stats.read_orthologs(smk.input.orthologs),
        species=p.species,
        reference=p.reference,
        test=p.test,
        condition_key=p.condition_key,
        min_cells=p.min_cells,
        expr_prop=p.expr_prop,
    )
    log.info("mapping:\n%s", mapping.to_string())
    core.write_tsv(scores, smk.output.scores)
    core.write_tsv(comparison, smk.output.comparison)
    core.write_tsv(mapping, smk.output.mapping)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

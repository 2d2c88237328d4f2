"""Snakemake adapter: one retraining setting of the sensitivity table (embedding, Leiden,
annotation again); logic in tmeflow.stats."""

import pandas as pd

from tmeflow import core, stats


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads, numba=False)
    p = smk.params
    adata = core.read_h5ad(smk.input.h5ad, layers=("counts",))
    clustered = core.read_h5ad(smk.input.clustered, skip=("X", "layers", "obsm", "obsp"))
    labels, note = stats.retrain_labels(
        adata,
        smk.wildcards.variant,
        core.load_panels([smk.input.panel, *smk.input.extra_panels]),
        scvi_options=p.scvi_options,
        hvg_options=p.hvg_options,
        n_neighbors=p.n_neighbors,
        resolution=float(clustered.uns["cluster"]["resolution"]),
        seed=p.seed,
        annotate_options=p.annotate_options,
    )
    core.write_tsv(labels, smk.output.labels, index=True, index_label="cell")
    core.write_tsv(
        pd.DataFrame({"variant": [smk.wildcards.variant], "note": [note]}), smk.output.note
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821

"""Snakemake adapter: every cell removed before annotation, embedded by the trained scVI encoder,
labelled by its nearest kept cells and tabulated by sample, arm and label; the logic lives in
tmeflow.cells and tmeflow.embed."""

import anndata as ad
import pandas as pd

from tmeflow import cells, core, embed


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    kept = core.read_h5ad(smk.input.annotated, skip=("X", "obsp", "uns"), layers=["counts"])
    qc_cells = pd.concat([pd.read_csv(f, sep="\t", index_col="cell") for f in smk.input.cells])
    removed_obs = cells.removed_obs(qc_cells, kept.obs_names)
    parts = []
    for f in smk.input.species:  # one sample at a time: only its removed droplets are held
        a = core.read_h5ad(f, skip=("uns",))
        parts.append(a[a.obs_names.isin(removed_obs.index)].copy())
    removed = ad.concat(parts, join="inner")
    latent = embed.encode_cells(smk.input.model, removed, threads=smk.threads)  # no training
    per_cell, back = cells.account_removed(kept, removed, removed_obs, k=p.k, seed=p.seed,
                                           embedding=(kept.obsm["X_scVI"], latent))  # fmt: skip
    kept_obs = pd.DataFrame({"sample": kept.obs["sample"], "label": kept.obs["cell_type"]})
    flags = cells.removed_flags(per_cell, kept_obs, dict(p.conditions))
    log.info("%d removed cells labelled (%d can come back); %d label(s) flagged",
             len(per_cell), back.n_obs, flags["flagged"].sum())  # fmt: skip
    core.write_h5ad(back, smk.output.h5ad)
    core.write_tsv(per_cell, smk.output.cells, index=True, index_label="cell")
    core.write_tsv(cells.removed_table(per_cell, kept_obs, dict(p.conditions)), smk.output.table)
    core.write_tsv(flags, smk.output.flags)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
